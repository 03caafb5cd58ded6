"""The package layout: layers import one way, no cycles, no private names, imports on top.

The layer contracts live in pyproject.toml (``[tool.importlinter]``) and are checked by
import-linter; the rules import-linter cannot express are checked here on the source text.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "analysis"
# Command modules import the library inside each command so that `painanx --help` and the start
# of any one command do not load the whole statistics stack (statsmodels, matplotlib, ...).
LAZY_IMPORTS_ALLOWED = ("cli",)
# Files over ~600 lines that are one cohesive thing each (kept whole on purpose).
LONG_BUT_COHESIVE = {
    "survey/regression.py": "svyglm: IRLS, sandwich variance, Wald tests, contrasts, predictions",
    "survey/estimates.py": "the design-based estimators of R's svymean/svytotal/svyratio family",
    "claims/verdicts.py": "the verdict engine: each check kind, combining, Verdict and output",
}


def _lint_imports(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("lint-imports")
    assert exe.exists(), f"{exe} is missing: install the dev extra (pip install -e '.[dev]')"
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run(
        [str(exe), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def _modules() -> list[tuple[str, Path, ast.Module]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.append((".".join(parts), path, ast.parse(path.read_text(encoding="utf-8"))))
    return out


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def test_layer_contracts_hold():
    result = _lint_imports(ROOT, ROOT / "src")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_an_import_against_the_layers_fails(tmp_path):
    """A scratch copy where the core reaches up into the build: import-linter must refuse it."""
    shutil.copytree(PACKAGE, tmp_path / "src" / "analysis", ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    wrong = tmp_path / "src" / "analysis" / "core" / "io.py"
    wrong.write_text(wrong.read_text() + "\nfrom analysis.build import site  # wrong arrow\n")
    result = _lint_imports(tmp_path, tmp_path / "src")
    assert result.returncode != 0
    assert "analysis.core is not allowed to import analysis.build" in result.stdout
    assert "analysis.core.io -> analysis.build.site" in result.stdout


def test_no_import_cycles():
    graph = grimp.build_graph("analysis")
    modules = sorted(graph.modules)
    # an import of a package's child by the package's own __init__ is how a package shows its
    # face; it is not a dependency of the child on the package
    edges = {
        m: {
            d
            for d in graph.find_modules_directly_imported_by(m)
            if d.startswith("analysis") and not d.startswith(m + ".")
        }
        for m in modules
    }
    cycles = []
    state: dict[str, int] = {}

    def visit(m: str, chain: list[str]) -> None:
        state[m] = 1
        for d in sorted(edges.get(m, ())):
            if state.get(d) == 1:
                cycles.append(" -> ".join([*chain[chain.index(d) :], d]))
            elif d not in state:
                visit(d, [*chain, d])
        state[m] = 2

    for m in modules:
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_module_imports_another_modules_private_names():
    offences = []
    for module, path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _absolute(module, path, node)
                if not target.startswith("analysis") or target == module:
                    continue
                offences += [
                    f"{path.relative_to(ROOT)}:{node.lineno}: {a.name} from {target}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
            elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
                pass  # attribute access on objects is not an import
    assert not offences, "private names imported across modules:\n" + "\n".join(offences)


def test_project_imports_are_at_the_top_of_each_file():
    offences = []
    for module, path, tree in _modules():
        if module.split(".")[1:2] and module.split(".")[1] in LAZY_IMPORTS_ALLOWED:
            continue
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            for inner in ast.walk(node):
                names = []
                if isinstance(inner, ast.Import):
                    names = [a.name for a in inner.names]
                elif isinstance(inner, ast.ImportFrom):
                    names = [_absolute(module, path, inner)]
                if any(n == "analysis" or n.startswith("analysis.") for n in names):
                    offences.append(f"{path.relative_to(ROOT)}:{inner.lineno}: {names[0]}")
    assert not offences, "project imports inside functions:\n" + "\n".join(sorted(set(offences)))


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_files_stay_small_unless_cohesive(path):
    rel = str(path.relative_to(PACKAGE))
    lines = len(path.read_text(encoding="utf-8").splitlines())
    if rel in LONG_BUT_COHESIVE:
        return
    assert lines <= 650, (
        f"src/analysis/{rel} has {lines} lines: split it by concern, or, if it is one cohesive "
        "thing, add it with its reason to LONG_BUT_COHESIVE in tests/test_layout.py"
    )
