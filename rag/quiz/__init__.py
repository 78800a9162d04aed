"""The quiz stage: items for trainers (单选/多选/判断/填空), grounded in the corpus and validated against it.

- ``items``: ``QuizItem`` and its ``Evidence``, the types, stable ids (no other quiz module below it);
- ``sentences``, ``lists``, ``phrasing``: what items are made from and how they are worded;
- ``generator``: ``Generator``, with one mixin per item type (``choice``, ``blank``, ``judge``);
- ``validator``: ``validate_item``, which every item passes before anyone sees it;
- ``make``: ``generate_quiz`` / ``make_quiz``; ``llm_items``: items written by a chat model;
- ``edit``: a trainer's edit; ``bank``: the question bank; ``export``: Word, Excel, JSON, Markdown.

What it does not do: answer questions or retrieve passages (it asks ``RagService`` for hits), or
serve pages (the quiz tab is ``rag/web/quiz_tab.py``).
"""
