"""The web layer: one FastAPI app that serves the Gradio page, the OpenAI-compatible ``/v1`` API
and the REST API for admins and trainers under ``/api/v1`` (``server.create_app``).

FastAPI, uvicorn and Gradio's mounting live here only; the work is done by ``RagService``.
"""
