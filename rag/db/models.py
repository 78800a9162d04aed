"""Tables of the application database (SQLAlchemy 2 declarative models).

Times are timezone-aware UTC. Every schema change is an Alembic migration in ``migrations/versions``.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every backend (SQLite hands back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


class Base(DeclarativeBase):
    pass


class ApiKey(Base):
    """An API key of a user: only the sha256 of the key is kept, and its first characters to name it."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_name: Mapped[str] = mapped_column(String(64), index=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class UserRow(Base):
    """A user of the page and the API (``rag.auth.users.UserStore``); ``created`` is ISO 8601 text, as
    ``users.json`` kept it."""

    __tablename__ = "users"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    created: Mapped[str] = mapped_column(String(40), default="")


class SessionRow(Base):
    """A signed-in page session (hash of its token). Not used yet: the page keeps Gradio's sessions."""

    __tablename__ = "sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_name: Mapped[str] = mapped_column(String(64), index=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Conversation(Base):
    __tablename__ = "conversations"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # uuid4 hex
    user_name: Mapped[str] = mapped_column(String(64), index=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    source: Mapped[str] = mapped_column(String(16), default="api")  # "api" | "page"
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    messages: Mapped[list[MessageRow]] = relationship(
        back_populates="conversation", order_by="MessageRow.position", cascade="all, delete-orphan"
    )


class MessageRow(Base):
    """One turn: the user's question or the assistant's answer with its citations and index version."""

    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("conversation_id", "position"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    refused: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    citations: Mapped[list | None] = mapped_column(JSON, nullable=True)  # the references as the API sent them
    index_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    evidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    conversation: Mapped[Conversation] = relationship(back_populates="messages")


class FeedbackRow(Base):
    """👍 (+1) or 👎 (-1) on an answer, with an optional reason and note."""

    __tablename__ = "feedback"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_name: Mapped[str] = mapped_column(String(64), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"), nullable=True)
    rating: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(16), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    question: Mapped[str] = mapped_column(Text, default="")
    answer: Mapped[str] = mapped_column(Text, default="")
    refused: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    files: Mapped[list | None] = mapped_column(JSON, nullable=True)  # articles the answer cited
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class AuditRow(Base):
    """An event of the append-only audit trail (``rag.db.audit``): rows are only inserted, in order of ``id``."""

    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    line: Mapped[int | None] = mapped_column(Integer, unique=True, nullable=True)  # its line in a migrated audit.jsonl
    time: Mapped[str] = mapped_column(String(40), default="")
    user_name: Mapped[str] = mapped_column(String(64), default="")
    action: Mapped[str] = mapped_column(String(40), default="")
    event: Mapped[dict] = mapped_column(JSON)


class BankItemRow(Base):
    """An item of the question bank (``rag.db.bank``), in the bank's order (``seq``); an id may repeat."""

    __tablename__ = "question_bank"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    id: Mapped[str] = mapped_column(String(64), index=True)
    type: Mapped[str] = mapped_column(String(20))
    stem: Mapped[str] = mapped_column(Text)
    item: Mapped[dict] = mapped_column(JSON)


class DocumentRow(Base):
    """The document registry (``documents.json``: who added which article, its sha256, its upload)."""

    __tablename__ = "documents"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    title: Mapped[str] = mapped_column(Text, default="")
    sha256: Mapped[str] = mapped_column(String(64), default="")
    size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    added: Mapped[str] = mapped_column(String(40), default="")
    added_by: Mapped[str] = mapped_column(String(64), default="")
    record: Mapped[dict] = mapped_column(JSON)  # the whole entry, nothing dropped


class MetaRow(Base):
    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
