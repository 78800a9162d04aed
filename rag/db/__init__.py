"""The application database: SQLAlchemy 2 models and Alembic migrations.

SQLite by default (``<data_dir>/app.db``, WAL mode), any SQLAlchemy URL through
``RAG_DATABASE_URL`` (PostgreSQL: ``postgresql+psycopg://user:pw@host/db``). ``open_database``
creates or upgrades the schema to the newest migration on start and imports, once, the JSON files
of older versions it replaced (``importer``). SQLAlchemy lives in this package only; the rest of the
program talks to the stores here (``keys.ApiKeyStore``, ``conversations``, ``audit``) or to the rows
behind ``rag.auth.users.UserStore`` (``users``) and ``rag.quiz.bank.QuestionBank`` (``bank``).

Example::

    db = open_database(settings)
    key_id, key = ApiKeyStore(db).add("张三")       # the key is shown once; only its sha256 is kept
"""

from __future__ import annotations

from .engine import Database, database_url
from .startup import open_database

__all__ = ["Database", "database_url", "open_database"]
