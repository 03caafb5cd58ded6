"""Within-person analysis of the HELP follow-up waves (C3): does a person's pain change
when their nervousness changes?

A cross-sectional association mixes people who are nervous *and* in pain for stable reasons
(health, circumstances) with any effect of nervousness itself. A person fixed-effects model
compares each person with themselves across waves, so stable differences between people
cannot confound it. Time-varying confounding (e.g. a relapse that raises both) still can.

Standard errors are clustered by person. With person effects absorbed by demeaning, the
small-sample factor is G/(G-1) * (N-1)/(N-K) with K the regressors of the demeaned model
(the fixed effects are nested in the clusters; Stata's ``xtreg, fe vce(cluster)`` convention).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from statsmodels.regression.linear_model import OLS
from statsmodels.tools.tools import add_constant

from analysis.core.findings import Finding
from analysis.data.schema import NotMeasuredError

ESTIMAND = "within_person_bodily_pain_per_nervousness_step"
PAIN = "sf36_bodily_pain"  # 0-100, higher = LESS pain
NERVOUS = "sf36_nervous_frequency"  # ordered: none ... all of the time (6 steps)
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
                design="within-person cohort (person fixed effects)",
                caveats=list(CAVEATS),
                notebook=notebook,
                extra={"n_people": self.n_people, "se": float(row["se"])},
            )
        ]


def person_waves(frame: pd.DataFrame) -> pd.DataFrame:
    """The analysed person-waves (person, wave, pain, nervousness step); people seen twice+."""
    for col in (PAIN, NERVOUS, "respondent_id", "wave"):
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
    ).dropna()
    counts = d.groupby("person")["pain"].transform("size")
    return d[counts >= 2].reset_index(drop=True)


def _design(d: pd.DataFrame) -> pd.DataFrame:
    waves = pd.get_dummies(d["wave"], prefix="wave", drop_first=True, dtype=float)
    return pd.concat([d[["step"]], waves], axis=1)


def _fit(y: pd.Series, x: pd.DataFrame, groups: pd.Series, *, constant: bool):
    x = add_constant(x) if constant else x
    codes = pd.factorize(groups)[0]
    return OLS(y, x).fit(cov_type="cluster", cov_kwds={"groups": codes})


def within_person_pain_nervousness(frame: pd.DataFrame) -> WithinPersonResult:
    """Person fixed-effects slope of bodily pain on nervousness, with wave effects, beside the
    pooled slope (which also uses differences between people)."""
    d = person_waves(frame)
    x = _design(d)
    demeaned_x = x - x.groupby(d["person"]).transform("mean")
    demeaned_y = d["pain"] - d.groupby("person")["pain"].transform("mean")
    within = _fit(demeaned_y, demeaned_x, d["person"], constant=False)
    pooled = _fit(d["pain"], x, d["person"], constant=True)
    rows = {}
    for name, fit in (("within person (fixed effects)", within), ("pooled", pooled)):
        lo, hi = fit.conf_int().loc["step"]
        rows[name] = {
            "estimate": fit.params["step"],
            "se": fit.bse["step"],
            "ci_low": lo,
            "ci_high": hi,
            "p_value": fit.pvalues["step"],
            "n": int(fit.nobs),
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    return WithinPersonResult(
        table=table,
        n_people=int(d["person"].nunique()),
        n_observations=len(d),
        notes=["  " + c for c in CAVEATS],
    )
