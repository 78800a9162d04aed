"""Open the application database on start: connect, upgrade the schema, copy the JSON stores in.

What it does not do: define tables (``models.py``) or migrations (``migrations/``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from ..config import Settings
from ..errors import ConfigError
from .engine import Database, database_url
from .importer import sync_json

logger = logging.getLogger(__name__)


def open_database(settings: Settings, *, sync: bool = True) -> Database:
    """Open the configured database, upgrade its schema and (``sync``) copy the JSON stores of
    ``settings.data_dir`` into it (``rag.db.importer``); ConfigError when it cannot be reached."""
    db = Database(database_url(settings))
    try:
        db.upgrade()
        if db.url.get_backend_name() == "sqlite" and db.url.database not in (None, "", ":memory:"):
            # conversations and key hashes: readable by this user only; the WAL and shared-memory files
            # hold the same text and may already exist (created by the upgrade under the process umask)
            for suffix in ("", "-wal", "-shm"):
                f = Path(db.url.database + suffix)
                if f.exists():
                    f.chmod(0o600)
        if sync:
            sync_json(db, Path(settings.data_dir))
    except SQLAlchemyError as e:
        raise ConfigError(f"无法打开数据库：{db.url.render_as_string(hide_password=True)}", f"database: {e}") from e
    logger.info("database %s at revision %s", db.url.render_as_string(hide_password=True), db.revision())
    return db
