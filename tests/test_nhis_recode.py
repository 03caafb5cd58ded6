"""NHIS recoding on fixture files in the 2019-2024 layout: codes, missing codes, skips, errors.

The 2017 layout (another questionnaire) has its own tests in tests/test_nhis_2017.py.

Expected values are written out here from the NCHS value labels (not read from the codebook),
so a wrong codebook entry makes these tests fail.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.data import schema
from analysis.data.nhis.codebook import NotMeasuredInYear, nhis_codebook
from analysis.data.nhis.codebook_spec import codebook_years
from analysis.data.nhis.fixtures import fixture_frame, write_fixture_csv, write_fixture_zip
from analysis.data.nhis.prepare import (
    pool_years,
    pooled_path,
    prepare_nhis,
    prepare_year,
    processed_path,
)
from analysis.data.nhis.recode import NHISDataError

YEARS = nhis_codebook().years
LAYOUT_2019_YEARS = [y for y in YEARS if y >= 2019]

# NCHS value labels, typed in from the 2021/2023/2024 NCHS input programs (see codebook refs)
SEX = {1: "male", 2: "female"}
BACK = {1: "not at all", 2: "a little", 3: "a lot", 4: "somewhere in between"}
ANXFREQ = {1: "daily", 2: "weekly", 3: "monthly", 4: "a few times a year", 5: "never"}
EDUC = {
    0: "less than high school",
    1: "less than high school",
    2: "less than high school",
    3: "high school",
    4: "high school",
    5: "some college",
    6: "some college",
    7: "some college",
    8: "college degree",
    9: "college degree",
    10: "college degree",
    11: "college degree",
}
ACTIVITY = {1: "inactive", 2: "insufficiently active", 3: "active"}
MISSING_789 = [7, 8, 9]


def num(raw: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_numeric(raw[column].replace("", np.nan))


@pytest.fixture(scope="module", params=LAYOUT_2019_YEARS)
def recoded(request, tmp_path_factory):
    year = request.param
    folder = tmp_path_factory.mktemp(f"nhis{year}")
    raw = fixture_frame(year, n=300, seed=year)
    path = write_fixture_csv(year, folder / f"adult{year % 100}.csv", frame=raw)
    result = prepare_year(year, path, out_dir=folder)
    return year, raw, result


def test_each_year_validates_and_has_exactly_its_measured_columns(recoded):
    year, raw, result = recoded
    frame = result.frame
    schema.validate(frame)
    measured = set(nhis_codebook().measured(year))
    assert set(frame.columns) - {"source"} == measured
    assert len(frame) == len(raw) == 300
    assert (frame["source"] == "nhis").all() and (frame["survey_year"] == year).all()
    on_disk = pd.read_parquet(result.path)
    pd.testing.assert_frame_equal(on_disk, frame)


def test_year_differences_are_explicit():
    book = nhis_codebook()
    assert {"back_pain_severity", "gad7_score", "chronic_pain"} <= set(book.measured(2019))
    assert "back_pain_severity" not in book.measured(2020)
    assert "gad7_score" not in book.measured(2021) and "gad7_score" in book.measured(2022)
    assert "chronic_pain" not in book.measured(2024)
    with pytest.raises(NotMeasuredInYear, match="not measured in NHIS 2022.*PAIBACK3M_A"):
        book.require_measured("back_pain_severity", 2022)
    with pytest.raises(NotMeasuredInYear, match="GAD71_A..GAD77_A.*GAD-2"):
        book.require_measured("gad7_score", 2023)
    table = book.measured_table()
    assert table.shape == (len(book.derived), len(YEARS))
    absent = table.apply(lambda col: col.str.startswith("not measured:")).to_numpy().sum()
    assert absent > 10
    assert "not measured" not in table.loc["sex"].str.cat()


def test_the_years_painanx_run_accepts_are_the_codebooks():
    """`painanx run --years` checks against the years read from the file without building the
    codebook: the same years."""
    assert codebook_years() == nhis_codebook().years == (2017, 2019, 2020, 2021, 2022, 2023, 2024)


def test_design_and_identifier_columns(recoded):
    year, raw, result = recoded
    frame = result.frame
    assert list(frame["respondent_id"]) == [f"{year}-{h}" for h in raw["HHX"]]
    np.testing.assert_allclose(frame["weight"], num(raw, "WTFA_A"))
    assert list(frame["stratum"]) == list(raw["PSTRAT"])
    assert list(frame["psu"]) == list(raw["PPSU"])


def test_codes_map_to_nchs_labels(recoded):
    year, raw, result = recoded
    f = result.frame
    sex = num(raw, "SEX_A")
    assert (f["sex"].astype(object) == sex.map(SEX)).where(sex.isin([1, 2]), True).all()
    assert f["sex"][sex.isin(MISSING_789)].isna().all()
    age = num(raw, "AGEP_A")
    valid_age = age.between(18, 85)
    np.testing.assert_array_equal(f["age"][valid_age], age[valid_age])
    assert f["age"][age.isin([97, 98, 99])].isna().all()
    educ_col = "EDUC_A" if year <= 2020 else "EDUCP_A"
    if educ_col in raw:
        educ = num(raw, educ_col)
        ok = educ.isin(list(EDUC))
        assert (f["education"].astype(object)[ok] == educ[ok].map(EDUC)).all()
        assert f["education"][educ.isin([97, 98, 99])].isna().all()
    if "anxiety_frequency" in f:
        anx = num(raw, "ANXFREQ_A")
        assert (f["anxiety_frequency"].astype(object)[anx <= 5] == anx[anx <= 5].map(ANXFREQ)).all()
        med = num(raw, "ANXMED_A")
        assert (f["anxiety_medication"][med == 1] == True).all()  # noqa: E712
        assert (f["anxiety_medication"][med == 2] == False).all()  # noqa: E712
        assert f["anxiety_medication"][med.isin(MISSING_789)].isna().all()
    if "physical_activity" in f:
        pa = num(raw, "PA18_02R_A")
        assert (f["physical_activity"].astype(object)[pa <= 3] == pa[pa <= 3].map(ACTIVITY)).all()
        assert f["physical_activity"][pa == 8].isna().all()


def test_bmi_from_public_use_height_and_weight(recoded):
    year, raw, result = recoded
    height, weight = num(raw, "HEIGHTTC_A"), num(raw, "WEIGHTLBTC_A")
    ok = height.between(59, 76) & weight.between(100, 299)
    np.testing.assert_allclose(result.frame["bmi"][ok], 703 * weight[ok] / height[ok] ** 2)
    assert result.frame["bmi"][~ok].isna().all()
    assert height.isin([96, 97, 98, 99]).any() and weight.isin([996, 997, 998, 999]).any()


def test_back_pain_with_skip_pattern(recoded):
    year, raw, result = recoded
    if "PAIBACK3M_A" not in raw:
        assert "back_pain_severity" not in result.frame
        return
    f = result.frame
    pain_freq, back = num(raw, "PAIFRQ3M_A"), num(raw, "PAIBACK3M_A")
    answered = back.isin([1, 2, 3, 4])
    assert (f["back_pain_severity"].astype(object)[answered] == back[answered].map(BACK)).all()
    # never had pain in the past 3 months -> question skipped -> no back pain
    skipped = pain_freq.eq(1)
    assert back[skipped].isna().all() and skipped.any()
    assert (f["back_pain_severity"][skipped] == "not at all").all()
    # refused/not ascertained/don't know at the gate or at the item -> missing
    assert f["back_pain_severity"][pain_freq.isin(MISSING_789)].isna().all()
    assert f["back_pain_severity"][back.isin(MISSING_789)].isna().all()
    chronic = f["chronic_pain"]
    assert (chronic[pain_freq.isin([3, 4])] == True).all()  # noqa: E712
    assert (chronic[pain_freq.isin([1, 2])] == False).all()  # noqa: E712
    assert chronic[pain_freq.isin(MISSING_789)].isna().all()
    note = [n for n in result.report.notes if n.startswith("back_pain_severity")]
    assert note == [
        f"back_pain_severity: {int(skipped.sum()):,} skipped answers filled from the skip pattern"
    ]


def test_gad7_and_phq8_scores_and_categories(recoded):
    year, raw, result = recoded
    f = result.frame
    for prefix, n_items, score_col, cat_col in (
        ("GAD7", 7, "gad7_score", "gad7_category"),
        ("PHQ8", 8, "phq8_score", "phq8_category"),
    ):
        items = [f"{prefix}{i}_A" for i in range(1, n_items + 1)]
        if items[0] not in raw:
            assert score_col not in f and cat_col not in f
            continue
        values = pd.DataFrame({c: num(raw, c) for c in items})
        complete = values.isin([1, 2, 3, 4]).all(axis=1)
        assert complete.any() and (~complete).any()
        expected = (values - 1).sum(axis=1)
        np.testing.assert_array_equal(f[score_col][complete].astype(int), expected[complete])
        assert f[score_col][~complete].isna().all()
        cut = pd.cut(
            expected[complete], [-1, 4, 9, 14, 99], labels=["none", "mild", "moderate", "severe"]
        )
        assert (f[cat_col][complete].astype(str) == cut.astype(str)).all()
        recode = num(raw, "GADCAT_A" if prefix == "GAD7" else "PHQCAT_A")
        assert f[cat_col][recode == 8].isna().all()


def test_every_missing_code_becomes_missing_and_is_counted(recoded):
    year, raw, result = recoded
    book = nhis_codebook()
    counts = result.report.to_frame()
    for name in counts.index:
        var = book.variables[name]
        values = num(raw, name) if var.kind != "text" else None
        for code, label in var.missing.items():
            n = int((values == code).sum())
            assert n >= 1, f"fixture for {year} lacks missing code {code} of {name}"
            assert counts.loc[name, f"{code} {label}"] == n


def test_zip_input_gives_the_same_frame(tmp_path):
    raw = fixture_frame(2022, n=80, seed=3)
    csv = prepare_year(
        2022, write_fixture_csv(2022, tmp_path / "adult22.csv", frame=raw), write=False
    )
    archive = write_fixture_zip(2022, tmp_path / "adult22csv.zip", frame=raw)
    zipped = prepare_year(2022, archive, write=False)
    pd.testing.assert_frame_equal(csv.frame, zipped.frame)


# ---- malformed input: every error names the file, the year and the column ----------------


def expect_error(
    tmp_path: Path, year: int, frame: pd.DataFrame, *parts: str, given: int | None = None
):
    path = write_fixture_csv(year, tmp_path / f"adult{year % 100}.csv", frame=frame)
    with pytest.raises(NHISDataError) as info:
        prepare_year(given or year, path, out_dir=tmp_path)
    message = str(info.value)
    assert str(path) in message and f"NHIS {given or year}" in message
    for part in parts:
        assert part in message, message
    assert not list(tmp_path.glob("*.parquet"))  # nothing written
    return message


def test_missing_column_is_named(tmp_path):
    frame = fixture_frame(2019, n=40).drop(columns=["PAIBACK3M_A"])
    expect_error(tmp_path, 2019, frame, "column PAIBACK3M_A", "column missing")


def test_unknown_code_is_named(tmp_path):
    frame = fixture_frame(2021, n=40)
    frame.loc[5, "SEX_A"] = "5"
    expect_error(tmp_path, 2021, frame, "column SEX_A", "e.g. [5]", "expected codes [1, 2]")


def test_out_of_range_continuous_value_is_named(tmp_path):
    frame = fixture_frame(2023, n=40)
    frame.loc[2, "AGEP_A"] = "12"
    expect_error(tmp_path, 2023, frame, "column AGEP_A", "e.g. [12]", "expected 18-85")


def test_non_numeric_value_is_named(tmp_path):
    frame = fixture_frame(2020, n=40)
    frame.loc[1, "ANXFREQ_A"] = "often"
    expect_error(tmp_path, 2020, frame, "column ANXFREQ_A", "non-numeric", "often")


def test_blank_design_value_is_named(tmp_path):
    frame = fixture_frame(2024, n=40)
    frame.loc[0, "WTFA_A"] = ""
    expect_error(tmp_path, 2024, frame, "column WTFA_A")


def test_wrong_years_layout_is_named(tmp_path):
    # a 2021 file given as 2019: no GAD-7/PHQ-8 items and EDUCP_A instead of EDUC_A
    frame = fixture_frame(2021, n=40)
    message = expect_error(tmp_path, 2021, frame, "column", "look like the 2021 layout", given=2019)
    assert "EDUC_A" in message or "GAD7" in message or "PA18_02R_A" in message


def test_wrong_survey_year_is_named(tmp_path):
    frame = fixture_frame(2022, n=40)
    frame["SRVY_YR"] = "2020"
    expect_error(tmp_path, 2022, frame, "column SRVY_YR", "[2020]", "given as 2022")


def test_empty_and_header_only_files(tmp_path):
    empty = tmp_path / "adult19.csv"
    empty.write_bytes(b"")
    with pytest.raises(NHISDataError, match=r"adult19.csv \(NHIS 2019\): the file is empty"):
        prepare_year(2019, empty)
    header_only = tmp_path / "adult20.csv"
    header_only.write_text(",".join(fixture_frame(2020, n=5).columns) + "\n")
    with pytest.raises(NHISDataError, match="adult20.csv.*header but no data rows"):
        prepare_year(2020, header_only)


def test_nchs_category_disagreeing_with_item_sum_is_an_error(tmp_path):
    frame = fixture_frame(2019, n=60)
    items = pd.DataFrame({f"GAD7{i}_A": num(frame, f"GAD7{i}_A") for i in range(1, 8)})
    row = int(np.flatnonzero(items.isin([1, 2, 3, 4]).all(axis=1).to_numpy())[0])
    frame.loc[row, "GADCAT_A"] = "4" if frame.loc[row, "GADCAT_A"] != "4" else "1"
    expect_error(tmp_path, 2019, frame, "column gad7_category", "disagree")


def test_uncertain_column_missing_from_file_is_reported_not_measured(tmp_path):
    frame = fixture_frame(2022, n=40).drop(columns=["PAIFRQ3M_A", "ANXFREQ_A"])
    result = prepare_year(
        2022, write_fixture_csv(2022, tmp_path / "adult22.csv", frame=frame), write=False
    )
    assert "chronic_pain" not in result.frame and "anxiety_frequency" not in result.frame
    assert "anxiety_medication" in result.frame
    assert any(
        "PAIFRQ3M_A (uncertain in 2022) is not in this file" in n for n in result.report.notes
    )
    assert "chronic_pain" in result.report.not_measured
    assert "not measured in 2022: chronic_pain" in result.summary()


# ---- pooling ---------------------------------------------------------------------------------


def test_pooling_divides_weights_and_separates_design_units(tmp_path):
    frames = {
        y: prepare_year(
            y, write_fixture_csv(y, tmp_path / f"a{y}.csv", n=50, seed=y), write=False
        ).frame
        for y in (2019, 2020, 2021)
    }
    pooled = pool_years(frames)
    f = pooled.frame
    assert len(f) == 150
    np.testing.assert_allclose(
        f["weight"].sum(), sum(fr["weight"].sum() for fr in frames.values()) / 3
    )
    assert f["stratum"].str.match(r"^20(19|20|21)-1\d\d$").all()
    assert f.groupby("stratum")["survey_year"].nunique().max() == 1
    # measured in some pooled years only -> dropped, and said so
    assert "back_pain_severity" not in f and pooled.dropped["back_pain_severity"] == [2019, 2021]
    assert "gad7_score" not in f and pooled.dropped["gad7_score"] == [2019, 2020]
    assert "chronic_pain" in f
    assert "weights divided by 3" in pooled.summary()
    kept = pool_years(frames, design_labels="as_released").frame
    assert set(kept["stratum"]) == {str(100 + s) for s in range(12)}
    with pytest.raises(ValueError, match="design_labels"):
        pool_years(frames, design_labels="bogus")


def test_prepare_nhis_writes_years_and_pooled_file(tmp_path):
    raw_dir, out_dir = tmp_path / "raw", tmp_path / "out"
    write_fixture_zip(2019, raw_dir / "2019" / "adult19csv.zip", n=40)
    write_fixture_csv(2021, raw_dir / "adult21.csv", n=40)
    results, pooled = prepare_nhis(
        [2021, 2019], raw_dirs=[raw_dir], out_dir=out_dir, progress=False
    )
    assert [r.year for r in results] == [2019, 2021]
    for r in results:
        assert r.path == processed_path(r.year, out_dir) and r.path.exists()
    assert (
        pooled.path
        == pooled_path([2019, 2021], out_dir)
        == out_dir / "nhis_adult_pooled_2019_2021.parquet"
    )
    back = pd.read_parquet(pooled.path)
    schema.validate(back, where=str(pooled.path))
    assert "back_pain_severity" in back  # measured in both 2019 and 2021
    assert not [p for p in out_dir.iterdir() if p.name.startswith(".")]  # no temp files left
    with pytest.raises(FileNotFoundError, match="painanx data fetch nhis --years 2023"):
        prepare_nhis([2023], raw_dirs=[raw_dir], out_dir=out_dir, progress=False)


def test_load_nhis_reads_prepared_years_and_pools(tmp_path):
    from analysis.data.nhis.fixtures import write_fixture_csv
    from analysis.data.nhis.prepare import load_nhis, prepare_year

    for year in (2019, 2021):
        csv = write_fixture_csv(year, tmp_path / f"adult{year % 100}.csv", n=120, seed=year)
        prepare_year(year, csv, out_dir=tmp_path)
    one = load_nhis([2019], out_dir=tmp_path)
    assert len(one) == 120 and set(one["survey_year"]) == {2019}
    both = load_nhis(None, out_dir=tmp_path)
    assert len(both) == 240
    # pooled weights are divided by the number of years; strata stay distinct per year
    assert both["weight"].sum() == pytest.approx(
        (one["weight"].sum() + load_nhis([2021], out_dir=tmp_path)["weight"].sum()) / 2
    )
    assert both["stratum"].astype(str).str.startswith(("2019-", "2021-")).all()
    with pytest.raises(FileNotFoundError, match="nhis_adult_2022.parquet"):
        load_nhis([2022], out_dir=tmp_path)
