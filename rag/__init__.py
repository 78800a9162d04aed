"""党建知识问答: an offline retrieval-augmented assistant over Chinese Party-building articles."""

__version__ = "0.1.0"

__all__ = ["RagRetriever"]


def __getattr__(name: str):
    # langchain is imported only when the retriever is asked for: `import rag` stays light
    if name == "RagRetriever":
        from .langchain_retriever import RagRetriever

        return RagRetriever
    raise AttributeError(f"module 'rag' has no attribute {name!r}")
