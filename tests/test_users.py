"""Tests of rag/auth/users.py on a real SQLite database in tmp_path, with a cheap argon2 hasher."""

from __future__ import annotations

import sys

import json
import stat
import threading
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from rag.config import Settings
from rag.db.models import UserRow
from rag.errors import AuthError, InputError, RagError
from rag.auth.users import PERMISSIONS, ROLE_LABELS, ROLES, User, UserStore, allowed, require, run_users_cli


def cheap_hasher() -> PasswordHasher:
    return PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # the data folder does not exist yet on purpose
    return Settings(data_dir=tmp_path / "data", corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index")


def another(settings: Settings, hasher: PasswordHasher | None = None) -> UserStore:
    """A second store on the same database, with its own engine (as another process opens it)."""
    return UserStore.open(settings, hasher=hasher or cheap_hasher())


@pytest.fixture
def store(settings: Settings) -> UserStore:
    return another(settings)


def stored_hash(store: UserStore, name: str) -> str:
    with store.db.session() as s:
        return s.get(UserRow, name).password_hash


def test_add_and_verify(store: UserStore, settings: Settings) -> None:
    assert store.is_empty()
    assert store.add("张三", "cadre", "correct horse") == "correct horse"
    user = store.verify("张三", "correct horse")
    assert user is not None and user.name == "张三" and user.role == "cadre"
    assert user.created  # ISO time
    assert not store.is_empty()
    db_file = settings.data_dir / "app.db"
    assert stat.S_IMODE(db_file.stat().st_mode) == 0o600
    assert not (settings.data_dir / "users.json").exists()  # no JSON file is written any more


def test_wrong_password_and_unknown_user(store: UserStore) -> None:
    store.add("li", "trainer", "password-1")
    assert store.verify("li", "password-2") is None
    assert store.verify("li", "") is None
    assert store.verify("nobody", "password-1") is None


def test_generated_password(store: UserStore) -> None:
    password = store.add("wang", "admin")
    assert len(password) >= 12
    assert store.verify("wang", password) == store.get("wang")


def test_database_has_only_argon2_hashes(store: UserStore, settings: Settings) -> None:
    store.add("a1", "cadre", "secret-one-111")
    generated = store.add("a2", "admin")
    raw = b"".join(p.read_bytes() for p in settings.data_dir.glob("app.db*"))  # the file and its WAL
    assert b"secret-one-111" not in raw and generated.encode() not in raw
    with store.db.session() as s:
        rows = {r.name: r.password_hash for r in s.query(UserRow)}
    assert set(rows) == {"a1", "a2"}
    assert all(h.startswith("$argon2id$") for h in rows.values())


def test_remove(store: UserStore) -> None:
    store.add("admin1", "admin", "adminpass")
    store.add("zhao", "cadre", "zhaopass1")
    store.remove("zhao")
    assert store.get("zhao") is None
    assert store.verify("zhao", "zhaopass1") is None
    with pytest.raises(InputError):
        store.remove("zhao")


def test_reset_password(store: UserStore) -> None:
    store.add("qian", "cadre", "old-password")
    assert store.reset_password("qian", "new-password") == "new-password"
    assert store.verify("qian", "old-password") is None
    assert store.verify("qian", "new-password") is not None
    generated = store.reset_password("qian")
    assert store.verify("qian", generated) is not None
    with pytest.raises(InputError):
        store.reset_password("qian", "short")
    with pytest.raises(InputError):
        store.reset_password("ghost")


def test_set_role_accepts_ids_and_chinese(store: UserStore) -> None:
    store.add("sun", "cadre", "sunpass11")
    store.set_role("sun", "trainer")
    assert store.get("sun").role == "trainer"
    store.set_role("sun", "管理员")
    assert store.get("sun").role == "admin"
    with pytest.raises(InputError):
        store.set_role("sun", "boss")
    with pytest.raises(InputError):
        store.set_role("ghost", "cadre")


def test_last_admin_cannot_be_removed_or_demoted(store: UserStore) -> None:
    store.add("boss", "admin", "bosspass1")
    with pytest.raises(InputError):
        store.remove("boss")
    with pytest.raises(InputError):
        store.set_role("boss", "cadre")
    store.add("boss2", "admin", "bosspass2")
    store.set_role("boss", "cadre")
    assert store.get("boss").role == "cadre"


def test_duplicate_rejected(store: UserStore) -> None:
    store.add("zhou", "cadre", "zhoupass1")
    with pytest.raises(InputError, match="已存在"):
        store.add("zhou", "admin", "other-pass")
    assert store.get("zhou").role == "cadre"


@pytest.mark.parametrize(
    "name", ["", "a" * 33, "has space", "semi;colon", "斜/杠", "tab\t", "emoji🙂", None]
)
def test_bad_names_rejected(store: UserStore, name: str) -> None:
    with pytest.raises(InputError):
        store.add(name, "cadre", "goodpassword")
    assert store.is_empty()


@pytest.mark.parametrize("name", ["a", "a" * 32, "张三", "user_1.x-y", "Wu2"])
def test_good_names_accepted(store: UserStore, name: str) -> None:
    store.add(name, "cadre", "goodpassword")
    assert store.get(name) is not None


def test_unknown_role_and_short_password_rejected(store: UserStore) -> None:
    with pytest.raises(InputError, match="未知角色"):
        store.add("x", "superuser", "goodpassword")
    with pytest.raises(InputError, match="至少"):
        store.add("x", "cadre", "1234567")
    assert store.is_empty()


def test_chinese_role_in_add(store: UserStore) -> None:
    store.add("feng", "培训", "fengpass1")
    assert store.get("feng").role == "trainer"


def test_list_sorted(store: UserStore) -> None:
    store.add("b", "trainer", "password-b")
    store.add("a", "cadre", "password-a")
    assert [(u.name, u.role) for u in store.list()] == [("a", "cadre"), ("b", "trainer")]
    assert all(isinstance(u, User) for u in store.list())


def test_ensure_first_admin_once(store: UserStore, settings: Settings) -> None:
    password = store.ensure_first_admin()
    assert password
    admin = store.verify("admin", password)
    assert admin is not None and admin.role == "admin"
    assert store.ensure_first_admin() is None
    assert another(settings).ensure_first_admin() is None
    assert [u.name for u in store.list()] == ["admin"]
    assert store.verify("admin", password) is not None  # password unchanged


def test_ensure_first_admin_skips_when_users_exist(store: UserStore) -> None:
    store.add("cadre1", "cadre", "cadrepass")
    assert store.ensure_first_admin() is None
    assert store.get("admin") is None


def test_invalid_users_json_stops_the_start_and_is_kept(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True)
    path = settings.data_dir / "users.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(RagError, match="users.json"):
        another(settings)
    assert path.read_text(encoding="utf-8") == "{not json"  # not renamed, not rewritten
    path.write_text('{"users": ["a"]}', encoding="utf-8")
    with pytest.raises(RagError, match="格式"):
        another(settings)
    # repaired: the next start imports it (the failed starts claimed nothing)
    path.write_text(json.dumps({"version": 1, "users": {"a": {"role": "admin", "hash": cheap_hasher().hash(
        "a-password-1"), "created": "2025-01-01T00:00:00+00:00"}}}), encoding="utf-8")
    store = another(settings)
    assert store.verify("a", "a-password-1") == store.get("a") and store.get("a").role == "admin"
    assert not path.exists() and (settings.data_dir / "users.json.migrated").exists()


def test_rehash_when_parameters_change(settings: Settings) -> None:
    old = another(settings)
    old.add("hu", "cadre", "hupassword")
    old_hash = stored_hash(old, "hu")
    stronger = PasswordHasher(time_cost=2, memory_cost=8192, parallelism=1)
    new = another(settings, stronger)
    assert new.verify("hu", "hupassword") is not None
    new_hash = stored_hash(old, "hu")
    assert new_hash != old_hash and "t=2" in new_hash
    assert new.verify("hu", "hupassword") is not None


def test_two_stores_see_each_other(settings: Settings) -> None:
    app = another(settings)
    cli = another(settings)
    app.add("admin", "admin", "adminpass")
    cli.add("chen", "cadre", "chenpass1")
    assert [u.name for u in app.list()] == ["admin", "chen"]
    app.set_role("chen", "trainer")
    assert cli.get("chen").role == "trainer"
    cli.remove("chen")
    assert app.get("chen") is None
    with pytest.raises(InputError):
        app.add("admin", "cadre", "whatever1")


def test_default_hasher_is_argon2_default(settings: Settings) -> None:
    assert UserStore.open(settings)._hasher.time_cost == PasswordHasher().time_cost


# -- permissions ----------------------------------------------------------------------------

EXPECTED = {
    ("cadre", "chat"): True,
    ("cadre", "quiz"): False,
    ("cadre", "manage"): False,
    ("trainer", "chat"): True,
    ("trainer", "quiz"): True,
    ("trainer", "manage"): False,
    ("admin", "chat"): True,
    ("admin", "quiz"): True,
    ("admin", "manage"): True,
    (None, "chat"): False,
    (None, "quiz"): False,
    (None, "manage"): False,
}


def test_constants() -> None:
    assert ROLES == ("cadre", "trainer", "admin")
    assert ROLE_LABELS == {"cadre": "干部", "trainer": "培训", "admin": "管理员"}
    assert set(PERMISSIONS) == {"chat", "quiz", "manage"}


@pytest.mark.parametrize(("role", "action"), list(EXPECTED))
def test_allowed_matrix(role: str | None, action: str) -> None:
    assert allowed(role, action) is EXPECTED[(role, action)]


@pytest.mark.parametrize(("role", "action"), [k for k in EXPECTED if k[0] is not None])
def test_require_matrix(role: str, action: str) -> None:
    user = User(name="u", role=role, created="2024-01-01T00:00:00+00:00")
    if EXPECTED[(role, action)]:
        assert require(user, action) is user
    else:
        with pytest.raises(AuthError, match=f"当前角色（{ROLE_LABELS[role]}）无权执行此操作"):
            require(user, action)


@pytest.mark.parametrize("action", ["chat", "quiz", "manage"])
def test_require_without_user(action: str) -> None:
    with pytest.raises(AuthError, match="请先登录"):
        require(None, action)


def test_require_message_exact() -> None:
    with pytest.raises(AuthError) as info:
        require(User("u", "cadre", ""), "manage")
    assert str(info.value) == "当前角色（干部）无权执行此操作：管理文档"


def test_unknown_role_in_file_is_denied() -> None:
    assert not allowed("root", "chat")


# -- CLI ------------------------------------------------------------------------------------


def test_cli_add_with_generated_password(store: UserStore, capsys: pytest.CaptureFixture) -> None:
    assert run_users_cli(["add", "admin", "--role", "admin"], store) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("初始密码："))
    password = line.removeprefix("初始密码：")
    assert store.verify("admin", password) is not None


def test_cli_add_with_given_password_does_not_print_it(
    store: UserStore, capsys: pytest.CaptureFixture
) -> None:
    assert run_users_cli(["add", "li", "--role", "培训", "--password", "lipass123"], store) == 0
    assert "lipass123" not in capsys.readouterr().out
    assert store.verify("li", "lipass123").role == "trainer"


def test_cli_prompts_for_the_password_on_a_terminal(
    store: UserStore, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import getpass
    import io

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    typed = iter(["typed-pass-123", "typed-pass-123", "other-pass-1", "other-pass-2"])
    monkeypatch.setattr(sys, "stdin", Terminal())
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(typed))
    assert run_users_cli(["add", "wang", "--role", "cadre"], store) == 0
    out = capsys.readouterr().out
    assert "typed-pass-123" not in out and "初始密码" not in out
    assert store.verify("wang", "typed-pass-123") is not None
    assert run_users_cli(["reset", "wang"], store) == 1  # the two entries differ: nothing changes
    assert "两次输入的密码不一致" in capsys.readouterr().err
    assert store.verify("wang", "typed-pass-123") is not None


def test_cli_list_remove_reset_role(store: UserStore, capsys: pytest.CaptureFixture) -> None:
    store.add("admin", "admin", "adminpass")
    store.add("zhang", "cadre", "zhangpass")
    capsys.readouterr()

    assert run_users_cli(["list"], store) == 0
    out = capsys.readouterr().out
    assert "admin" in out and "管理员" in out and "zhang" in out and "干部" in out

    assert run_users_cli(["role", "zhang", "培训"], store) == 0
    assert store.get("zhang").role == "trainer"
    assert "培训" in capsys.readouterr().out

    assert run_users_cli(["reset", "zhang"], store) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("新密码："))
    assert store.verify("zhang", line.removeprefix("新密码：")) is not None

    assert run_users_cli(["remove", "zhang"], store) == 0
    assert store.get("zhang") is None
    capsys.readouterr()


def test_cli_list_empty(store: UserStore, capsys: pytest.CaptureFixture) -> None:
    assert run_users_cli(["list"], store) == 0
    assert "暂无用户" in capsys.readouterr().out


def test_cli_bad_role_exits_1(store: UserStore, capsys: pytest.CaptureFixture) -> None:
    assert run_users_cli(["add", "x", "--role", "boss"], store) == 1
    captured = capsys.readouterr()
    assert "未知角色" in captured.err and captured.out == ""
    assert store.is_empty()
    store.add("admin", "admin", "adminpass")
    assert run_users_cli(["role", "admin", "boss"], store) == 1
    assert "未知角色" in capsys.readouterr().err


def test_cli_errors_exit_1(store: UserStore, capsys: pytest.CaptureFixture) -> None:
    assert run_users_cli(["remove", "ghost"], store) == 1
    assert "用户不存在" in capsys.readouterr().err
    assert run_users_cli(["add", "x", "--role", "cadre", "--password", "short"], store) == 1
    assert "密码" in capsys.readouterr().err


def test_cli_usage_error_does_not_exit(store: UserStore, capsys: pytest.CaptureFixture) -> None:
    assert run_users_cli(["add", "x"], store) == 2  # --role missing: argparse usage, no SystemExit
    assert "--role" in capsys.readouterr().err


def test_concurrent_writers_lose_no_update(settings: Settings) -> None:
    stores = [another(settings) for _ in range(2)]

    def add_many(i: int) -> None:
        for n in range(8):
            stores[i].add(f"s{i}_{n}", "cadre", "password-x")

    threads = [threading.Thread(target=add_many, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stores[0].list()) == 16


def test_last_admin_survives_two_stores_removing_at_once(settings: Settings) -> None:
    """Two admins, each removed by its own store at the same moment: one removal wins, one is refused."""
    first = another(settings)
    first.add("boss1", "admin", "boss1-pass")
    first.add("boss2", "admin", "boss2-pass")
    stores = [another(settings) for _ in range(2)]
    barrier = threading.Barrier(2)
    errors: list[Exception] = []

    def remove(i: int) -> None:
        barrier.wait()
        try:
            stores[i].remove(f"boss{i + 1}")
        except InputError as e:
            errors.append(e)

    threads = [threading.Thread(target=remove, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 1 and "最后一个管理员" in str(errors[0])
    assert [u.role for u in first.list()] == ["admin"]


def test_cli_process_adds_a_user_the_running_app_sees(settings: Settings) -> None:
    """``python -m rag users add`` in another process writes the database the app's store reads."""
    from web_site import users_cli

    app = another(settings)  # opened first, as by a running app
    app.add("admin", "admin", "admin-pass-1")

    def cli(*args: str):
        return users_cli(settings, *args)

    proc = cli("add", "周七", "--role", "培训", "--password", "zhouqi-pass-1")
    assert proc.returncode == 0, proc.stderr
    assert app.get("周七").role == "trainer" and app.verify("周七", "zhouqi-pass-1") is not None
    assert "周七" in cli("list").stdout
    assert cli("role", "周七", "cadre").returncode == 0 and app.get("周七").role == "cadre"
    proc = cli("remove", "admin")
    assert proc.returncode == 1 and "最后一个管理员" in proc.stderr
    assert cli("remove", "周七").returncode == 0 and app.get("周七") is None
    assert not (settings.data_dir / "users.json").exists()
