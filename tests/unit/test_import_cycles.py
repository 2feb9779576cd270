"""No import cycles between the package's modules (issue 16, item 3): every ``import`` and
``from ... import`` of verifier/, bounds/, branching/, lut/ and vnnlib/, at any depth (a
function-level import closes a cycle as surely as a top-level one), parsed with ``ast``.
``KNOWN`` lists the cycles still to break; the test fails when a new one appears and when a
known one is gone (so the list only shrinks)."""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("verifier", "bounds", "branching", "lut", "vnnlib")
KNOWN: set[frozenset[str]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The package modules ``path`` imports (``from a.b import c`` counts ``a.b.c`` when that
    is a module, else ``a.b``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules
                     else node.module for a in node.names]
        else:
            continue
        found.update(n for n in names if n in modules)
    return found


def import_graph() -> nx.DiGraph:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    modules = {_module_name(p): p for p in files}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        graph.add_edges_from((name, target) for target in _imports(path, set(modules))
                             if target != name and not name.startswith(target + "."))
    return graph


def test_no_import_cycles_but_the_known_ones():
    graph = import_graph()
    assert graph.number_of_nodes() > 50      # the parse found the package
    cycles = {frozenset(c) for c in nx.strongly_connected_components(graph) if len(c) > 1}
    assert cycles - KNOWN == set(), f"new import cycles: {sorted(map(sorted, cycles - KNOWN))}"
    gone = KNOWN - cycles
    assert gone == set(), f"broken, remove from KNOWN: {sorted(map(sorted, gone))}"


def test_the_cycle_check_sees_function_level_imports(tmp_path):
    # bounds.cuts used to import bounds.backward inside functions while backward imported
    # cuts at the top: that must count as a cycle
    a = tmp_path / "a.py"
    a.write_text("def f():\n    from pkg import b\n")
    assert _imports(a, {"pkg", "pkg.b"}) == {"pkg.b"}
