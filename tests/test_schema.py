"""The tidy respondent schema: good frames pass, bad frames fail with a message naming the column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.data import schema


def good_frame(n: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    gad = pd.Series(rng.integers(0, 22, n), dtype="Int64")
    return pd.DataFrame(
        {
            "source": pd.Series(["synthetic"] * n, dtype="string"),
            "survey_year": pd.Series([2019] * n, dtype="Int64"),
            "respondent_id": pd.Series([f"r{i}" for i in range(n)], dtype="string"),
            "weight": rng.uniform(100, 2000, n),
            "stratum": pd.Series(["1"] * n, dtype="string"),
            "psu": pd.Series(["1", "2"] * (n // 2), dtype="string"),
            "age": rng.uniform(18, 85, n),
            "sex": pd.Categorical(["female", "male"] * (n // 2), categories=["female", "male"]),
            "back_pain_severity": pd.Series(
                ["not at all", "a lot", "a little", None, "somewhere in between", "a lot"][:n],
                dtype=schema.categorical_dtype("back_pain_severity"),
            ),
            "gad7_score": gad,
            "gad7_category": schema.gad7_category(gad),
        }
    )


def test_good_frame_passes():
    df = good_frame()
    out = schema.validate(df)
    assert list(out.columns) == list(df.columns)


def test_absent_optional_column_is_not_measured_not_missing():
    df = good_frame()
    assert not schema.is_measured(df, "muscle_tension")
    assert "gad7_score" in schema.measured_columns(df)
    with pytest.raises(
        schema.NotMeasuredError, match="'muscle_tension' is not measured in source 'synthetic'"
    ):
        schema.require_measured(df, "gad7_score", "muscle_tension")


@pytest.mark.parametrize(
    ("column", "bad_value", "expected"),
    [
        ("weight", -1.0, "column 'weight'"),
        ("weight", np.nan, "column 'weight'"),
        ("age", 7.0, "column 'age'"),
    ],
)
def test_bad_values_name_the_column(column, bad_value, expected):
    df = good_frame()
    df.loc[2, column] = bad_value
    with pytest.raises(schema.SchemaValidationError, match=expected) as info:
        schema.validate(df, where="data/processed/example.parquet")
    assert "data/processed/example.parquet" in str(info.value)


def test_gad7_out_of_range_is_rejected():
    df = good_frame()
    df["gad7_score"] = pd.Series([0, 5, 22, 3, 1, 2], dtype="Int64")
    with pytest.raises(schema.SchemaValidationError, match="column 'gad7_score'"):
        schema.validate(df)


def test_wrong_category_levels_are_rejected():
    df = good_frame()
    df["back_pain_severity"] = pd.Categorical(["no", "yes"] * 3)
    with pytest.raises(schema.SchemaValidationError, match="column 'back_pain_severity'"):
        schema.validate(df)


def test_missing_required_design_column_is_rejected():
    df = good_frame().drop(columns=["psu"])
    with pytest.raises(schema.SchemaValidationError, match="psu"):
        schema.validate(df)


@pytest.mark.parametrize(
    ("score", "category"),
    [
        (0, "none"),
        (4, "none"),
        (5, "mild"),
        (9, "mild"),
        (10, "moderate"),
        (14, "moderate"),
        (15, "severe"),
        (21, "severe"),
    ],
)
def test_gad7_cutpoints(score, category):
    out = schema.gad7_category(pd.Series([score], dtype="Int64"))
    assert out.iloc[0] == category
    assert out.dtype == schema.categorical_dtype("gad7_category")


def test_phq8_missing_stays_missing():
    out = schema.phq8_category(pd.Series([pd.NA, 12], dtype="Int64"))
    assert pd.isna(out.iloc[0]) and out.iloc[1] == "moderate"


def test_every_column_documented():
    for spec in schema.column_specs().values():
        assert spec.description, spec.name
        if spec.dtype == "category":
            assert spec.levels, spec.name
