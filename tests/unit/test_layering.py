"""The package's layering (issue 16; docs/architecture.md, "Layers"): every import points down
or stays in its layer, no module imports a private name of another, no import cycles, one
``genbab`` namespace.  Imports are parsed with ``ast`` at any depth (a function-level import
breaks a layer as surely as a top-level one)."""
from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[2]
# repository folder -> import name; the order of LAYERS is the layer order, lowest first
FOLDERS = {"verifier": "genbab.verifier", "vnnlib": "genbab.vnnlib", "bounds": "genbab.bounds",
           "lut": "genbab.lut", "branching": "genbab.branching", "genbab": "genbab"}
LAYERS = list(FOLDERS.values())


def _module_name(path: Path) -> str:
    folder, *rest = path.relative_to(ROOT).with_suffix("").parts
    parts = [FOLDERS[folder], *rest]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    """Index in LAYERS of the longest prefix that names ``module``'s package; the front ends
    (``genbab.api``, ``genbab.cli``, ...) and ``genbab`` itself are the top layer."""
    for i, name in enumerate(LAYERS[:-1]):
        if module == name or module.startswith(name + "."):
            return i
    return len(LAYERS) - 1


def _imports(path: Path, modules: set[str]) -> tuple[set[str], list[str]]:
    """The package modules ``path`` imports (``from a.b import c`` counts ``a.b.c`` when that
    is a module, else ``a.b``), and the private names it imports from other modules."""
    found, private = set(), []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules
                     else node.module for a in node.names]
            private += [f"{node.module}.{a.name}" for a in node.names
                        if a.name.startswith("_") and f"{node.module}.{a.name}" not in modules]
        else:
            continue
        found.update(n for n in names if n in modules)
    return found, private


def _package_files() -> dict[str, Path]:
    files = [p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py")]
    return {_module_name(p): p for p in files}


def import_graph() -> nx.DiGraph:
    modules = _package_files()
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        targets, _ = _imports(path, set(modules))
        graph.add_edges_from((name, target) for target in targets
                             if target != name and not name.startswith(target + "."))
    return graph


def test_every_import_points_down_or_sideways():
    graph = import_graph()
    assert graph.number_of_nodes() > 50      # the parse found the package
    upward = sorted(f"{a} -> {b}" for a, b in graph.edges if layer(b) > layer(a))
    assert upward == [], "imports against the layer order (docs/architecture.md):\n" + \
        "\n".join(upward)


def test_no_import_cycles():
    cycles = [sorted(c) for c in nx.strongly_connected_components(import_graph()) if len(c) > 1]
    assert cycles == []


def test_no_private_name_crosses_a_module():
    modules = _package_files()
    crossing = [f"{name}: {p}" for name, path in modules.items()
                for p in _imports(path, set(modules))[1]]
    assert crossing == []


def test_the_parse_sees_function_level_and_private_imports(tmp_path):
    a = tmp_path / "a.py"
    a.write_text("def f():\n    from pkg import b\n    from pkg.c import _hidden\n")
    assert _imports(a, {"pkg", "pkg.b", "pkg.c"}) == ({"pkg.b", "pkg.c"}, ["pkg.c._hidden"])


def test_layer_order():
    assert layer("genbab.verifier.graph") < layer("genbab.vnnlib.property") \
        < layer("genbab.bounds.engine") < layer("genbab.lut.table") \
        < layer("genbab.branching.bab") < layer("genbab.api") == layer("genbab")


def test_pyproject_installs_every_subpackage_under_genbab_and_not_benchmarks():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    wanted = {_module_name(init) for folder in FOLDERS
              for init in (ROOT / folder).rglob("__init__.py")}
    assert set(setuptools["packages"]) == wanted
    assert all(p.startswith("genbab") for p in setuptools["packages"])
    mapped = {name: folder for name, folder in setuptools["package-dir"].items()}
    assert mapped == {name: folder for folder, name in FOLDERS.items()}


@pytest.mark.parametrize("old", ["verifier", "bounds", "branching", "lut", "vnnlib"])
def test_an_old_top_level_import_fails_with_a_clear_message(old):
    # run from the repository root, where the folder of that name is on sys.path
    proc = subprocess.run([sys.executable, "-c", f"import {old}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert f"import genbab.{old} instead" in proc.stderr


def test_the_public_entry_point():
    # ``import genbab`` stays light (the CLI starts without torch); the names load on use
    code = ("import sys, genbab; assert 'torch' not in sys.modules, 'torch imported eagerly'; "
            "from genbab import verify, Status, Property, load_model; print(verify.__module__)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "genbab.api"
