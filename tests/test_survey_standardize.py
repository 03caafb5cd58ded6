"""Direct standardisation agrees with R survey's svystandardize to 1e-6, and refuses bad input.

The reference numbers were written by tests/reference/make_standardize.R (committed with the
values); R is never run here.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
from reference_designs import DESIGNS, REFERENCE, data

from analysis.survey import (
    DomainEstimates,
    Estimate,
    SurveyDesign,
    SurveyDesignError,
    direct_standardize,
)

RTOL = 1e-6


@functools.cache
def reference() -> pd.DataFrame:
    ref = pd.read_csv(REFERENCE / "standardize_reference.csv", keep_default_na=False, dtype=str)
    ref["value"] = ref["value"].astype(float)
    return ref


def design(name: str) -> SurveyDesign:
    return SurveyDesign(data(name), label=name, **DESIGNS[name])


def population(text: str) -> dict[str, float]:
    return {k: float(v) for k, v in (part.split("=", 1) for part in text.split(";"))}


@pytest.mark.parametrize("case", list(dict.fromkeys(reference()["case"])))
def test_matches_r_svystandardize(case):
    rows = reference()[reference()["case"] == case]
    spec = rows.iloc[0]
    result = direct_standardize(
        design(spec.design),
        spec.variable,
        by=spec.by,
        population=population(spec.population),
        over=spec.over or None,
        level=spec.level or None,
    )
    for domain, expected in rows.groupby("domain", sort=False):
        values = dict(zip(expected["quantity"], expected["value"], strict=True))
        if spec.over:
            assert isinstance(result, DomainEstimates)
            key = domain if isinstance(result.domains.iloc[0, 0], str) else int(domain)
            est = result[key]
        else:
            assert isinstance(result, Estimate)
            est = result
        assert est.value == pytest.approx(values["estimate"], rel=RTOL, abs=0)
        assert est.std_error == pytest.approx(values["se"], rel=RTOL, abs=0)
        assert est.df == int(values["df"])


def test_is_the_standard_weighted_average_of_group_estimates():
    d = design("nhanes")
    shares = {"(0,19]": 1, "(19,39]": 2, "(39,59]": 3, "(59,Inf]": 4}
    result = direct_standardize(d, "HI_CHOL", by="agecat", population=shares)
    by_age = d.mean("HI_CHOL", by="agecat")
    expected = sum(by_age[k].value * v / 10 for k, v in shares.items())
    assert result.value == pytest.approx(expected, rel=1e-12)
    assert result.statistic == "proportion" and "standardised over agecat" in result.summary()
    assert result.n_missing == int(data("nhanes")["HI_CHOL"].isna().sum())


def test_bad_input_is_refused():
    d = design("nhanes")
    with pytest.raises(SurveyDesignError, match=r"missing \['\(59,Inf\]'\]"):
        direct_standardize(
            d, "HI_CHOL", by="agecat", population={"(0,19]": 1, "(19,39]": 1, "(39,59]": 1}
        )
    with pytest.raises(SurveyDesignError, match="not in the data \\['old'\\]"):
        direct_standardize(
            d,
            "HI_CHOL",
            by="agecat",
            population={"(0,19]": 1, "(19,39]": 1, "(39,59]": 1, "(59,Inf]": 1, "old": 1},
        )
    with pytest.raises(SurveyDesignError, match="positive"):
        direct_standardize(
            d,
            "HI_CHOL",
            by="agecat",
            population={"(0,19]": 0, "(19,39]": 1, "(39,59]": 1, "(59,Inf]": 1},
        )
    with pytest.raises(SurveyDesignError, match="'nope' is not in the data"):
        direct_standardize(d, "nope", by="agecat", population={})
    frame = data("nhanes").assign(agecat=lambda f: f["agecat"].where(f.index != 3))
    broken = SurveyDesign(frame, **DESIGNS["nhanes"])
    with pytest.raises(SurveyDesignError, match="have no agecat"):
        direct_standardize(
            broken,
            "RIAGENDR",
            by="agecat",
            population={"(0,19]": 1, "(19,39]": 1, "(39,59]": 1, "(59,Inf]": 1},
        )
    text = data("nhanes").assign(race=lambda f: f["race"].astype(str))
    with pytest.raises(SurveyDesignError, match="pass level="):
        direct_standardize(
            SurveyDesign(text, **DESIGNS["nhanes"]), "race", by="agecat", population={}
        )
    averaged = SurveyDesign(data("nhanes"), lonely_psu="average", **DESIGNS["nhanes"])
    with pytest.raises(SurveyDesignError, match="average"):
        direct_standardize(averaged, "HI_CHOL", by="agecat", population={})


def test_a_group_absent_from_a_domain_renormalises_with_a_note():
    frame = data("apiclus1")
    d = SurveyDesign(
        frame[~((frame["stype"] == "H") & (frame["both"] == "Yes"))], **DESIGNS["apiclus1"]
    )
    result = direct_standardize(
        d, "api00", by="stype", population={"E": 5, "H": 3, "M": 2}, over="both"
    )
    assert any("stype=H in both=Yes" in note for note in result.notes)
    assert np.isfinite(result.estimate).all()
