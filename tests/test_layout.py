"""The folders are the roles: each package imports only what its role may (README, "Code layout").

Every import counts, at module level or inside a function, so a lazy import cannot hide a wrong direction.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
POEMBOT = ("bot", "protocol", "streams", "worker", "model", "verse", "training", "reading", "devtools")
# package -> the poembot modules it may import (a package name allows all of it).
ALLOWED: dict[str, tuple[str, ...]] = {
    "protocol": ("protocol", "verse"),
    # The queue room stands on the protocol (key names, the job format); the protocol never imports it.
    "streams": ("streams", "protocol"),
    "verse": ("verse", "model.vocab"),
    "reading": ("reading",),
    "model": ("model", "protocol", "verse"),
    "worker": ("worker", "protocol", "streams", "model", "verse"),
    "training": ("training", "model", "protocol", "verse"),
    # The bot holds no TensorFlow: of the model only the numpy search of the latent index.
    "bot": ("bot", "protocol", "streams", "verse", "reading", "model.index", "model.ivf", "model.reasons",
            "model.themes"),
}
NO_TENSORFLOW = ("bot", "protocol", "streams", "verse", "reading")


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


def test_nothing_but_devtools_and_tests_imports_the_emulator_or_the_bot():
    users = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in ("devtools", "tests", "bot", "benchmarks", ".venv", "build") or rel.name == "poembot_cli.py":
            continue
        users += [f"{rel}:{line} imports {m}" for line, m in imports_of(path)
                  if m.split(".")[0] == "bot" or m.startswith("devtools")]
    assert users == []


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


def test_the_checker_sees_a_wrong_direction(tmp_path, monkeypatch):
    """The rules can fail: a protocol module that imports the bot is reported, with its line."""
    (tmp_path / "protocol").mkdir()
    (tmp_path / "protocol" / "bad.py").write_text("import json\n\ndef f():\n    from bot.app import main\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    assert violations("protocol") == ["protocol/bad.py:4 imports bot.app", "protocol/bad.py:4 imports bot.app.main"]
