"""The ingest stage: files -> SourceText -> Blocks -> Chunks.

- ``loaders``: read .md/.txt/.html/.docx/.pdf (and their ``_meta.json``) into ``SourceText``, with
  ``decoding`` (bytes -> text, invisible characters) and ``formats`` (docx, pdf, html readers);
- ``safety``: the limits a loader enforces on untrusted files (size, zip bombs, PDF time and pages);
- ``structure``: headings, lists and paragraphs of a text as ``Block``s;
- ``chunking``: blocks -> overlapping ``Chunk``s with stable ids, sentence splitting for Chinese.

What it does not do: embed, index or store anything (``rag/index``), or manage the corpus folder
(``rag/index/documents.py``).
"""
