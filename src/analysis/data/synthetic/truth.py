"""True population estimands of the synthetic survey world.

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
parameters and of the code.

Synthetic data validate the pipeline; they are never evidence.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import special
from statsmodels.genmod import families
from statsmodels.genmod.generalized_linear_model import GLM
from tqdm.auto import tqdm

from analysis.core.io import write_text_atomic
from analysis.data.synthetic import world as synth

REFERENCE_N = 30_000
_CHUNK = 500_000
LEVELS = ("mild", "moderate", "severe")
# The regressors of the census fits (reference levels: GAD-7 none, active, 18-29, women).
TERMS = (
    "gad7_mild",
    "gad7_moderate",
    "gad7_severe",
    "obese",
    "insufficiently_active",
    "inactive",
    "age_30_44",
    "age_45_64",
    "age_65_plus",
    "male",
    "phq8_score",
)
FORMULA = (
    "back_pain_any ~ C(gad7_category, Treatment('none')) + obese"
    " + C(physical_activity, Treatment('active')) + C(age_group, Treatment('18-29'))"
    " + C(sex, Treatment('female')) + phq8_score"
)
PO_FORMULA = (
    FORMULA.replace("back_pain_any", "back_pain_severity", 1) + "  (no intercept; 3 cut-points)"
)


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
    defs = synth.load_spec()["truth_definitions"]
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
    h = hashlib.sha256()
    for module in (synth, sys.modules[__name__]):
        h.update(Path(module.__file__).read_bytes())
    return h.hexdigest()[:12]


def true_estimands(
    model: Any,
    *,
    n_population: int | None = None,
    seed: int | None = None,
    use_cache: bool = True,
    progress: bool = True,
) -> TrueEstimands:
    """The true population estimands of a calibrated world model (cached on disk)."""
    n_population, seed = _computation(n_population, seed)
    key = truth_key(model, n_population, seed)
    path = synth.cache_dir() / f"truth-{key}.json"
    if not use_cache:
        return _compute(model, n_population, seed, progress=progress)
    packaged = _read_packaged(key)
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


def _computation(n_population: int | None, seed: int | None) -> tuple[int, int]:
    comp = synth.load_spec()["computation"]
    return (
        int(n_population or comp["truth_population_size"]),
        int(comp["truth_seed"] if seed is None else seed),
    )


def truth_key(model: Any, n_population: int, seed: int) -> str:
    """What a truth depends on: parameters, census size and seed, the code, notebook 03's model."""
    return synth.params_hash(
        model.params,
        extra={"n": n_population, "seed": seed, "code": _code_hash(), "model": _notebook_spec()},
    )


# The truths of the default scenarios ship with the code (resources/synthetic_truth/), keyed
# like the disk cache: a fresh clone builds the reports without the ~9 s census per scenario.
# Any change to synth.py, synth_truth.py, the parameters or notebook 03's model changes the key,
# so a stale file is never used; tests/test_synth.py recomputes them and fails when they are
# missing or differ. Regenerate with:  python -m analysis.data.synthetic.truth
PACKAGED_DIR = "synthetic_truth"


def _packaged_folder() -> Path:
    return Path(__file__).resolve().parents[2] / "resources" / PACKAGED_DIR


def _read_packaged(key: str) -> TrueEstimands | None:
    return _read_cached(_packaged_folder() / f"truth-{key}.json")


def write_packaged_truths(*, progress: bool = True) -> list[Path]:
    """Compute the truth of every default scenario and store it in the package (replacing
    stale files). Run after changing the synthetic world or notebook 03's model."""
    folder = _packaged_folder()
    folder.mkdir(parents=True, exist_ok=True)
    n_population, seed = _computation(None, None)
    written = []
    for scenario in synth.SCENARIOS:
        model = synth._model(scenario)
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


# ------------------------------------------------------------------- computation --


class _Ratio:
    """Accumulates a population ratio E[a] / E[b] and its Monte-Carlo variance."""

    def __init__(self) -> None:
        self.s = np.zeros(5)  # sum a, sum b, sum a^2, sum b^2, sum ab
        self.n = 0

    def add(self, a: np.ndarray, b: np.ndarray | None = None) -> None:
        b = np.ones_like(a) if b is None else b
        self.s += [a.sum(), b.sum(), (a * a).sum(), (b * b).sum(), (a * b).sum()]
        self.n += a.shape[0]

    @property
    def value(self) -> float:
        return float(self.s[0] / self.s[1])

    @property
    def denominator(self) -> float:
        return float(self.s[1] / self.n)

    @property
    def mc_se(self) -> float:
        sa, sb, saa, sbb, sab = self.s / self.n
        r = sa / sb
        var = (saa - 2 * r * sab + r * r * sbb) - (sa - r * sb) ** 2
        return float(math.sqrt(max(var, 0.0) / self.n) / sb)


def _exact_score_prevalences(model: Any) -> dict[str, float]:
    """GAD-7 and PHQ-8 prevalences computed exactly (Gauss-Hermite over the latent)."""
    p, d = model.params, model.derived
    a, b, kappa = p["gad7_item_discrimination"], model.item_b, d["latent_skew"]
    ages = model.arr("age_group_shares")
    fem = p["female_share"]
    mu = np.asarray(d["anxiety_age_intercepts"])
    means = np.concatenate([mu, mu + d["anxiety_female"]])  # men then women
    sd = math.sqrt(1 + p["anxiety_psu_sd"] ** 2)
    gad = synth._normal_tail_of_scores(means, sd, kappa, synth.GAD7_ITEMS, a, b).reshape(2, 4, 3)
    men, women = ages @ gad[0], ages @ gad[1]
    both = (1 - fem) * men + fem * women
    dep = synth._normal_tail_of_scores(
        np.array([d["depression_intercept"], d["depression_intercept"] + d["depression_female"]]),
        1.0,
        kappa,
        synth.PHQ8_ITEMS,
        a,
        b,
    )
    return {
        "prevalence_gad7_ge5": both[0],
        "prevalence_gad7_ge5_women": women[0],
        "prevalence_gad7_ge5_men": men[0],
        "prevalence_gad7_ge10": both[1],
        "prevalence_gad7_ge15": both[2],
        "prevalence_gad7_mild": both[0] - both[1],
        "prevalence_gad7_moderate": both[1] - both[2],
        "prevalence_gad7_severe": both[2],
        "prevalence_phq8_ge5": (1 - fem) * dep[0, 0] + fem * dep[1, 0],
    }


# The regressors are all discrete, so the census fits depend on the population only
# through sums over cells of (GAD-7 category, obesity, activity, age group, sex, PHQ-8):
# fitting to the cell sums gives exactly the fit to every person, at a tiny cost.
_CELL_SHAPE = (4, 2, 3, 4, 2, 25)
N_CELLS = int(np.prod(_CELL_SHAPE))


def _cell_codes(d: dict[str, np.ndarray]) -> np.ndarray:
    return np.ravel_multi_index(
        (
            d["gad7_cat"],
            d["obese"].astype(np.int8),
            d["activity"],
            d["age_group"],
            (~d["female"]).astype(np.int8),
            d["phq8"],
        ),
        _CELL_SHAPE,
    )


def _cell_design() -> np.ndarray:
    """The regressors (TERMS) of every cell, in cell-code order; (N_CELLS, len(TERMS))."""
    gcat, obese, act, g, male, phq = (a.ravel() for a in np.indices(_CELL_SHAPE))
    cols = [
        gcat == 1,
        gcat == 2,
        gcat == 3,
        obese,
        act == 1,
        act == 0,
        g == 1,
        g == 2,
        g == 3,
        male,
        phq,
    ]
    return np.column_stack(cols).astype(np.float64)


class _Cells:
    """Per-cell sums: count, outcome probability sums and cross-products."""

    def __init__(self, n_cells: int = N_CELLS) -> None:
        self.n_cells = n_cells
        self.n = np.zeros(n_cells)
        self.y = np.zeros(n_cells)  # sum of P(any back pain)
        self.yy = np.zeros(n_cells)  # sum of its square
        self.P = np.zeros((n_cells, 4))  # sum of P(severity = j)
        self.PP = np.zeros((n_cells, 4, 4))  # sum of P_i P_i'

    def add(self, code: np.ndarray, y: np.ndarray, P: np.ndarray) -> None:
        def total(w: np.ndarray | None = None) -> np.ndarray:
            return np.bincount(code, weights=w, minlength=self.n_cells)

        self.n += total()
        self.y += total(y)
        self.yy += total(y * y)
        for j in range(4):
            self.P[:, j] += total(P[:, j])
            for k in range(j, 4):
                self.PP[:, j, k] += total(P[:, j] * P[:, k])
                self.PP[:, k, j] = self.PP[:, j, k]


def _compute(model: Any, n_population: int, seed: int, *, progress: bool) -> TrueEstimands:
    p = model.params
    cuts = model.severity_cuts()
    beta_b = p["benzodiazepine_pain_log_or"]
    pain_by_cat = model.pain_by_category()
    beta_t = p["pain_log_or_tension_per_point"]

    ratios: dict[str, _Ratio] = {}

    def ratio(name: str, a: np.ndarray, b: np.ndarray | None = None) -> None:
        ratios.setdefault(name, _Ratio()).add(
            np.asarray(a, float), None if b is None else np.asarray(b, float)
        )

    cells = _Cells()
    nb = _notebook_spec()
    nb_cells = _Cells(N_NB_CELLS)
    contrasts: dict[str, list[float]] = {}

    def contrast(name: str, values: np.ndarray) -> None:
        acc = contrasts.setdefault(name, [0.0, 0.0, 0])
        acc[0] += float(values.sum())
        acc[1] += float((values * values).sum())
        acc[2] += values.shape[0]

    chunks = range(0, n_population, _CHUNK)
    for k, start in enumerate(
        tqdm(chunks, desc="synthetic truth", unit="chunk", disable=not progress)
    ):
        size = min(_CHUNK, n_population - start)
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(k,))))
        d = synth._population_draw(model, rng, size, keep_latent=True)
        g, female, gcat = d["age_group"], d["female"], d["gad7_cat"]
        eta0 = d["eta0"]
        q = np.stack(
            [
                special.expit(synth._benzo_eta(model, gcat, d["medication"], np.full(size, lv)))
                for lv in range(4)
            ],
            axis=1,
        )
        joint_b, joint_nb = synth.severity_probs_by_benzo(eta0, cuts, q, beta_b)
        sev = joint_b + joint_nb
        any_pain = 1.0 - sev[:, 0]
        chronic_by_level = np.stack(
            [
                special.expit(synth._chronic_eta(model, g, female, np.full(size, lv)))
                for lv in range(4)
            ],
            axis=1,
        )
        chronic = (sev * chronic_by_level).sum(axis=1)
        ge10 = (gcat >= 2).astype(float)
        ge5 = (gcat >= 1).astype(float)
        women = female.astype(float)

        ratio("prevalence_back_pain_any", any_pain)
        ratio("prevalence_back_pain_any_women", any_pain * women, women)
        ratio("prevalence_back_pain_any_men", any_pain * (1 - women), 1 - women)
        for lv, label in enumerate(synth.AGE_GROUPS):
            mask = (g == lv).astype(float)
            ratio(f"prevalence_back_pain_any_age_{_age_key(label)}", any_pain * mask, mask)
        for lv, label in enumerate(("a_little", "somewhere_in_between", "a_lot"), start=1):
            ratio(f"prevalence_back_pain_{label}", sev[:, lv])
        ratio("prevalence_chronic_pain", chronic)
        ratio("prevalence_gad7_ge10_chronic_pain", ge10 * chronic, chronic)
        ratio("prevalence_gad7_ge10_no_chronic_pain", ge10 * (1 - chronic), 1 - chronic)
        ratio("prevalence_gad7_ge5_chronic_pain", ge5 * chronic, chronic)
        ratio("prevalence_gad7_ge5_no_chronic_pain", ge5 * (1 - chronic), 1 - chronic)
        ratio(
            "prevalence_anxiety_medication",
            special.expit(synth._medication_eta(model, gcat, female)),
        )
        ratio("prevalence_benzodiazepine_use", joint_b.sum(axis=1))
        # joint cells for the crude benzodiazepine-pain odds ratio
        ratio("_benzo_pain", joint_b[:, 1:].sum(axis=1))
        ratio("_benzo_nopain", joint_b[:, 0])
        ratio("_nobenzo_pain", joint_nb[:, 1:].sum(axis=1))
        ratio("_nobenzo_nopain", joint_nb[:, 0])
        # prevalence by exposure level (for the reference SE of the effects)
        for lv in range(4):
            mask = (gcat == lv).astype(float)
            ratio(f"_pain_given_gad7_{lv}", any_pain * mask, mask)

        # natural effects of anxiety on untreated back pain through muscle tension
        base = d["eta_no_anxiety"]
        tension_none = synth.tension_of(model, d["tension_base"], 0)
        p00 = special.expit(base + pain_by_cat[0] + beta_t * tension_none)
        for lv, name in enumerate(LEVELS, start=1):
            tension_a = synth.tension_of(model, d["tension_base"], lv)
            paa = special.expit(base + pain_by_cat[lv] + beta_t * tension_a)
            pa0 = special.expit(base + pain_by_cat[lv] + beta_t * tension_none)
            contrast(f"nie_{name}_vs_none", paa - pa0)
            contrast(f"nde_{name}_vs_none", pa0 - p00)
            contrast(f"te_{name}_vs_none", paa - p00)
        # the (structural) effect of benzodiazepine use on untreated back pain
        contrast("benzodiazepine_effect_rd", special.expit(eta0 + beta_b) - special.expit(eta0))

        cells.add(_cell_codes(d), any_pain, sev)
        nb_cells.add(_nb_cell_codes(d, nb), any_pain, sev)

        # C1 as notebook 02 defines it: chronic pain together with back pain
        chronic_back = (sev[:, 1:] * chronic_by_level[:, 1:]).sum(axis=1)
        scale = p["anxiety_frequency_noise_scale"]
        weekly = special.expit((d["theta"] - model.derived["frequency_cuts"][2]) / scale)
        for name, x in (("gad7_ge10", ge10), ("anxiety_weekly_plus", weekly)):
            ratio(f"prevalence_{name}_among_chronic_back_pain", x * chronic_back, chronic_back)
            ratio(
                f"prevalence_{name}_among_no_chronic_back_pain",
                x * (1 - chronic_back),
                1 - chronic_back,
            )

    values: dict[str, float] = {}
    mc: dict[str, float] = {}
    ref: dict[str, float] = {}
    for name, acc in ratios.items():
        if name.startswith("_"):
            continue
        values[name] = acc.value
        mc[name] = acc.mc_se
        share = acc.denominator
        ref[name] = math.sqrt(acc.value * (1 - acc.value) / (REFERENCE_N * share))

    for key, value in _exact_score_prevalences(model).items():  # exact: no Monte-Carlo error
        values[key] = float(value)
        mc[key] = 0.0
        share = {"women": p["female_share"], "men": 1 - p["female_share"]}.get(
            key.rsplit("_", 1)[-1], 1.0
        )
        ref[key] = math.sqrt(value * (1 - value) / (REFERENCE_N * share))

    def prevalence_ratio(key: str, r1: _Ratio, r0: _Ratio) -> None:
        values[key] = r1.value / r0.value
        mc[key] = values[key] * math.hypot(r1.mc_se / r1.value, r0.mc_se / r0.value)
        ref[key] = values[key] * math.sqrt(
            (1 - r1.value) / (REFERENCE_N * r1.denominator * r1.value)
            + (1 - r0.value) / (REFERENCE_N * r0.denominator * r0.value)
        )

    # prevalence ratios of GAD-7 by chronic pain status (any site; and back pain, notebook 02)
    for cut in ("ge10", "ge5"):
        prevalence_ratio(
            f"prevalence_ratio_gad7_{cut}_chronic_pain",
            ratios[f"prevalence_gad7_{cut}_chronic_pain"],
            ratios[f"prevalence_gad7_{cut}_no_chronic_pain"],
        )
    for name in ("gad7_ge10", "anxiety_weekly_plus"):
        prevalence_ratio(
            f"prevalence_ratio_{name}_chronic_back_pain",
            ratios[f"prevalence_{name}_among_chronic_back_pain"],
            ratios[f"prevalence_{name}_among_no_chronic_back_pain"],
        )

    # crude (unadjusted) census odds ratio of back pain for benzodiazepine use
    c = {
        k: ratios[k].value
        for k in ("_benzo_pain", "_benzo_nopain", "_nobenzo_pain", "_nobenzo_nopain")
    }
    values["benzodiazepine_crude_or_back_pain_any"] = (c["_benzo_pain"] * c["_nobenzo_nopain"]) / (
        c["_benzo_nopain"] * c["_nobenzo_pain"]
    )

    # natural effects: means of the per-person contrasts
    share = {lv: ratios[f"_pain_given_gad7_{lv}"].denominator for lv in range(4)}
    prev = {lv: ratios[f"_pain_given_gad7_{lv}"].value for lv in range(4)}
    for name, (total, sq, n) in contrasts.items():
        mean = total / n
        sd = math.sqrt(max(sq / n - mean * mean, 0.0))
        if name.startswith("_"):
            continue
        values[name] = mean
        mc[name] = sd / math.sqrt(n)
    for lv, name in enumerate(LEVELS, start=1):
        proxy = math.sqrt(
            prev[lv] * (1 - prev[lv]) / (REFERENCE_N * share[lv])
            + prev[0] * (1 - prev[0]) / (REFERENCE_N * share[0])
        )
        for kind in ("nie", "nde", "te"):
            ref[f"{kind}_{name}_vs_none"] = proxy
    # moderate-or-worse: the moderate and severe contrasts mixed in population proportions
    w_mod = values["prevalence_gad7_moderate"] / values["prevalence_gad7_ge10"]
    w_sev = 1.0 - w_mod
    for kind in ("nie", "nde"):
        key = f"{kind}_moderate_or_worse_vs_none"
        values[key] = (
            w_mod * values[f"{kind}_moderate_vs_none"] + w_sev * values[f"{kind}_severe_vs_none"]
        )
        mc[key] = math.hypot(
            w_mod * mc[f"{kind}_moderate_vs_none"], w_sev * mc[f"{kind}_severe_vs_none"]
        )
    values["te_moderate_or_worse_vs_none"] = (
        values["nie_moderate_or_worse_vs_none"] + values["nde_moderate_or_worse_vs_none"]
    )
    mc["te_moderate_or_worse_vs_none"] = math.hypot(
        w_mod * mc["te_moderate_vs_none"], w_sev * mc["te_severe_vs_none"]
    )
    p_hi = (share[2] * prev[2] + share[3] * prev[3]) / (share[2] + share[3])
    proxy = math.sqrt(
        p_hi * (1 - p_hi) / (REFERENCE_N * (share[2] + share[3]))
        + prev[0] * (1 - prev[0]) / (REFERENCE_N * share[0])
    )
    for kind in ("nie", "nde", "te"):
        ref[f"{kind}_moderate_or_worse_vs_none"] = proxy
    values["benzodiazepine_effect_log_or"] = float(beta_b)
    mc["benzodiazepine_effect_log_or"] = 0.0

    _logistic_truths(cells, values, mc, ref)
    _ordinal_truths(cells, values, mc, ref)
    _notebook_truths(nb_cells, nb, values, mc, ref)
    ordered = {k: values[k] for k in sorted(values)}
    return TrueEstimands(
        values=ordered,
        mc_se={k: mc[k] for k in ordered if k in mc},
        reference_se={k: ref[k] for k in ordered if k in ref},
        params_hash=model.hash,
        scenario=model.scenario,
        n_population=n_population,
        seed=seed,
    )


def _age_key(label: str) -> str:
    return label.replace("-", "_").replace("+", "_plus")


def _census_logistic(cells: _Cells, exog: np.ndarray):
    """Census logistic fit to cell sums: (beta, Monte-Carlo SE, reference SE at n=30,000)."""
    keep = cells.n > 0
    n_c, y_c, yy_c = cells.n[keep], cells.y[keep], cells.yy[keep]
    exog = exog[keep]
    fit = GLM(y_c / n_c, exog, family=families.Binomial(), var_weights=n_c).fit(
        tol=1e-13, maxiter=100
    )
    beta = fit.params
    mu = special.expit(exog @ beta)
    n = n_c.sum()
    # sandwich pieces per person, summed within cells: sum (y - mu)^2 = yy - 2 mu y + n mu^2
    resid2 = yy_c - 2 * mu * y_c + n_c * mu**2
    bread = np.linalg.inv((exog * (n_c * mu * (1 - mu))[:, None]).T @ exog / n)
    meat_mc = (exog * resid2[:, None]).T @ exog / n
    meat_ref = (exog * (y_c - yy_c + resid2)[:, None]).T @ exog / n  # 0/1 outcome instead
    se_mc = np.sqrt(np.diag(bread @ meat_mc @ bread) / n)
    se_ref = np.sqrt(np.diag(bread @ meat_ref @ bread) / REFERENCE_N)
    return beta, se_mc, se_ref


def _logistic_truths(cells: _Cells, values: dict, mc: dict, ref: dict) -> None:
    """Census logistic regression of any back pain, fitted to the cell sums."""
    exog = np.column_stack([np.ones(N_CELLS), _cell_design()])
    beta, se_mc, se_ref = _census_logistic(cells, exog)
    for i, term in enumerate(TERMS, start=1):
        key = f"or_back_pain_any_{term}"
        values[key] = float(math.exp(beta[i]))
        mc[key] = values[key] * float(se_mc[i])
        ref[key] = values[key] * float(se_ref[i])


def _po_terms(X: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Category probabilities (n, 4) and d log pi_j / d theta per category (n, 4, k+3) of
    the cumulative-logit model P(Y <= j) = expit(cut_j - x'beta)."""
    n, k = X.shape
    beta, cuts = theta[:k], theta[k:]
    cdf = special.expit(cuts[None, :] - (X @ beta)[:, None])  # (n, 3)
    dens = cdf * (1 - cdf)
    pi = np.diff(np.concatenate([np.zeros((n, 1)), cdf, np.ones((n, 1))], axis=1), axis=1)
    pi = np.clip(pi, 1e-300, None)
    f_up = np.concatenate([dens, np.zeros((n, 1))], axis=1)  # density at the upper cut of j
    f_lo = np.concatenate([np.zeros((n, 1)), dens], axis=1)  # density at the lower cut of j
    grad = np.zeros((n, 4, k + 3))
    grad[:, :, :k] = -((f_up - f_lo) / pi)[:, :, None] * X[:, None, :]
    for j in range(3):
        grad[:, j, k + j] += f_up[:, j] / pi[:, j]
        grad[:, j + 1, k + j] -= f_lo[:, j + 1] / pi[:, j + 1]
    return pi, grad


def _weighted_cross(w: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """sum_nj w_nj g_nj g_nj' for w (n, J) and grad (n, J, p), as one matrix product."""
    g = grad.reshape(-1, grad.shape[2])
    return (g * w.reshape(-1, 1)).T @ g


def fit_proportional_odds(
    X: np.ndarray,
    counts: np.ndarray,
    *,
    tol: float = 1e-11,
    max_iter: int = 200,
) -> np.ndarray:
    """Cumulative-logit (proportional-odds) fit to category counts (n rows, 4 categories).

    ``counts[i, j]`` may be fractional: the summed probabilities of category j over the
    persons of row i. Maximises sum_ij counts_ij log pi_ij by Fisher scoring. With one
    person per row and one-hot counts it is the ordinary maximum-likelihood fit of
    statsmodels' ``OrderedModel(distr="logit")``, with the same sign convention
    (P(Y <= j) = F(cut_j - x'beta)); a test checks that. Returns [beta, cut_1, cut_2, cut_3].
    """
    n, k = X.shape
    size = counts.sum(axis=1)
    cum = np.cumsum(counts.sum(axis=0))[:3] / size.sum()
    theta = np.concatenate([np.zeros(k), special.logit(np.clip(cum, 1e-9, 1 - 1e-9))])
    for _ in range(max_iter):
        pi, grad = _po_terms(X, theta)
        score = counts.ravel() @ grad.reshape(-1, grad.shape[2])
        info = _weighted_cross(size[:, None] * pi, grad)
        step = np.linalg.solve(info, score)
        while np.any(np.diff((theta + step)[k:]) <= 0):  # keep the cut-points ordered
            step /= 2
        theta = theta + step
        if np.max(np.abs(step)) < tol:
            return theta
    raise RuntimeError("proportional-odds fit did not converge")


def _census_po(cells: _Cells, X: np.ndarray):
    """Census proportional-odds fit to cell sums: (theta, MC SE, reference SE at n=30,000)."""
    keep = cells.n > 0
    X = X[keep]
    n_c, P_c, PP_c = cells.n[keep], cells.P[keep], cells.PP[keep]
    theta = fit_proportional_odds(X, P_c)
    pi, grad = _po_terms(X, theta)
    n = n_c.sum()
    bread = np.linalg.inv(_weighted_cross(n_c[:, None] * pi, grad) / n)
    # per-person score s_i = sum_j P_ij g_cj, so sum_i s_i s_i' = G_c' (sum_i P_i P_i') G_c
    pp_grad = np.matmul(PP_c, grad)  # (n, 4, p): sum_k PP_jk g_kq
    meat_mc = grad.reshape(-1, grad.shape[2]).T @ pp_grad.reshape(-1, grad.shape[2]) / n
    meat_ref = _weighted_cross(P_c, grad) / n  # 0/1 outcome instead
    se_mc = np.sqrt(np.diag(bread @ meat_mc @ bread) / n)
    se_ref = np.sqrt(np.diag(bread @ meat_ref @ bread) / REFERENCE_N)
    return theta, se_mc, se_ref


def _ordinal_truths(cells: _Cells, values: dict, mc: dict, ref: dict) -> None:
    """Census proportional-odds regression of back-pain severity, fitted to the cell sums."""
    theta, se_mc, se_ref = _census_po(cells, _cell_design())
    for i, term in enumerate(TERMS):
        key = f"po_or_back_pain_{term}"
        values[key] = float(math.exp(theta[i]))
        mc[key] = values[key] * float(se_mc[i])
        ref[key] = values[key] * float(se_ref[i])


# ------------------------------------------------------- notebook 03 model truths --
# Notebook 03 (analysis.models.associations.anxiety_and_pain) adjusts for age in years, sex, BMI
# group, depression (PHQ-8 score; PHQ-8 >= 10 in the depression model) and activity: its
# regressors are discrete too (integer ages 18-85), so its census fits are again fits to
# cell sums, over these cells.
_AGE_MIN, _AGE_MAX = 18, 85
# GAD-7 category, BMI group, activity, age, male, PHQ-8 score
_NB_SHAPE = (4, 4, 3, _AGE_MAX - _AGE_MIN + 1, 2, 25)
N_NB_CELLS = int(np.prod(_NB_SHAPE))


def _notebook_spec() -> dict:
    """The parts of ``associations.yaml`` that define notebook 03's model (and C1's cut)."""
    from analysis.models import associations  # late: associations imports the survey machinery

    spec = associations.load_spec()["anxiety_pain"]
    return {
        "bmi_groups": [[g["label"], float(g["low"]), float(g["high"])] for g in spec["bmi_groups"]],
        "depression_at_least": float(spec["depression_at_least"]),
        "depression_term": spec["covariates"]["depression"]["term"],
    }


def _nb_cell_codes(d: dict[str, np.ndarray], nb: dict) -> np.ndarray:
    bmi_group = np.full(d["bmi"].shape[0], -1, dtype=np.int64)
    for i, (_, low, high) in enumerate(nb["bmi_groups"]):
        bmi_group[(d["bmi"] >= low) & (d["bmi"] < high)] = i
    if (bmi_group < 0).any():
        raise ValueError("associations.yaml: bmi_groups do not cover every BMI of the world")
    return np.ravel_multi_index(
        (
            d["gad7_cat"],
            bmi_group,
            d["activity"],
            d["age"].astype(np.int64) - _AGE_MIN,
            (~d["female"]).astype(np.int8),
            d["phq8"],
        ),
        _NB_SHAPE,
    )


def _nb_design(
    nb: dict, exposure: str, gad7_set: int | None = None, depression: str = "phq8_score"
) -> tuple[np.ndarray, list]:
    """Regressors of notebook 03's model for every cell (no intercept), and their names.

    ``exposure``: "four" (GAD-7 category, none ref.), "collapsed" (none/mild/moderate+) or
    "step" (0-3 as a number). ``gad7_set`` fixes every cell's category (standardisation).
    ``depression``: the term nb['depression'] names for the model ("phq8_score" per point,
    or "phq8_ge10" for the depression model).
    """
    gcat, bmi, act, age, male, phq = (a.ravel() for a in np.indices(_NB_SHAPE))
    if gad7_set is not None:
        gcat = np.full_like(gcat, gad7_set)
    if exposure == "four":
        cols = {"gad7_mild": gcat == 1, "gad7_moderate": gcat == 2, "gad7_severe": gcat == 3}
    elif exposure == "collapsed":
        cols = {"gad7_mild": gcat == 1, "gad7_moderate_plus": gcat >= 2}
    else:
        cols = {"gad7_step": gcat}
    cols["age"] = age + _AGE_MIN
    cols["male"] = male
    for i, (label, _, _) in enumerate(nb["bmi_groups"][1:], start=1):  # first = reference
        cols[f"bmi_{label}"] = bmi == i
    if depression == "phq8_score":
        cols["phq8_score"] = phq
    elif depression == "phq8_ge10":
        cols["phq8_moderate_plus"] = phq >= nb["depression_at_least"]
    else:
        raise ValueError(f"associations.yaml: depression term {depression!r} has no truth model")
    cols["inactive"] = act == 0
    cols["insufficiently_active"] = act == 1
    return np.column_stack(list(cols.values())).astype(np.float64), list(cols)


def _notebook_truths(cells: _Cells, nb: dict, values: dict, mc: dict, ref: dict) -> None:
    """Census values of notebook 03's estimates, under the claims registry's keys."""

    def put(key: str, coef: float, se_m: float, se_r: float) -> None:
        values[key] = float(math.exp(coef))
        mc[key] = values[key] * float(se_m)
        ref[key] = values[key] * float(se_r)

    one = np.ones((N_NB_CELLS, 1))
    X, names = _nb_design(nb, "four", depression="phq8_ge10")
    beta, se_m, se_r = _census_logistic(cells, np.hstack([one, X]))
    i = names.index("phq8_moderate_plus") + 1
    put("or_back_pain_any_phq8_moderate_plus", beta[i], se_m[i], se_r[i])
    X, names = _nb_design(nb, "four", depression=nb["depression_term"])
    beta, se_m, se_r = _census_logistic(cells, np.hstack([one, X]))
    for key, term in (("or_back_pain_obesity", "bmi_obese"), ("or_back_pain_inactive", "inactive")):
        i = names.index(term) + 1
        put(key, beta[i], se_m[i], se_r[i])
    # standardised probabilities: the population average with everyone set to each level
    share = cells.n / cells.n.sum()
    for lv, label in enumerate(("none", *LEVELS)):
        Xs, _ = _nb_design(nb, "four", gad7_set=lv, depression=nb["depression_term"])
        prob = special.expit(np.hstack([one, Xs]) @ beta)
        values[f"predicted_probability_back_pain_by_gad7_category[{label}]"] = float(share @ prob)
    X, names = _nb_design(nb, "collapsed", depression=nb["depression_term"])
    beta, se_m, se_r = _census_logistic(cells, np.hstack([one, X]))
    i = names.index("gad7_moderate_plus") + 1
    put("or_back_pain_any_gad7_moderate_plus", beta[i], se_m[i], se_r[i])
    X, names = _nb_design(nb, "step", depression=nb["depression_term"])
    theta, se_m, se_r = _census_po(cells, X)
    put("trend_gad7_category_back_pain", theta[0], se_m[0], se_r[0])


if __name__ == "__main__":
    for written in write_packaged_truths():
        print(f"wrote {written}")
