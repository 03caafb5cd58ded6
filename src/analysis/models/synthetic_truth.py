"""True population estimands of the synthetic survey world, and the notebooks' view of them.

Every truth is a population quantity, computed on a large draw from the population
(``truth_population_size`` persons, 6 million by default, fixed ``truth_seed``):

* prevalences and prevalence ratios are population proportions (GAD-7 and PHQ-8
  prevalences exactly, by quadrature);
* adjusted odds ratios are the *census values* of the estimator: the logistic (and the
  proportional-odds) regression with the documented formula fitted to the whole
  population, so survey-weighted estimates from samples are consistent for them. The
  regressors are discrete, so the fit to per-cell sums equals the fit to every person;
* natural direct and indirect effects and the benzodiazepine effect are structural
  (counterfactual) quantities of the SCM, computed person by person.

Monte-Carlo error is kept small by Rao-Blackwellisation: wherever the SCM gives a
probability in closed form (back pain and chronic pain given their causes), the
probability replaces the 0/1 draw. Each truth carries its Monte-Carlo SE and a reference
SE (the simple-random-sampling SE of the same quantity at n = 30,000; for the natural
effects, that of the difference in prevalence between the exposure groups); the ratio
is checked to stay below 0.1. Results are cached on disk keyed on a hash of the
parameters and of the code; those of the default scenarios ship with the package.

The census itself is `analysis.models.synthetic_census` (with the fits of
`analysis.models.synthetic_census_fits`); it is a models-layer computation because the
truths of notebook 03's estimands depend on that notebook's model definition. A frame
loaded from the synthetic source names its world in plain metadata
(``df.attrs["synthetic_world"]``), from which `truth_of` looks the truth up.

Synthetic data validate the pipeline; they are never evidence.
"""

from __future__ import annotations

import fcntl
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

import analysis.data.synthetic
import analysis.data.world_spec
from analysis.core import provenance
from analysis.core.io import write_text_atomic
from analysis.data.synthetic import (
    SCENARIOS,
    WorldModel,
    cache_dir,
    calibration,
    load_spec,
    params_hash,
    world_model,
)
from analysis.models import synthetic_census, synthetic_census_fits
from analysis.models.synthetic_census import census
from analysis.models.synthetic_census_fits import FORMULA, PO_FORMULA, notebook_spec
from analysis.survey import ordinal

# Where a loaded synthetic frame keeps the plain facts naming its world (sources.yaml, loader.attrs).
FRAME_ATTR = "synthetic_world"


@dataclass
class TrueEstimands:
    """True population estimands with their Monte-Carlo and reference standard errors."""

    values: dict[str, float]
    mc_se: dict[str, float]
    reference_se: dict[str, float]
    params_hash: str
    scenario: str
    n_population: int
    seed: int
    formula: str = FORMULA
    po_formula: str = PO_FORMULA

    def to_frame(self) -> pd.DataFrame:
        rows = [
            {
                "estimand": key,
                "value": value,
                "mc_se": self.mc_se.get(key, math.nan),
                "reference_se_n30000": self.reference_se.get(key, math.nan),
                "definition": definition_of(key),
            }
            for key, value in self.values.items()
        ]
        return pd.DataFrame(rows)

    def mc_ratio(self) -> dict[str, float]:
        """Monte-Carlo SE / reference SE at n = 30,000, per estimand (where defined)."""
        return {
            k: self.mc_se[k] / self.reference_se[k]
            for k in self.values
            if self.reference_se.get(k, 0) > 0 and k in self.mc_se
        }

    def summary_lines(self) -> list[str]:
        v = self.values
        lines = [
            f"  True population estimands (scenario {self.scenario!r}; census of "
            f"{self.n_population:,} simulated adults; max MC SE / SE at n=30,000 = "
            f"{max(self.mc_ratio().values()):.3f}):",
            f"    back pain (any) {100 * v['prevalence_back_pain_any']:.1f}%, chronic pain "
            f"{100 * v['prevalence_chronic_pain']:.1f}%, GAD-7>=5 "
            f"{100 * v['prevalence_gad7_ge5']:.1f}%, GAD-7>=10 {100 * v['prevalence_gad7_ge10']:.1f}%",
            f"    GAD-7>=10: {100 * v['prevalence_gad7_ge10_chronic_pain']:.1f}% with chronic pain vs "
            f"{100 * v['prevalence_gad7_ge10_no_chronic_pain']:.1f}% without "
            f"(PR {v['prevalence_ratio_gad7_ge10_chronic_pain']:.2f})",
            "    adjusted OR of any back pain (census logistic fit): "
            + ", ".join(
                f"{t} {v['or_back_pain_any_' + t]:.2f}"
                for t in ("gad7_mild", "gad7_moderate", "gad7_severe", "obese", "inactive")
            ),
            "    moderate-or-worse anxiety vs none, risk difference of any back pain: "
            f"NIE via muscle tension {v['nie_moderate_or_worse_vs_none']:+.4f}, "
            f"NDE {v['nde_moderate_or_worse_vs_none']:+.4f}, "
            f"total {v['te_moderate_or_worse_vs_none']:+.4f}",
            f"    benzodiazepine true effect on back pain: log-OR "
            f"{v['benzodiazepine_effect_log_or']:+.3f}, risk difference "
            f"{v['benzodiazepine_effect_rd']:+.4f} (crude census OR "
            f"{v['benzodiazepine_crude_or_back_pain_any']:.2f}: confounding by indication)",
        ]
        return lines

    def summary(self) -> str:
        return "\n".join(self.summary_lines())

    def to_dict(self) -> dict[str, Any]:
        return {
            "note": "Synthetic world truths: they validate the pipeline and are never evidence.",
            "scenario": self.scenario,
            "params_hash": self.params_hash,
            "n_population": self.n_population,
            "seed": self.seed,
            "formula": self.formula,
            "po_formula": self.po_formula,
            "values": self.values,
            "mc_se": self.mc_se,
            "reference_se_n30000": self.reference_se,
            "definitions": {k: definition_of(k) for k in self.values},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, allow_nan=True) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrueEstimands:
        return cls(
            values=d["values"],
            mc_se=d["mc_se"],
            reference_se=d["reference_se_n30000"],
            params_hash=d["params_hash"],
            scenario=d["scenario"],
            n_population=d["n_population"],
            seed=d["seed"],
            formula=d["formula"],
            po_formula=d["po_formula"],
        )


def definition_of(key: str) -> str:
    """The documented definition of a truth key (from ``truth_definitions`` in the YAML).

    Patterns hold one ``*``; the most specific matching pattern (longest fixed text) wins,
    and its ``*`` in the text is replaced by what the key has there.
    """
    defs = load_spec()["truth_definitions"]
    if key in defs:
        return defs[key]
    best: tuple[int, str] | None = None
    for pattern, text in defs.items():
        if "*" not in pattern:
            continue
        head, _, tail = pattern.partition("*")
        m = re.fullmatch(re.escape(head) + "(.+)" + re.escape(tail), key)
        if m and (best is None or len(head) + len(tail) > best[0]):
            best = (len(head) + len(tail), text.replace("*", m.group(1)))
    return "" if best is None else best[1]


# --------------------------------------------------------------------------- cache --


def _code_hash() -> str:
    """The code a truth depends on: the world (and its spec's reader), the census and its fits,
    the PO fitter, this."""
    return provenance.source_hash(
        [
            analysis.data.synthetic,
            analysis.data.world_spec,
            synthetic_census,
            synthetic_census_fits,
            ordinal,
            __file__,
        ]
    )[:12]


def true_estimands(
    model: WorldModel,
    *,
    n_population: int | None = None,
    seed: int | None = None,
    use_cache: bool = True,
    progress: bool = True,
) -> TrueEstimands:
    """The true population estimands of a calibrated world model (cached on disk)."""
    n_population, seed = census_size_and_seed(n_population, seed)
    key = truth_key(model, n_population, seed)
    path = cache_dir() / f"truth-{key}.json"
    if not use_cache:
        return _compute(model, n_population, seed, progress=progress)
    packaged = read_packaged(key)
    if packaged is not None:  # shipped with the code, for exactly this code and these parameters
        packaged.scenario = model.scenario
        return packaged
    # One process computes a missing entry; others (notebooks run in parallel) wait for it
    # on the lock instead of repeating several seconds of simulation.
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            cached = _read_cached(path)
            if cached is None:
                cached = _compute(model, n_population, seed, progress=progress)
                write_text_atomic(path, cached.to_json())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    cached.scenario = model.scenario
    return cached


def _compute(model: WorldModel, n_population: int, seed: int, *, progress: bool) -> TrueEstimands:
    values, mc_se, reference_se = census(model, n_population, seed, progress=progress)
    return TrueEstimands(
        values=values,
        mc_se=mc_se,
        reference_se=reference_se,
        params_hash=model.hash,
        scenario=model.scenario,
        n_population=n_population,
        seed=seed,
    )


def census_size_and_seed(
    n_population: int | None = None, seed: int | None = None
) -> tuple[int, int]:
    """The census size and seed: the given ones, else ``computation`` of the world's YAML."""
    comp = load_spec()["computation"]
    return (
        int(n_population or comp["truth_population_size"]),
        int(comp["truth_seed"] if seed is None else seed),
    )


def truth_key(model: WorldModel, n_population: int, seed: int) -> str:
    """What a truth depends on: parameters, census size and seed, the code, notebook 03's model."""
    return params_hash(
        model.params,
        extra={"n": n_population, "seed": seed, "code": _code_hash(), "model": notebook_spec()},
    )


# The truths of the default scenarios ship with the code (resources/synthetic_truth/), keyed
# like the disk cache: a fresh clone builds the reports without the ~9 s census per scenario.
# Any change to the world's code, the census code, the parameters or notebook 03's model changes
# the key, so a stale file is never used; tests/test_synth.py recomputes them and fails when they
# are missing or differ. Regenerate them (and the packaged calibrations they start from) with:
#   python -m analysis.models.synthetic_truth
PACKAGED_DIR = "synthetic_truth"


def packaged_folder() -> Path:
    """Where the truths of the default scenarios ship: resources/synthetic_truth/."""
    return Path(__file__).resolve().parents[1] / "resources" / PACKAGED_DIR


def read_packaged(key: str) -> TrueEstimands | None:
    """The shipped truth under ``key`` (see `truth_key`), if there is one."""
    return _read_cached(packaged_folder() / f"truth-{key}.json")


def write_packaged_truths(*, progress: bool = True) -> list[Path]:
    """Compute the truth of every default scenario and store it in the package (replacing
    stale files). Run after changing the synthetic world or notebook 03's model."""
    folder = packaged_folder()
    folder.mkdir(parents=True, exist_ok=True)
    n_population, seed = census_size_and_seed()
    written = []
    for scenario in SCENARIOS:
        model = world_model(scenario)
        key = truth_key(model, n_population, seed)
        truth = _compute(model, n_population, seed, progress=progress)
        written.append(write_text_atomic(folder / f"truth-{key}.json", truth.to_json()))
    for old in folder.glob("truth-*.json"):
        if old not in written:
            old.unlink()
    return written


def _read_cached(path: Path) -> TrueEstimands | None:
    if not path.is_file():
        return None
    try:
        return TrueEstimands.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError):
        return None  # unreadable cache entry: recompute


# ----------------------------------------------------------------- in the notebooks --


def truth_of(df: pd.DataFrame) -> dict[str, float]:
    """The true values of the synthetic world a loaded frame was drawn from; empty for any
    other source. The world is named by the plain metadata in ``df.attrs["synthetic_world"]``
    (scenario and overrides); its truth is served from the package or the disk cache."""
    world = df.attrs.get(FRAME_ATTR) if hasattr(df, "attrs") else None
    if not world:
        return {}
    model = world_model(world["scenario"], world["overrides"])
    return dict(true_estimands(model, progress=False).values)


def estimates_vs_truth(findings) -> pd.DataFrame:
    """Estimate, CI and the known truth (synthetic world) of each measured finding."""
    rows = [
        {
            "estimand": f.estimand,
            "label": f.label,
            "estimate": f.estimate,
            "ci_low": f.ci_low,
            "ci_high": f.ci_high,
            "truth": f.truth,
            "covered": None
            if f.truth is None or f.ci_low is None
            else bool(f.ci_low <= f.truth <= f.ci_high),
        }
        for f in findings
        if f.measured
    ]
    return pd.DataFrame(rows)


if __name__ == "__main__":
    for written in [*calibration.write_packaged_calibrations(), *write_packaged_truths()]:
        print(f"wrote {written}")
