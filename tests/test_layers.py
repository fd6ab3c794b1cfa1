"""The layering of DESIGN.md: nothing imports upward, and there are no import cycles."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "heimdall"

# settings.py and logging_setup.py import nothing of Heimdall; lower layers receive a
# Settings object, so its type sits with the foundations.
RANK = {
    "geo": 0, "network": 0, "errors": 0, "extras": 0, "fileio": 0, "settings": 0, "logging_setup": 0, "progress": 0,
    "processes": 0, "jit": 0, "names": 0, "pausepoints": 0,
    "models": 1, "features": 1, "sim": 1, "storage": 1,
    "training": 2, "evaluation": 2, "export": 2, "tracking": 2, "data": 2, "jobs": 2, "requests": 2,
    "pipelines": 3,
    "cli": 4, "service": 4, "worker": 4, "api": 4,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("heimdall"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("heimdall"))
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def _rank(module: str) -> int | None:
    parts = module.split(".")
    return RANK.get(parts[1]) if len(parts) > 1 else None


def test_no_module_imports_a_higher_layer() -> None:
    violations = [
        f"{module} (layer {_rank(module)}) imports {target} (layer {_rank(target)})"
        for module, targets in _graph().items()
        for target in targets
        if _rank(module) is not None and _rank(target) is not None and _rank(target) > _rank(module)
    ]
    assert not violations, "\n".join(violations)


def test_every_top_level_module_has_a_layer() -> None:
    names = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir() if p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists())}
    names.discard("__init__")
    assert names <= set(RANK), sorted(names - set(RANK))


def test_no_import_cycles() -> None:
    graph = _graph()
    # Package __init__ re-exports are not real dependencies of their submodules.
    graph = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph.items()}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, stack: list[str]) -> bool:
        state[node] = 1
        for target in graph.get(node, ()):
            if state.get(target) == 1:
                cycle.extend(stack[stack.index(target):] + [target] if target in stack else [node, target])
                return True
            if state.get(target) is None and visit(target, [*stack, target]):
                return True
        state[node] = 2
        return False

    for module in graph:
        if state.get(module) is None and visit(module, [module]):
            break
    assert not cycle, " -> ".join(cycle)
