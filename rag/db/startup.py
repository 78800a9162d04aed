"""Open the application database on start: connect, upgrade the schema, migrate and copy the JSON stores.

What it does not do: define tables (``models.py``) or migrations (``migrations/``).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from ..config import Settings
from ..errors import ConfigError
from .engine import Database, database_url
from .importer import migrate_json, sync_json

logger = logging.getLogger(__name__)

_URLS: dict[Path, str] = {}  # data_dir -> the database open_database opened for it in this process
_SHARED: dict[str, Database] = {}  # url -> the one Database the process's shared stores use
_lock = threading.Lock()


def shared_database(settings: Settings) -> Database:
    """One ``Database`` per URL for the whole process (opened, upgraded and migrated the first time),
    for stores made per call (the audit trail, the question bank) that must not open an engine each."""
    url = database_url(settings)
    with _lock:
        db = _SHARED.get(url)
    if db is None:
        db = open_database(settings, sync=False)
        with _lock:
            db = _SHARED.setdefault(url, db)
    return db


def url_of_data_dir(data_dir: Path) -> str:
    """The database of ``data_dir``: the one ``open_database`` opened for it in this process, else the
    default SQLite file ``<data_dir>/app.db``."""
    data_dir = Path(data_dir).resolve()
    return _URLS.get(data_dir) or database_url(Settings(data_dir=data_dir))


def open_database(settings: Settings, *, sync: bool = True) -> Database:
    """Open the configured database, upgrade its schema, migrate the JSON files it replaced (once) and
    (``sync``) copy the JSON stores still live of ``settings.data_dir`` into it (``rag.db.importer``);
    ConfigError when it cannot be reached."""
    url = database_url(settings)
    db = Database(url)
    try:
        db.upgrade()
        if db.url.get_backend_name() == "sqlite" and db.url.database not in (None, "", ":memory:"):
            # conversations and key hashes: readable by this user only; the WAL and shared-memory files
            # hold the same text and may already exist (created by the upgrade under the process umask)
            for suffix in ("", "-wal", "-shm"):
                f = Path(db.url.database + suffix)
                if f.exists():
                    f.chmod(0o600)
        migrate_json(db, Path(settings.data_dir))
        if sync:
            sync_json(db, Path(settings.data_dir))
    except SQLAlchemyError as e:
        raise ConfigError(f"无法打开数据库：{db.url.render_as_string(hide_password=True)}", f"database: {e}") from e
    _URLS[Path(settings.data_dir).resolve()] = url
    logger.info("database %s at revision %s", db.url.render_as_string(hide_password=True), db.revision())
    return db
