"""Within-person analysis of the HELP follow-up waves (C3): does a person's pain change
when their nervousness changes?

A cross-sectional association mixes people who are nervous *and* in pain for stable reasons
(health, circumstances) with any effect of nervousness itself. A person fixed-effects model
compares each person with themselves across waves, so stable differences between people
cannot confound it. Time-varying confounding (e.g. a relapse that raises both) still can.

Standard errors are clustered by person. With person effects absorbed by demeaning, the
small-sample factor is G/(G-1) * (N-1)/(N-K) with K the regressors of the demeaned model
(the fixed effects are nested in the clusters; Stata's ``xtreg, fe vce(cluster)`` convention).

Two sensitivity analyses of the slope (C3's robustness rule; `sensitivity_analyses`):

* **CES-D adjusted.** Depression moves with nervousness and with pain from wave to wave, so the
  same model adds the time-varying CES-D score. Depression may also lie on the path from
  nervousness to pain; then the adjusted slope understates its total effect.
* **Previous wave's nervousness (time order).** Pain at a wave on nervousness at the person's
  previous interview with nervousness recorded, whatever the gap: a person seen at 0, 18 and
  24 months gives the pairs 0 -> 18 and 18 -> 24, so a lag spans 6 to 24 months (the summary
  counts the pairs of each length); a first interview only gives the next one its previous
  nervousness. This wave's nervousness stays in the model: in a short panel the person means
  tie the previous and this wave's nervousness together, so without it a purely
  contemporaneous effect b would leak into the lagged slope (about -b/(T-1) for a person
  interviewed T times whose nervousness varies independently from wave to wave). The slope
  is the part of the previous wave's nervousness not carried by this wave's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from statsmodels.regression.linear_model import OLS
from statsmodels.tools.tools import add_constant

from analysis.core.findings import Finding
from analysis.data.schema import NotMeasuredError

ESTIMAND = "within_person_bodily_pain_per_nervousness_step"
CESD_ADJUSTED = "within_person_bodily_pain_per_nervousness_step_cesd_adjusted"
PREVIOUS_NERVOUSNESS = "within_person_bodily_pain_per_previous_nervousness_step"
PAIN = "sf36_bodily_pain"  # 0-100, higher = LESS pain
NERVOUS = "sf36_nervous_frequency"  # ordered: none ... all of the time (6 steps)
CESD = "cesd_score"  # CES-D depressive symptoms, 0-60, higher = more
DESIGN = "within-person cohort (person fixed effects)"
CAVEATS = [
    "HELP is a detoxification-unit cohort, not the US adult population.",
    "The SF-36 nervousness item is a single 4-week item, not the GAD-7.",
    "Within-person change removes stable differences between people, not time-varying "
    "confounders (e.g. relapse, life events) that move nervousness and pain together.",
    "SF-36 bodily pain: higher = less pain, so a negative coefficient means more pain.",
]


@dataclass
class WithinPersonResult:
    """Fixed-effects (within) and pooled (between + within) slopes of pain on nervousness."""

    table: pd.DataFrame  # rows: within, pooled; columns estimate, se, ci_low, ci_high, p, n
    n_people: int
    n_observations: int
    notes: list[str] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def summary(self) -> str:
        lines = [
            "SF-36 bodily pain (0-100, higher = less pain) per one-step rise in nervousness",
            f"  {self.n_observations} person-waves of {self.n_people} people with >= 2 waves; "
            "SEs clustered by person",
            self.table.to_string(float_format=lambda v: f"{v:.3f}"),
        ]
        return "\n".join(lines + self.notes)

    def __str__(self) -> str:
        return self.summary()

    def to_findings(self, source: str = "help", notebook: str = ""):
        row = self.table.loc["within person (fixed effects)"]
        return [
            Finding(
                claim_id="C3",
                estimand=ESTIMAND,
                label="Within-person change in SF-36 bodily pain per step of nervousness (HELP)",
                source=source,
                estimate=float(row["estimate"]),
                ci_low=float(row["ci_low"]),
                ci_high=float(row["ci_high"]),
                measure="mean difference",
                null_value=0.0,
                n=int(self.n_observations),
                design=DESIGN,
                caveats=list(CAVEATS),
                notebook=notebook,
                extra={"n_people": self.n_people, "se": float(row["se"])},
            )
        ]


@dataclass
class SensitivityResult:
    """One sensitivity analysis of the within-person slope; its first table row is the
    registry's finding, the other rows are there to read it by."""

    estimand: str
    label: str
    model: str  # what was fitted, in words
    table: pd.DataFrame  # one row per reported term; columns as WithinPersonResult.table
    n_people: int
    n_observations: int
    caveats: list[str]
    details: dict[str, int] = field(default_factory=dict)  # e.g. pairs per lag in months

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def summary(self) -> str:
        lines = [
            f"{self.label}",
            f"  {self.model}",
            f"  {self.n_observations} person-waves of {self.n_people} people; "
            "SEs clustered by person",
            self.table.to_string(float_format=lambda v: f"{v:.3f}"),
        ]
        if self.details:
            lines.append(
                "  previous wave this many months earlier: "
                + ", ".join(f"{k} months: {v} pairs" for k, v in self.details.items())
            )
        return "\n".join(lines + ["  " + c for c in self.caveats])

    def __str__(self) -> str:
        return self.summary()

    def to_findings(self, source: str = "help", notebook: str = "") -> list[Finding]:
        row = self.table.iloc[0]
        return [
            Finding(
                claim_id="C3",
                estimand=self.estimand,
                label=self.label,
                source=source,
                estimate=float(row["estimate"]),
                ci_low=float(row["ci_low"]),
                ci_high=float(row["ci_high"]),
                measure="mean difference",
                null_value=0.0,
                n=int(self.n_observations),
                design=DESIGN,
                caveats=list(self.caveats),
                notebook=notebook,
                extra={
                    "n_people": self.n_people,
                    "se": float(row["se"]),
                    "model": self.model,
                    **({"pairs_by_lag_months": dict(self.details)} if self.details else {}),
                },
            )
        ]


def _observed(frame: pd.DataFrame, *extra: str) -> pd.DataFrame:
    """Person, wave, pain, nervousness step (and ``extra`` columns) of every row, with NaN."""
    for col in (PAIN, NERVOUS, "respondent_id", "wave", *extra):
        if col not in frame.columns:
            source = str(frame["source"].iloc[0]) if "source" in frame and len(frame) else "?"
            raise NotMeasuredError(col, source)
    nervous = frame[NERVOUS]
    if not isinstance(nervous.dtype, pd.CategoricalDtype) or not nervous.cat.ordered:
        raise TypeError(f"column '{NERVOUS}' must be an ordered categorical (got {nervous.dtype})")
    step = nervous.cat.codes.astype(float).where(nervous.notna())
    d = pd.DataFrame(
        {
            "person": frame["respondent_id"].astype(str).to_numpy(),
            "wave": frame["wave"].astype(int).to_numpy(),
            "pain": pd.to_numeric(frame[PAIN], errors="coerce").to_numpy(dtype=float),
            "step": step.to_numpy(dtype=float),
        }
    )
    for col in extra:
        d[col] = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
    return d


def _seen_twice(d: pd.DataFrame) -> pd.DataFrame:
    counts = d.groupby("person")["pain"].transform("size")
    return d[counts >= 2].reset_index(drop=True)


def person_waves(frame: pd.DataFrame) -> pd.DataFrame:
    """The analysed person-waves (person, wave, pain, nervousness step); people seen twice+."""
    return _seen_twice(_observed(frame).dropna())


def lagged_person_waves(frame: pd.DataFrame) -> pd.DataFrame:
    """Person-waves with the nervousness step of the person's previous interview at which it
    was recorded (``previous_step``, ``previous_wave``, ``lag_months``; gaps in waves kept);
    people with two such person-waves or more."""
    d = _observed(frame).dropna(subset=["step"]).sort_values(["person", "wave"])
    by_person = d.groupby("person")
    d["previous_step"] = by_person["step"].shift()
    d["previous_wave"] = by_person["wave"].shift()
    d = d.dropna(subset=["pain", "previous_step"])
    d["lag_months"] = (d["wave"] - d["previous_wave"]).astype(int)
    return _seen_twice(d)


def _design(d: pd.DataFrame, terms: list[str]) -> pd.DataFrame:
    waves = pd.get_dummies(d["wave"], prefix="wave", drop_first=True, dtype=float)
    return pd.concat([d[terms], waves], axis=1)


def _fit(y: pd.Series, x: pd.DataFrame, groups: pd.Series, *, constant: bool):
    x = add_constant(x) if constant else x
    codes = pd.factorize(groups)[0]
    return OLS(y, x).fit(cov_type="cluster", cov_kwds={"groups": codes})


def _within_fit(d: pd.DataFrame, terms: list[str]):
    """Person fixed effects (by demeaning) of pain on ``terms`` and wave effects."""
    x = _design(d, terms)
    demeaned_x = x - x.groupby(d["person"]).transform("mean")
    demeaned_y = d["pain"] - d.groupby("person")["pain"].transform("mean")
    return _fit(demeaned_y, demeaned_x, d["person"], constant=False)


def _row(fit, term: str) -> dict:
    lo, hi = fit.conf_int().loc[term]
    return {
        "estimate": fit.params[term],
        "se": fit.bse[term],
        "ci_low": lo,
        "ci_high": hi,
        "p_value": fit.pvalues[term],
        "n": int(fit.nobs),
    }


def within_person_pain_nervousness(frame: pd.DataFrame) -> WithinPersonResult:
    """Person fixed-effects slope of bodily pain on nervousness, with wave effects, beside the
    pooled slope (which also uses differences between people)."""
    d = person_waves(frame)
    within = _within_fit(d, ["step"])
    pooled = _fit(d["pain"], _design(d, ["step"]), d["person"], constant=True)
    rows = {
        "within person (fixed effects)": _row(within, "step"),
        "pooled": _row(pooled, "step"),
    }
    table = pd.DataFrame.from_dict(rows, orient="index")
    return WithinPersonResult(
        table=table,
        n_people=int(d["person"].nunique()),
        n_observations=len(d),
        notes=["  " + c for c in CAVEATS],
    )


def cesd_adjusted_pain_nervousness(frame: pd.DataFrame) -> SensitivityResult:
    """The within-person slope adjusted for time-varying depression (CES-D score), beside the
    unadjusted slope on the same person-waves (so the change is the adjustment's alone)."""
    d = _seen_twice(_observed(frame, CESD).dropna())
    adjusted = _within_fit(d, ["step", CESD])
    unadjusted = _within_fit(d, ["step"])
    rows = {
        "nervousness step, CES-D adjusted": _row(adjusted, "step"),
        "CES-D point (same model)": _row(adjusted, CESD),
        "nervousness step, unadjusted (same person-waves)": _row(unadjusted, "step"),
    }
    return SensitivityResult(
        estimand=CESD_ADJUSTED,
        label="Within-person change in SF-36 bodily pain per step of nervousness, "
        "adjusted for depression (CES-D; HELP)",
        model="person and wave fixed effects; nervousness step and CES-D score (0-60)",
        table=pd.DataFrame.from_dict(rows, orient="index"),
        n_people=int(d["person"].nunique()),
        n_observations=len(d),
        caveats=[
            *CAVEATS,
            "Adjusted for time-varying depression (CES-D), which may lie on the path from "
            "nervousness to pain: the adjusted slope may understate nervousness's total effect.",
        ],
    )


def previous_nervousness_pain(frame: pd.DataFrame) -> SensitivityResult:
    """Within-person slope of bodily pain on the previous wave's nervousness, this wave's
    nervousness held fixed (module docstring: why, and how gaps in waves are handled)."""
    d = lagged_person_waves(frame)
    fit = _within_fit(d, ["previous_step", "step"])
    rows = {
        "previous wave's nervousness step": _row(fit, "previous_step"),
        "this wave's nervousness step (same model)": _row(fit, "step"),
    }
    lags = d["lag_months"].value_counts().sort_index()
    return SensitivityResult(
        estimand=PREVIOUS_NERVOUSNESS,
        label="Within-person change in SF-36 bodily pain per step of the previous wave's "
        "nervousness (HELP)",
        model="person and wave fixed effects; previous wave's and this wave's nervousness step",
        table=pd.DataFrame.from_dict(rows, orient="index"),
        n_people=int(d["person"].nunique()),
        n_observations=len(d),
        caveats=[
            *CAVEATS,
            "Previous wave = the person's previous interview with nervousness recorded, 6 to 24 "
            "months earlier (gaps in waves kept); this wave's nervousness is held fixed, so the "
            "slope is the part of earlier nervousness not carried by the current level.",
        ],
        details={str(int(k)): int(v) for k, v in lags.items()},
    )


def sensitivity_analyses(frame: pd.DataFrame) -> list[SensitivityResult]:
    """C3's two sensitivity analyses of the within-person slope: CES-D adjusted, time order."""
    return [cesd_adjusted_pain_nervousness(frame), previous_nervousness_pain(frame)]


def sensitivity_findings(
    frame: pd.DataFrame, source: str = "help", notebook: str = ""
) -> list[Finding]:
    """The findings of `sensitivity_analyses`, under the registry's sensitivity keys."""
    return [f for r in sensitivity_analyses(frame) for f in r.to_findings(source, notebook)]
