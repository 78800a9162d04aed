"""Conversations (each turn with its citations and the index version that answered) and feedback.

A client of the OpenAI API sends the whole history with every request; ``record_turn`` files the
new question and answer under the conversation whose stored turns are that history (or under an
explicit ``conversation_id``), else starts a new one titled by its first question.

Not done here: full-text search over conversations, retention limits.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select

from ..errors import InputError
from ..limits import strip_invisible
from .engine import Database
from .models import Conversation, FeedbackRow, MessageRow, utcnow

REASONS = ("答案错误", "引用不对", "没有回答", "其他")
RATINGS = {"up": 1, "down": -1, "👍": 1, "👎": -1, "1": 1, "-1": -1}
MAX_NOTE_CHARS = 1000
MAX_TITLE_CHARS = 100
MATCH_RECENT = 20  # conversations of a user looked at to place a turn by its history
LIST_LIMIT = 200  # conversations listed at most in one call (page and API)
TEXT_RATINGS_PER_DAY = 50  # ratings of a user by texts alone (no message_id) in 24 hours
MAX_MESSAGES = 400  # a conversation this long is continued in a new one: every read of it stays bounded


class NotFoundError(InputError):
    """A conversation or answer that does not exist for this user (the web layer answers 404)."""


@dataclass(frozen=True)
class Turn:
    conversation_id: str
    message_id: int  # the assistant message


def _title(text: str) -> str:
    t = " ".join((text or "").split())
    return t[:40] + ("…" if len(t) > 40 else "")


def _conv_dict(c: Conversation, with_messages: bool = False, count: int | None = None) -> dict:
    d = {"id": c.id, "title": c.title, "source": c.source, "created": c.created.isoformat(),
         "updated": c.updated.isoformat(), "messages": len(c.messages) if count is None else count}
    if with_messages:
        d["messages"] = [
            {"id": m.id, "role": m.role, "content": m.content, "refused": m.refused, "references": m.citations or [],
             "index_version": m.index_version, "created": m.created.isoformat()}
            for m in c.messages
        ]
    return d


def _question_before(s, m: MessageRow) -> str:
    """The question an answer replied to: one indexed lookup, not a load of the whole conversation."""
    q = s.scalar(select(MessageRow.content).where(MessageRow.conversation_id == m.conversation_id,
                                                  MessageRow.position == m.position - 1))
    return q or ""


def _message_count(s, conversation_id: str) -> int:
    return s.scalar(select(func.count(MessageRow.id)).where(MessageRow.conversation_id == conversation_id)) or 0


def _same_turns(stored: list[MessageRow], history: list[dict]) -> bool:
    """The stored user questions are the history's (assistant texts may differ by formatting)."""
    a = [m.content.strip() for m in stored if m.role == "user"]
    b = [str(m.get("content", "")).strip() for m in history if m.get("role") == "user"]
    return bool(a) and a == b


class ConversationStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _owned(self, s, user: str, conversation_id: str) -> Conversation:
        c = s.get(Conversation, conversation_id)
        if c is None or c.user_name != user or c.deleted:
            raise NotFoundError(f"对话不存在：{conversation_id}", f"no conversation {conversation_id!r} of {user!r}")
        return c

    def record_turn(
        self, user: str, question: str, answer: str, *, history: list[dict] | None = None,
        conversation_id: str | None = None, refused: bool | None = None, references: list | None = None,
        index_version: str | None = None, evidence: float | None = None, source: str = "api",
    ) -> Turn:
        history = history or []
        with self.db.session() as s:
            conv = None
            if conversation_id:
                conv = self._owned(s, user, conversation_id)
            elif history:
                recent = s.scalars(
                    select(Conversation).where(Conversation.user_name == user, Conversation.deleted.is_(False))
                    .order_by(Conversation.updated.desc()).limit(MATCH_RECENT)
                )
                conv = next((c for c in recent if _same_turns(c.messages, history)), None)
            pos = 0
            if conv is not None:
                pos = (s.scalar(select(func.max(MessageRow.position)).where(MessageRow.conversation_id == conv.id)) or -1) + 1
                if pos + 2 > MAX_MESSAGES:  # full: the turn opens a continuation
                    conv, pos = Conversation(id=uuid.uuid4().hex, user_name=user, title=_title(conv.title + "（续）"),
                                             source=source), 0
                    s.add(conv)
            if conv is None:
                first = next((m.get("content", "") for m in history if m.get("role") == "user"), question)
                conv = Conversation(id=uuid.uuid4().hex, user_name=user, title=_title(first), source=source)
                s.add(conv)
            now = utcnow()
            q = MessageRow(conversation_id=conv.id, position=pos, role="user", content=question, created=now)
            a = MessageRow(conversation_id=conv.id, position=pos + 1, role="assistant", content=answer, refused=refused,
                           citations=references, index_version=index_version, evidence=evidence, created=now)
            s.add_all([q, a])
            conv.updated = now
            s.flush()
            return Turn(conv.id, a.id)

    def list(self, user: str, *, limit: int = LIST_LIMIT, offset: int = 0) -> list[dict]:
        """The user's conversations, newest first, ``limit`` of them from ``offset``: one query with the
        message counts (loading every conversation's messages made each page turn slower the more
        conversations a user had: ~550 ms after a few hundred)."""
        count = (select(func.count(MessageRow.id)).where(MessageRow.conversation_id == Conversation.id)
                 .correlate(Conversation).scalar_subquery())  # per listed row: never a scan of everyone's messages
        with self.db.session() as s:
            rows = s.execute(
                select(Conversation, count)
                .where(Conversation.user_name == user, Conversation.deleted.is_(False))
                .order_by(Conversation.updated.desc(), Conversation.id)
                .limit(max(0, min(limit, LIST_LIMIT))).offset(max(0, offset))
            )
            return [_conv_dict(c, count=int(n)) for c, n in rows]

    def get(self, user: str, conversation_id: str) -> dict:
        with self.db.session() as s:
            return _conv_dict(self._owned(s, user, conversation_id), with_messages=True)

    def rename(self, user: str, conversation_id: str, title: str) -> dict:
        title = " ".join((title or "").split())
        if not title or len(title) > MAX_TITLE_CHARS:
            raise InputError(f"标题须为 1 至 {MAX_TITLE_CHARS} 个字", "bad title")
        with self.db.session() as s:
            c = self._owned(s, user, conversation_id)
            c.title = title
            return _conv_dict(c, count=_message_count(s, c.id))

    def delete(self, user: str, conversation_id: str) -> None:
        with self.db.session() as s:
            self._owned(s, user, conversation_id).deleted = True


def parse_rating(rating) -> int:
    value = RATINGS.get(str(rating).strip())
    if value is None:
        raise InputError("评价须为 up（👍）或 down（👎）", f"bad rating {rating!r}")
    return value


class FeedbackStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, user: str, rating, *, reason: str | None = None, note: str = "", message_id: int | None = None,
            question: str = "", answer: str = "") -> dict:
        """Record 👍/👎 on an answer (``message_id`` of one of the user's own answers, or the texts).

        One rating per user and answer: rating the same answer again replaces the earlier rating
        (a 👎 changed to 👍 leaves 待改进的问题). Ratings by texts alone are added, at most
        ``TEXT_RATINGS_PER_DAY`` per user in 24 hours (they could push real ones out of the view).
        Control characters are removed from every text (they broke the admin's Excel export)."""
        value = parse_rating(rating)
        note, question, answer = (strip_invisible(str(t or "")) for t in (note, question, answer))
        if reason is not None and reason not in REASONS:
            raise InputError(f"原因须为：{'、'.join(REASONS)}", f"bad reason {reason!r}")
        note = (note or "").strip()
        if len(note) > MAX_NOTE_CHARS:
            raise InputError(f"备注不能超过 {MAX_NOTE_CHARS} 字", "note too long")
        with self.db.session() as s:
            refused, files = None, None
            if message_id is not None:
                m = s.get(MessageRow, message_id)
                if m is None or m.role != "assistant" or m.conversation.user_name != user or m.conversation.deleted:
                    raise NotFoundError(f"回答不存在：{message_id}", f"no answer {message_id} of {user!r}")
                question = _question_before(s, m) or question
                answer, refused = m.content, m.refused
                files = sorted({r.get("file") for r in m.citations or [] if r.get("file")})
            elif not (question or "").strip():
                raise InputError("请提供 message_id，或问题与回答的文字", "feedback without message or question")
            else:
                since = utcnow() - timedelta(days=1)
                n = s.scalar(select(func.count(FeedbackRow.id)).where(
                    FeedbackRow.user_name == user, FeedbackRow.message_id.is_(None), FeedbackRow.created >= since)) or 0
                if n >= TEXT_RATINGS_PER_DAY:
                    raise InputError(f"24 小时内按文字提交的评价已达 {TEXT_RATINGS_PER_DAY} 条，请对具体回答评价（message_id）",
                                     f"{user!r}: {n} text ratings in 24 h")
            row = None
            if message_id is not None:
                row = s.scalars(select(FeedbackRow).where(FeedbackRow.user_name == user,
                                                          FeedbackRow.message_id == message_id)
                                .order_by(FeedbackRow.id.desc()).limit(1)).first()
            if row is None:
                row = FeedbackRow(user_name=user, message_id=message_id)
                s.add(row)
            row.rating, row.reason, row.note, row.created = value, reason, note, utcnow()
            row.question, row.answer, row.refused, row.files = question, answer, refused, files
            s.flush()
            return {"id": row.id, "rating": "up" if value > 0 else "down", "reason": reason, "message_id": message_id}

    def needs_work(self, limit: int = 200) -> dict:
        """待改进的问题: refused questions and 👎 answers, newest first, with counts by article."""
        with self.db.session() as s:
            downs = list(s.scalars(select(FeedbackRow).where(FeedbackRow.rating < 0)
                                   .order_by(FeedbackRow.created.desc()).limit(limit)))
            refusals = list(s.scalars(select(MessageRow).where(MessageRow.role == "assistant", MessageRow.refused.is_(True))
                                      .order_by(MessageRow.created.desc()).limit(limit)))
            items = [{"kind": "👎", "time": f.created.isoformat(), "user": f.user_name, "question": f.question,
                      "answer": f.answer, "reason": f.reason, "note": f.note, "files": f.files or []} for f in downs]
            for m in refusals:
                items.append({"kind": "未回答", "time": m.created.isoformat(), "user": m.conversation.user_name,
                              "question": _question_before(s, m), "answer": m.content, "reason": None,
                              "note": "", "files": sorted({r.get("file") for r in m.citations or [] if r.get("file")})})
            counts = {"down": s.scalar(select(func.count(FeedbackRow.id)).where(FeedbackRow.rating < 0)) or 0,
                      "refused": s.scalar(select(func.count(MessageRow.id)).where(
                          MessageRow.role == "assistant", MessageRow.refused.is_(True))) or 0}
        items.sort(key=lambda d: d["time"], reverse=True)
        by_article = Counter(f for d in items for f in d["files"])
        return {"items": items[:limit], "by_article": dict(by_article.most_common()), "counts": counts}
