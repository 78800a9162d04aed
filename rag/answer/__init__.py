"""The answerer's learned parts: one Query per question, candidate features, a listwise ranker
and a calibrated refusal gate (weights in ``weights.json``, rebuilt by ``python -m rag train``),
the decision that turns ranked candidates into a cited answer (``learned.py``), and the embedded
answerer built on them (``extractive.py``; its text helpers in ``spans.py``, the composition of
lists and markers in ``compose.py``).

What it does not do: retrieval (rag/index/retrieval.py) or generation with a language model
(rag/llm/generation.py, which uses this answerer as its gate and fallback).
"""
