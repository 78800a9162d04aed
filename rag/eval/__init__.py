"""Evaluation, training and cross-validation of the answerer on the labeled question sets.

- ``data``: the labeled sets (``eval/*.jsonl`` and ``../shared/eval/dev.jsonl``), which article each
  question is about, and the evaluation corpus (``corpus/`` plus the invented test articles of
  ``eval/newcorpus/``, indexed once in a folder of its own);
- ``train``: fit the ranker, the gate and its threshold, and choose the fusion weights;
- ``cv``: leave-one-article-out cross-validation of all of it.

What it does not do: judge. ``../shared/eval/score.py`` is the reference scorer; the figures here
are computed the same way (``rag/eval/evaluation.py``).
"""
