"""Typed errors of the core; the CLI and the web page translate them at the edge.

Every error carries a Chinese message for people (``str(err)``) and an English one for
logs (``err.log_message``), so that nothing reaches a user as a stack trace.
"""

from __future__ import annotations


class RagError(Exception):
    """Base of every error the library raises on purpose."""

    def __init__(self, message: str, log_message: str | None = None) -> None:
        super().__init__(message)
        self.log_message = log_message or message


class ConfigError(RagError):
    """A setting (environment variable) has a value we cannot use."""


class EmptyCorpusError(RagError):
    """The corpus folder holds no article we can read."""


class LoaderError(RagError):
    """A file cannot be read: unknown type, bad encoding, too large, hostile content."""

    def __init__(self, source: str, message: str, log_message: str | None = None) -> None:
        super().__init__(f"{source}: {message}", f"{source}: {log_message or message}")
        self.source = source


class IndexNotBuiltError(RagError):
    """No published index exists yet."""


class IndexMismatchError(RagError):
    """The index was built with another embedder, dimension or chunker than configured."""


class IndexOutdatedError(IndexMismatchError):
    """The index was built by an older chunker of this program: rebuilding it is safe and automatic."""


class IndexCorruptError(RagError):
    """A published index version fails its checks (hash, count, missing file)."""


class IndexBusyError(RagError):
    """Another reindex holds the writer lock."""


class InputError(RagError):
    """A question or other user input is empty, too long or malformed."""


class BusyError(RagError):
    """The caller already has as many questions in flight as allowed, or the server is saturated."""

    def __init__(self, message: str, log_message: str | None = None, retry_after: int = 2) -> None:
        super().__init__(message, log_message)
        self.retry_after = retry_after


class AuthError(RagError):
    """The caller is not signed in or lacks the role for an action."""


class QuizError(RagError):
    """Quiz generation could not produce valid items."""


class LLMError(RagError):
    """The language model failed (down, timeout, garbage)."""
