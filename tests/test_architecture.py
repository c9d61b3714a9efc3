"""The shape of the code: import graph without cycles (imports inside functions count), one-way
dependencies between the three packages, the public API of each package top."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bornmachine", "rbm", "comparison")


def module_files() -> dict[str, Path]:
    """Dotted module name → file, for every module of the three packages."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """Module → the package modules it imports anywhere in its file (module level or inside functions).

    ``from p import name`` points at ``p.name`` when that is a module, else at ``p``; a relative import
    is resolved against the importing module's package. (Python also runs a package's ``__init__``
    before its submodules; that implicit step is not an edge, as in every import-cycle checker.)"""
    files = module_files()
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module
                for alias in node.names:
                    candidate = f"{source}.{alias.name}"
                    targets.add(candidate if candidate in files else source)
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "bornmachine.plots" in graph["bornmachine.cli"]  # imported inside a function there
    assert "bornmachine.training" in graph["rbm.training"]


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, f"import cycles: {found}"


def test_dependencies_point_one_way():
    graph = import_graph()
    for name, targets in graph.items():
        if name.startswith("bornmachine"):
            assert not {t for t in targets if t.split(".")[0] in ("rbm", "comparison")}, name
        if name.startswith("rbm"):
            assert not {t for t in targets if t.startswith("comparison")}, name


def test_importing_bornmachine_imports_neither_rbm_nor_comparison():
    probe = "import sys, bornmachine; print(sorted(m for m in sys.modules if m.split('.')[0] in ('rbm', 'comparison')))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_package_tops_export_models_and_trainers():
    import bornmachine
    import rbm
    from bornmachine import (MPS, TTN, GradientTrainer, SweepTrainer, Tree, ZeroProbabilityWarning,  # noqa: F401
                             datasets, load)
    from rbm import RBM, CDTrainer  # noqa: F401

    assert issubclass(ZeroProbabilityWarning, RuntimeWarning)
    for package in (bornmachine, rbm):
        for name in package.__all__:
            assert hasattr(package, name), f"{package.__name__}.{name} is in __all__ but missing"


@pytest.mark.parametrize("name", ["bornmachine.chain_kernels", "bornmachine.tree_kernels", "bornmachine.linalg"])
def test_kernel_modules_hold_no_models_or_training(name):
    graph = import_graph()
    assert not {t for t in graph[name] if t.rpartition(".")[2] in ("mps", "ttn", "base", "training", "io")}
