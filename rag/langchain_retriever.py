"""``RagRetriever``: the hybrid retriever (dense + BM25 + sentence list, fused) as a langchain
``BaseRetriever``, so that other LangChain apps can reuse this index.

Example::

    from rag import RagRetriever
    retriever = RagRetriever.from_settings(k=3)          # Settings.from_env(): corpus, index, embedder
    docs = retriever.invoke("“一抓双创”的内容是什么？")
    docs[0].metadata["source"], docs[0].metadata["heading_path"]

Each ``Document`` is a passage: ``page_content`` is its text, ``metadata`` holds the file, title,
heading path, character span in the file, the fused score and the chunk id. It retrieves only:
the evidence gate and the cited answer are ``RagService.ask``'s (or the ``/v1`` API's).
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from .config import Settings


class RagRetriever(BaseRetriever):
    service: Any = Field(description="a rag.service.RagService")
    k: int = Field(5, ge=1, le=100, description="passages returned")

    model_config = ConfigDict(arbitrary_types_allowed=True)

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **kwargs: Any) -> RagRetriever:
        """A retriever over the index of ``settings`` (default: ``Settings.from_env()``), built if missing."""
        from .service import RagService

        service = RagService(settings or Settings.from_env())
        service.ensure_index()
        return cls(service=service, **kwargs)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        hits = self.service.retrieve(query, k=self.k)
        return [
            Document(
                id=h.chunk.id,
                page_content=h.chunk.text,
                metadata={
                    "source": h.chunk.source, "title": h.chunk.title, "heading_path": list(h.chunk.heading_path),
                    "start": h.chunk.start, "end": h.chunk.end, "score": float(h.score), "chunk_id": h.chunk.id,
                },
            )
            for h in hits[: self.k]
        ]
