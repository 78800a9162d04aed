"""Chat model backends: ``make_chat_model(settings)`` -> a langchain ``BaseChatModel``.

- OpenAI-compatible endpoint (default for the LLM mode): Ollama, vLLM, Xinference, LM Studio and
  llama-cpp-python's server all speak the chat-completions API, so one client covers them:
  langchain-openai's ``ChatOpenAI`` with ``RAG_LLM_BASE_URL``, ``RAG_LLM_MODEL``, ``RAG_LLM_API_KEY``.
- Local GGUF file (``RAG_LLM_GGUF_PATH``): langchain_community's ``ChatLlamaCpp`` in this process.
  llama-cpp-python compiles from source, so it is an optional extra
  (``pip install -r requirements-llm-local.txt``) and is imported only when configured.

The reply length is capped with the classic ``max_tokens`` field in the request body.
langchain-openai renames its own ``max_tokens`` to ``max_completion_tokens``, which
llama-cpp-python's server (and other older OpenAI-compatible servers) silently ignore: a small
model that starts repeating itself then writes until the context is full.

What it does not do: retry. A slow or broken model server should fall back to the extractive
answer after one timeout, not after three (``max_retries=0``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from langchain_core.language_models import BaseChatModel

from ..config import Settings
from ..errors import ConfigError

logger = logging.getLogger(__name__)

TEMPERATURE = 0.1  # grounded answers: little creativity wanted
MAX_TOKENS = 512


def make_chat_model(settings: Settings) -> BaseChatModel:
    """The configured chat model; raises ConfigError when the LLM mode lacks a backend."""
    if settings.llm_gguf_path:
        return _llama_cpp_model(settings)
    if not settings.llm_base_url:
        raise ConfigError(
            "LLM 回答模式需要设置 RAG_LLM_BASE_URL（OpenAI 兼容接口地址）或 RAG_LLM_GGUF_PATH（本地 GGUF 模型）",
            "answer_mode=llm needs RAG_LLM_BASE_URL or RAG_LLM_GGUF_PATH",
        )
    from langchain_openai import ChatOpenAI

    logger.info("chat model: %s at %s", settings.llm_model or "(server default)", settings.llm_base_url)
    return ChatOpenAI(
        base_url=settings.llm_base_url,
        model=settings.llm_model or "default",
        # local servers ignore the key, but the client refuses to start without one
        api_key=settings.llm_api_key or "not-needed",
        timeout=settings.llm_timeout,
        max_retries=0,
        streaming=True,
        temperature=TEMPERATURE,
        # not max_tokens=: it would be sent as max_completion_tokens (see the module docstring)
        extra_body={"max_tokens": MAX_TOKENS},
    )


def _llama_cpp_model(settings: Settings) -> BaseChatModel:
    path = Path(settings.llm_gguf_path).expanduser()
    if not path.is_file():
        raise ConfigError(f"找不到 GGUF 模型文件：{path}", f"GGUF file not found: {path}")
    try:
        import llama_cpp  # noqa: F401  (fail here with our message, not inside langchain)
        from langchain_community.chat_models import ChatLlamaCpp
    except ImportError as e:
        raise ConfigError(
            "使用本地 GGUF 模型需要安装 llama-cpp-python：pip install -r requirements-llm-local.txt",
            f"llama-cpp-python is not installed: {e}",
        ) from e
    logger.info("chat model: local GGUF %s", path)
    return ChatLlamaCpp(
        model_path=str(path),
        n_ctx=4096,
        temperature=TEMPERATURE,
        max_tokens=MAX_TOKENS,
        streaming=True,
        verbose=False,
    )
