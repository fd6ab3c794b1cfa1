"""The layering of docs/ARCHITECTURE.md: nothing imports upward, there are no import cycles, and no
module imports another's private (`_name`) names."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "heimdall"

# settings.py and logging_setup.py import nothing of Heimdall; lower layers receive a
# Settings object, so its type sits with the foundations.
# A key names a top-level module or package, or one module inside a package when that
# module sits lower than its package: `jobs/repository.py` (job rows and the model
# registry's rows) is written by pipelines, while the rest of `jobs/` runs pipelines.
RANK = {
    "geo": 0, "network": 0, "errors": 0, "extras": 0, "fileio": 0, "settings": 0, "logging_setup": 0, "progress": 0,
    "processes": 0, "jit": 0, "names": 0, "pausepoints": 0, "memory": 0,
    "models": 1, "features": 1, "sim": 1, "storage": 1,
    "training": 2, "evaluation": 2, "export": 2, "tracking": 2, "data": 2, "jobs.repository": 2, "requests": 2,
    "pipelines": 3,
    "jobs": 4, "serving": 4,
    "cli": 5, "service": 5, "worker": 5, "api": 5,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("heimdall"):
            submodules = {f"{node.module}.{a.name}" for a in node.names}
            found.update(submodules)
            # `from package import submodule` runs the package's __init__, which is a
            # dependency only when some imported name is not a submodule.
            if not submodules <= set(modules):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("heimdall"))
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {m for m in _imports(path, modules) if m in modules and m != name} for name, path in modules.items()}


def _rank(module: str) -> int | None:
    """The layer of the most specific RANK key that `module` lies in."""
    parts = module.split(".")[1:]
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in RANK:
            return RANK[".".join(parts[:end])]
    return None


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


def _private_names_imported(path: Path) -> list[str]:
    """`_name`s this file takes from other Heimdall modules: imported by name, or read as an
    attribute of an imported Heimdall module."""
    tree = ast.parse(path.read_text())
    aliases: set[str] = set()
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("heimdall")):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"line {node.lineno}: from {node.module} import {alias.name}")
                aliases.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("heimdall"):
                    aliases.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
        ):
            found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_no_module_imports_another_modules_private_names() -> None:
    violations = [
        f"{name}: {use}" for name, path in sorted(_modules().items()) for use in _private_names_imported(path)
    ]
    assert not violations, "\n".join(violations)


def test_the_private_name_check_sees_both_forms(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text(
        "from heimdall.sim.audio import _helper, public\n"
        "from heimdall.jobs import runner\n"
        "import heimdall.storage.artifacts as artifacts\n"
        "x = runner._RUNNERS\n"
        "y = artifacts._check_key\n"
        "z = public.__name__\n"
        "own = object()._own\n"
    )
    assert _private_names_imported(source) == [
        "line 1: from heimdall.sim.audio import _helper",
        "line 4: runner._RUNNERS",
        "line 5: artifacts._check_key",
    ]


#: The tables whose every query belongs to the registry repository.
REGISTRY_TABLES = {"ModelRecord", "TrainingJob", "TrainingMetric"}
REGISTRY_OWNERS = {"heimdall.jobs.repository", "heimdall.storage.tables"}


def _table_queries(path: Path) -> list[str]:
    """Calls in `path` that name a registry table (a query, an insert, a row built): type
    annotations are no calls, so they never count."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            if names & REGISTRY_TABLES:
                found.append(f"line {node.lineno}: {sorted(names & REGISTRY_TABLES)}")
    return sorted(set(found))


def test_only_the_repository_queries_the_models_and_jobs_tables() -> None:
    violations = [
        f"{name}: {use}"
        for name, path in sorted(_modules().items())
        if name not in REGISTRY_OWNERS and not name.startswith("heimdall.storage.migrations")
        for use in _table_queries(path)
    ]
    assert not violations, "\n".join(violations)


def test_the_table_query_check_sees_a_query(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text(
        "def f(session, job: TrainingJob) -> TrainingJob:\n"
        "    return session.scalars(select(ModelRecord).where(ModelRecord.job_id == job.id))\n"
    )
    assert _table_queries(source) == ["line 2: ['ModelRecord']"]
