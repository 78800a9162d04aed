"""Hardening seen from a real headless Chromium (Debian's /usr/bin/chromium through Playwright).

Two chat turns where the first holds ``<img src=http://127.0.0.1:PORT/x>`` and ``<b>``: after the
second turn (which re-renders the first) no request reaches that loopback listener, no element is
bold, no dialog fires, and the page carries the Content-Security-Policy.
"""

from __future__ import annotations

import socket
import threading

import pytest

from browser_kit import need_browser  # noqa: E402  (tests/ is on sys.path under pytest)

sync_api = need_browser()

from browser_kit import TIMEOUT, browser, new_page, sign_in  # noqa: E402,F401  (browser: the fixture)
from test_app import make_site  # noqa: E402


class Listener:
    """A loopback TCP listener that counts the connections it gets (an image fetch would be one)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.hits: list[bytes] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    self.hits.append(conn.recv(1024))
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/gif\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    self.hits.append(b"?")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    s = make_site(tmp_path_factory.mktemp("browser_hardening"))
    yield s
    s["demo"].close()


def turn(page, question: str, n: int) -> None:
    """Ask in the same conversation and wait for the n-th answer to be complete (its sources shown)."""
    page.evaluate("() => { const s = document.querySelector('#sources'); if (s) s.innerHTML = ''; }")
    box = page.locator("#question textarea")
    box.fill(question)
    box.press("Enter")
    page.wait_for_function(
        "(n) => document.querySelectorAll('#chatbot [data-testid=\"bot\"], #chatbot .bot').length >= n"
        " && document.querySelector('#question textarea').value === ''", arg=n, timeout=TIMEOUT)
    page.wait_for_timeout(1500)  # the last streamed update and any image fetch it would start


def test_earlier_turns_stay_inert_text(site, browser) -> None:
    listener = Listener()
    page = new_page(browser, 1280, 1000)
    try:
        csp = {}
        page.on("response", lambda r: csp.setdefault("v", r.headers.get("content-security-policy"))
                if r.url.rstrip("/") == site["url"].rstrip("/") else None)
        sign_in(page, site, "cadre")
        first = f"<img src=http://127.0.0.1:{listener.port}/x><b>一抓双创</b>是什么？"
        turn(page, first, 1)
        turn(page, "它的内容是什么？", 2)
        chat = page.locator("#chatbot")
        assert "<b>一抓双创</b>" in chat.inner_text()  # shown as text, on the second turn too
        assert chat.locator("b, strong, img").count() == 0
        bold = page.evaluate(
            "() => [...document.querySelectorAll('#chatbot *')].filter(e => e.textContent.includes('一抓双创')"
            " && parseInt(getComputedStyle(e).fontWeight) >= 600).length")
        assert bold == 0
        assert listener.hits == []
        assert page.dialogs == []
        assert csp.get("v") and "img-src 'self' data: blob:" in csp["v"] and "object-src 'none'" in csp["v"]
    finally:
        page.context.close()
        listener.close()
