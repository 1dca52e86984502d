"""The architecture the folders promise, checked on the real source: layers import down only, no circles,
Ray-free layers without Ray, private Ray attributes only in `mapush_rllib/ray_compat.py`, ruff clean."""

from __future__ import annotations

import ast
import importlib
import inspect
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("mapush_rllib", "curriculum", "population")

#: Layers bottom up. A module may import its own layer and the layers below, except that the two layers of rank 2
#: stand beside each other and import neither one the other.
LAYERS = {
    "sim": ("mapush_rllib.sim", 0),
    "task": ("mapush_rllib.task", 1),
    "curriculum": ("curriculum", 2),
    "adapter": ("mapush_rllib", 2),
    "population": ("population", 3),
}
RAY_FREE = ("sim", "task", "curriculum")
COMPAT_MODULE = "mapush_rllib.ray_compat"
#: Private attributes of libraries other than Ray, used on purpose.
OTHER_PRIVATE_USES = {
    ("mapush_rllib.sim.server", "_name"): "multiprocessing's SharedMemory name without its leading '/'",
    ("mapush_rllib.sim.isaacgym_backend", "_create_npc"): "MAPush's env hook that builds the box actors",
}
#: Underscored methods Ray documents as the ones to override.
RAY_OVERRIDE_HOOKS = {"_forward": "RLModule: the forward pass behind every forward_* method"}


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """Every module this one imports anywhere (also inside functions): project modules by name, others by top level."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{module}: use absolute imports (line {node.lineno})"
            base = node.module
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known)
    return {name if name in known else name.split(".")[0] for name in found if name != module}


def layer_of(module: str) -> str:
    """The layer of a project module: its longest matching prefix (mapush_rllib.task before mapush_rllib)."""
    matches = [(len(prefix), name) for name, (prefix, _) in LAYERS.items()
               if module == prefix or module.startswith(prefix + ".")]
    return max(matches)[1]


def layering_problems(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, imported in graph.items():
        mine, my_rank = layer_of(module), LAYERS[layer_of(module)][1]
        for other in imported & graph.keys():
            theirs, their_rank = layer_of(other), LAYERS[layer_of(other)][1]
            if their_rank > my_rank or (their_rank == my_rank and theirs != mine):
                problems.append(f"{module} ({mine}) imports {other} ({theirs})")
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, or a module importing itself (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {module: imports_of(module, path, set(modules)) for module, path in modules.items()}


def test_the_checks_catch_an_upward_import_and_a_circle() -> None:
    bad = {
        "mapush_rllib.task.vec_env": {"mapush_rllib.env"},  # task -> adapter: upward
        "mapush_rllib.env": {"mapush_rllib.runner"},
        "mapush_rllib.runner": {"mapush_rllib.env"},  # a circle
        "curriculum.scheduler": {"mapush_rllib.training"},  # beside each other: forbidden
        "mapush_rllib.training": set(),
    }
    assert len(layering_problems(bad)) == 2
    assert cycles(bad) == [["mapush_rllib.env", "mapush_rllib.runner"]]


def test_layers_import_down_only(graph: dict[str, set[str]]) -> None:
    assert "mapush_rllib.task.vec_env" in graph and "mapush_rllib.sim.backend" in graph["mapush_rllib.task.vec_env"]
    assert layering_problems(graph) == []


def test_no_import_circles(graph: dict[str, set[str]]) -> None:
    assert cycles(graph) == []


def test_ray_free_layers_import_no_ray(graph: dict[str, set[str]]) -> None:
    users = sorted(module for module, imported in graph.items() if layer_of(module) in RAY_FREE and "ray" in imported)
    assert users == []


def private_attribute_uses(module: str, path: Path) -> list[str]:
    """`obj._name` where obj is not self/cls, and `self._name` that the module's own class never defines."""
    tree = ast.parse(path.read_text())
    uses = []
    for cls in [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)] + [tree]:
        own = {n.name for n in ast.walk(cls) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        for node in ast.walk(cls):
            if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    own.update(t.attr for t in ast.walk(target) if isinstance(t, ast.Attribute))
        for node in ast.walk(cls):
            if not (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")):
                continue
            owner = ast.unparse(node.value)
            if (owner in ("self", "cls") and node.attr in own) or (module, node.attr) in OTHER_PRIVATE_USES:
                continue
            if owner in ("self", "cls") and cls is tree:
                continue  # seen with its class
            uses.append(f"{module}:{node.lineno}: {owner}.{node.attr}")
    return sorted(set(uses))


def test_private_ray_attributes_only_in_the_compat_module() -> None:
    uses = [use for module, path in project_modules().items() if module != COMPAT_MODULE
            for use in private_attribute_uses(module, path)]
    assert uses == []


def test_no_private_ray_method_is_overridden_outside_the_compat_module() -> None:
    overridden = []
    for module in project_modules():
        if module == COMPAT_MODULE or module.startswith("mapush_rllib.sim"):
            continue  # the sim layer has no Ray, and part of it is Python 3.8 only
        loaded = importlib.import_module(module)
        for _, cls in inspect.getmembers(loaded, inspect.isclass):
            if cls.__module__ != module:
                continue
            ray_bases = [base for base in cls.__mro__[1:] if base.__module__.startswith("ray.")]
            for name in vars(cls):
                hook = name in RAY_OVERRIDE_HOOKS or name == "_abc_impl"  # (the latter: Python's ABC bookkeeping)
                private = name.startswith("_") and not name.startswith("__") and not hook
                if private and any(hasattr(base, name) for base in ray_bases):
                    overridden.append(f"{module}.{cls.__name__}.{name}")
    assert overridden == []


def test_the_compat_module_refuses_another_ray_version() -> None:
    from mapush_rllib.ray_compat import RAY_VERSION, check_ray_version

    check_ray_version(f"{RAY_VERSION}.9")
    with pytest.raises(ImportError, match=rf"written for Ray {RAY_VERSION}\.x, but Ray 2\.99\.0 is installed"):
        check_ray_version("2.99.0")


def test_ruff_is_clean() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    done = subprocess.run([ruff, "check", "--no-cache", str(REPO)], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
