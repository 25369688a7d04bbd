"""The folders are the roles: each package imports only what its role may (README, "Code layout").

Every import counts, at module level or inside a function, so a lazy import cannot hide a wrong direction.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
POEMBOT = ("bot", "protocol", "streams", "worker", "model", "search", "corpus", "verse", "training", "reading",
           "run", "devtools")
# package -> the poembot modules it may import (a package name allows all of it). From the bottom up:
# verse and reading import nothing of poembot; protocol, search and corpus sit on verse; the queue room
# (streams) on protocol; model on those; worker and training on model; bot beside worker, on protocol,
# streams and search; run above the roles.
ALLOWED: dict[str, tuple[str, ...]] = {
    "verse": ("verse",),
    "reading": ("reading",),
    "protocol": ("protocol", "verse"),
    # The queue room stands on the protocol (key names, the job format); the protocol never imports it.
    "streams": ("streams", "protocol"),
    # The numpy search of the latent and theme indexes: below the model, which builds its index.
    "search": ("search", "verse", "protocol.paths"),
    # Fetching, building and reading the corpus; what is counted out of it. No TensorFlow.
    "corpus": ("corpus", "protocol", "verse"),
    # The model reads the built corpus but never runs the pipeline. It speaks its own requests
    # (model.requests), never the wire's: the worker checks jobs and maps them (worker.request). Of
    # protocol it reads only where files live, its settings and the sampling defaults.
    "model": ("model", "search", "corpus.reader", "corpus.ci_reader", "protocol.settings", "protocol.paths",
              "protocol.sampling", "verse"),
    "worker": ("worker", "protocol", "streams", "model", "verse"),
    "training": ("training", "model", "search", "corpus.reader", "corpus.ci_reader", "protocol", "verse"),
    # The bot holds no TensorFlow: the numpy search, never the model.
    "bot": ("bot", "protocol", "streams", "verse", "reading", "search"),
    # `poembot run` starts the roles as processes, above them: of the bot it reads only where the card
    # fonts are; never the developer tools (a sandbox is handed in by poembot_cli).
    "run": ("run", "protocol", "search", "bot.fonts"),
}
NO_TENSORFLOW = ("bot", "protocol", "streams", "search", "corpus", "verse", "reading")


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) for every import in a file; `from a import b` counts as a.b and as a."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def allowed(module: str, rules: tuple[str, ...]) -> bool:
    return any(module == rule or module.startswith(rule + ".") for rule in rules)


def violations(package: str) -> list[str]:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module in imports_of(path):
            top = module.split(".")[0]
            if top not in POEMBOT or allowed(module, ALLOWED[package]):
                continue
            # `from model import x` also yields "model": judge the x it names instead.
            if module == top and any(m.startswith(module + ".") for _, m in imports_of(path)):
                continue
            bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return bad


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_role_imports_only_what_it_may(package):
    assert violations(package) == []


def imports_outside(skip: tuple[str, ...], wanted) -> list[str]:
    """Every import that wanted() picks, in the files of the tree outside the folders in skip."""
    users = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in (*skip, ".venv", "build") or rel.name == "poembot_cli.py":
            continue
        users += [f"{rel}:{line} imports {m}" for line, m in imports_of(path) if wanted(m)]
    return users


def test_nothing_but_devtools_and_tests_imports_the_emulator():
    """Nor any developer tool: `poembot run` (run/) included; benchmarks drive the load cluster."""
    assert imports_outside(("devtools", "tests", "benchmarks"), lambda m: m.startswith("devtools")) == []


def test_nothing_but_the_top_imports_the_bot():
    """Only what sits above the bot: `poembot run` (which starts it), the developer tools, tests, benchmarks."""
    assert imports_outside(("bot", "run", "devtools", "tests", "benchmarks"), lambda m: m.split(".")[0] == "bot") == []


def reachable(paths: list[Path]) -> set[Path]:
    """The poembot files these import, directly or through each other (lazy imports included)."""
    seen: set[Path] = set()
    todo = list(paths)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for _, module in imports_of(path):
            if module.split(".")[0] in POEMBOT:
                target = ROOT.joinpath(*module.split("."))
                todo += [p for p in (target.with_suffix(".py"), target / "__init__.py") if p.exists()]
    return seen


@pytest.mark.parametrize("package", NO_TENSORFLOW)
def test_the_bot_side_never_imports_tensorflow(package):
    """Not even lazily: everything the bot side can reach, model's search modules included."""
    paths = reachable(sorted((ROOT / package).rglob("*.py")))
    heavy = [f"{p.relative_to(ROOT)}:{line} imports {m}" for p in sorted(paths) for line, m in imports_of(p)
             if m.split(".")[0] in ("tensorflow", "keras")]
    assert heavy == []


def module_graph() -> dict[Path, set[Path]]:
    """Every poembot file -> the poembot files it imports (lazy imports included)."""
    graph: dict[Path, set[Path]] = {}
    for path in sorted(p for package in POEMBOT for p in (ROOT / package).rglob("*.py")):
        graph[path] = set()
        for _, module in imports_of(path):
            if module.split(".")[0] in POEMBOT:
                target = ROOT.joinpath(*module.split("."))
                graph[path] |= {p for p in (target.with_suffix(".py"), target / "__init__.py")
                                if p.exists() and p != path}
    return graph


def circles(graph: dict[Path, set[Path]]) -> list[list[str]]:
    """The import circles (strongly connected groups of two files or more), by Tarjan's algorithm."""
    index: dict[Path, int] = {}
    low: dict[Path, int] = {}
    stack: list[Path] = []
    found: list[list[str]] = []

    def visit(v: Path) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(str(w.relative_to(ROOT)))
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_circle():
    """No module imports, directly or through others, a module that imports it (lazily or not)."""
    assert circles(module_graph()) == []


def test_the_circle_finder_sees_a_circle(tmp_path, monkeypatch):
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "a.py").write_text("from search.b import x\n")
    (tmp_path / "search" / "b.py").write_text("def f():\n    from search.a import y\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    assert circles(module_graph()) == [["search/a.py", "search/b.py"]]


def test_the_checker_sees_a_wrong_direction(tmp_path, monkeypatch):
    """The rules can fail: a protocol module that imports the bot is reported, with its line."""
    (tmp_path / "protocol").mkdir()
    (tmp_path / "protocol" / "bad.py").write_text("import json\n\ndef f():\n    from bot.app import main\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    assert violations("protocol") == ["protocol/bad.py:4 imports bot.app", "protocol/bad.py:4 imports bot.app.main"]
