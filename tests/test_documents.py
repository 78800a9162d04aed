"""DocumentManager: validated adds, safe names, replace/delete with audit, nothing written on error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rag.db.audit import read_audit
from rag.config import Settings
from rag.index.documents import DocumentManager, safe_name
from rag.errors import InputError, LoaderError, RagError

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
ARTICLE = "青松县政协机关推行“三色预警”工作法\n\n青松县政协机关推行“三色预警”工作法，用红黄绿三色标注问题轻重。\n".encode()


@pytest.fixture
def docs(tmp_path: Path) -> DocumentManager:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(CORPUS / "003_407e79abe79f1b58.txt", corpus)
    meta = json.loads((CORPUS / "metadata.json").read_text(encoding="utf-8"))
    (corpus / "metadata.json").write_text(
        json.dumps({"003_407e79abe79f1b58.txt": meta["003_407e79abe79f1b58.txt"]}, ensure_ascii=False), encoding="utf-8"
    )
    return DocumentManager(Settings(corpus_dir=corpus, index_dir=tmp_path / "index", data_dir=tmp_path / "data",
                                    upload_max_bytes=4096, upload_max_files=3))


def snapshot(docs: DocumentManager) -> dict[str, bytes]:
    root = docs.corpus_dir.parent
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_list_reads_title_from_metadata(docs: DocumentManager) -> None:
    (row,) = docs.list()
    assert row.name == "003_407e79abe79f1b58.txt"
    assert row.title.startswith("山东省政府新闻发布会")
    assert row.chunks is None  # no index yet
    assert len(row.sha256) == 12 and row.size > 0


def test_add_keeps_safe_name_stores_upload_and_audits(docs: DocumentManager) -> None:
    name = docs.add("青松县.txt", ARTICLE, user="admin")
    assert name == "青松县.txt"
    assert (docs.corpus_dir / name).read_bytes() == ARTICLE
    (upload,) = list(docs.uploads_dir.iterdir())
    assert upload.read_bytes() == ARTICLE and "青松县" not in upload.name
    row = next(r for r in docs.list() if r.name == name)
    assert row.title == "青松县政协机关推行“三色预警”工作法" and row.added_by == "admin"
    (event,) = read_audit(docs.data_dir)
    assert event["action"] == "add" and event["user"] == "admin" and event["file"] == name
    assert event["original_name"] == "青松县.txt" and len(event["sha256"]) == 64


def test_add_never_overwrites(docs: DocumentManager) -> None:
    first = docs.add("青松县.txt", ARTICLE, user="admin")
    second = docs.add("青松县.txt", ARTICLE + "第二版。\n".encode(), user="admin")
    assert first != second and second.startswith("upload_") and second.endswith(".txt")
    assert (docs.corpus_dir / first).read_bytes() == ARTICLE


@pytest.mark.parametrize("evil", ["../x.txt", "/etc/passwd.txt", "..%2Fx.txt", "..\\..\\x.txt", ".hidden.txt",
                                  "metadata.json", "a/../../b.md", "con\x00.txt"])
def test_traversal_names_are_sanitised(docs: DocumentManager, evil: str) -> None:
    assert safe_name(evil) is None
    try:
        name = docs.add(evil, ARTICLE, user="admin")
    except RagError:
        return  # refused outright is fine too
    assert "/" not in name and "\\" not in name and ".." not in name
    assert (docs.corpus_dir / name).resolve().parent == docs.corpus_dir.resolve()
    assert not (docs.corpus_dir.parent / "x.txt").exists()
    assert Path("/etc/passwd.txt").exists() is False


def test_safe_name_examples() -> None:
    assert safe_name("青松县 三色预警.md") == "青松县 三色预警.md"
    assert safe_name("report.exe") is None
    assert safe_name("..%2Fx") is None and safe_name("/etc/passwd") is None


@pytest.mark.parametrize(
    "filename,data",
    [
        ("a.exe", b"MZ\x90\x00"),  # type not allowed
        ("a.txt", b"\x00\x01\x02binary" * 10),  # not text
        ("a.pdf", "这不是 PDF".encode()),  # content does not match the suffix
        ("a.docx", b"plain text, not a zip"),
        ("a.txt", "大".encode() * 5000),  # over upload_max_bytes (4096)
        ("a.txt", b""),  # empty
    ],
)
def test_bad_files_are_refused_with_nothing_written(docs: DocumentManager, filename: str, data: bytes) -> None:
    before = snapshot(docs)
    with pytest.raises(RagError) as err:
        docs.add(filename, data, user="admin")
    assert isinstance(err.value, (LoaderError, InputError))
    assert any("\u4e00" <= ch <= "\u9fff" for ch in str(err.value))  # a Chinese message
    assert snapshot(docs) == before


def test_batch_is_all_or_nothing_and_limited(docs: DocumentManager) -> None:
    before = snapshot(docs)
    with pytest.raises(LoaderError):
        docs.add_many([("ok.txt", ARTICLE), ("bad.exe", b"MZ")], user="admin")
    assert snapshot(docs) == before
    with pytest.raises(InputError, match="一次最多上传 3 个文件"):
        docs.add_many([(f"{i}.txt", ARTICLE) for i in range(4)], user="admin")
    assert snapshot(docs) == before
    assert docs.add_many([("a.txt", ARTICLE), ("b.md", ARTICLE)], user="admin") == ["a.txt", "b.md"]


def test_replace_and_delete_with_audit(docs: DocumentManager) -> None:
    name = docs.add("青松县.txt", ARTICLE, user="admin")
    new = ARTICLE + "新增一段内容。\n".encode()
    assert docs.replace(name, "whatever.txt", new, user="root") == name
    assert (docs.corpus_dir / name).read_bytes() == new
    with pytest.raises(InputError, match="类型须与原文件相同"):
        docs.replace(name, "x.md", ARTICLE, user="root")
    before = snapshot(docs)
    with pytest.raises(LoaderError):
        docs.replace(name, "x.txt", b"\x00\x01" * 50, user="root")
    assert snapshot(docs) == before
    docs.delete(name, user="root")
    assert not (docs.corpus_dir / name).exists()
    assert name not in [r.name for r in docs.list()]
    with pytest.raises(InputError, match="文档不存在"):
        docs.delete(name, user="root")
    with pytest.raises(InputError):
        docs.delete("../corpus/003_407e79abe79f1b58.txt", user="root")
    actions = [(e["action"], e["user"]) for e in read_audit(docs.data_dir)]
    assert actions == [("add", "admin"), ("replace", "root"), ("delete", "root")]
    assert len(list(docs.uploads_dir.iterdir())) == 2  # originals are kept
