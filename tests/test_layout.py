"""The package layout shows the architecture: sim's modules form layers, each importing only from its own layer or
those below it, and there is no import cycle, deferred (function-level) imports included."""

import ast
from pathlib import Path

import pytest

SIM = Path(__file__).resolve().parent.parent / "sim"

#: lowest first: a module's layer is its subpackage (sim/state, sim/processes, ...) or, for a top-level module, below
LAYERS = ["state", "processes", "model", "appraisal", "runs", "fitting", "present", "app", "entry"]
TOP_LEVEL = {"model": "model", "start": "model", "metrics": "model", "cli": "entry", "__main__": "entry", "bench": "entry", "ema": "entry"}


def _files() -> dict[str, Path]:
    """Dotted module name (a package by its own name) -> file."""
    out = {}
    for path in sorted(SIM.rglob("*.py")):
        parts = list(path.relative_to(SIM.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


FILES = _files()


def layer(module: str) -> str:
    parts = module.split(".")
    if module == "sim":
        return "entry"
    if (SIM / parts[1]).is_dir():
        return parts[1]
    return TOP_LEVEL[parts[1]]


def imports(module: str) -> set[str]:
    """The sim modules that ``module`` imports anywhere in its file, inside functions too."""
    path = FILES[module]
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "sim":
                target = node.module
            else:
                continue
            found |= {f"{target}.{a.name}" if f"{target}.{a.name}" in FILES else target for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "sim"}
    unknown = found - set(FILES)
    assert not unknown, f"{module} imports modules that do not exist: {sorted(unknown)}"
    return found - {module}


GRAPH = {m: imports(m) for m in FILES}


def test_every_module_has_a_layer():
    for module in FILES:
        assert layer(module) in LAYERS, module


@pytest.mark.parametrize("module", sorted(FILES))
def test_imports_only_from_its_layer_or_below(module):
    rank = LAYERS.index(layer(module))
    above = {m for m in GRAPH[module] if LAYERS.index(layer(m)) > rank}
    assert not above, f"{module} ({layer(module)}) imports from a layer above it: {sorted(above)}"


def test_no_import_cycle():
    # a package's __init__ runs before any of its modules, so only module-to-module edges make a cycle here
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m):
        state[m] = 1
        path.append(m)
        for n in sorted(GRAPH[m]):
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(n):] + [n]))
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)


def test_the_checker_sees_deferred_imports():
    assert "sim.present.report" in GRAPH["sim.cli"]  # imported inside a function
    assert "sim.runs.paired" in GRAPH["sim.ema"]
    assert "sim.model" in GRAPH["sim.fitting.calibration"]  # from .. import
