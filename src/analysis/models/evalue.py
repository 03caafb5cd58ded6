"""E-values for unmeasured confounding (VanderWeele & Ding, Ann Intern Med 2017;167:268-274).

The E-value is the minimum strength of association, on the risk-ratio scale, that an
unmeasured confounder would need with both the exposure and the outcome to explain away
an observed association. For a risk ratio RR >= 1 it is ``RR + sqrt(RR * (RR - 1))``;
a protective RR < 1 is first inverted. For the confidence interval, the E-value is
computed for the limit closer to the null, and is 1 when the interval includes the null.

Other measures are first converted to the (approximate) risk-ratio scale as in the paper:

* odds ratio, rare outcome (< 15 %): RR ~ OR; common outcome: RR ~ sqrt(OR);
* hazard ratio, rare outcome: RR ~ HR; common: RR ~ (1 - 0.5**sqrt(HR)) / (1 - 0.5**sqrt(1/HR));
* standardized mean difference d with standard error se: RR ~ exp(0.91 d), CI exp(0.91 d +- 1.78 se).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

RATIO_MEASURES = {
    "risk ratio": "rr",
    "relative risk": "rr",
    "prevalence ratio": "rr",
    "rate ratio": "rr",
    "rr": "rr",
    "pr": "rr",
    "odds ratio": "or",
    "or": "or",
    "hazard ratio": "hr",
    "hr": "hr",
    "standardized mean difference": "smd",
    "smd": "smd",
}


@dataclass(frozen=True)
class EValue:
    """E-values for a point estimate and its CI, with the risk ratios they were computed from."""

    measure: str
    rr: float
    rr_low: float | None
    rr_high: float | None
    point: float
    ci: float | None  # E-value for the CI limit closer to the null (1 if the CI covers it)

    def summary(self) -> str:
        ci = "n/a" if self.ci is None else f"{self.ci:.2f}"
        return (
            f"E-value ({self.measure}): point {self.point:.2f}, CI limit {ci} "
            f"(approx. RR {self.rr:.3g})"
        )

    def to_dict(self) -> dict:
        return {
            "measure": self.measure,
            "rr": self.rr,
            "rr_low": self.rr_low,
            "rr_high": self.rr_high,
            "evalue_point": self.point,
            "evalue_ci": self.ci,
        }


def evalue_rr(rr: float) -> float:
    """E-value of a risk ratio (either side of 1)."""
    if not (rr > 0 and math.isfinite(rr)):
        raise ValueError(f"E-value needs a positive finite risk ratio, got {rr!r}")
    if rr < 1:
        rr = 1 / rr
    return rr + math.sqrt(rr * (rr - 1))


def _to_rr(value: float, kind: str, rare: bool | None) -> float:
    if kind == "rr":
        return value
    if kind in ("or", "hr") and rare is None:
        raise ValueError(
            f"E-value for an {'odds' if kind == 'or' else 'hazard'} ratio needs rare=True "
            "(outcome < 15% at end of follow-up) or rare=False"
        )
    if kind == "or":
        return value if rare else math.sqrt(value)
    if kind == "hr":
        if rare:
            return value
        return (1 - 0.5 ** math.sqrt(value)) / (1 - 0.5 ** math.sqrt(1 / value))
    raise AssertionError(kind)


def evalue(
    estimate: float,
    ci_low: float | None = None,
    ci_high: float | None = None,
    measure: str = "risk ratio",
    rare: bool | None = None,
    se: float | None = None,
) -> EValue:
    """E-values for an estimate and its confidence interval (VanderWeele & Ding 2017).

    ``measure`` is a risk/prevalence/rate ratio, an odds ratio or a hazard ratio (these two
    need ``rare``), or a standardized mean difference (needs ``se``; the CI is then
    built from it as in the paper and ``ci_low``/``ci_high`` are ignored).
    """
    kind = RATIO_MEASURES.get(measure.strip().lower())
    if kind is None:
        raise ValueError(
            f"E-value: unknown measure {measure!r}; expected one of {sorted(RATIO_MEASURES)}"
        )
    if kind == "smd":
        if se is None or not se > 0:
            raise ValueError("E-value for a standardized mean difference needs its se > 0")
        rr = math.exp(0.91 * estimate)
        lo, hi = math.exp(0.91 * estimate - 1.78 * se), math.exp(0.91 * estimate + 1.78 * se)
    else:
        for name, v in (("estimate", estimate), ("ci_low", ci_low), ("ci_high", ci_high)):
            if v is not None and not (v > 0 and math.isfinite(v)):
                raise ValueError(f"E-value: {name} of a ratio must be positive, got {v!r}")
        if (
            ci_low is not None
            and ci_high is not None
            and not ci_low <= estimate <= ci_high
            # an estimate on its CI limit may differ from it in the last bits of a float
            and not any(math.isclose(estimate, x, rel_tol=1e-9) for x in (ci_low, ci_high))
        ):
            raise ValueError(
                f"E-value: estimate {estimate} is outside its CI [{ci_low}, {ci_high}]"
            )
        rr = _to_rr(estimate, kind, rare)
        lo = None if ci_low is None else _to_rr(ci_low, kind, rare)
        hi = None if ci_high is None else _to_rr(ci_high, kind, rare)

    point = evalue_rr(rr)
    ci: float | None
    if rr >= 1:
        ci = None if lo is None else (1.0 if lo <= 1 else evalue_rr(lo))
    else:
        ci = None if hi is None else (1.0 if hi >= 1 else evalue_rr(hi))
    return EValue(measure=measure, rr=rr, rr_low=lo, rr_high=hi, point=point, ci=ci)
