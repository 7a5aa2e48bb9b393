"""The package layout: imports run one way along the data flow, no cycles, no private names across packages, and
MLflow only in ``cartrisk.tracking`` and never on the path of the data and scoring commands."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
#: The packages from the bottom of the data flow to the top; a package imports only those before it. Packages on
#: one level (explain and evaluation) do not import each other.
LEVELS: tuple[tuple[str, ...], ...] = (("data",), ("estimators",), ("modelling",), ("evaluation", "explain"),
                                       ("groups",), ("bundle",), ("tracking",), ("tuning",), ("workflows",), ("cli",))
#: Shared helpers with no stage of their own: anyone may import them; they import only each other.
HELPERS = ("cartrisk", "cartrisk.exceptions", "cartrisk.units", "cartrisk.config", "cartrisk.plotting",
           "cartrisk.progress", "cartrisk.paths")
RANK = {pkg: k for k, level in enumerate(LEVELS) for pkg in level}


def _modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "cartrisk").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(module: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every cartrisk import, at any depth (lazy ones too)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, None, node.lineno) for a in node.names if a.name.startswith("cartrisk")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            if not base.startswith("cartrisk"):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((sub, None, node.lineno) if sub in modules else (base, alias.name, node.lineno))
    return found


def _package(module: str) -> str | None:
    """The stage package of a module (``cartrisk.groups.figures`` -> ``groups``), None for a shared helper."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANK else None


def _edges() -> dict[str, set[str]]:
    modules = _modules()
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for target, _, _ in _imports(module, path, modules):
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            if target != module and not (path.name == "__init__.py" and target.startswith(module + ".")):
                edges[module].add(target)
    return edges


def test_no_import_cycles():
    edges = _edges()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_imports_run_one_way_along_the_data_flow():
    modules = _modules()
    wrong = []
    for module, path in modules.items():
        source = _package(module)
        for target, _, line in _imports(module, path, modules):
            dest = _package(target)
            if module in HELPERS and dest is not None:
                wrong.append(f"{module}:{line} (a shared helper) imports {target}")
            elif source is not None and dest is not None and dest != source and RANK[dest] >= RANK[source]:
                wrong.append(f"{module}:{line} ({source}) imports {target} ({dest}), which is not below it")
    assert not wrong, "\n".join(wrong)


def test_no_private_name_crosses_a_package():
    modules = _modules()
    private = []
    for module, path in modules.items():
        source = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for target, name, line in _imports(module, path, modules):
            owner = target if target in modules and modules[target].name == "__init__.py" else target.rsplit(".", 1)[0]
            if owner == source or owner.startswith(source + "."):
                continue
            hidden = [p for p in target.split(".")[1:] if p.startswith("_") and not p.startswith("__")]
            if hidden or (name is not None and name.startswith("_") and not name.startswith("__")):
                private.append(f"{module}:{line} imports {target}{'.' + name if name else ''}")
    assert not private, "\n".join(private)


def test_mlflow_is_imported_only_by_the_tracking_package():
    outside = []
    for module, path in _modules().items():
        if module.startswith("cartrisk.tracking"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            outside += [f"{module}:{node.lineno}" for n in names if n == "mlflow" or n.startswith("mlflow.")]
    assert not outside, outside


@pytest.mark.parametrize("command", [["columns"], ["simulate", "--n", "50", "--out", "{tmp}/s.csv"],
                                     ["validate", "{tmp}/s.csv"], ["score", "{bundle}", "{tmp}/s.csv", "--out",
                                                                  "{tmp}/scored.csv"]])
def test_data_and_scoring_commands_never_load_mlflow(command, tmp_path, small_bundle):
    """The light commands start without MLflow (0.9 s of imports): nothing on their path imports it."""
    from cartrisk.data.simulate import simulate

    simulate(50, 0)[0].to_csv(tmp_path / "s.csv", index=False)
    args = [a.format(tmp=tmp_path, bundle=small_bundle[0]) for a in command]
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom cartrisk.cli import app\n"
            f"result = CliRunner().invoke(app, {args!r})\n"
            "assert result.exit_code == 0, result.output\n"
            "print(sorted(m for m in sys.modules if m == 'mlflow' or m.startswith('mlflow.')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout[-2000:]
