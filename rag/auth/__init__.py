"""Who may do what: users and roles (``users``), server-side sessions (``sessions``), sign-in
throttling (``throttle``), and the ``python -m rag users`` commands.

What it does not do: serve pages or check HTTP requests (the web layer, ``rag/web/guard.py`` and
``rag/web/auth.py``, asks these modules), or store API keys (``rag/db/keys.py``).
"""
