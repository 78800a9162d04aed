"""The web layer's own parts beside ``app.py``: ``web.guard`` (the ASGI middleware in front of Gradio)."""
