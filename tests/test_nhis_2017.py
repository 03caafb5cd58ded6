"""NHIS 2017: its layout and codes, bad input, three ways in, the committed extract, DB 325.

Fixture files (random values in the 2017 samadult.csv layout) test the rules; expected values
are typed in here from the NCHS 2017 SAS input program (not read from the codebook), so a wrong
codebook entry fails. The real 2017 file is ../shared/data/nhis/2017/ (see its README): the
tests that need it say so when it is absent; the extract committed in data/nhis/ is real data
too and is always there.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from analysis.cli import app
from analysis.core import paths
from analysis.data import load, schema
from analysis.data.nhis.codebook import nhis_codebook
from analysis.data.nhis.fetch import Registry, fetch_nhis_year
from analysis.data.nhis.fixtures import fixture_frame, write_fixture_csv
from analysis.data.nhis.prepare import (
    default_raw_dirs,
    embedded_dir,
    find_year_file,
    load_nhis,
    prepare_nhis,
    prepare_year,
)
from analysis.data.nhis.recode import NHISDataError
from analysis.models.published_figures import compare_with_published, design_estimator

SHARED = paths.project_root().parent / "shared" / "data" / "nhis" / "2017"
SHARED_FILE = SHARED / "nhis2017_adult_merged.csv.gz"
EXTRACT = embedded_dir() / "nhis_adult_2017.parquet"
ROWS, WEIGHT_TOTAL = 26_742, 246.7e6  # NCHS 2017 sample adult file

needs_shared = pytest.mark.skipif(
    not SHARED_FILE.is_file(),
    reason=f"the real NHIS 2017 file is not at {SHARED_FILE} (see ../shared/README.md)",
)

# NCHS value labels typed in from the 2017 SAS program (SAP664X, SAP013X, PEP560X ...)
K6_POINTS = {1: 4, 2: 3, 3: 2, 4: 1, 5: 0}  # all of the time = 4 ... none of the time = 0
NERVOUS = {1: "all of the time", 2: "most", 3: "some", 4: "a little", 5: "none of the time"}
K6 = ["ASISAD", "ASINERV", "ASIRSTLS", "ASIHOPLS", "ASIEFFRT", "ASIWTHLS"]
SEX = {1: "male", 2: "female"}


def num(raw: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_numeric(raw[column].replace("", np.nan))


@pytest.fixture(scope="module")
def fixture_2017(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nhis2017")
    raw = fixture_frame(2017, n=400, seed=17)
    path = write_fixture_csv(2017, folder / "samadult.csv", frame=raw)
    return raw, prepare_year(2017, path, write=False, full_file=False)


# ---- layout and codes (fixtures) ----------------------------------------------------------


def test_2017_measures_its_own_columns_and_never_the_2019_ones(fixture_2017):
    raw, result = fixture_2017
    frame = schema.validate(result.frame)
    assert set(frame.columns) - {"source"} == set(nhis_codebook().measured(2017))
    for absent in ("gad7_score", "gad7_category", "back_pain_severity", "chronic_pain"):
        assert absent not in frame and absent in result.report.not_measured
    assert (frame["survey_year"] == 2017).all() and len(frame) == 400
    assert "K6 distress items" in result.report.not_measured["gad7_score"]


def test_k6_score_distress_nervousness_and_depression_proxy(fixture_2017, tmp_path):
    raw, result = fixture_2017
    f = result.frame
    items = pd.DataFrame({c: num(raw, c) for c in K6})
    complete = items.isin([1, 2, 3, 4, 5]).all(axis=1)
    assert complete.any() and (~complete).any()
    expected = items.apply(lambda col: col.map(K6_POINTS)).sum(axis=1)
    np.testing.assert_array_equal(f["k6_score"][complete].astype(int), expected[complete])
    assert f["k6_score"][~complete].isna().all()
    spd = f["serious_psychological_distress"]
    assert (spd[complete] == (expected[complete] >= 13)).all() and spd[~complete].isna().all()
    nerv = num(raw, "ASINERV")
    ok = nerv.isin(NERVOUS)
    assert (f["nervous_frequency"].astype(object)[ok] == nerv[ok].map(NERVOUS)).all()
    assert f["nervous_frequency"][nerv.isin([7, 8, 9])].isna().all()
    mood = pd.DataFrame({c: num(raw, c) for c in ("ASISAD", "ASIHOPLS", "ASIWTHLS")})
    most = mood.isin([1, 2]).any(axis=1)
    none = mood.isin([3, 4, 5]).all(axis=1)
    proxy = f["depressed_mood_most_plus"]
    assert (proxy[most] == True).all() and (proxy[none & ~most] == False).all()  # noqa: E712
    assert proxy[~most & ~none].isna().all()
    # the proxy never looks at the nervousness item
    changed = write_fixture_csv(2017, tmp_path / "samadult.csv", frame=raw.assign(ASINERV="1"))
    again = prepare_year(2017, changed, write=False, full_file=False).frame
    pd.testing.assert_series_equal(again["depressed_mood_most_plus"], proxy)


def test_codes_map_to_nchs_labels_2017(fixture_2017):
    raw, result = fixture_2017
    f = result.frame
    assert (f["sex"].astype(object) == num(raw, "SEX").map(SEX)).all()
    np.testing.assert_array_equal(f["age"], num(raw, "AGE_P"))
    bmi = num(raw, "BMI")
    ok = bmi.between(1000, 9995)
    np.testing.assert_allclose(f["bmi"][ok], bmi[ok] / 100)
    assert f["bmi"][bmi == 9999].isna().all() and (bmi == 9999).any()
    educ = num(raw, "EDUC1")
    levels = f["education"].astype(object)
    assert (levels[educ <= 12] == "less than high school").all()
    assert (levels[educ.isin([13, 14])] == "high school").all()
    assert (levels[educ.isin([15, 16, 17])] == "some college").all()
    assert (levels[educ.between(18, 21)] == "college degree").all()
    assert levels[educ.isin([97, 98, 99])].isna().all()
    hisp, race = num(raw, "HISPAN_I"), num(raw, "MRACRPI2")
    eth = f["race_ethnicity"].astype(object)
    assert (eth[hisp < 12] == "Hispanic").all()
    assert (eth[(hisp == 12) & (race == 2)] == "non-Hispanic Black").all()
    assert (eth[(hisp == 12) & race.isin([9, 10, 11, 15])] == "non-Hispanic Asian").all()
    assert (
        eth[(hisp == 12) & race.isin([3, 16, 17])] == "non-Hispanic other or multiple race"
    ).all()
    income = num(raw, "RAT_CAT5")
    inc = f["family_income"].astype(object)
    assert (inc[income.isin([1, 2, 3, 15])] == "below 1.00").all()
    assert (inc[income.isin([12, 13, 14, 18])] == "4.00 or more").all()
    assert inc[income.isin([96, 99])].isna().all()
    lb, leg = num(raw, "PAINLB"), num(raw, "PAINLEG")
    assert (f["low_back_pain_3m"][lb == 1] == True).all()  # noqa: E712
    assert f["low_back_pain_3m"][lb.isin([7, 8, 9])].isna().all()
    # PAINLEG is asked only with low back pain; without it, no pain spreading to the leg
    assert leg[lb != 1].isna().all()
    assert (f["low_back_pain_to_leg_3m"][lb == 2] == False).all()  # noqa: E712
    assert (f["low_back_pain_to_leg_3m"][leg == 1] == True).all()  # noqa: E712
    assert f["low_back_pain_to_leg_3m"][lb.isin([7, 8, 9]) | leg.isin([7, 8, 9])].isna().all()


def test_physical_activity_from_frequency_and_duration(tmp_path):
    # (MODFREQW, MODMIN, VIGFREQW, VIGMIN) -> category; 95 never, 96 unable, 0 < weekly
    cases = [
        (("95", "", "95", ""), "inactive"),
        (("96", "", "95", ""), "inactive"),
        (("0", "30", "95", ""), "insufficiently active"),
        (("3", "30", "95", ""), "insufficiently active"),  # 90 minutes
        (("5", "30", "95", ""), "active"),  # 150 minutes
        (("95", "", "2", "40"), "active"),  # 2 x 80 = 160 moderate-equivalent
        (("95", "", "2", "30"), "insufficiently active"),  # 120
        (("2", "30", "1", "30"), "insufficiently active"),  # 60 + 2 x 30 = 120
        (("99", "", "95", ""), None),  # unknown moderate could be anything
        (("7", "30", "97", ""), "active"),  # 210 moderate minutes stand whatever vigorous is
        (("3", "999", "95", ""), None),
    ]
    raw = fixture_frame(2017, n=len(cases), seed=3, every_missing_code=False)
    for i, (values, _) in enumerate(cases):
        raw.loc[i, ["MODFREQW", "MODMIN", "VIGFREQW", "VIGMIN"]] = list(values)
    result = prepare_year(
        2017,
        write_fixture_csv(2017, tmp_path / "samadult.csv", frame=raw),
        write=False,
        full_file=False,
    )
    got = (
        result.frame["physical_activity"]
        .astype(object)
        .where(result.frame["physical_activity"].notna(), None)
    )
    assert list(got) == [expected for _, expected in cases]


def test_identifiers_drop_leading_zeros_and_must_be_unique(tmp_path):
    raw = fixture_frame(2017, n=30, seed=5)
    frame = prepare_year(
        2017, write_fixture_csv(2017, tmp_path / "a.csv", frame=raw), write=False, full_file=False
    ).frame
    expected = [
        f"2017-{int(h)}-{int(m)}-{int(p)}"
        for h, m, p in zip(raw.HHX, raw.FMX, raw.FPX, strict=True)
    ]
    assert list(frame["respondent_id"]) == expected
    raw.loc[1, ["HHX", "FMX", "FPX"]] = raw.loc[0, ["HHX", "FMX", "FPX"]].to_numpy()
    raw.loc[1, "HHX"] = raw.loc[1, "HHX"].lstrip("0")  # 000123 and 123 are one household
    path = write_fixture_csv(2017, tmp_path / "b.csv", frame=raw)
    with pytest.raises(NHISDataError, match="HHX\\+FMX\\+FPX.*duplicated identifiers"):
        prepare_year(2017, path, write=False, full_file=False)


def test_srvy_yr_is_optional_in_2017_but_checked_when_present(tmp_path):
    raw = fixture_frame(2017, n=20, seed=6)
    without = prepare_year(
        2017,
        write_fixture_csv(2017, tmp_path / "a.csv", frame=raw.drop(columns=["SRVY_YR"])),
        write=False,
        full_file=False,
    )
    assert (without.frame["survey_year"] == 2017).all()
    assert any(n.startswith("SRVY_YR is not in this file") for n in without.report.notes)
    wrong = raw.assign(SRVY_YR="2016")
    with pytest.raises(NHISDataError, match="SRVY_YR.*\\[2016\\].*given as 2017"):
        prepare_year(2017, write_fixture_csv(2017, tmp_path / "b.csv", frame=wrong), write=False)


def test_samadult_alone_has_no_education_or_income(tmp_path):
    """NCHS's samadult.csv lacks the person/family columns: not measured, and why."""
    raw = fixture_frame(2017, n=20, seed=7).drop(columns=["EDUC1", "RAT_CAT5"])
    result = prepare_year(
        2017,
        write_fixture_csv(2017, tmp_path / "samadult.csv", frame=raw),
        write=False,
        full_file=False,
    )
    assert "education" not in result.frame and "family_income" not in result.frame
    assert "person file" in result.report.not_measured["education"]
    assert "family file" in result.report.not_measured["family_income"]


# ---- bad input: an error naming the file, nothing written -----------------------------------


def expect_refused(path: Path, out_dir: Path, *parts: str) -> str:
    with pytest.raises(NHISDataError) as info:
        prepare_year(2017, path, out_dir=out_dir)
    message = str(info.value)
    assert str(path) in message and "NHIS 2017" in message
    for part in parts:
        assert part in message, message
    assert not out_dir.exists() or not list(out_dir.iterdir())
    return message


def test_a_file_of_another_layout_names_every_missing_variable(tmp_path):
    raw = fixture_frame(2017, n=30).drop(columns=["PAINLB", "ASINERV", "WTFA_SA"])
    path = write_fixture_csv(2017, tmp_path / "samadult.csv", frame=raw)
    message = expect_refused(path, tmp_path / "out", "3 columns missing", "nchs_2017_sas")
    assert all(name in message for name in ("PAINLB", "ASINERV", "WTFA_SA"))
    adult19 = write_fixture_csv(2019, tmp_path / "adult19.csv", n=30)
    expect_refused(adult19, tmp_path / "out", "columns missing", "layout")


def test_a_file_far_from_the_documented_size_is_refused(tmp_path):
    out = tmp_path / "out"
    small = write_fixture_csv(2017, tmp_path / "small.csv", n=300)
    expect_refused(small, out, "300 rows; the full 2017 file has 26,742")
    raw = fixture_frame(2017, n=ROWS, seed=2, every_missing_code=False)
    weights = pd.to_numeric(raw["WTFA_SA"])
    raw["WTFA_SA"] = (weights * WEIGHT_TOTAL / weights.sum()).round(3).astype(str)
    right = prepare_year(
        2017, write_fixture_csv(2017, tmp_path / "right.csv", frame=raw), write=False
    )
    assert any(n.startswith("size as documented") for n in right.report.notes)
    raw["WTFA_SA"] = (pd.to_numeric(raw["WTFA_SA"]) * 2).astype(str)
    heavy = write_fixture_csv(2017, tmp_path / "heavy.csv", frame=raw)
    expect_refused(heavy, out, "WTFA_SA sums to 493.4 million", "246.7 million")


def test_truncated_files_are_named(tmp_path):
    out = tmp_path / "out"
    path = write_fixture_csv(2017, tmp_path / "samadult.csv", n=60)
    data = path.read_bytes()
    cut = tmp_path / "cut" / "samadult.csv"
    cut.parent.mkdir()
    cut.write_bytes(data[: int(len(data) * 0.7)])
    expect_refused(cut, out, "truncated")
    gz = tmp_path / "samadult.csv.gz"
    gz.write_bytes(gzip.compress(data)[:-40])
    expect_refused(gz, out, "truncated or corrupt")
    archive = tmp_path / "samadultcsv.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("samadult.csv", data)
    archive.write_bytes(archive.read_bytes()[:-200])
    expect_refused(archive, out, "truncated or corrupt")


# ---- the real file: three ways in, the extract, the published figures ----------------------


def samadult_from_shared(folder: Path) -> Path:
    """samadult.csv as NCHS writes it (SRVY_YR, zero-padded ids), from the shared copy."""
    book = nhis_codebook()
    keep = set(book.needed_sources(2017)) | set(book.filler_columns)
    with gzip.open(SHARED_FILE, "rb") as handle:
        raw = pd.read_csv(handle, usecols=lambda c: c in keep, dtype=str, keep_default_na=False)
    raw.insert(0, "SRVY_YR", "2017")
    raw["HHX"] = raw["HHX"].str.zfill(6)
    raw["FMX"], raw["FPX"] = raw["FMX"].str.zfill(2), raw["FPX"].str.zfill(2)
    path = folder / "samadult.csv"
    raw.to_csv(path, index=False, lineterminator="\n")
    return path


@pytest.fixture
def mirror(tmp_path):
    """A local copy of the NCHS folder layout serving samadultcsv.zip for 2017."""
    root = tmp_path / "mirror"
    (root / "2017").mkdir(parents=True)
    csv_path = samadult_from_shared(tmp_path)
    with zipfile.ZipFile(root / "2017" / "samadultcsv.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(csv_path, "samadult.csv")

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@needs_shared
def test_three_ways_in_give_one_frame(mirror, tmp_path):
    root, base = mirror
    # 1. the shared copy, found in ../shared/data (one of the default raw folders)
    shared_root = paths.project_root().parent / "shared" / "data"
    assert shared_root in default_raw_dirs()
    assert find_year_file(2017, [shared_root]) == SHARED_FILE
    shared, _ = prepare_nhis(
        [2017], raw_dirs=[shared_root], out_dir=tmp_path / "shared", progress=False
    )
    # 2. fetched from a (local) NCHS mirror: checksum recorded on first download, then prepared
    cache, lock = tmp_path / "cache", tmp_path / "lock.json"
    registry = Registry(base, "PAINANX_TEST_NO_SUCH_VAR", "unused", {2017: {"sha256": None}})
    fetched = fetch_nhis_year(
        2017, cache_dir=cache, lock_path=lock, base_url=base, registry=registry, progress=False
    )
    assert fetched.csv_path == cache / "2017" / "samadult.csv" and lock.is_file()
    via_fetch, _ = prepare_nhis(
        [2017], raw_dirs=[cache], out_dir=tmp_path / "fetch", progress=False
    )
    # 3. --from-file with the archive
    archive = root / "2017" / "samadultcsv.zip"
    result = CliRunner().invoke(
        app,
        [
            "data",
            "prepare",
            "nhis",
            "--years",
            "2017",
            "--from-file",
            str(archive),
            "--out-dir",
            str(tmp_path / "cli"),
        ],
    )
    assert result.exit_code == 0, result.output
    via_cli = pd.read_parquet(tmp_path / "cli" / "nhis_adult_2017.parquet")
    pd.testing.assert_frame_equal(via_fetch[0].frame, shared[0].frame)
    pd.testing.assert_frame_equal(via_cli, shared[0].frame)
    assert any("SRVY_YR is not in this file" in n for n in shared[0].report.notes)
    assert not any("SRVY_YR" in n for n in via_fetch[0].report.notes)  # present and checked


@needs_shared
def test_the_committed_extract_is_what_prepare_makes(tmp_path):
    remade = prepare_year(2017, SHARED_FILE, out_dir=tmp_path).path
    pd.testing.assert_frame_equal(pd.read_parquet(remade), pd.read_parquet(EXTRACT))
    writer = pq.read_metadata(EXTRACT).created_by
    if pq.read_metadata(remade).created_by == writer:  # same Parquet writer: same bytes
        assert remade.read_bytes() == EXTRACT.read_bytes(), (
            "data/nhis/nhis_adult_2017.parquet differs from what prepare makes now: remake it "
            "with `painanx data prepare nhis --years 2017 --out-dir data/nhis`"
        )


def test_the_extract_is_the_default_nhis_source():
    assert EXTRACT.stat().st_size <= 2_000_000
    frame = load("nhis")
    assert len(frame) == ROWS and set(frame["survey_year"]) == {2017}
    assert frame["weight"].sum() == pytest.approx(WEIGHT_TOTAL, rel=1e-3)
    assert frame["respondent_id"].is_unique
    assert "gad7_score" not in frame and "back_pain_severity" not in frame
    pd.testing.assert_frame_equal(frame, load_nhis([2017]))
    digest = hashlib.sha256(EXTRACT.read_bytes()).hexdigest()
    assert digest in (embedded_dir() / "README.md").read_text()


def test_published_db325_figures_from_the_extract():
    result = compare_with_published(load_nhis([2017]), design_estimator, 2017)
    assert len(result.table) == 3 and result.all_within_tolerance, result.summary()


@needs_shared
def test_published_db325_figures_from_the_real_file():
    frame = prepare_year(2017, SHARED_FILE, write=False).frame
    assert len(frame) == ROWS
    result = compare_with_published(frame, design_estimator, 2017)
    assert result.all_within_tolerance, result.summary()
    assert (result.table["difference"].abs() < 0.05).all()
