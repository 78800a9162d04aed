"""The answerer's learned parts: one Query per question, candidate features, a listwise ranker
and a calibrated refusal gate (weights in ``weights.json``, rebuilt by ``python -m rag train``),
and the decision that turns ranked candidates into a cited answer (``learned.py``).

What it does not do: retrieval (rag/index/retrieval.py) or generation with a language model
(rag/generation.py, which uses this answerer as its gate and fallback).
"""
