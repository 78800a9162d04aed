"""The language-model stage: chat models, every prompt, and generation with its citation checks.

- ``models``: the chat model from settings (an OpenAI-compatible server or a local GGUF);
- ``prompts``: every prompt text in one module;
- ``generation``: the LLM answerer (stream with a deadline, fall back to the extractive answer);
- ``citations``: each sentence of a reply checked against the passage its marker [n] names.

What it does not do: retrieve passages (``rag/index``) or choose sentences without a model
(``rag/answer``, which is the gate and the fallback of generation).
"""
