"""The package's modules import downwards only, and never in a circle.

Layers, from the bottom:

* the shared modules at the top of ``reengage/`` (the smoothing noise, the losses, ...);
* ``reengage.agents`` and ``reengage.envs``, side by side;
* the algorithm registry (``reengage.algorithms``), which names the agents;
* ``reengage.experiment`` (training runs: configuration, run folders, the experiment runner) and
  ``reengage.robustness`` (certification), side by side: neither imports the other;
* the commands at the top of ``reengage/`` that join them (:data:`COMMANDS`);
* the research tools (``reengage.studies``), which may use everything below and which nothing imports.

``reengage.agents`` and ``reengage.envs`` are installed from ``agents/`` and ``envs/``: they may use the shared
modules (the losses), never the registry, the experiment runner, certification or a command. Every import
counts, those inside functions too: a lazy import still makes the module depend on the other one.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "reengage"
# the folders installed as subpackages of reengage (pyproject's package-dir)
INSTALLED = {"reengage.agents": ROOT / "agents", "reengage.envs": ROOT / "envs"}
# shared modules that name the agents, so they sit above them
REGISTRIES = {"reengage.algorithms"}
SIBLINGS = ("reengage.experiment", "reengage.robustness")
COMMANDS = {"reengage.certify", "reengage.evaluate", "reengage.greedy", "reengage.theory_experiment"}
STUDIES = "reengage.studies"


def _module_name(path: Path, root: Path = PACKAGE, package: str = "reengage") -> str:
    parts = [*package.split("."), *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    modules = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
    for package, folder in INSTALLED.items():
        modules.update({_module_name(path, folder, package): path for path in sorted(folder.rglob("*.py"))})
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules that ``name`` imports (``from X import y`` counts as X.y when that is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source for alias in node.names
            ]
        else:
            continue
        found |= {target for target in targets if target == "train" or target.split(".")[0] == "reengage"}
    return found - {name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _layer(name: str) -> tuple[int, str]:
    """``(rank, group)``: a module may import from a lower rank, or from its own group."""
    if name == STUDIES or name.startswith(STUDIES + "."):
        return 5, STUDIES
    if name in COMMANDS:
        return 4, name
    for sibling in SIBLINGS:
        if name == sibling or name.startswith(sibling + "."):
            return 3, sibling
    if name in REGISTRIES:
        return 2, name
    for installed in INSTALLED:
        if name == installed or name.startswith(installed + "."):
            return 1, installed
    return 0, "reengage"


def test_the_graph_is_read() -> None:
    graph = _graph()
    assert "reengage.experiment.config" in graph["reengage.experiment.resume"]
    assert "reengage.observation_noise" in graph["reengage.noise_wrapper"]
    assert "reengage.experiment.run_folder" in graph["reengage.certify"]
    assert "reengage.experiment.checkpoint" in graph["reengage.studies.critic_probes"]


def test_nothing_imports_the_research_tools() -> None:
    users = [
        f"{name} -> {target}"
        for name, targets in _graph().items()
        if not name.startswith(STUDIES)
        for target in targets
        if target == STUDIES or target.startswith(STUDIES + ".")
    ]
    assert not users, "modules that import reengage.studies:\n" + "\n".join(users)


def test_no_module_imports_upwards_or_across() -> None:
    upward = []
    for name, targets in _graph().items():
        rank, group = _layer(name)
        for target in targets:
            if target == "train":
                upward.append(f"{name} -> train.py")
                continue
            target_rank, target_group = _layer(target)
            if target_group != group and target_rank >= rank:
                upward.append(f"{name} -> {target}")
    assert not upward, "imports that do not go down a layer:\n" + "\n".join(sorted(upward))


def _cycles(graph: dict[str, set[str]]) -> list[str]:
    """Every cycle a depth-first search meets, each as ``a -> b -> ... -> a``."""
    cycles: list[str] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target) :] + [target]))
            elif target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_the_cycle_search_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a -> b -> c -> a"]
    assert _cycles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_no_import_cycle_between_modules() -> None:
    modules = _modules()
    graph = {name: {target for target in targets if target in modules} for name, targets in _graph().items()}
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_import_cycle_between_the_packages_and_the_top_modules() -> None:
    """``reengage.experiment`` and ``reengage.robustness`` each as one node, beside every top module."""

    def node(name: str) -> str:
        rank, group = _layer(name)
        return group if rank in (1, 3) else name

    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, targets in _graph().items():
        graph.setdefault(node(name), set()).update(
            node(target) for target in targets if target in modules and node(target) != node(name)
        )
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
