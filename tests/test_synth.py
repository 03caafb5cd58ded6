"""The synthetic survey world: determinism, schema, calibration, truth, design, errors, CLI.

Synthetic data validate the pipeline; they are never evidence.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from analysis.cli import app
from analysis.core.io import frame_content_hash
from analysis.data import load, schema
from analysis.data import synthetic as synth
from analysis.data.synthetic import calibration
from analysis.models import synthetic_truth as synth_truth
from analysis.survey.ordinal import fit_proportional_odds

PUBLISHED = {k: v["value"] for k, v in synth.load_spec()["published_checks"].items()}


@pytest.fixture(scope="module")
def literature_truth():
    return synth_truth.true_estimands(synth.world_model("literature"), progress=False)


@pytest.fixture(scope="module")
def null_truth():
    return synth_truth.true_estimands(synth.world_model("null"), progress=False)


@pytest.fixture(scope="module")
def large_sample() -> pd.DataFrame:
    return synth.generate(n=400_000, seed=11).data


def weighted_mean(df: pd.DataFrame, values: np.ndarray, mask: np.ndarray | None = None) -> float:
    w = df["weight"].to_numpy()
    mask = np.ones(len(df), dtype=bool) if mask is None else mask
    return float((w * values)[mask].sum() / w[mask].sum())


def psu_standard_error(df: pd.DataFrame, y: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Linearisation SE of a weighted (domain) mean, PSUs with replacement within strata."""
    w = df["weight"].to_numpy() * (1.0 if mask is None else mask)
    mean = (w * y).sum() / w.sum()
    z = pd.DataFrame(
        {"h": df["stratum"].to_numpy(), "psu": df["psu"].to_numpy(), "z": w * (y - mean) / w.sum()}
    )
    totals = z.groupby(["h", "psu"])["z"].sum().reset_index()
    var = 0.0
    for _, group in totals.groupby("h"):
        k = len(group)
        var += k / (k - 1) * ((group["z"] - group["z"].mean()) ** 2).sum()
    return math.sqrt(var)


# ------------------------------------------------------------------ determinism --


def test_same_seed_gives_identical_content_and_other_seeds_differ():
    a = synth.generate(n=5_000, seed=42).data
    b = synth.generate(n=5_000, seed=42).data
    c = synth.generate(n=5_000, seed=43).data
    assert frame_content_hash(a) == frame_content_hash(b)
    assert frame_content_hash(a) != frame_content_hash(c)


def test_parquet_stream_has_the_same_rows_as_the_in_memory_sample(tmp_path):
    path = tmp_path / "synthetic.parquet"
    written = synth.generate_to_parquet(path, n=3_000, seed=5, progress=False)
    back = synth.read_parquet(path)
    assert written.n == 3_000
    assert frame_content_hash(back) == frame_content_hash(synth.generate(n=3_000, seed=5).data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synthetic.parquet"]


# ------------------------------------------------------------------------ schema --


def test_sample_follows_the_tidy_schema():
    world = synth.generate(n=4_000, seed=1)
    df = schema.validate(world.data)
    assert list(df.columns) == list(synth.COLUMNS)
    assert len(df) == 4_000
    assert "wave" not in df.columns  # not longitudinal: absent, not all-missing
    assert (df["source"] == "synthetic").all() and (df["survey_year"] == 2019).all()
    assert df["respondent_id"].is_unique
    assert (df["weight"] > 0).all()
    # PSUs are nested in strata, and every stratum has at least two PSUs
    assert all(p.startswith(h + "-") for h, p in zip(df["stratum"], df["psu"], strict=True))
    assert df.groupby("stratum")["psu"].nunique().min() >= 2
    # GAD-7 / PHQ-8 categories agree with their scores
    assert (df["gad7_category"] == schema.gad7_category(df["gad7_score"])).all()
    assert (df["phq8_category"] == schema.phq8_category(df["phq8_score"])).all()
    # no back pain means intensity 0; some back pain means intensity 1-10
    none = df["back_pain_severity"] == "not at all"
    assert (df.loc[none, "pain_intensity"] == 0).all()
    assert df.loc[~none, "pain_intensity"].between(1, 10).all()


# ------------------------------------------------------------------- calibration --


def test_weighted_margins_match_published_figures_at_large_n(large_sample):
    """At n = 400,000 the weighted margins sit within 1 point and within 4 design-based SEs
    of the published figures (with 150 PSUs, the PSU effects and not n bound the SE)."""
    df = large_sample
    women = (df["sex"] == "female").to_numpy()
    pain = (df["back_pain_severity"] != "not at all").to_numpy().astype(float)
    gad = df["gad7_score"].to_numpy(dtype=float)
    cat = df["gad7_category"]
    checks = {
        "back_pain_any": (pain, None),
        "back_pain_any_women": (pain, women),
        "back_pain_any_men": (pain, ~women),
        "gad7_ge5": (gad >= 5, None),
        "gad7_ge5_women": (gad >= 5, women),
        "gad7_ge5_men": (gad >= 5, ~women),
        "gad7_mild": ((cat == "mild").to_numpy(), None),
        "gad7_moderate": ((cat == "moderate").to_numpy(), None),
        "gad7_severe": ((cat == "severe").to_numpy(), None),
    }
    for key, (y, mask) in checks.items():
        y = np.asarray(y, dtype=float)
        estimate = weighted_mean(df, y, mask)
        se = psu_standard_error(df, y, mask)
        assert abs(estimate - PUBLISHED[key]) < min(4 * se, 0.01), (key, estimate, se)
    # back pain rises with age, as in NCHS Data Brief 415 (28.4, 35.2, 44.3, 45.6%)
    groups = np.asarray(synth.age_group(df["age"]))
    by_age = [weighted_mean(df, pain, groups == g) for g in synth.AGE_GROUPS]
    assert by_age == sorted(by_age)
    targets = synth.load_spec()["parameters"]["back_pain_by_age_group"]["value"]
    assert np.allclose(by_age, targets, atol=0.01)


def test_truth_prevalences_reproduce_the_calibration_targets(literature_truth, null_truth):
    for truth in (literature_truth, null_truth):
        v = truth.values
        assert v["prevalence_back_pain_any"] == pytest.approx(0.390, abs=0.002)
        assert v["prevalence_back_pain_any_women"] == pytest.approx(0.406, abs=0.002)
        assert v["prevalence_back_pain_any_men"] == pytest.approx(0.372, abs=0.002)
        assert v["prevalence_chronic_pain"] == pytest.approx(0.204, abs=0.002)
        assert v["prevalence_gad7_ge5"] == pytest.approx(0.156, abs=0.0005)
        assert v["prevalence_gad7_moderate"] == pytest.approx(0.034, abs=1e-6)
        assert v["prevalence_gad7_severe"] == pytest.approx(0.027, abs=1e-6)


# ------------------------------------------------------------------------- truth --


def test_null_scenario_has_no_anxiety_effects(null_truth):
    v = null_truth.values
    for level in ("mild", "moderate", "severe", "moderate_or_worse"):
        for kind in ("nie", "nde", "te"):
            assert v[f"{kind}_{level}_vs_none"] == 0.0  # structurally zero, exactly
    # census odds ratios: 1 up to Monte-Carlo error and the tiny non-collapsibility of the
    # logistic model (documented); far below any sampling SE at n = 30,000
    for level in ("mild", "moderate", "severe"):
        for prefix in ("or_back_pain_any_gad7_", "po_or_back_pain_gad7_"):
            key = prefix + level
            assert abs(math.log(v[key])) < 0.004, (key, v[key])
            assert abs(math.log(v[key])) < 0.1 * null_truth.reference_se[key] / v[key]
    assert v["benzodiazepine_effect_rd"] == 0.0


def test_literature_scenario_has_anxiety_effects(literature_truth):
    v = literature_truth.values
    assert v["nie_moderate_or_worse_vs_none"] > 0.03
    assert v["nde_moderate_or_worse_vs_none"] > 0.03
    assert v["te_moderate_or_worse_vs_none"] == pytest.approx(
        v["nie_moderate_or_worse_vs_none"] + v["nde_moderate_or_worse_vs_none"]
    )
    assert 1.2 < v["or_back_pain_any_gad7_mild"] < v["or_back_pain_any_gad7_moderate"]
    assert v["or_back_pain_any_gad7_moderate"] < v["or_back_pain_any_gad7_severe"]
    assert v["prevalence_ratio_gad7_ge10_chronic_pain"] > 1.3
    # obesity and inactivity raise back pain as in the cited meta-analyses
    assert v["or_back_pain_any_obese"] == pytest.approx(1.33, abs=0.05)
    assert v["or_back_pain_any_inactive"] > 1.1
    # benzodiazepines: no true effect, yet a crude association (confounding by indication)
    assert v["benzodiazepine_effect_log_or"] == 0.0 and v["benzodiazepine_effect_rd"] == 0.0
    assert v["benzodiazepine_crude_or_back_pain_any"] > 1.5


def test_truth_monte_carlo_error_is_below_a_tenth_of_the_sampling_se(literature_truth):
    ratios = literature_truth.mc_ratio()
    assert len(ratios) > 50
    assert max(ratios.values()) < 0.1, max(ratios.items(), key=lambda kv: kv[1])


def test_truth_table_and_json_document_every_estimand(literature_truth, tmp_path):
    table = literature_truth.to_frame()
    assert (table["definition"].str.len() > 20).all(), table.loc[table["definition"] == ""]
    payload = json.loads(literature_truth.to_json())
    assert (
        payload["values"]["prevalence_back_pain_any"]
        == literature_truth.values["prevalence_back_pain_any"]
    )
    assert "never evidence" in payload["note"]


def test_overridden_benzodiazepine_effect_is_the_truth():
    model = synth.world_model("literature", {"benzodiazepine_pain_log_or": -0.5})
    truth = synth_truth.true_estimands(model, n_population=300_000, use_cache=False, progress=False)
    assert truth.values["benzodiazepine_effect_log_or"] == -0.5
    assert -0.15 < truth.values["benzodiazepine_effect_rd"] < -0.05
    # the outcome margins stay calibrated on untreated pain; observed pain is lower
    assert truth.values["prevalence_back_pain_any"] < 0.39


def test_census_proportional_odds_fit_to_cell_sums_is_the_fit_to_every_person():
    """The census fits one weighted row per (cell, level), weight = the level's count there,
    with the survey fitter: the same as statsmodels' OrderedModel fit to every person."""
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    rng = np.random.default_rng(3)
    n = 3_000
    X = np.column_stack([rng.integers(0, 4, n), rng.integers(0, 2, n), rng.integers(0, 3, n)])
    latent = X @ np.array([0.8, -0.5, 0.3]) + rng.logistic(size=n)
    y = np.searchsorted(np.array([-0.5, 0.7, 1.8]), latent)
    cells, code = np.unique(X, axis=0, return_inverse=True)
    counts = np.zeros((len(cells), 4))
    np.add.at(counts, (code.ravel(), y), 1.0)
    rows, level = np.nonzero(counts)
    fit = fit_proportional_odds(cells[rows].astype(float), level, counts[rows, level], q=3)
    ref = OrderedModel(y, X.astype(float), distr="logit").fit(
        method="newton", disp=False, tol=1e-12
    )
    cuts = np.cumsum(np.concatenate([[ref.params[3]], np.exp(ref.params[4:])]))
    np.testing.assert_allclose(fit.beta, ref.params[:3], atol=1e-7)
    np.testing.assert_allclose(fit.zeta, cuts, atol=1e-7)


def test_a_loaded_sample_names_its_world_in_plain_metadata():
    """A frame from `load` carries plain facts naming its world (no code); `truth_of` looks
    the truth up from them, and other frames have none."""
    df = load("synthetic", seed=4, n=500, scenario="null")
    world = df.attrs["synthetic_world"]
    model = synth.world_model("null")
    assert world == {
        "scenario": "null",
        "overrides": {},
        "seed": 4,
        "n": 500,
        "params_hash": model.hash,
    }
    assert json.loads(json.dumps(world)) == world
    assert synth_truth.truth_of(df) == synth_truth.true_estimands(model, progress=False).values
    assert synth_truth.truth_of(pd.DataFrame({"x": [1]})) == {}


# ------------------------------------------------------------------ sample design --


def test_ignoring_the_design_gives_wrong_standard_errors():
    df = synth.generate(n=30_000, seed=3).data
    pain = (df["back_pain_severity"] != "not at all").to_numpy().astype(float)
    design_se = psu_standard_error(df, pain)
    p = pain.mean()
    naive_se = math.sqrt(p * (1 - p) / len(df))
    assert (design_se / naive_se) ** 2 > 1.4  # design effect clearly above 1
    assert synth.kish_deff(df["weight"].to_numpy()) > 1.05


def test_weights_correct_the_unequal_selection(literature_truth):
    estimates, unweighted, old_share = [], [], []
    for seed in range(8):
        df = synth.generate(n=30_000, seed=100 + seed).data
        pain = (df["back_pain_severity"] != "not at all").to_numpy().astype(float)
        estimates.append(weighted_mean(df, pain))
        unweighted.append(pain.mean())
        old = np.asarray(synth.age_group(df["age"])) == "65+"
        old_share.append((old.mean(), weighted_mean(df, old)))
    truth = literature_truth.values["prevalence_back_pain_any"]
    se_of_mean = np.std(estimates, ddof=1) / math.sqrt(len(estimates))
    assert abs(np.mean(estimates) - truth) < 4 * se_of_mean + 0.001
    assert np.mean(unweighted) - truth > 0.01  # older adults are oversampled
    raw, weighted = np.mean(old_share, axis=0)
    assert raw > 0.25 and weighted == pytest.approx(0.21, abs=0.01)


# ------------------------------------------------------------------------ errors --


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"overrides": {"obesity_prevalence": -0.1}}, "obesity_prevalence"),
        ({"overrides": {"back_pain_women": 1.5}}, "back_pain_women"),
        ({"overrides": {"no_such_parameter": 1}}, "no_such_parameter"),
        ({"overrides": {"age_group_shares": [0.5, 0.5, 0.5, 0.5]}}, "age_group_shares"),
        ({"overrides": {"gad7_ge5_by_age_group": [0.2, 0.2]}}, "gad7_ge5_by_age_group"),
        ({"overrides": {"psus_per_stratum": 1}}, "psus_per_stratum"),
        ({"overrides": {"tension_sd": "wide"}}, "tension_sd"),
        ({"scenario": "optimistic"}, "scenario"),
        ({"n": 0}, "'n'"),
        ({"n": -5}, "'n'"),
        ({"seed": -1}, "'seed'"),
    ],
)
def test_bad_parameters_raise_a_clear_error_and_write_nothing(tmp_path, kwargs, names):
    target = tmp_path / "out" / "synthetic.parquet"
    with pytest.raises(synth.SynthParameterError, match=names):
        synth.generate_to_parquet(target, **{"n": 100, **kwargs}, progress=False)
    assert not target.exists()
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    with pytest.raises(synth.SynthParameterError, match=names):
        synth.generate(**{"n": 100, **kwargs})


def test_unknown_parameter_error_suggests_the_close_name():
    with pytest.raises(synth.SynthParameterError, match="did you mean obesity_prevalence"):
        synth.resolve_params("literature", {"obesity_prevalance": 0.3})


def test_existing_file_survives_a_failed_run(tmp_path):
    target = tmp_path / "synthetic.parquet"
    target.write_bytes(b"previous content")
    with pytest.raises(synth.SynthParameterError):
        synth.generate_to_parquet(target, n=10, scenario="nope", progress=False)
    assert target.read_bytes() == b"previous content"


# --------------------------------------------------------------------------- CLI --


def test_cli_writes_parquet_and_truth(tmp_path):
    out = tmp_path / "synthetic.parquet"
    result = CliRunner().invoke(
        app, ["data", "synth", "--n", "2000", "--seed", "9", "--out", str(out), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    df = schema.validate(synth.read_parquet(out))
    assert len(df) == 2000
    truth = json.loads((tmp_path / "synthetic.truth.json").read_text())
    assert truth["scenario"] == "literature"
    assert 0.38 < truth["values"]["prevalence_back_pain_any"] < 0.40
    assert "NEVER evidence" in result.output


def test_cli_rejects_a_bad_override_and_writes_nothing(tmp_path):
    out = tmp_path / "synthetic.parquet"
    result = CliRunner().invoke(
        app,
        ["data", "synth", "--n", "100", "--set", "obesity_prevalence=-1", "--out", str(out)],
    )
    assert result.exit_code == 2
    assert "obesity_prevalence" in result.output
    assert list(tmp_path.iterdir()) == []


def test_cli_help_explains_with_an_example():
    result = CliRunner().invoke(app, ["data", "synth", "--help"])
    assert result.exit_code == 0
    assert "never evidence" in result.output
    assert "painanx data synth --n" in result.output
    for option in ("--n", "--seed", "--scenario", "--set", "--out"):
        assert option in result.output


def test_truth_cache_computes_once_when_asked_concurrently(tmp_path, monkeypatch):
    """Notebooks run in parallel: a second caller waits for the first instead of recomputing."""
    import threading
    import time

    monkeypatch.setenv("PAINANX_CACHE", str(tmp_path))
    real_compute = synth_truth._compute
    calls = []

    def slow_compute(*args, **kwargs):
        calls.append(threading.get_ident())
        time.sleep(0.3)  # long enough for the other thread to arrive while this one computes
        return real_compute(*args, **kwargs)

    monkeypatch.setattr(synth_truth, "_compute", slow_compute)
    model = synth.world_model("null")
    results = []

    def ask():
        results.append(
            synth_truth.true_estimands(model, n_population=20_000, seed=5, progress=False)
        )

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(results) == 2 and results[0].to_json() == results[1].to_json()
    assert len(list(tmp_path.glob("truth-*.json"))) == 1


@pytest.mark.parametrize("scenario", synth.SCENARIOS)
def test_packaged_truths_are_current(scenario):
    """The truths shipped in resources/synthetic_truth/ are exactly what the code computes now
    (a stale or missing file fails here: regenerate with `python -m analysis.models.synthetic_truth`)."""
    model = synth.world_model(scenario)
    n_population, seed = synth_truth.census_size_and_seed()
    key = synth_truth.truth_key(model, n_population, seed)
    packaged = synth_truth.read_packaged(key)
    assert packaged is not None, (
        f"no packaged truth for scenario {scenario!r} and the current code (key {key}); "
        "run: python -m analysis.models.synthetic_truth"
    )
    fresh = synth_truth.true_estimands(model, use_cache=False, progress=False)
    assert packaged.values.keys() == fresh.values.keys()
    for k, v in fresh.values.items():
        assert packaged.values[k] == pytest.approx(v, rel=1e-9, abs=1e-12), k
    # true_estimands serves the packaged file without computing
    served = synth_truth.true_estimands(model, progress=False)
    assert served.to_json() == packaged.to_json()
    stale = sorted(p.name for p in synth_truth.packaged_folder().glob("truth-*.json"))
    assert len(stale) == len(synth.SCENARIOS), stale


@pytest.mark.parametrize("scenario", synth.SCENARIOS)
def test_packaged_calibrations_are_current_and_used(scenario, tmp_path, monkeypatch):
    """The calibrations shipped in resources/synthetic_calibration/ are what the code solves
    now, and a fresh clone (an empty cache) reads them instead of solving (a stale or missing
    file fails here: regenerate with `python -m analysis.models.synthetic_truth`)."""
    fresh = calibration.uncalibrated_model(scenario)
    calibration.calibrate(fresh)
    name = calibration.calibration_file_name(fresh.hash)
    packaged = json.loads((calibration.packaged_folder() / name).read_text())
    assert packaged.keys() == fresh.derived.keys()
    for k, v in fresh.derived.items():
        assert np.allclose(packaged[k], v, rtol=1e-10, atol=1e-12), k
    monkeypatch.setenv("PAINANX_CACHE", str(tmp_path))
    monkeypatch.setattr(calibration, "_DERIVED", {})
    monkeypatch.setattr(calibration, "calibrate", lambda m: pytest.fail("solved again"))
    assert calibration.world_model(scenario).derived == packaged
    assert not list(tmp_path.iterdir())  # nothing solved, nothing cached
    shipped = sorted(p.name for p in calibration.packaged_folder().glob("calibration-*.json"))
    assert len(shipped) == len(synth.SCENARIOS), shipped
