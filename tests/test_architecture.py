"""The package's shape: folders by concern, imports that only point down, no cycles.

Read from the source with `ast`, so that a new upward import fails here rather than in a
reviewer's head. Lazy imports inside functions count: they are arrows all the same.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "lstm_cli"

# Lowest first: a module may import its own folder and the folders before it.
LAYERS = [
    "common",  # errors, atomic writes, paths, console, processes: used everywhere
    "config",  # schemas and validation
    "data",  # loaders and the embedded files
    "model",  # the network and its export
    "runs",  # run directories, checkpoints, resume, loading a trained model
    "training",  # the loop, its step, losses, metrics, optimizers
    "reporting",  # pictures and summaries of runs
    "commands",  # one module per subcommand
    "cli",  # the console script, Hydra apps, sweeps
]
TOP_LEVEL = {"__init__", "__main__"}
MAX_LINES = 350


def modules() -> dict[str, Path]:
    return {
        ".".join(path.relative_to(PACKAGE).with_suffix("").parts): path
        for path in PACKAGE.rglob("*.py")
    }


def imports_of(path: Path) -> set[str]:
    """The lstm_cli modules a file imports, as dotted names below the package."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lstm_cli"):
            base = node.module.removeprefix("lstm_cli").lstrip(".")
            names = [f"{base}.{a.name}".lstrip(".") for a in node.names]
            found |= {name if name in modules() else base for name in names}
        elif isinstance(node, ast.Import):
            found |= {
                a.name.removeprefix("lstm_cli.")
                for a in node.names
                if a.name.startswith("lstm_cli.")
            }
    return {name.removesuffix(".__init__") for name in found if name}


def layer(module: str) -> int | None:
    folder = module.split(".")[0]
    return LAYERS.index(folder) if folder in LAYERS else None


def test_every_module_sits_in_a_folder_of_its_concern():
    loose = {name for name in modules() if "." not in name} - TOP_LEVEL
    assert not loose, f"modules at the package top: {sorted(loose)}"
    unknown = {name.split(".")[0] for name in modules() if "." in name} - set(LAYERS)
    assert not unknown, f"folders without a place in LAYERS: {sorted(unknown)}"


def test_imports_only_point_down():
    upward = []
    for name, path in modules().items():
        own = layer(name)
        if own is None:
            continue
        for target in imports_of(path):
            target_layer = layer(target)
            if target_layer is not None and target_layer > own:
                upward.append(f"{name} -> {target}")
    assert not upward, "imports pointing up the layers:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    graph = {name: imports_of(path) & set(modules()) for name, path in modules().items()}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        assert name not in visiting, "import cycle: " + " -> ".join([*visiting, name])
        visiting.append(name)
        for target in sorted(graph.get(name, ())):
            visit(target)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_no_module_is_too_long_to_read():
    long = {
        name: lines
        for name, path in modules().items()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_checker_sees_an_upward_import():
    """The layer test must be able to fail: config importing training is an upward arrow."""
    assert layer("config.schema") < layer("training.evaluation")
    assert "training.evaluation" in imports_of(PACKAGE / "commands" / "evaluate.py")
