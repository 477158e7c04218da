"""Tests that cannot hide a failure: each one checks something, and none skips when the
project's own code fails to import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
# pytest.raises / warns / fail and np.testing.assert_* / torch.testing.assert_close check too
CHECKING_CALLS = {"raises", "warns", "fail", "deprecated_call"}


def _called_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _checks(function: ast.AST) -> bool:
    """The function asserts, raises, or calls pytest.raises/warns or an assert_* function."""
    for node in ast.walk(function):
        if isinstance(node, (ast.Assert, ast.Raise)):
            return True
        if isinstance(node, ast.Call):
            name = _called_name(node)
            if name in CHECKING_CALLS or name.startswith("assert"):
                return True
    return False


def _imports_project(statement: ast.stmt) -> bool:
    for node in ast.walk(statement):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("calfseg"):
            return True
        if isinstance(node, ast.Import) and any(a.name.startswith("calfseg") for a in node.names):
            return True
    return False


def _trees() -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text()) for path in sorted(TESTS.rglob("*.py"))}


def _functions(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef)
    return [node for node in ast.walk(tree) if isinstance(node, kinds)]


@pytest.mark.slow
def test_every_test_checks_something():
    trees = _trees()
    # helpers that check (in any test module) count when a test calls them
    helpers = {f.name for tree in trees.values() for f in _functions(tree) if _checks(f)}
    silent = []
    for path, tree in trees.items():
        for function in _functions(tree):
            if not function.name.startswith("test") or _checks(function):
                continue
            called = {_called_name(c) for c in ast.walk(function) if isinstance(c, ast.Call)}
            if not called & helpers:
                silent.append(f"{path.relative_to(TESTS.parent)}:{function.lineno} {function.name}")
    assert silent == [], "tests without an assertion:\n" + "\n".join(silent)


def test_no_test_skips_on_a_broken_import_of_the_project():
    hiding = []
    for path, tree in _trees().items():
        where = path.relative_to(TESTS.parent)
        for node in ast.walk(tree):
            # pytest.importorskip("calfseg...")
            if isinstance(node, ast.Call) and _called_name(node) == "importorskip":
                first = node.args[0] if node.args else None
                if isinstance(first, ast.Constant) and str(first.value).startswith("calfseg"):
                    hiding.append(f"{where}:{node.lineno} importorskip({first.value!r})")
            # try: import calfseg... / except ImportError: (skip)
            if isinstance(node, ast.Try):
                imports_project = any(_imports_project(n) for n in node.body)
                catches_import_error = any(
                    isinstance(h.type, ast.Name)
                    and h.type.id in {"ImportError", "ModuleNotFoundError"}
                    for h in node.handlers
                )
                if imports_project and catches_import_error:
                    hiding.append(f"{where}:{node.lineno} try/except ImportError on calfseg")
    assert hiding == [], "skips that hide a broken import of calfseg:\n" + "\n".join(hiding)
