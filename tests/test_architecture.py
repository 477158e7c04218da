"""Imports point one way: the layering of docs/architecture.md, checked on the source.

Every module of src/calfseg is parsed with ``ast``; every ``import`` in it counts, at module
level or inside a function (a lazy import is still a dependency). From these edges:

(a) no module outside ``calfseg.cli`` imports ``calfseg.cli`` (the library never drives the CLI);
(b) no part imports a part of a higher layer (``LAYERS`` below; parts of one layer may import
    each other, as long as (c) holds); every part is in the table;
(c) the graph of parts has no cycle;
(d) the graph of modules has no cycle, package ``__init__`` re-exports aside: an ``__init__``
    importing its own sub-modules is not an edge, and ``from package import name`` is an edge to
    the module that defines ``name``;
(e) at most ``MAX_DATA_MODULES`` modules sit directly in ``calfseg/data`` (the rest lives in
    sub-packages that name the stages).

A part is the first name under ``calfseg`` (``calfseg.data.cache`` is in part ``data``;
``calfseg.rule`` is part ``rule``). The root package ``calfseg`` is the lazy front door: it may
import anything, and the library may import only ``__version__`` from it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = ROOT / "src" / "calfseg"
ARCHITECTURE_DOC = ROOT / "docs" / "architecture.md"

# Top to bottom. A part may import parts of its own layer and of the layers below it.
# docs/architecture.md shows this table; test_the_documented_table_is_this_table keeps them equal.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli",),  # 1: the `calf` command: argument parsing, exit codes, printing
    ("bench",),  # 2: grids of trainings, results, statistics, the report
    ("train", "nnunet", "analysis"),  # 3: one training / evaluation / export; nnU-Net; analyze
    ("data", "losses", "metrics", "models"),  # 4: caches and loaders, losses, metrics, networks
    ("fingerprint",),  # 5: the area fingerprint, its one file format and its plots
    ("stats", "rule"),  # 6: areas, moments, skewness/kurtosis; the decision rule
    (
        "atomic",
        "shards",
        "progress",
        "extras",
        "errors",
        "threads",
        "run_files",
        "writer_lock",
        "orphans",
        "options",
    ),
)
FRONT_DOOR = "calfseg"  # the root package: lazy re-exports of the public API
ROOT_NAMES_FOR_THE_LIBRARY = {"__version__"}
MAX_DATA_MODULES = 10


@dataclass(frozen=True)
class Edge:
    """``importer`` (a module) imports ``target`` (a module) at ``line``."""

    importer: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.importer}:{self.line} -> {self.target}"


# -- building the graph ---------------------------------------------------------------------------


@cache
def modules() -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    found = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def is_package(module: str) -> bool:
    return modules()[module].name == "__init__.py"


def part_of(module: str) -> str:
    names = module.split(".")
    return names[1] if len(names) > 1 else FRONT_DOOR


def _absolute(module: str, node: ast.ImportFrom) -> str:
    """The absolute module an ImportFrom names (resolving ``from . import x`` and ``..x``)."""
    if not node.level:
        return node.module or ""
    package = module if is_package(module) else module.rpartition(".")[0]
    base = package.split(".")
    if node.level > 1:
        base = base[: -(node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


@cache
def reexports(package: str) -> dict[str, str]:
    """name -> the module a package's ``__init__`` imports it from (its own re-exports)."""
    tree = ast.parse(modules()[package].read_text())
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _absolute(package, node)
            if source.startswith(package + "."):
                for alias in node.names:
                    names[alias.asname or alias.name] = source
    return names


def defining_module(package: str, name: str, depth: int = 0) -> str:
    """The module that defines ``name`` imported from ``package`` (following re-exports)."""
    if f"{package}.{name}" in modules():
        return f"{package}.{name}"
    source = reexports(package).get(name)
    if source is None or source not in modules() or depth > 5:
        return package
    if is_package(source):
        return defining_module(source, name, depth + 1)
    return source


def raw_imports(module: str) -> Iterator[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every calfseg import in ``module``."""
    tree = ast.parse(modules()[module].read_text(), filename=str(modules()[module]))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "calfseg" or alias.name.startswith("calfseg."):
                    yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            if source == "calfseg" or source.startswith("calfseg."):
                for alias in node.names:
                    yield source, alias.name, node.lineno


def _closest_module(dotted: str) -> str:
    """``dotted`` itself if it is a module, else its longest prefix that is one."""
    while dotted not in modules() and "." in dotted:
        dotted = dotted.rpartition(".")[0]
    return dotted


@cache
def edges() -> tuple[Edge, ...]:
    """Every import between calfseg modules, each resolved to the module that defines what is
    imported (``from calfseg.stats import AreaMoments`` -> calfseg.stats.moments)."""
    found = []
    for module in modules():
        for source, name, line in raw_imports(module):
            if source == FRONT_DOOR and name in ROOT_NAMES_FOR_THE_LIBRARY:
                continue  # __version__: importing the root package is free
            target = _closest_module(source)
            if name is not None and is_package(target):
                target = defining_module(target, name)
            if target != module:
                found.append(Edge(module, target, line))
    return tuple(found)


def module_edges() -> list[Edge]:
    """The edges of the module graph: a package ``__init__`` importing its own sub-modules
    (its re-exports) is left out."""
    return [
        e
        for e in edges()
        if not (is_package(e.importer) and e.target.startswith(e.importer + "."))
        and not (e.importer == FRONT_DOOR)
    ]


def part_edges() -> list[Edge]:
    return [e for e in edges() if part_of(e.importer) != part_of(e.target)]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def graph_of(pairs: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for a, b in pairs:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    return graph


def layer_of(part: str) -> int:
    """0 for the front door, then 1, 2, ... from the top of LAYERS."""
    if part == FRONT_DOOR:
        return 0
    for number, parts in enumerate(LAYERS, start=1):
        if part in parts:
            return number
    raise KeyError(part)


# -- the graph builder finds what it must (so the rules below are not vacuous) -------------------


def test_the_graph_has_every_module_and_sees_imports_inside_functions():
    assert "calfseg.losses.calf" in modules()
    assert "calfseg.data" in modules() and is_package("calfseg.data")
    # cli/benchmark.py imports calfseg.bench inside its run function, not at the top
    benchmark_imports = {
        part_of(e.target) for e in edges() if e.importer == "calfseg.cli.benchmark"
    }
    assert "bench" in benchmark_imports
    # the name is resolved to the module that defines it, through the package's re-exports
    assert defining_module("calfseg.stats", "AreaMoments") == "calfseg.stats.moments"


def test_cycle_finder_on_hand_made_graphs():
    assert cycles(graph_of([("a", "b"), ("b", "c")])) == []
    assert cycles(graph_of([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])) == [["a", "b", "c"]]
    assert cycles(graph_of([("a", "b"), ("b", "a"), ("c", "d"), ("d", "c")])) == [
        ["a", "b"],
        ["c", "d"],
    ]


# -- the rules -----------------------------------------------------------------------------------


def test_only_the_cli_imports_the_cli():
    bad = [str(e) for e in edges() if part_of(e.target) == "cli" and part_of(e.importer) != "cli"]
    assert bad == [], "the library must not import calfseg.cli:\n" + "\n".join(bad)


def test_every_part_is_in_the_layering_table():
    unknown = sorted({part_of(m) for m in modules()} - {FRONT_DOOR, *sum(LAYERS, ())})
    assert unknown == [], f"parts missing from LAYERS (and docs/architecture.md): {unknown}"


def test_no_part_imports_a_higher_layer():
    known = {FRONT_DOOR, *sum(LAYERS, ())}
    bad = [
        f"{e}  ({part_of(e.importer)}, layer {layer_of(part_of(e.importer))} imports "
        f"{part_of(e.target)}, layer {layer_of(part_of(e.target))})"
        for e in part_edges()
        if {part_of(e.importer), part_of(e.target)} <= known
        and layer_of(part_of(e.target)) < layer_of(part_of(e.importer))
    ]
    assert bad == [], "upward imports:\n" + "\n".join(bad)


def test_no_cycle_between_parts():
    found = cycles(graph_of((part_of(e.importer), part_of(e.target)) for e in part_edges()))
    details = [
        f"{cycle}: "
        + "; ".join(
            sorted(
                {
                    str(e)
                    for e in part_edges()
                    if {part_of(e.importer), part_of(e.target)} <= {*cycle}
                }
            )
        )
        for cycle in found
    ]
    assert found == [], "cycles between parts:\n" + "\n".join(details)


def test_no_cycle_between_modules():
    found = cycles(graph_of((e.importer, e.target) for e in module_edges()))
    details = [
        f"{cycle}: "
        + "; ".join(
            sorted({str(e) for e in module_edges() if e.importer in cycle and e.target in cycle})
        )
        for cycle in found
    ]
    assert found == [], "cycles between modules:\n" + "\n".join(details)


def test_the_data_package_keeps_its_stages_in_sub_packages():
    top = sorted(p.name for p in (PACKAGE_DIR / "data").glob("*.py") if p.name != "__init__.py")
    assert len(top) <= MAX_DATA_MODULES, f"{len(top)} modules directly in calfseg/data: {top}"


def test_the_documented_table_is_this_table():
    """docs/architecture.md has one row ``| N | `part`, `part` | ... |`` per layer."""
    text = ARCHITECTURE_DOC.read_text()
    for number, parts in enumerate(LAYERS, start=1):
        row = re.search(rf"^\| {number} \| ([^|]*)\|", text, flags=re.MULTILINE)
        assert row is not None, f"docs/architecture.md has no row for layer {number}"
        documented = set(re.findall(r"`([a-z_]+)`", row.group(1)))
        assert documented == set(parts), (number, documented, parts)


@pytest.mark.parametrize("rule", ["upward", "cycle"])
def test_the_rules_catch_a_planted_violation(rule):
    # the same checks as above, on a hand-made edge list: a bad edge must be reported
    planted = [Edge("calfseg.stats.moments", "calfseg.losses.calf", 1)]
    if rule == "upward":
        assert layer_of(part_of(planted[0].target)) < layer_of(part_of(planted[0].importer))
    else:
        pairs = [(e.importer, e.target) for e in planted]
        pairs.append(("calfseg.losses.calf", "calfseg.stats.moments"))
        assert cycles(graph_of(pairs)) == [["calfseg.losses.calf", "calfseg.stats.moments"]]
