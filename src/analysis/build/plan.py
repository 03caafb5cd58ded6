"""What a build runs: notebooks.yaml (each notebook's sources and dependencies) and the choice
of sources and notebooks for one `painanx run`.

Notebooks are kept in dependency order, so a build can walk them front to back.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from analysis.data.nhis.codebook_spec import codebook_years
from analysis.data.registry import (
    SourceSpec,
    measure_columns,
    parse_source_specs,
    resolve_inputs,
    source_specs,
)
from analysis.data.world_spec import scenario_names

PLAN_YAML = Path(__file__).resolve().parents[1] / "resources" / "notebooks.yaml"
NOTEBOOK_KEYS = {"name", "title", "sources", "not_applicable", "depends_on", "inputs", "needs"}
NEEDS_KEYS = {"columns", "findings"}
FUNCTION_NAME = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class PlanError(ValueError):
    """notebooks.yaml is malformed (the message names the file and the key)."""


class OptionError(ValueError):
    """A `painanx run` option has a value the build cannot use (``option`` names it; the
    message gives the bad value and the accepted ones)."""

    def __init__(self, option: str, message: str):
        self.option = option
        super().__init__(message)


@dataclass(frozen=True)
class Needs:
    """What a notebook cannot do without (``needs`` in notebooks.yaml)."""

    columns: tuple[tuple[str, ...], ...]  # each: alternatives, any one of which will do
    findings: str  # "module:function" giving its findings when one is lacking

    def unmet(self, measured: Iterable[str]) -> list[tuple[str, ...]]:
        """The needs none of whose alternatives is in ``measured``."""
        have = set(measured)
        return [
            alternatives for alternatives in self.columns if not have.intersection(alternatives)
        ]


@dataclass(frozen=True)
class NotebookSpec:
    """One notebook as declared in notebooks.yaml."""

    name: str
    title: str
    sources: tuple[str, ...]
    not_applicable: Mapping[str, str] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    declared: bool = True
    inputs: tuple[str, ...] = ()  # project-relative globs of files the notebook reads
    needs: Needs | None = None

    def input_files(self, root: Path) -> list[Path]:
        """The files matching ``inputs`` under ``root``, sorted (hashed into the fingerprint)."""
        return sorted({p for pattern in self.inputs for p in root.glob(pattern) if p.is_file()})

    def reason_not_applicable(self, source: str) -> str:
        return self.not_applicable.get(source) or f"not declared for the {source} source"


@dataclass
class Plan:
    """Sources and notebooks (in dependency order) for a build."""

    sources: dict[str, SourceSpec]
    notebooks: list[NotebookSpec]
    path: Path
    warnings: list[str] = field(default_factory=list)

    def notebook(self, name: str) -> NotebookSpec:
        for nb in self.notebooks:
            if nb.name == name:
                return nb
        raise KeyError(name)


def load_plan(
    plan_path: str | os.PathLike[str] | None = None,
    notebooks_dir: str | os.PathLike[str] | None = None,
    sources_path: str | os.PathLike[str] | None = None,
) -> Plan:
    """Read notebooks.yaml (and sources.yaml, unless the plan file has its own ``sources:``).

    Notebook files in ``notebooks_dir`` that the plan does not list are added (on the
    respondent-data sources, no dependencies) with a warning, so a new notebook is never
    silently ignored.
    """
    plan_path = Path(plan_path) if plan_path else PLAN_YAML
    where = str(plan_path)
    try:
        raw = yaml.safe_load(plan_path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise PlanError(f"{where}: not valid YAML ({exc})") from None
    try:
        specs = (
            parse_source_specs(raw["sources"], where)
            if "sources" in raw
            else source_specs(sources_path)
        )
    except ValueError as exc:
        raise PlanError(str(exc)) from None
    entries = raw.get("notebooks")
    if not isinstance(entries, list):
        raise PlanError(f"{where}: 'notebooks' must be a list of notebook entries")
    notebooks = [_parse_notebook(entry, i, specs, where) for i, entry in enumerate(entries)]
    _check_names(notebooks, where)
    warnings: list[str] = []
    if notebooks_dir is not None and Path(notebooks_dir).is_dir():
        unlisted = _unlisted_notebooks(Path(notebooks_dir), notebooks, specs)
        notebooks.extend(unlisted)
        warnings.extend(
            f"{nb.name}.ipynb is not listed in {plan_path.name}; it runs on "
            f"{', '.join(nb.sources)} with no dependencies. Declare it there."
            for nb in unlisted
        )
    return Plan(specs, _topological(notebooks, where), plan_path, warnings)


def _parse_notebook(entry, i: int, specs: Mapping[str, SourceSpec], where: str) -> NotebookSpec:
    if not isinstance(entry, dict) or "name" not in entry:
        raise PlanError(f"{where}: notebooks[{i}] must be a mapping with a 'name'")
    unknown = set(entry) - NOTEBOOK_KEYS
    if unknown:
        raise PlanError(f"{where}: notebook {entry['name']!r}: unknown keys {sorted(unknown)}")
    sources = tuple(entry.get("sources") or ())
    not_applicable = dict(entry.get("not_applicable") or {})
    for s in (*sources, *not_applicable):
        if s not in specs:
            raise PlanError(
                f"{where}: notebook {entry['name']!r} names unknown source {s!r}; known: {sorted(specs)}"
            )
    return NotebookSpec(
        name=str(entry["name"]),
        title=str(entry.get("title") or entry["name"]),
        sources=sources,
        not_applicable=not_applicable,
        depends_on=tuple(entry.get("depends_on") or ()),
        inputs=tuple(str(x) for x in entry.get("inputs") or ()),
        needs=_parse_needs(entry, where) if "needs" in entry else None,
    )


def _parse_needs(entry: dict, where: str) -> Needs:
    """A notebook's ``needs``: schema measure columns (or lists of alternatives) and the
    function giving its findings without them."""
    at = f"{where}: notebook {entry['name']!r}: needs"
    raw = entry["needs"]
    if not isinstance(raw, dict) or set(raw) != NEEDS_KEYS:
        raise PlanError(f"{at} must be a mapping with the keys {sorted(NEEDS_KEYS)}, got {raw!r}")
    columns = raw["columns"]
    if not isinstance(columns, list) or not columns:
        raise PlanError(f"{at}.columns must be a non-empty list, got {columns!r}")
    known = measure_columns()
    parsed = []
    for item in columns:
        alternatives = item if isinstance(item, list) else [item]
        if not alternatives or not all(isinstance(c, str) for c in alternatives):
            raise PlanError(
                f"{at}.columns: {item!r} must be a column name or a list of column names"
            )
        unknown = [c for c in alternatives if c not in known]
        if unknown:
            raise PlanError(
                f"{at}.columns: {unknown[0]!r} is not a measure column of the tidy schema "
                f"(resources/schema.yaml, design columns aside); known: {', '.join(known)}"
            )
        parsed.append(tuple(alternatives))
    findings = raw["findings"]
    if not isinstance(findings, str) or not FUNCTION_NAME.match(findings):
        raise PlanError(f"{at}.findings must be 'module:function', got {findings!r}")
    return Needs(tuple(parsed), findings)


def _check_names(notebooks: list[NotebookSpec], where: str) -> None:
    """Each notebook listed once; every dependency a listed notebook."""
    names = [nb.name for nb in notebooks]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise PlanError(f"{where}: notebooks listed twice: {dupes}")
    for nb in notebooks:
        for dep in nb.depends_on:
            if dep not in names:
                raise PlanError(
                    f"{where}: notebook {nb.name!r} depends on unknown notebook {dep!r}"
                )


def _unlisted_notebooks(
    notebooks_dir: Path, listed: list[NotebookSpec], specs: Mapping[str, SourceSpec]
) -> list[NotebookSpec]:
    """The notebook files the plan does not list, on every respondent-data source."""
    names = {nb.name for nb in listed}
    sources = tuple(name for name, spec in specs.items() if spec.respondent_data)
    return [
        NotebookSpec(path.stem, path.stem, sources, declared=False)
        for path in sorted(notebooks_dir.glob("*.ipynb"))
        if path.stem not in names
    ]


def _topological(notebooks: list[NotebookSpec], where: str) -> list[NotebookSpec]:
    by_name = {nb.name: nb for nb in notebooks}
    order: list[NotebookSpec] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise PlanError(f"{where}: dependency cycle {' -> '.join((*chain, name))}")
        state[name] = 1
        for dep in by_name[name].depends_on:
            visit(dep, (*chain, name))
        state[name] = 2
        order.append(by_name[name])

    for nb in notebooks:  # declared order, dependencies first
        visit(nb.name, ())
    return order


def select_notebooks(plan: Plan, only: Iterable[str] | None) -> set[str] | None:
    """The notebooks ``--only`` names (a name, a prefix or a file name), with their
    dependencies (which then run only when out of date); None for all of them."""
    if not only:
        return None
    known = [nb.name for nb in plan.notebooks]
    chosen: set[str] = set()
    for item in only:
        name = Path(item).stem if item.endswith(".ipynb") else Path(item).name
        matches = [n for n in known if n == name] or [n for n in known if n.startswith(name)]
        if len(matches) != 1:
            raise OptionError(
                "--only",
                f"{item!r} matches {matches or 'no notebook'}; accepted: {', '.join(known)}",
            )
        chosen.add(matches[0])
    frontier = list(chosen)
    while frontier:
        for dep in plan.notebook(frontier.pop()).depends_on:
            if dep not in chosen:
                chosen.add(dep)
                frontier.append(dep)
    return chosen


@dataclass
class SourceSelection:
    """The sources one build runs on, every source's input files, and the unavailable ones."""

    selected: list[str]
    inputs: dict[str, list[Path]]  # by source, for the fingerprints and the pages' provenance
    unavailable: dict[str, str]  # source -> why it cannot be built here (its fetch hint)
    errors: list[str]  # sources that were asked for by name but are unavailable


def select_sources(
    plan: Plan, sources: Iterable[str] | None, years: list[int] | None, root: Path
) -> SourceSelection:
    """``sources`` as given (names, possibly comma-separated), or None for the default sources:
    those marked ``default: always`` plus the ``when_available`` ones whose files exist."""
    explicit = sources is not None
    if explicit:
        wanted = [x.strip() for s in sources for x in str(s).split(",") if x.strip()]
        unknown = [s for s in wanted if s not in plan.sources]
        if unknown:
            raise OptionError(
                "--data",
                f"{unknown[0]!r} is not a data source; accepted: {', '.join(plan.sources)}",
            )
    else:
        wanted = [name for name, spec in plan.sources.items() if spec.default != "never"]
    inputs: dict[str, list[Path]] = {}
    unavailable: dict[str, str] = {}
    for name, spec in plan.sources.items():
        inputs[name] = resolve_inputs(spec, years if "years" in spec.accepts else None, root)
        if spec.requires_inputs and not inputs[name]:
            unavailable[name] = spec.fetch_hint or f"the {name} input files are absent"
    selected = [
        s
        for s in wanted
        if explicit
        or plan.sources[s].default == "always"
        or (plan.sources[s].default == "when_available" and s not in unavailable)
    ]
    errors = [
        f"data source {s!r} was requested but is not available: {unavailable[s]}"
        for s in selected
        if s in unavailable
    ]
    return SourceSelection(selected, inputs, unavailable, errors)


def check_options(years: list[int] | None, scenario: str | None) -> None:
    """Refuse, before anything runs, a scenario the synthetic world does not have and a year
    the NHIS codebook does not cover (`OptionError`)."""
    if scenario is not None and scenario not in scenario_names():
        raise OptionError(
            "--scenario",
            f"{scenario!r} is not a scenario of the synthetic world; accepted: "
            f"{', '.join(scenario_names())}",
        )
    covered = codebook_years() if years else ()
    wrong = [y for y in years or () if y not in covered]
    if wrong:
        raise OptionError(
            "--years",
            f"{wrong[0]} is not an NHIS year the codebook covers; accepted: "
            f"{', '.join(map(str, covered))}",
        )
