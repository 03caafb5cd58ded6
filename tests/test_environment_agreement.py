"""environment.yml (conda) and pyproject.toml (pip) must list the same dependencies."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]

# conda-forge package name -> PyPI name, where they differ
CONDA_TO_PIP = {"pandera-base": "pandera", "matplotlib-base": "matplotlib"}
CONDA_ONLY = {"python", "pip"}


def _pip_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs.extend(extra)
    out: dict[str, str] = {}
    for line in reqs:
        req = Requirement(line)
        out[req.name.lower()] = str(req.specifier)
        for extra in req.extras:  # dask[distributed] pulls in distributed at the same version
            out[extra.lower()] = str(req.specifier)
    return out


def _conda_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    out: dict[str, str] = {}
    for dep in env["dependencies"]:
        lines = dep["pip"] if isinstance(dep, dict) else [dep]
        for line in lines:
            req = Requirement(line.replace(" ", ""))
            name = CONDA_TO_PIP.get(req.name.lower(), req.name.lower())
            if name in CONDA_ONLY:
                continue
            out[name] = str(req.specifier)
    return out


def test_same_packages_and_version_ranges():
    pip, conda = _pip_requirements(), _conda_requirements()
    assert set(pip) == set(conda), (
        f"only in pyproject.toml: {sorted(set(pip) - set(conda))}; "
        f"only in environment.yml: {sorted(set(conda) - set(pip))}"
    )
    differing = {n: (pip[n], conda[n]) for n in pip if pip[n] != conda[n]}
    assert not differing, f"version ranges differ (pyproject, environment.yml): {differing}"


def test_every_dependency_has_a_version_range():
    bare = [n for n, spec in _pip_requirements().items() if not spec]
    assert not bare, f"dependencies without a version range: {bare}"


def test_python_version_agrees():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda_python = next(
        d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")
    )
    assert (
        Requirement(conda_python).specifier
        == Requirement(f"python{project['requires-python']}").specifier
    )
