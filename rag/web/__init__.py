"""The web layer: one FastAPI app that serves the Gradio page (``page.py`` assembling ``chat_tab``,
``quiz_tab`` and ``admin_tab`` over ``render``, with ``conversations_ui`` and ``feedback_ui``, behind the ASGI middleware of ``guard.py`` with
``signin``, ``files`` and ``headers``), the OpenAI-compatible ``/v1`` API and the REST API for admins
and trainers under ``/api/v1`` (``server.create_app``), and the benchmarks that drive them
(``bench_api``, ``bench_load``).

FastAPI, uvicorn and Gradio live here only; the work is done by ``RagService``. Nothing below the
entry points imports this package.
"""
