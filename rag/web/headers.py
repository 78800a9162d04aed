"""What every response of the page carries, and the small ASGI pieces the guard's parts share:
the security headers (CSP, nosniff, no framing, no referrer to other sites), reading a request's
headers and cookies, the cross-site (CSRF) check, and a JSON answer sent straight from the middleware.

Not done here: deciding anything (``guard.py``, ``signin.py`` and ``files.py`` do).
"""

from __future__ import annotations

import json
import urllib.parse
from http.cookies import SimpleCookie

# Gradio's page needs inline scripts (its config), eval for js= event handlers and inline styles;
# everything else is this origin only. Images: the app's own, data: and blob: (no remote image).
CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "media-src 'self' data: blob:",
    "connect-src 'self'",
    "worker-src 'self' blob:",
    "frame-src 'none'",
    "child-src 'none'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]

def with_headers(headers: list, *, download: bool, extra: list | None = None) -> list:
    names = {n for n, _ in SECURITY_HEADERS}
    if download:
        names.add(b"content-disposition")
    out = [(n, v) for n, v in headers if n.lower() not in names]
    out += SECURITY_HEADERS
    if download:
        disposition = next((v for n, v in headers if n.lower() == b"content-disposition"), b"")
        i = disposition.find(b"filename")
        out.append((b"content-disposition", b"attachment" + (b"; " + disposition[i:] if i >= 0 else b"")))
    return out + (extra or [])


def request_headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def request_cookies(headers: dict[str, str]) -> dict[str, str]:
    c = SimpleCookie()
    try:
        c.load(headers.get("cookie", ""))
    except Exception:  # a malformed cookie header: treat as none
        return {}
    return {k: m.value for k, m in c.items()}


def cross_site(headers: dict[str, str]) -> bool:
    """True when the browser says the request comes from another site or origin (CSRF).

    Uses Sec-Fetch-Site where the browser sends it, else Origin, else Referer; a request with
    none of them (curl, scripts, the Python client) is not a browser's cross-site request.
    """
    host = headers.get("host", "")
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return True
    for name in ("origin", "referer"):
        value = headers.get(name)
        if value:
            if value == "null":
                return True
            return urllib.parse.urlsplit(value).netloc != host
    return False


async def send_json(send, status: int, payload: dict, headers: list | None = None) -> None:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": with_headers([(b"content-type", b"application/json; charset=utf-8"),
                                          (b"content-length", str(len(body)).encode())], download=False, extra=headers)})
    await send({"type": "http.response.body", "body": body})
