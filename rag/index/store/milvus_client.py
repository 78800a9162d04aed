"""Connections to Milvus: one client per URI and process, collections loaded once, milvus-lite released.

``RAG_MILVUS_URI`` is a local path for milvus-lite (``index_dir/milvus.db`` by default) or
``http(s)://host:19530`` for a server. Not done here: anything about index versions (``milvus.py``).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from pymilvus import MilvusClient

from ...config import Settings
from ...errors import RagError

logger = logging.getLogger("rag.index.store.milvus")  # the backend's one log

_CLIENTS: dict[tuple[str, str], MilvusClient] = {}
_CLIENTS_LOCK = threading.Lock()
_LOADED: set[tuple[str, str]] = set()  # (uri, collection) known to be loaded in this process


def is_server_uri(uri: str) -> bool:
    return uri.startswith(("http://", "https://", "tcp://", "grpc://"))


def milvus_uri(settings: Settings) -> str:
    """The configured URI; a local path (milvus-lite) defaults to ``index_dir/milvus.db``."""
    uri = settings.milvus_uri or str(Path(settings.index_dir) / "milvus.db")
    if not is_server_uri(uri):
        Path(uri).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        uri = str(Path(uri).expanduser().resolve())
    return uri


def client_for(uri: str, token: str = "") -> MilvusClient:
    """One client per URI and process (milvus-lite allows one process per data folder)."""
    with _CLIENTS_LOCK:
        c = _CLIENTS.get((uri, token))
        if c is None:
            try:
                c = MilvusClient(uri=uri, token=token) if token else MilvusClient(uri=uri)
            except Exception as e:  # pymilvus raises its own exception types for every cause
                raise RagError(
                    f"无法连接 Milvus（{uri}）：{e}", f"cannot connect to Milvus at {uri}: {e}"
                ) from e
            _CLIENTS[(uri, token)] = c
        return c


def ensure_loaded(client: MilvusClient, uri: str, name: str) -> None:
    """Load a collection for search/query once per process (a restarted milvus-lite, or a
    server after a release, keeps collections on disk but not loaded)."""
    if (uri, name) in _LOADED:
        return
    state = str(client.get_load_state(name).get("state", ""))
    if "Loaded" not in state or "NotLoad" in state:
        client.load_collection(name)
    _LOADED.add((uri, name))


def release(uri: str) -> None:
    """Close this process's client for ``uri`` and, for milvus-lite, free its data folder.

    Another process (a ``python -m rag index`` subprocess) can open the folder afterwards.
    """
    with _CLIENTS_LOCK:
        _LOADED.difference_update({k for k in _LOADED if k[0] == uri})
        for key in [k for k in _CLIENTS if k[0] == uri]:
            try:
                _CLIENTS.pop(key).close()
            except Exception as e:  # closing is best effort
                logger.debug("closing Milvus client: %s", e)
    if not is_server_uri(uri):
        from milvus_lite import server_manager_instance

        server_manager_instance.release_server(uri)
