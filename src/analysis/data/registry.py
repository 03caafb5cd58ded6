"""Data-source registry: what each source is, which files identify it, how a notebook loads it.

The facts live in ``resources/sources.yaml``; this module reads them. Notebooks call
`load(data_source, ...)` with their parameters and get the tidy respondent frame; the
runner uses `source_specs` and `resolve_inputs` to decide which sources can be built and
to fingerprint their input files, and `source_measures` (the source's codebook, not its data)
to leave out notebooks that need a measure the source lacks.
"""

from __future__ import annotations

import glob
import importlib
import importlib.util
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from analysis.core import paths
from analysis.core.io import parse_yaml

SOURCES_YAML = Path(__file__).resolve().parents[1] / "resources" / "sources.yaml"
SCHEMA_YAML = Path(__file__).resolve().parents[1] / "resources" / "schema.yaml"
DEFAULT_MODES = ("always", "when_available", "never")


class SourceUnavailableError(RuntimeError):
    """A data source cannot be loaded here (its loader or its input files are missing)."""


@dataclass(frozen=True)
class SourceSpec:
    """One data source as declared in sources.yaml."""

    name: str
    label: str
    evidence: bool
    respondent_data: bool = False  # one row per survey respondent, read by ``loader``
    default: str = "always"
    parameters: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[dict[str, str], ...] = ()
    requires_inputs: bool = False
    fetch_hint: str = ""
    provenance_note: str = ""
    loader: dict[str, Any] = field(default_factory=dict)
    measures: dict[str, Any] = field(default_factory=dict)  # like loader: its codebook's columns
    short_label: str = ""  # in one-line notices ("NHIS 2017 does not measure ...")
    accepts: tuple[str, ...] = ()  # which `painanx run` overrides (years, seed, n, scenario) apply

    @property
    def synthetic(self) -> bool:
        """True for sources that validate the pipeline and are never evidence."""
        return not self.evidence

    @property
    def loader_module(self) -> str:
        """The module `load` imports to read this source ('' when it has no loader)."""
        return str(self.loader.get("function", "")).partition(":")[0]


def parse_source_specs(raw: dict, where: str) -> dict[str, SourceSpec]:
    """Build SourceSpecs from the ``sources:`` mapping of a YAML file (``where`` names it in errors)."""
    if not isinstance(raw, dict) or not raw:
        raise ValueError(
            f"{where}: 'sources' must be a non-empty mapping of source name -> settings"
        )
    known = set(SourceSpec.__dataclass_fields__) - {"name"}
    specs: dict[str, SourceSpec] = {}
    for name, body in raw.items():
        body = dict(body or {})
        unknown = set(body) - known
        if unknown:
            raise ValueError(
                f"{where}: source {name!r} has unknown keys {sorted(unknown)}; expected some of {sorted(known)}"
            )
        if "label" not in body:
            raise ValueError(f"{where}: source {name!r} needs a 'label'")
        default = body.get("default", "always")
        if default not in DEFAULT_MODES:
            raise ValueError(
                f"{where}: source {name!r}: default must be one of {DEFAULT_MODES}, got {default!r}"
            )
        inputs = tuple(body.pop("inputs", None) or ())
        for i, item in enumerate(inputs):
            if not (
                isinstance(item, dict) and ("glob" in item or {"package", "path"} <= set(item))
            ):
                raise ValueError(
                    f"{where}: source {name!r}: inputs[{i}] must be {{glob: PATTERN}} or "
                    f"{{package: NAME, path: PATH}}, got {item!r}"
                )
        specs[name] = SourceSpec(
            name=name,
            label=str(body.pop("label")),
            evidence=bool(body.pop("evidence", True)),
            respondent_data=bool(body.pop("respondent_data", False)),
            inputs=inputs,
            parameters=dict(body.pop("parameters", None) or {}),
            loader=dict(body.pop("loader", None) or {}),
            measures=dict(body.pop("measures", None) or {}),
            accepts=tuple(body.pop("accepts", None) or ()),
            **body,
        )
    return specs


def source_specs(path: str | os.PathLike[str] | None = None) -> dict[str, SourceSpec]:
    """All declared data sources, by name."""
    path = Path(path) if path else SOURCES_YAML
    raw = parse_yaml(path.read_text(encoding="utf-8")) or {}
    return parse_source_specs(raw.get("sources"), where=str(path))


def resolve_inputs(
    spec: SourceSpec, years: list[int] | None = None, root: str | os.PathLike[str] | None = None
) -> list[Path]:
    """The existing input files of a source (sorted), for the given years where that applies."""
    root = Path(root) if root is not None else paths.project_root()
    found: set[Path] = set()
    for item in spec.inputs:
        if "glob" in item:
            pattern = item["glob"]
            patterns = (
                [pattern.replace("{year}", str(y)) for y in years]
                if years and "{year}" in pattern
                else [pattern.replace("{year}", "*")]
            )
            for pat in patterns:
                found.update(Path(p) for p in glob.glob(str(root / pat)) if Path(p).is_file())
        else:
            pkg = importlib.util.find_spec(item["package"])
            if pkg is None or not pkg.submodule_search_locations:
                continue
            candidate = Path(next(iter(pkg.submodule_search_locations))) / item["path"]
            if candidate.is_file():
                found.add(candidate)
    return sorted(found)


def _import_function(spec: SourceSpec, key: str, kind: str = "function"):
    """What ``spec.<key>.<kind>`` ('module:name') names, imported: a function, or (kind
    ``columns``) a collection of column names."""
    target = getattr(spec, key).get(kind, "")
    module_name, _, func_name = target.partition(":")
    if not module_name or not func_name:
        raise SourceUnavailableError(
            f"data source {spec.name!r} has no {key} in {SOURCES_YAML.name} "
            f"(expected {key}.{kind}: 'module:name')"
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise SourceUnavailableError(
                f"data source {spec.name!r}: its {key} is {target} (declared in "
                f"src/analysis/resources/{SOURCES_YAML.name}), but module {module_name!r} is not "
                f"available in this checkout"
            ) from exc
        raise
    func = getattr(module, func_name, None)
    if func is None:
        raise SourceUnavailableError(
            f"data source {spec.name!r}: {module_name} has no {kind} {func_name!r} "
            f"(its {key}, declared in src/analysis/resources/{SOURCES_YAML.name})"
        )
    return func


def _arguments(spec: SourceSpec, key: str, given: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments ``spec.<key>.arguments`` names: as given, else the source's."""
    kwargs = {}
    for arg in getattr(spec, key).get("arguments", []):
        value = given.get(arg)
        kwargs[arg] = spec.parameters.get(arg) if value is None else value
    return kwargs


def load(
    data_source: str,
    *,
    years: list[int] | None = None,
    seed: int | None = None,
    n: int | None = None,
    scenario: str | None = None,
):
    """Load a data source as the tidy respondent frame (see analysis.data.schema).

    Notebooks call this with their parameters, e.g.
    ``load("synthetic", seed=2019, n=30000, scenario="literature")``. Parameters a source does
    not use are ignored; a parameter left as None takes the source's default from sources.yaml.
    """
    specs = source_specs()
    if data_source not in specs:
        raise ValueError(f"unknown data_source {data_source!r}; known: {sorted(specs)}")
    spec = specs[data_source]
    if not spec.respondent_data:
        raise SourceUnavailableError(
            f"data source {data_source!r} is not respondent data (it has no "
            f"'respondent_data: true' in src/analysis/resources/{SOURCES_YAML.name})"
        )
    given = {"years": years, "seed": seed, "n": n, "scenario": scenario}
    result = _import_function(spec, "loader")(**_arguments(spec, "loader", given))
    attribute = spec.loader.get("result_attribute")
    frame = getattr(result, attribute) if attribute else result
    for key, name in spec.loader.get("attrs", {}).items():  # plain facts about the sample
        frame.attrs[key] = getattr(result, name)
    return frame


def source_measures(spec: SourceSpec, years: list[int] | None = None) -> frozenset[str] | None:
    """The tidy columns a source's frame has for these years, as its codebook says
    (``measures`` in sources.yaml: the columns its generator writes, or a function reading its
    codebook), without loading its data; None when the source declares no ``measures``: then
    nothing is known to be absent.

    The codebook modules import pandas: the build asks only for a notebook it would run.
    """
    if not spec.measures:
        return None
    if "columns" in spec.measures:
        return frozenset(_import_function(spec, "measures", "columns"))
    given = {"years": years}
    return frozenset(_import_function(spec, "measures")(**_arguments(spec, "measures", given)))


@lru_cache(maxsize=1)
def measure_columns() -> tuple[str, ...]:
    """The schema's columns outside the design group (``resources/schema.yaml``): what a
    notebook can need. Read here, without pandas, for checking notebooks.yaml."""
    # every build checks the plan: libyaml's parser (parse_yaml) reads this file in ~2 ms
    columns = parse_yaml(SCHEMA_YAML.read_text(encoding="utf-8"))["columns"]
    return tuple(name for name, c in columns.items() if c["group"] != "design")


def prepare_output_dir(output_dir: str | os.PathLike[str]) -> Path:
    """The notebook's output folder as an absolute path (relative ones are under the project root), created."""
    out = Path(output_dir)
    if not out.is_absolute():
        out = paths.project_root() / out
    out.mkdir(parents=True, exist_ok=True)
    return out
