"""The tree shows the pipeline: imports run one way, no circles, no warehouse modules.

Walks every module under ``rag/`` (and ``app.py``) with ``ast`` (no imports are executed), builds the
import graph, including imports inside functions (a late import that dodges a circle at load time is
still a circle in the design), and checks:

- no circle between modules, and none between packages (``rag/index`` <-> ``rag/ingest`` say);
- floors only look down: entry points (``app.py``, ``rag/cli.py``, ``rag/__main__.py``, the web layer,
  the langchain adapter and the ``rag`` facade) -> the evaluation tools (``rag/eval``, which drive the
  service as a user would) -> ``rag/service.py`` -> the stages -> the shared floor;
- no module over 450 lines and no function over 90 (the house aims at 400 and 80);
- every package's ``__init__.py`` opens with a docstring.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STAGES = ("ingest", "index", "retrieve", "answer", "llm", "quiz", "auth", "db")
FLOOR = 0
STAGE = 1
SERVICE = 2
TOOLS = 3
ENTRY = 4
NAMES = {FLOOR: "the shared floor", STAGE: "a stage", SERVICE: "the service", TOOLS: "the eval tools", ENTRY: "an entry point"}
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 90
# Not split yet (issue 16: rag/answer and rag/eval wait for the lead's work there to land). A ratchet:
# an entry may shrink, not grow; an entry under the limit must go; no new entry may appear.
KNOWN_LARGE_MODULES: dict[str, int] = {}
KNOWN_LONG_FUNCTIONS = {
}


def module_files() -> dict[str, Path]:
    """Module name -> file, for every module under rag/ plus app.py."""
    files = sorted((ROOT / "rag").rglob("*.py")) + [ROOT / "app.py"]
    out = {}
    for p in files:
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def floor_of(module: str) -> int:
    parts = module.split(".")
    if module in ("app", "rag") or parts[1] in ("cli", "__main__", "web", "langchain_retriever"):
        return ENTRY
    if parts[1] == "eval":
        return TOOLS
    if parts[1] == "service":
        return SERVICE
    if parts[1] in STAGES:
        return STAGE
    return FLOOR


def unit_of(module: str) -> str:
    """The package a module belongs to for the package-level circle check (rag.index.store.faiss -> rag.index)."""
    parts = module.split(".")
    return ".".join(parts[:2])


def imports_of(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Modules of ours that ``module`` imports anywhere in its body (module level or inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()

    def add(name: str) -> None:
        while name and name not in known and "." in name:
            name = name.rsplit(".", 1)[0]
        if name in known and name != module:
            found.add(name)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_pkg else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                add(full if full in known else base)
    return found


def import_graph() -> dict[str, set[str]]:
    known = module_files()
    return {m: imports_of(m, p, known) for m, p in known.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan, iterative enough for our size)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_layout_checker_sees_a_circle_and_a_wrong_way_import():
    # known answers: the checker itself must catch what it is for
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert floor_of("rag.index.indexing") == STAGE and floor_of("rag.web.server") == ENTRY
    assert floor_of("rag.service") == SERVICE and floor_of("rag.text") == FLOOR
    assert over_the_limit({"a.py": 500, "b.py": 10}, 450, {}) == ["a.py: 500 lines"]
    assert over_the_limit({"a.py": 400}, 450, {"a.py": 500}) == ["a.py: now 400 lines, take it off the known list"]


def test_no_circle_between_modules():
    assert circles(import_graph()) == []


def test_no_circle_between_packages():
    units: dict[str, set[str]] = {}
    for m, deps in import_graph().items():
        units.setdefault(unit_of(m), set()).update(unit_of(d) for d in deps if unit_of(d) != unit_of(m))
    assert circles(units) == []


def test_imports_run_one_way():
    wrong = []
    for m, deps in sorted(import_graph().items()):
        for d in sorted(deps):
            if floor_of(d) > floor_of(m):
                wrong.append(f"{m} ({NAMES[floor_of(m)]}) imports {d} ({NAMES[floor_of(d)]})")
    assert wrong == []


def over_the_limit(sizes: dict[str, int], limit: int, known: dict[str, int]) -> list[str]:
    """What breaks the size rule: new entries over ``limit``, known ones that grew, known ones now fine."""
    wrong = [f"{k}: {n} lines" for k, n in sorted(sizes.items()) if n > max(limit, known.get(k, 0))]
    wrong += [f"{k}: now {sizes.get(k, 0)} lines, take it off the known list" for k in known if sizes.get(k, 0) <= limit]
    return wrong


def test_no_warehouse_modules():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines()) for p in module_files().values()}
    assert over_the_limit(sizes, MAX_MODULE_LINES, KNOWN_LARGE_MODULES) == []


def test_no_long_functions():
    sizes: dict[str, int] = {}
    for p in module_files().values():
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                key = f"{p.relative_to(ROOT)}::{node.name}"
                sizes[key] = max(sizes.get(key, 0), node.end_lineno - node.lineno + 1)
    assert over_the_limit(sizes, MAX_FUNCTION_LINES, KNOWN_LONG_FUNCTIONS) == []


def test_every_package_says_what_it_is_for():
    silent = [
        str(p.relative_to(ROOT))
        for p in sorted((ROOT / "rag").rglob("__init__.py"))
        if "migrations" not in p.parts and not ast.get_docstring(ast.parse(p.read_text(encoding="utf-8")))
    ]
    assert silent == []
