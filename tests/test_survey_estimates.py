"""Design-based estimates agree with R survey 4.1.1 to 1e-6 relative, and bad input is refused.

The reference numbers were written by tests/reference/make_survey_estimates.R (committed with
the values); R is never run here. Each reference case is rebuilt from the columns that describe
it, estimated with analysis.survey, and every number of it (estimate, SE, CI bounds, design
effects, covariances, differences, prevalence ratios) compared.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
from reference_designs import DESIGNS, REFERENCE, data

from analysis.survey import (
    DomainEstimates,
    EmptyDomainError,
    Estimate,
    LonelyPSUError,
    PrevalenceRatio,
    SurveyDesign,
    SurveyDesignError,
)

RTOL = 1e-6


@functools.cache
def reference() -> pd.DataFrame:
    ref = pd.read_csv(
        REFERENCE / "survey_estimates_reference.csv", keep_default_na=False, dtype=str
    )
    ref["value"] = ref["value"].astype(float)
    return ref


def make_design(name: str, policy: str, categorical: str | None = None) -> SurveyDesign:
    frame = data(name)
    if categorical:  # R's factor(x): the share in each level
        frame = frame.assign(**{categorical: frame[categorical].astype("category")})
    return SurveyDesign(frame, lonely_psu=policy, label=name, **DESIGNS[name])


def case_ids() -> list[tuple[str, str, str]]:
    ref = reference()
    return list(dict.fromkeys(zip(ref.design, ref.lonely_psu, ref.case, strict=True)))


def _parse(value: str, column: pd.Series):
    return float(value) if pd.api.types.is_numeric_dtype(column) else value


def estimate_case(spec: pd.Series):
    """Rebuild one reference case with analysis.survey."""
    categorical = spec.variable if spec.categorical == "TRUE" else None
    design = make_design(spec.design, spec.lonely_psu, categorical)
    kwargs = {}
    if spec.by:
        kwargs["by"] = spec.by.split("+")
    if spec.domain_column:
        column = design.data[spec.domain_column]
        kwargs["domain"] = (spec.domain_column, _parse(spec.domain_value, column))
    if spec.kind == "ratio":
        return design.ratio(spec.variable, spec.ratio_denominator, **kwargs)
    if spec.kind == "proportion":
        level = _parse(spec.level, design.data[spec.variable]) if spec.level else None
        return design.proportion(spec.variable, level=level, **kwargs)
    return getattr(design, spec.kind)(spec.variable, **kwargs)


def domain_key(result: DomainEstimates, text: str) -> tuple:
    for key in result.keys:
        if "|".join(str(v) for v in key) == text:
            return key
    raise AssertionError(f"domain {text!r} missing from {result.keys}")


def python_values(result, rows: pd.DataFrame) -> np.ndarray:
    """The Python number for each reference row of one case."""
    out = []
    for row in rows.itertuples():
        kind = row.kind.rsplit("_", 1)[-1] if "_" in row.kind else row.kind
        if kind == "difference":
            diff = result.difference(domain_key(result, row.key), domain_key(result, row.key2))
            frame = diff.to_frame().iloc[0]
            out.append(frame[row.quantity])
        elif kind == "ratio" and row.kind.endswith("_ratio"):
            pr = result.prevalence_ratio(domain_key(result, row.key), domain_key(result, row.key2))
            low, high = pr.ci()
            out.append(
                {
                    "log_ratio": pr.log_ratio,
                    "se_log": pr.se_log,
                    "ratio": pr.ratio,
                    "se": pr.se,
                    "ci_low": low,
                    "ci_high": high,
                }[row.quantity]
            )
        elif isinstance(result, Estimate):
            frame = result.to_frame()
            i = 0 if row.term == "" else list(result.terms).index(row.term)
            out.append(frame.iloc[i][row.quantity])
        else:
            k = len(result.terms)
            d = result.keys.index(domain_key(result, row.key))
            j = 0 if row.term == "" else list(result.terms).index(row.term)
            if row.quantity == "cov":
                d2 = result.keys.index(domain_key(result, row.key2))
                j2 = 0 if row.term2 == "" else list(result.terms).index(row.term2)
                out.append(result.covariance[d * k + j, d2 * k + j2])
            else:
                frame = result.to_frame()
                out.append(frame.iloc[d * k + j][row.quantity])
    return np.asarray(out, dtype=float)


def relative_differences(rows: pd.DataFrame, values: np.ndarray) -> np.ndarray:
    ref = rows.value.to_numpy()
    # a reference of exactly 0 (e.g. a covariance that vanishes) is compared on the scale of
    # the largest number of the same quantity in the case
    scale = rows.groupby("quantity").value.transform(lambda v: v.abs().max()).to_numpy()
    denom = np.maximum(np.abs(ref), 1e-12 * scale)
    return np.abs(values - ref) / np.where(denom > 0, denom, 1.0)


@pytest.mark.parametrize("design_name,policy,case", case_ids(), ids="/".join)
def test_agrees_with_r_survey(design_name, policy, case):
    ref = reference()
    rows = ref[(ref.design == design_name) & (ref.lonely_psu == policy) & (ref.case == case)]
    spec = rows.iloc[0]
    result = estimate_case(spec)
    assert result.df == int(spec.df)
    values = python_values(result, rows)
    rel = relative_differences(rows, values)
    worst = int(np.argmax(rel))
    assert rel.max() <= RTOL, (
        f"{rows.iloc[worst].quantity} {rows.iloc[worst].key}/{rows.iloc[worst].term}: "
        f"python {values[worst]!r} vs R {rows.iloc[worst].value!r} (rel {rel[worst]:.2e})"
    )


def test_reference_covers_every_design_policy_and_quantity():
    ref = reference()
    assert set(ref.design) == set(DESIGNS)
    assert set(ref[ref.design == "lonely_design"].lonely_psu) == {
        "certainty",
        "remove",
        "adjust",
        "average",
    }
    assert {
        "estimate",
        "se",
        "ci_low",
        "ci_high",
        "deff",
        "deff_replace",
        "cov",
        "logit_ci_low",
        "log_ratio",
        "se_log",
    } <= set(ref.quantity)
    assert {
        "mean",
        "proportion",
        "total",
        "ratio",
        "proportion_difference",
        "proportion_ratio",
    } <= set(ref.kind)
    assert len(ref) > 2500


def test_average_policy_domain_se_differs_from_covariance_as_in_r():
    """Under 'average' R's svyby SE counts a domain's own strata, its covmat all strata."""
    design = make_design("lonely_design", "average")
    by = design.mean("tension", by="anxiety")
    cov_se = np.sqrt(np.diag(by.covariance))
    assert by.se[0, 0] == pytest.approx(cov_se[0], rel=1e-12)  # anxiety 0: in every stratum
    assert by.se[3, 0] < cov_se[3] * 0.99  # anxiety 3: in 32 of 40 strata


def test_lonely_design_fails_under_default_policy_like_r():
    with pytest.raises(LonelyPSUError, match=r"stratum column 'stratum': 5 stratum/strata"):
        SurveyDesign(data("lonely_design"), weight="weight", strata="stratum", psu="psu", nest=True)


# ------------------------------------------------------------------------------ result objects
@pytest.fixture(scope="module")
def nhanes() -> SurveyDesign:
    return make_design("nhanes", "fail")


def test_estimate_summary_and_frame(nhanes):
    est = nhanes.proportion("HI_CHOL")
    assert isinstance(est, Estimate)
    text = est.summary()
    assert "proportion of HI_CHOL" in text
    assert "745 with missing value left out" in text
    frame = est.to_frame()
    assert list(frame.columns[:6]) == [
        "estimate",
        "se",
        "ci_low",
        "ci_high",
        "logit_ci_low",
        "logit_ci_high",
    ]
    assert frame.loc["HI_CHOL", "n_obs"] == 8591 - 745
    assert est.value == pytest.approx(frame.loc["HI_CHOL", "estimate"])
    wide = est.to_frame(level=0.99)
    assert wide.loc["HI_CHOL", "ci_low"] < frame.loc["HI_CHOL", "ci_low"]
    assert est.ci(method="logit").shape == (1, 2)


def test_domain_estimates_objects(nhanes):
    by = nhanes.proportion("HI_CHOL", by="RIAGENDR")
    assert isinstance(by, DomainEstimates)
    assert by.keys == [(1,), (2,)]
    one = by[2]
    assert isinstance(one, Estimate)
    assert one.value == pytest.approx(by.estimate[1, 0])
    assert one.domain == "RIAGENDR=2"
    pr = by.prevalence_ratio(2, 1)
    assert isinstance(pr, PrevalenceRatio)
    assert pr.ratio == pytest.approx(by.estimate[1, 0] / by.estimate[0, 0])
    assert "Prevalence ratio of HI_CHOL: RIAGENDR=2 vs RIAGENDR=1" in pr.summary()
    assert pr.to_frame().loc["HI_CHOL", "ci_low"] == pytest.approx(pr.ci()[0])
    diff = by.difference(2, 1)
    assert diff.value == pytest.approx(by.estimate[1, 0] - by.estimate[0, 0])
    assert "RIAGENDR" in by.summary()
    frame = by.to_frame()
    assert list(frame.columns[:3]) == ["RIAGENDR", "term", "estimate"]
    with pytest.raises(KeyError, match="no domain RIAGENDR=3"):
        by[3]


def test_design_prevalence_ratio_shortcut(nhanes):
    pr = nhanes.prevalence_ratio("HI_CHOL", by="RIAGENDR", numerator=2, denominator=1)
    direct = nhanes.proportion("HI_CHOL", by="RIAGENDR").prevalence_ratio(2, 1)
    assert pr.log_ratio == direct.log_ratio
    assert pr.se_log == direct.se_log


def test_domain_estimate_equals_by_estimate(nhanes):
    by = nhanes.proportion("HI_CHOL", by="agecat")
    one = nhanes.proportion("HI_CHOL", domain=nhanes.data.agecat == "(39,59]")
    assert one.value == pytest.approx(by["(39,59]"].value, rel=1e-12)
    assert one.std_error == pytest.approx(by["(39,59]"].std_error, rel=1e-12)


# ---------------------------------------------------------------------------------- bad input
def lonely_design(frame, **kwargs) -> SurveyDesign:
    args = {"weight": "weight", "strata": "stratum", "psu": "psu", "nest": True}
    args.update(kwargs)
    args.setdefault("lonely_psu", "adjust")
    return SurveyDesign(frame, **args)


def test_missing_weights_named_and_counted(lonely):
    frame = lonely.copy()
    frame.loc[[3, 10, 11], "weight"] = np.nan
    with pytest.raises(SurveyDesignError, match=r"weight column 'weight': 3 missing value"):
        lonely_design(frame)


def test_non_positive_weights_named_and_counted(lonely):
    frame = lonely.copy()
    frame.loc[[0, 1], "weight"] = [0.0, -2.0]
    with pytest.raises(SurveyDesignError, match=r"weight column 'weight': 2 non-positive"):
        lonely_design(frame)


def test_non_numeric_weights(lonely):
    frame = lonely.astype({"weight": object})
    frame.loc[5, "weight"] = "heavy"
    with pytest.raises(SurveyDesignError, match=r"weight column 'weight': 1 non-numeric"):
        lonely_design(frame)


def test_missing_strata_and_psu(lonely):
    frame = lonely.astype({"stratum": "Int64", "psu": "Int64"})
    frame.loc[[1, 2], "stratum"] = pd.NA
    with pytest.raises(SurveyDesignError, match=r"stratum column 'stratum': 2 missing"):
        lonely_design(frame)
    frame = lonely.astype({"psu": "Int64"})
    frame.loc[[7], "psu"] = pd.NA
    with pytest.raises(SurveyDesignError, match=r"PSU column 'psu': 1 missing"):
        lonely_design(frame)


def test_psu_labels_reused_without_nest(lonely):
    with pytest.raises(SurveyDesignError, match=r"PSU column 'psu': 4 PSU label\(s\).*nest=True"):
        lonely_design(lonely, nest=False)


def test_unknown_columns(lonely):
    design = lonely_design(lonely)
    with pytest.raises(SurveyDesignError, match=r"variable column 'tensoin' is not in the data"):
        design.mean("tensoin")
    with pytest.raises(SurveyDesignError, match=r"by column 'sex' is not in the data"):
        design.mean("tension", by="sex")
    with pytest.raises(SurveyDesignError, match=r"weight column 'w' is not in the data"):
        lonely_design(lonely, weight="w")


def test_non_binary_proportion(lonely):
    design = lonely_design(lonely)
    with pytest.raises(
        SurveyDesignError, match=r"column 'anxiety' is not binary: \d+ value\(s\) other than 0/1"
    ):
        design.proportion("anxiety")
    # the remedies the message offers work
    share = _share(lonely, "anxiety", 3)
    assert design.proportion("anxiety", level=3).value == pytest.approx(share, rel=1e-12)
    levels = lonely_design(lonely.astype({"anxiety": "category"})).proportion("anxiety")
    assert levels.terms == ("0", "1", "2", "3")
    assert levels.estimate[3] == pytest.approx(share, rel=1e-12)
    with pytest.raises(SurveyDesignError, match=r"column 'anxiety' has no value 7"):
        design.proportion("anxiety", level=7)


def _share(frame, column, value):
    return float((frame.weight * (frame[column] == value)).sum() / frame.weight.sum())


def test_mean_of_text_column_points_to_proportion():
    design = make_design("apistrat", "fail")
    with pytest.raises(SurveyDesignError, match=r"column 'sch.wide' is .*use proportion\(\)"):
        design.mean("sch.wide")


def test_empty_domains(lonely):
    design = lonely_design(lonely)
    with pytest.raises(
        EmptyDomainError, match=r"domain 'old \(mask\)' has no observations \(0 of 1827"
    ):
        design.mean("tension", domain=(lonely.age > 200).rename("old"))
    frame = lonely.assign(x=np.where(lonely.female == 1, np.nan, lonely.tension))
    design = lonely_design(frame)
    with pytest.raises(
        EmptyDomainError, match=r"1 domain\(s\) of \['female'\] \(e.g. female=1\): no observation "
    ):
        design.mean("x", by="female")


def test_clusters_sharing_a_domain_with_a_missing_by_value(lonely):
    frame = lonely.astype({"female": "Int64"})
    frame.loc[:9, "female"] = pd.NA
    by = lonely_design(frame).proportion("pain_any", by="female")
    assert by.n_no_domain == 10
    assert int(by.n_obs.sum()) == len(frame) - 10


def test_schema_dtypes_give_the_same_numbers(lonely):
    """Nullable boolean/Int64, string and categorical columns (the tidy schema's dtypes) are
    handled like their plain numpy equivalents, missing values included."""
    plain = lonely.assign(
        pain_any=lonely.pain_any.astype(float),
        visits=lonely.visits.astype(float),
        sex=np.where(lonely.female == 1, "female", "male"),
    )
    plain.loc[[4, 40, 400], ["pain_any", "visits"]] = np.nan
    schema = plain.assign(
        pain_any=plain.pain_any.astype("boolean"),
        visits=plain.visits.astype("Int64"),
        sex=plain.sex.astype("string"),
        anxiety=pd.Categorical(plain.anxiety, categories=[0, 1, 2, 3, 4], ordered=True),
    )
    a, b = lonely_design(plain), lonely_design(schema)
    pa, pb = a.proportion("pain_any", by="sex"), b.proportion("pain_any", by="sex")
    np.testing.assert_array_equal(pa.estimate, pb.estimate)
    np.testing.assert_array_equal(pa.covariance, pb.covariance)
    assert pa.n_missing == pb.n_missing == 3
    ma = a.mean("visits", domain=("sex", "female"))
    mb = b.mean("visits", domain=("sex", "female"))
    assert (ma.value, ma.std_error) == (mb.value, mb.std_error)
    # an unused category is not a domain (R drop.empty.groups) but is a level of a proportion
    assert b.mean("visits", by="anxiety").keys == [(0,), (1,), (2,), (3,)]
    assert b.proportion("anxiety").terms == ("0", "1", "2", "3", "4")
    assert b.proportion("anxiety").estimate[4] == 0
    with pytest.raises(EmptyDomainError, match=r"no row of column 'sex' equals 'other'"):
        b.mean("visits", domain=("sex", "other"))
