"""Planning a build: which files to parse again, which texts to reuse, what changed.

A file whose bytes and ``metadata.json`` entry give the same key as in the previous version is not
parsed again (its text comes from the previous version's documents); everything else goes through
``rag.ingest.loaders.load_file`` and its safety checks. ``plan_files`` compares the result with the
previous version (added, changed, removed, kept, rejected).

Not done here: chunking, embedding, writing (``indexing.py``).
"""

from __future__ import annotations

import hashlib
import json
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Settings
from ..errors import LoaderError
from ..ingest.loaders import load_corpus
from ..schema import SourceText
from .store.loaded import Index


def file_key(sha256: str, sidecar: dict | None) -> str:
    """What decides whether a file must be parsed again: its bytes and its metadata.json entry."""
    blob = json.dumps(sidecar or {}, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(f"{sha256}\n{blob}".encode()).hexdigest()[:32]


def doc_from_record(d: dict) -> SourceText:
    return SourceText(source=d["source"], text=d["text"], sha256=d["sha256"], kind=d["kind"], meta=dict(d.get("meta") or {}))


def _hash_if_small(path: Path, max_bytes: int) -> str | None:
    """sha256 of a regular file no larger than ``max_bytes``; None when it must go to the loader."""
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode) or st.st_size > max_bytes:
            return None
        h = hashlib.sha256()
        n = 0
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                n += len(block)
                if n > max_bytes:
                    return None
                h.update(block)
        return h.hexdigest()
    except OSError:
        return None


@dataclass
class _Loaded:
    docs: list[SourceText]
    errors: list[LoaderError]
    keys: dict[str, str]  # source -> file_key
    parsed: list[str]


def load_corpus_incremental(
    corpus_dir: Path, *, max_bytes: int, previous: dict[str, tuple[str, SourceText]] | None
) -> _Loaded:
    """:func:`rag.ingest.loaders.load_corpus`, reusing ``previous[source] = (file_key, text)``.

    A file is reused only when its bytes hash and its sidecar entry give the same key as in
    the previous version; everything else goes through ``load_file`` and its safety checks.
    """
    previous = previous or {}
    sidecars: dict[str, dict | None] = {}
    reused: set[str] = set()

    def reuse(name: str, path: Path, sidecar: dict | None) -> SourceText | None:
        sidecars[name] = sidecar
        prev = previous.get(name)
        if prev is None:
            return None
        sha = _hash_if_small(path, max_bytes)
        if sha is None or file_key(sha, sidecar) != prev[0]:
            return None
        reused.add(name)
        return prev[1]

    docs, errors = load_corpus(corpus_dir, max_bytes=max_bytes, reuse=reuse)
    keys = {d.source: file_key(d.sha256, sidecars.get(d.source)) for d in docs}
    return _Loaded(docs, errors, keys, [d.source for d in docs if d.source not in reused])


@dataclass
class Plan:
    """What a build starts from: the documents to index and how they differ from the live version's."""

    docs: list[SourceText]
    keys: dict[str, str]  # source -> file_key
    parsed: set[str]  # files parsed now (the rest reused)
    rejected: list[str]  # "file: reason"
    old_files: dict[str, str]  # source -> sha256 in the previous version
    new_files: dict[str, str]  # source -> sha256 now
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def plan_files(settings: Settings, prev: Index | None, *, rebuild: bool) -> Plan:
    """Load the corpus (reusing the previous version's texts unless ``rebuild``) and compare it with
    ``prev``; a refused replacement keeps the version indexed before."""
    prev_m = prev.manifest if prev else {}
    old_files: dict[str, str] = dict(prev_m.get("files") or {})
    prev_docs = {s: doc_from_record(d) for s, d in (prev.documents if prev else {}).items()}
    prev_keys: dict[str, str] = dict(prev_m.get("file_keys") or {})
    previous = None if rebuild else {s: (prev_keys[s], d) for s, d in prev_docs.items() if s in prev_keys}

    loaded = load_corpus_incremental(Path(settings.corpus_dir), max_bytes=settings.upload_max_bytes, previous=previous)
    docs, keys = loaded.docs, dict(loaded.keys)
    rejected = []
    present = {d.source for d in docs}
    for e in loaded.errors:
        src = getattr(e, "source", "")
        if src in prev_docs and src not in present:
            # a refused replacement changes nothing: the version indexed before stays
            docs.append(prev_docs[src])
            present.add(src)
            if src in prev_keys:
                keys[src] = prev_keys[src]
            rejected.append(f"{e}（保留此前已索引的版本）")
        else:
            rejected.append(str(e))
    docs.sort(key=lambda d: d.source)

    new_files = {d.source: d.sha256 for d in docs}
    return Plan(
        docs=docs, keys=keys, parsed=set(loaded.parsed), rejected=rejected, old_files=old_files, new_files=new_files,
        added=sorted(f for f in new_files if f not in old_files),
        changed=sorted(f for f in new_files if f in old_files and old_files[f] != new_files[f]),
        removed=sorted(f for f in old_files if f not in new_files),
        kept=sorted(f for f in new_files if old_files.get(f) == new_files[f]),
    )
