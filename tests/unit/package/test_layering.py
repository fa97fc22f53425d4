"""The package's layering, read from the source: every `rlsys` import (lazy ones inside
functions included) goes to a lower layer or stays inside its own package, and the specific
arrows the design forbids are absent. A new upward import fails here, naming the file."""

import ast
from pathlib import Path

from ...conftest import REPO

# Lowest first. A module may import its own package and any lower layer; peers in one layer
# (one tuple) do not import each other.
LAYERS = (
    ("errors", "records"),
    ("config",),
    ("algorithms", "rewards", "models", "data", "transport", "observability"),
    ("envs",),
    ("training",),
    ("workers",),
    ("distributed",),
    ("eval",),
    ("loops",),
    ("preparation",),
    ("run",),
    ("planning", "diagnostics"),
    ("commands",),
    ("cli",),
    ("__main__", "__init__"),
)
# Forbidden although "downward": the schema stays out of the maths and the model helpers.
FORBIDDEN = {("algorithms", "config"), ("models", "config")}


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def rlsys_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "rlsys":
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "rlsys"}
    return found


def arrows() -> list[tuple[str, str, str]]:
    """(file, from package, to package) for every import of another rlsys package."""
    out = []
    for path in sorted((REPO / "rlsys").rglob("*.py")):
        rel = path.relative_to(REPO).with_suffix("")
        source = package_of(".".join(rel.parts))
        for module in rlsys_imports(path):
            target = package_of(module) if module != "rlsys" else "__init__"
            if target != source:
                out.append((str(rel), source, target))
    return out


def layer(package: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if package in names)


def test_every_package_has_a_layer():
    packages = {p.name for p in (REPO / "rlsys").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in (REPO / "rlsys").glob("*.py")}
    named = {n for names in LAYERS for n in names}
    assert packages | modules <= named, sorted((packages | modules) - named)


def test_no_import_runs_back_up():
    wrong = [(f, a, b) for f, a, b in arrows()
             if layer(b) >= layer(a) or (a, b) in FORBIDDEN]
    assert not wrong, "\n".join(f"{f}: {a} -> {b}" for f, a, b in wrong)


def test_the_loops_commands_and_preparation_leave_workers_to_the_groups():
    reach = [(f, b) for f, a, b in arrows() if a in ("loops", "commands", "preparation", "run") and b == "workers"]
    assert not reach, reach


def test_ray_is_imported_only_where_actors_are_made_or_driven():
    """Workers, training, algorithms, models, data and rewards are plain classes and functions."""
    plain = ("workers", "training", "envs", "algorithms", "models", "data", "rewards", "transport", "config")
    users = []
    for package in plain:
        for path in sorted((REPO / "rlsys" / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                if any(n == "ray" or n.startswith("ray.") for n in names):
                    users.append(str(path.relative_to(REPO)))
    assert not users, users


def test_the_package_root_holds_the_entry_the_run_the_records_and_the_errors():
    root = sorted(p.stem for p in (REPO / "rlsys").glob("*.py"))
    assert root == ["__init__", "__main__", "cli", "errors", "preparation", "records", "run"], root
