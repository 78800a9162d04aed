"""Users and roles of the web app, kept in the application database (table ``users``).

Roles: ``cadre`` (干部: chat), ``trainer`` (培训: chat and quiz), ``admin`` (管理员: everything).
Passwords are hashed with argon2id (argon2-cffi's defaults) and never stored or logged in clear.
Every change is one database transaction, so the CLI can add a user while the app runs without
losing an update, and the app sees it on the next request. A ``users.json`` of an older version is
imported once on first start (``rag.db.importer``) and renamed ``users.json.migrated``.

Example::

    store = UserStore.open(settings)
    password = store.add("张三", "trainer")          # generated, shown once
    user = store.verify("张三", password)            # User or None
    require(user, "quiz")                            # AuthError when not allowed

Resetting a password, removing a user or changing a role ends that user's sessions at once
(``rag.auth.sessions``, in ``data_dir``). Not done here: login throttling (the web
layer), password policy beyond a minimum length.
"""

from __future__ import annotations

import argparse
import logging
import re
import secrets
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ..db import Database, open_database
from ..db.users import LastAdmin, UserExists, UserTable
from ..errors import AuthError, InputError, RagError
from .sessions import FILE_NAME as SESSIONS_FILE, SessionStore

logger = logging.getLogger(__name__)

ROLES = ("cadre", "trainer", "admin")
ROLE_LABELS = {"cadre": "干部", "trainer": "培训", "admin": "管理员"}
PERMISSIONS = {
    "chat": {"cadre", "trainer", "admin"},
    "quiz": {"trainer", "admin"},
    "manage": {"admin"},
}
ACTION_LABELS = {"chat": "问答", "quiz": "生成测验", "manage": "管理文档"}

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024  # argon2 copes with more; this only bounds the work per request
FIRST_ADMIN = "admin"

# ASCII letters and digits, CJK ideographs (basic + extension A), and _ - .
_NAME_RE = re.compile(r"[A-Za-z0-9_\-.\u3400-\u4dbf\u4e00-\u9fff]{1,32}")
_ROLE_BY_LABEL = {label: role for role, label in ROLE_LABELS.items()}


@dataclass(frozen=True)
class User:
    """A user as the app sees it; the password hash stays inside the store."""

    name: str
    role: str
    created: str  # ISO 8601, UTC

    @property
    def role_label(self) -> str:
        """Chinese name of the role, e.g. 干部."""
        return ROLE_LABELS.get(self.role, self.role)


def parse_role(role: str) -> str:
    """Return the role id for ``role`` given as an id (``admin``) or in Chinese (``管理员``)."""
    value = (role or "").strip()
    if value in ROLES:
        return value
    if value in _ROLE_BY_LABEL:
        return _ROLE_BY_LABEL[value]
    choices = "、".join(f"{ROLE_LABELS[r]}（{r}）" for r in ROLES)
    raise InputError(f"未知角色：{role}（可选 {choices}）", f"unknown role {role!r}")


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InputError(
            "用户名须为 1 至 32 个字符，只能包含字母、数字、汉字和 _ - .",
            f"invalid user name {name!r}",
        )
    return name


def _check_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
        raise InputError(
            f"密码至少需要 {MIN_PASSWORD_CHARS} 个字符", "password shorter than minimum"
        )
    if len(password) > MAX_PASSWORD_CHARS:
        raise InputError(
            f"密码不能超过 {MAX_PASSWORD_CHARS} 个字符", "password longer than maximum"
        )
    return password


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class UserStore:
    """Users in the application database (table ``users``, ``rag.db.users``).

    Every call reads the database again, so two stores (the app and the CLI) on the same database
    see each other's changes at once; each change is one transaction. Does not cache.

    Args:
        db: the application database (``rag.db.open_database``: it migrates ``users.json`` on first start).
        data_dir: ``settings.data_dir``, where the page's sessions live (ended on reset, remove, role).
        hasher: an argon2 ``PasswordHasher``; tests pass a cheap one, the app keeps the default.
    """

    def __init__(self, db: Database, data_dir: Path, *, hasher: PasswordHasher | None = None) -> None:
        self.db = db
        self.data_dir = Path(data_dir)
        self._table = UserTable(db)
        self._hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None

    @classmethod
    def open(cls, settings, *, hasher: PasswordHasher | None = None, db: Database | None = None) -> UserStore:
        """The store of ``settings``: its database (opened, upgraded and migrated unless ``db`` is given)."""
        return cls(db or open_database(settings), settings.data_dir, hasher=hasher)

    # -- public API -------------------------------------------------------------------------

    def add(self, name: str, role: str, password: str | None = None) -> str:
        """Create a user and return the password (generated when ``password`` is None)."""
        _check_name(name)
        role = parse_role(role)
        password = secrets.token_urlsafe(12) if password is None else _check_password(password)
        try:
            self._table.insert(name, {"role": role, "hash": self._hasher.hash(password), "created": _now()})
        except UserExists:
            raise InputError(f"用户已存在：{name}", f"duplicate user {name!r}") from None
        logger.info("added user %r with role %s", name, role)
        return password

    def remove(self, name: str) -> None:
        """Delete a user; refuses to delete the last admin."""
        try:
            gone = self._table.delete(name) if isinstance(name, str) else False
        except LastAdmin:
            raise InputError(f"不能删除最后一个管理员：{name}", f"refusing to remove last admin {name!r}") from None
        if not gone:
            raise _no_such(name)
        logger.info("removed user %r", name)
        self.end_sessions(name)

    def reset_password(self, name: str, password: str | None = None) -> str:
        """Set a new password and return it (generated when ``password`` is None)."""
        password = secrets.token_urlsafe(12) if password is None else _check_password(password)
        if not isinstance(name, str) or not self._table.set(name, password_hash=self._hasher.hash(password)):
            raise _no_such(name)
        logger.info("reset password of user %r", name)
        self.end_sessions(name)
        return password

    def set_role(self, name: str, role: str) -> None:
        """Change a user's role; refuses to demote the last admin."""
        role = parse_role(role)
        try:
            changed = self._table.set(name, role=role) if isinstance(name, str) else False
        except LastAdmin:
            raise InputError(
                f"不能更改最后一个管理员的角色：{name}", f"refusing to demote last admin {name!r}"
            ) from None
        if not changed:
            raise _no_such(name)
        logger.info("set role of user %r to %s", name, role)
        self.end_sessions(name)

    def list(self) -> list[User]:
        """Return all users, sorted by name."""
        users = self._table.all()
        return [self._to_user(name, users[name]) for name in sorted(users)]

    def get(self, name: str) -> User | None:
        """Return the user called ``name``, or None."""
        record = self._table.get(name) if isinstance(name, str) else None
        return self._to_user(name, record) if record else None

    def verify(self, name: str, password: str) -> User | None:
        """Return the user when ``password`` matches, else None.

        An unknown name still costs one hash check (against a dummy hash), so the answer time
        does not tell which names exist. Rehashes the password when the hasher's parameters changed.
        """
        if not isinstance(password, str) or not password or len(password) > MAX_PASSWORD_CHARS:
            return None
        record = self._table.get(name) if isinstance(name, str) else None
        stored = record["hash"] if record else self._dummy()
        try:
            self._hasher.verify(stored, password)
        except VerifyMismatchError:
            return None
        except (VerificationError, InvalidHashError):
            logger.warning("unreadable password hash for user %r", name)
            return None
        if record is None:  # matched the dummy: cannot happen with a random dummy, but never log in
            return None
        if self._hasher.check_needs_rehash(stored):
            # only if nobody changed the password meanwhile
            self._table.set(name, password_hash=self._hasher.hash(password), if_hash=stored)
            logger.info("rehashed password of user %r", name)
        return self._to_user(name, record)

    def end_sessions(self, name: str) -> int:
        """End every signed-in session of ``name`` (the web app's, in ``data_dir``)."""
        return SessionStore(self.data_dir / SESSIONS_FILE).end_user(name)

    def is_empty(self) -> bool:
        """Return True when no user exists."""
        return self._table.count() == 0

    def ensure_first_admin(self) -> str | None:
        """Create user ``admin`` with a random password when there is no user; return that password.

        Returns None when any user exists. The check follows the insert in one transaction, so two
        processes starting together create the admin only once.
        """
        if not self.is_empty():
            return None
        password = secrets.token_urlsafe(12)
        record = {"role": "admin", "hash": self._hasher.hash(password), "created": _now()}
        try:
            if not self._table.insert(FIRST_ADMIN, record, only_if_empty=True):
                return None
        except UserExists:
            return None
        logger.info("created first admin user %r", FIRST_ADMIN)
        return password

    # -- helpers ----------------------------------------------------------------------------

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
        return self._dummy_hash

    @staticmethod
    def _to_user(name: str, record: dict[str, Any]) -> User:
        return User(name=name, role=record["role"], created=str(record.get("created", "")))


def _no_such(name: str) -> InputError:
    return InputError(f"用户不存在：{name}", f"no such user {name!r}")


def allowed(role: str | None, action: str) -> bool:
    """Return True when ``role`` may perform ``action`` (a key of PERMISSIONS); None -> False."""
    if action not in PERMISSIONS:
        raise ValueError(f"unknown action {action!r}")  # a bug in the caller, not user input
    return role is not None and role in PERMISSIONS[action]


def require(user: User | None, action: str) -> User:
    """Return ``user`` when signed in and allowed to perform ``action``, else raise AuthError."""
    if user is None:
        raise AuthError("请先登录", f"not signed in for {action}")
    if not allowed(user.role, action):
        raise AuthError(
            f"当前角色（{user.role_label}）无权执行此操作：{ACTION_LABELS.get(action, action)}",
            f"user {user.name!r} with role {user.role!r} may not {action}",
        )
    return user


def _build_parser() -> argparse.ArgumentParser:
    roles = "、".join(f"{r}/{ROLE_LABELS[r]}" for r in ROLES)
    parser = argparse.ArgumentParser(prog="python -m rag users", description="管理网页版的用户与角色")
    sub = parser.add_subparsers(dest="command", required=True, metavar="命令")
    p = sub.add_parser("add", help="添加用户")
    p.add_argument("name", help="用户名")
    p.add_argument("--role", required=True, help=f"角色：{roles}")
    p.add_argument("--password", help="密码（省略时：在终端中提示输入，否则自动生成并显示一次；写在命令行会留在 shell 历史中）")
    sub.add_parser("list", help="列出用户")
    p = sub.add_parser("remove", help="删除用户")
    p.add_argument("name", help="用户名")
    p = sub.add_parser("reset", help="重置密码")
    p.add_argument("name", help="用户名")
    p.add_argument("--password", help="新密码（省略时自动生成并显示一次）")
    p = sub.add_parser("role", help="更改角色")
    p.add_argument("name", help="用户名")
    p.add_argument("role", help=f"角色：{roles}")
    return parser


def prompt_password(given: str | None) -> str | None:
    """The password of ``add``/``reset``: the one given, else typed twice when stdin is a terminal
    (empty: generate one), else None (generated and printed once)."""
    if given is not None or not sys.stdin.isatty():
        return given
    import getpass

    first = getpass.getpass("密码（直接回车则自动生成）：")
    if not first:
        return None
    if getpass.getpass("再输入一次：") != first:
        raise InputError("两次输入的密码不一致", "password confirmation did not match")
    return first


def run_users_cli(argv: list[str], store: UserStore) -> int:
    """Run ``add|list|remove|reset|role`` on ``store``; return 0, 1 on a RagError, 2 on bad usage.

    Generated passwords are printed to stdout once and never again.
    """
    try:
        args = _build_parser().parse_args(argv)
    except SystemExit as e:  # argparse already printed usage or help
        return e.code if isinstance(e.code, int) else 2
    try:
        if args.command == "add":
            typed = prompt_password(args.password)
            password = store.add(args.name, args.role, typed)
            label = ROLE_LABELS[parse_role(args.role)]
            print(f"已添加用户 {args.name}（{label}）")
            if typed is None:
                print(f"初始密码：{password}")
                print("请妥善保存，该密码只显示这一次。")
        elif args.command == "list":
            users = store.list()
            if not users:
                print("（暂无用户）")
            for user in users:
                print(f"{user.name}\t{user.role_label}（{user.role}）\t{user.created}")
        elif args.command == "remove":
            store.remove(args.name)
            print(f"已删除用户 {args.name}")
        elif args.command == "reset":
            typed = prompt_password(args.password)
            password = store.reset_password(args.name, typed)
            print(f"已重置用户 {args.name} 的密码")
            if typed is None:
                print(f"新密码：{password}")
                print("请妥善保存，该密码只显示这一次。")
        elif args.command == "role":
            role = parse_role(args.role)
            store.set_role(args.name, role)
            print(f"已将用户 {args.name} 的角色改为 {ROLE_LABELS[role]}")
    except RagError as e:
        logger.info("users %s failed: %s", args.command, e.log_message)
        print(f"错误：{e}", file=sys.stderr)
        return 1
    return 0
