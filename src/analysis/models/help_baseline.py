"""HELP baseline (C1): odds of chronic low back pain for often vs rarely nervous adults.

The HELP cohort's baseline interview (wave 0, one row per person) asked SF-36 item B9B, "Have
you been nervous?" in the past 4 weeks (none, a little, some, a good bit, most, all of the
time), and whether the person had lower back pain lasting more than 3 months that needed
medical attention in the last 6 months (``chronic_low_back_pain_6m``).

"Often" and "rarely" were fixed from the item's wording before any estimate was seen: "often"
is *most* or *all of the time*, the two answers that say nervousness was the usual state
(and the "most or all of the time" threshold of the NHIS nervousness estimands of C1 and C3);
"rarely" is *none* or *a little of the time*. The middle answers ("some", "a good bit of the
time") are neither, so they are left out rather than forced to a side.

Logistic regression, unweighted (HELP is a cohort, not a survey), of the outcome on often vs
rarely nervous, crude and adjusted for age (years, linear) and sex; the adjusted odds ratio is
the registry's finding. Standard errors are model-based (inverse information): one row per
person, and a 0/1 outcome cannot be overdispersed. Wald intervals on the log scale. The E-value
treats the outcome as rare (OR ~ RR) when under 15% of the analysed people have it, otherwise
uses RR ~ sqrt(OR) (VanderWeele & Ding 2017).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from statsmodels.genmod import families
from statsmodels.genmod.generalized_linear_model import GLM
from statsmodels.tools.tools import add_constant

from analysis.core.findings import Finding
from analysis.data.schema import require_measured
from analysis.models.association_result import registry_estimand
from analysis.models.evalue import evalue

ESTIMAND = "or_chronic_low_back_pain_nervousness_help"
OUTCOME = "chronic_low_back_pain_6m"
NERVOUS = "sf36_nervous_frequency"
OFTEN = ("most of the time", "all of the time")
RARELY = ("none of the time", "a little of the time")
RARE_BELOW = 0.15  # outcome prevalence under which an odds ratio approximates a risk ratio
CAVEATS = [
    "HELP is a detoxification-unit cohort, not the US adult population.",
    "The SF-36 nervousness item is a single 4-week item, not the GAD-7.",
    "Baseline interview only: co-occurrence, not which came first.",
    "Chronic low back pain here needed medical attention and lasted more than 3 months; it is "
    "not back pain in general.",
    "Often = most or all of the time nervous; rarely = none or a little of the time; the "
    "middle answers are left out.",
]


@dataclass
class BaselineOddsRatioResult:
    """Crude and age- and sex-adjusted odds ratios of chronic low back pain, often vs rarely
    nervous, at the HELP baseline."""

    table: pd.DataFrame  # rows crude, adjusted; OR, CI, log OR, SE, p, E-values, n
    counts: pd.DataFrame  # often / rarely x with / without chronic low back pain
    n: int  # people analysed (often or rarely nervous, outcome and covariates known)
    n_middle: int  # baseline people answering "some" or "a good bit of the time"
    rare: bool  # outcome under RARE_BELOW among the analysed people (E-value uses OR ~ RR)
    level: float = 0.95
    notes: list[str] = field(default_factory=lambda: list(CAVEATS))

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def summary(self) -> str:
        adjusted = self.table.loc["adjusted for age and sex"]
        lines = [
            "Chronic low back pain (last 6 months) at the HELP baseline, often vs rarely nervous",
            f"  {self.n} people analysed; {self.n_middle} answering 'some' or 'a good bit of "
            "the time' left out; unweighted logistic, model-based SEs",
            self.counts.to_string(),
            self.table.to_string(float_format=lambda v: f"{v:.3f}"),
            f"  adjusted OR {adjusted['odds_ratio']:.2f} "
            f"[{adjusted['ci_low']:.2f}, {adjusted['ci_high']:.2f}]; E-value "
            f"{adjusted['evalue_point']:.2f} (CI {adjusted['evalue_ci']:.2f}; outcome "
            f"{'rare: OR ~ RR' if self.rare else 'common: RR ~ sqrt(OR)'})",
        ]
        return "\n".join(lines + ["  " + c for c in self.notes])

    def __str__(self) -> str:
        return self.summary()

    def to_findings(self, source: str = "help", notebook: str = "") -> list[Finding]:
        est = registry_estimand(ESTIMAND)
        row = self.table.loc["adjusted for age and sex"]
        crude = self.table.loc["crude"]
        return [
            Finding(
                claim_id=est.claim_id,
                estimand=ESTIMAND,
                label="Chronic low back pain, often vs rarely nervous (HELP baseline, "
                "adjusted for age and sex; odds ratio)",
                source=source,
                estimate=float(row["odds_ratio"]),
                ci_low=float(row["ci_low"]),
                ci_high=float(row["ci_high"]),
                measure=est.measure,
                null_value=est.null,
                n=self.n,
                design="cross-sectional (cohort baseline)",
                caveats=list(self.notes),
                notebook=notebook,
                extra={
                    "se_log": float(row["se_log"]),
                    "p_value": float(row["p_value"]),
                    "evalue_point": float(row["evalue_point"]),
                    "evalue_ci": float(row["evalue_ci"]),
                    "rare_outcome": self.rare,
                    "crude_odds_ratio": float(crude["odds_ratio"]),
                    "often": list(OFTEN),
                    "rarely": list(RARELY),
                    "n_left_out_middle": self.n_middle,
                    "level": self.level,
                },
            )
        ]


def baseline_often_rarely(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Baseline people who were often or rarely nervous with outcome, age and sex known:
    columns ``often`` (1/0), ``outcome`` (1/0), ``age``, ``female`` (1/0); and how many
    baseline people gave a middle answer."""
    require_measured(frame, "wave", NERVOUS, OUTCOME, "age", "sex")
    nervous = frame[NERVOUS]
    if not isinstance(nervous.dtype, pd.CategoricalDtype) or not nervous.cat.ordered:
        raise TypeError(f"column '{NERVOUS}' must be an ordered categorical (got {nervous.dtype})")
    absent = [lv for lv in OFTEN + RARELY if lv not in nervous.cat.categories]
    if absent:
        raise ValueError(
            f"column '{NERVOUS}' has no level(s) {absent}; expected the SF-36 answers "
            f"{list(RARELY + OFTEN)}"
        )
    base = frame[frame["wave"].astype(int) == 0]
    answer = base[NERVOUS]
    sex = base["sex"].astype("string")
    d = pd.DataFrame(
        {
            "often": np.where(answer.isin(OFTEN), 1.0, np.where(answer.isin(RARELY), 0.0, np.nan)),
            "outcome": base[OUTCOME].astype("Float64").to_numpy(dtype=float, na_value=np.nan),
            "age": pd.to_numeric(base["age"], errors="coerce").to_numpy(dtype=float),
            "female": (sex == "female")
            .astype("Float64")
            .mask(sex.isna())
            .to_numpy(dtype=float, na_value=np.nan),
        },
        index=base.index,
    )
    n_middle = int((answer.notna() & ~answer.isin(OFTEN + RARELY)).sum())
    return d.dropna().reset_index(drop=True), n_middle


def _odds_ratio(fit, level: float, rare: bool) -> dict:
    log_or, se = float(fit.params["often"]), float(fit.bse["often"])
    lo, hi = (float(v) for v in np.exp(fit.conf_int(alpha=1 - level).loc["often"]))
    ev = evalue(float(np.exp(log_or)), lo, hi, measure="odds ratio", rare=rare)
    return {
        "odds_ratio": float(np.exp(log_or)),
        "ci_low": lo,
        "ci_high": hi,
        "log_or": log_or,
        "se_log": se,
        "p_value": float(fit.pvalues["often"]),
        "evalue_point": ev.point,
        "evalue_ci": ev.ci,
        "n": int(fit.nobs),
    }


def nervousness_chronic_low_back_pain(
    frame: pd.DataFrame, *, level: float = 0.95
) -> BaselineOddsRatioResult:
    """C1 (HELP): odds ratio of chronic low back pain for often vs rarely nervous at baseline,
    crude and adjusted for age and sex (the finding)."""
    d, n_middle = baseline_often_rarely(frame)
    counts = (
        pd.crosstab(
            d["often"].map({1.0: "often nervous", 0.0: "rarely nervous"}),
            d["outcome"].map({1.0: "chronic low back pain", 0.0: "none"}),
        )
        .reindex(
            index=["often nervous", "rarely nervous"],
            columns=["chronic low back pain", "none"],
            fill_value=0,
        )
        .rename_axis(index=None, columns=None)
    )
    empty = [f"{g} / {o}" for g in counts.index for o in counts.columns if counts.loc[g, o] == 0]
    if empty:
        raise ValueError(
            f"HELP baseline '{OUTCOME}' by '{NERVOUS}': no people in {empty}; the odds ratio "
            "of often vs rarely nervous is not estimable"
        )
    rare = bool(d["outcome"].mean() < RARE_BELOW)
    family = families.Binomial()
    crude = GLM(d["outcome"], add_constant(d[["often"]]), family=family).fit()
    adjusted = GLM(d["outcome"], add_constant(d[["often", "age", "female"]]), family=family).fit()
    table = pd.DataFrame.from_dict(
        {
            "crude": _odds_ratio(crude, level, rare),
            "adjusted for age and sex": _odds_ratio(adjusted, level, rare),
        },
        orient="index",
    )
    return BaselineOddsRatioResult(
        table=table, counts=counts, n=len(d), n_middle=n_middle, rare=rare, level=level
    )
