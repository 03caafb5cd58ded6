"""The simulation study: summaries on constructed inputs, small real runs on Dask (a local
cluster and an explicit scheduler address), atomic writing, the CLI and the reference run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from analysis.cli import app
from analysis.data import synthetic
from analysis.models import synthetic_truth
from analysis.simulation import figures as simulation_figures
from analysis.simulation import study as simulation
from analysis.simulation.study import (
    SimulationError,
    SimulationResult,
    load_results,
    replicate_seed,
    run_simulation,
)
from analysis.simulation.summaries import (
    false_positive_rates,
    load_spec,
    summarise_estimates,
    summarise_verdicts,
)

SPEC = load_spec()
KEYS = [e["key"] for e in SPEC["estimands"]]


# ----------------------------------------------------------------------- constructed inputs


def _constructed(r: int = 200, covered: int = 190) -> pd.DataFrame:
    """r replicates of one ratio estimand: log-estimates symmetric around log 2 (no bias),
    CIs that hold the truth in exactly ``covered`` of them."""
    log_est = np.log(2.0) + np.where(np.arange(r) % 2 == 0, 0.1, -0.1)
    half = np.where(np.arange(r) < covered, 0.15, 0.05)  # +-0.1 off: wide CIs cover, narrow miss
    return pd.DataFrame(
        {
            "scenario": "literature",
            "replicate": np.arange(r),
            "estimand": "or_back_pain_obesity",
            "estimate": np.exp(log_est),
            "ci_low": np.exp(log_est - half),
            "ci_high": np.exp(log_est + half),
            "truth": 2.0,
        }
    )


def test_summary_of_constructed_replicates():
    t = summarise_estimates(_constructed(200, 190), SPEC).iloc[0]
    assert t["replicates"] == 200
    assert t["bias"] == pytest.approx(0.0, abs=1e-12)  # on the log scale
    assert t["truth"] == pytest.approx(2.0) and t["mean_estimate"] == pytest.approx(2.0)
    assert t["coverage"] == pytest.approx(0.95)
    assert t["coverage_mc_se"] == pytest.approx(math.sqrt(0.95 * 0.05 / 200))
    assert t["coverage_ok"]
    assert t["empirical_se"] == pytest.approx(np.std(np.r_[[0.1, -0.1] * 100], ddof=1))
    assert t["null_excluded_rate"] == 1.0  # every CI lies above OR = 1
    bad = summarise_estimates(_constructed(200, 120), SPEC).iloc[0]
    assert bad["coverage"] == pytest.approx(0.6) and not bad["coverage_ok"]


def test_verdict_shares_and_false_positive_rate():
    v = pd.DataFrame(
        {
            "scenario": ["null"] * 40 + ["literature"] * 10,
            "replicate": list(range(40)) + list(range(10)),
            "C2": ["supported"] * 2 + ["not supported"] * 38 + ["supported"] * 10,
            "C3": ["partly supported"] * 40 + ["supported"] * 10,
        }
    )
    fp = false_positive_rates(v, SPEC).set_index("claim")
    assert fp.loc["C2", "supported"] == 2 and fp.loc["C2", "false_positive_rate"] == 0.05
    assert fp.loc["C2", "upper_95"] == pytest.approx(stats.beta.ppf(0.95, 3, 38))
    assert fp.loc["C3", "supported"] == 0
    assert fp.loc["C3", "upper_95"] == pytest.approx(1 - 0.05 ** (1 / 40))  # rule of three
    shares = summarise_verdicts(v)
    c2_null = shares[(shares["scenario"] == "null") & (shares["claim"] == "C2")]
    assert dict(zip(c2_null["verdict"], c2_null["share"], strict=True)) == {
        "not supported": 0.95,
        "supported": 0.05,
    }


def test_replicate_seeds_are_deterministic_and_distinct():
    seeds = {replicate_seed(1, s, r) for s in range(2) for r in range(500)}
    assert len(seeds) == 1000
    assert replicate_seed(1, 0, 7) == replicate_seed(1, 0, 7) != replicate_seed(2, 0, 7)


def test_bad_settings_are_refused_before_any_work():
    with pytest.raises(ValueError, match="scenarios"):
        run_simulation(1, scenarios=["imaginary"], progress=False)
    with pytest.raises(ValueError, match="replicates"):
        run_simulation(0, progress=False)
    with pytest.raises(ValueError, match="n: expected at least 100"):
        run_simulation(1, n=10, progress=False)


# ----------------------------------------------------------------------- real runs on Dask


@pytest.fixture(scope="module")
def small_run() -> SimulationResult:
    """Three samples per scenario on a default local cluster of two worker processes."""
    return run_simulation(3, n=4000, workers=2, bootstrap_replicates=8, seed=11, progress=False)


def test_small_run_on_local_cluster(small_run):
    r = small_run
    assert r.timing["scheduler"] == "LocalCluster" and r.timing["workers"] == 2
    reps = r.replicates
    assert set(reps["scenario"]) == {"literature", "null"}
    for scenario in ("literature", "null"):
        got = reps[reps["scenario"] == scenario]
        assert sorted(got["replicate"].unique()) == [0, 1, 2]
        assert set(got["estimand"]) == set(KEYS)
    assert (reps["ci_low"] <= reps["estimate"]).all() and (
        reps["estimate"] <= reps["ci_high"]
    ).all()
    # truths are the world's: no effect of anxiety in the null world, none of benzodiazepines
    null = reps[reps["scenario"] == "null"].set_index("estimand")["truth"]
    assert null.loc["nie_moderate_or_worse_vs_none"].eq(0).all()
    assert (reps.loc[reps["estimand"].str.startswith("benzodiazepine"), "truth"] == 1).all()
    assert list(r.verdicts.columns) == ["scenario", "replicate", *SPEC["claims"]]
    assert (
        r.verdicts[SPEC["claims"]]
        .isin(
            [
                "supported",
                "partly supported",
                "not supported",
                "contradicted",
                "insufficient evidence",
            ]
        )
        .all(axis=None)
    )
    text = r.summary()
    assert "never evidence" in text and "Null world" in text
    assert len(r.conclusions()) >= 3


def test_replicates_are_reproducible(small_run):
    again = simulation.run_replicate(
        "null",
        1,
        seed=replicate_seed(11, 1, 1),
        n=4000,
        truth=_truth("null"),
        bootstrap_replicates=8,
    )
    before = small_run.replicates
    before = before[(before["scenario"] == "null") & (before["replicate"] == 1)].set_index(
        "estimand"
    )
    for row in again["estimates"]:
        assert row["estimate"] == pytest.approx(before.loc[row["estimand"], "estimate"], rel=1e-9)


def _truth(scenario: str) -> dict:
    return dict(
        synthetic_truth.true_estimands(synthetic.world_model(scenario), progress=False).values
    )


def test_explicit_scheduler_address():
    """Any running scheduler works: here one started by the test, reached by its address."""
    from dask.distributed import LocalCluster

    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://")
        r = run_simulation(
            1,
            n=3000,
            scenarios=["null"],
            bootstrap_replicates=5,
            scheduler=address,
            progress=False,
        )
        assert r.timing["scheduler"] == address and r.timing["workers"] == 1
        assert len(r.verdicts) == 1 and set(r.replicates["estimand"]) == set(KEYS)
        # the cluster is ours: run_simulation closed its client, not our scheduler
        assert cluster.status.name == "running"


def test_failing_replicate_is_named(monkeypatch):
    """An in-process cluster (threads) sees the patched generator: the error names the sample."""
    from dask.distributed import LocalCluster

    real = synthetic.generate

    def broken(n, seed, scenario, overrides=None):
        if scenario == "null":
            raise RuntimeError("disk full")
        return real(n=n, seed=seed, scenario=scenario)

    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        truth = _truth("null")  # before patching: the driver computes truths with generate
        monkeypatch.setattr(synthetic, "generate", broken)
        monkeypatch.setattr(simulation, "_truths", lambda scenarios, progress: {"null": truth})
        with pytest.raises(SimulationError, match=r"replicate 0 of scenario 'null' \(seed \d+\)"):
            run_simulation(
                1,
                n=2000,
                scenarios=["null"],
                bootstrap_replicates=3,
                scheduler=cluster.scheduler_address,
                progress=False,
            )


# ----------------------------------------------------------------------- files and CLI


def test_write_read_round_trip_keeps_the_null_scenario(small_run, tmp_path):
    paths = small_run.write(tmp_path / "sim")
    assert {p.name for p in paths.values()} == set(SimulationResult.FILES.values())
    back = SimulationResult.read(tmp_path / "sim")
    assert set(back.replicates["scenario"]) == {"literature", "null"}  # "null" is not NA
    pd.testing.assert_frame_equal(
        back.estimates.reset_index(drop=True),
        small_run.estimates.reset_index(drop=True),
        check_dtype=False,
    )
    meta = json.loads((tmp_path / "sim" / "simulation.json").read_text())
    assert meta["settings"]["replicates"] == 3
    assert meta["provenance"]["library_sha256"] and "dask" in meta["provenance"]["packages"]
    assert back.location == tmp_path / "sim" and "commit" in back.provenance_line()
    summary = small_run.write_summary(tmp_path / "summary.json")
    assert json.loads(summary.read_text())["conclusions"] == small_run.conclusions()


def test_failed_write_leaves_previous_results(small_run, tmp_path, monkeypatch):
    folder = tmp_path / "sim"
    small_run.write(folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    calls = {"n": 0}
    real = pd.DataFrame.to_csv

    def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", failing)
    with pytest.raises(OSError, match="disk full"):
        small_run.write(folder)
    after = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert after == before  # nothing replaced, no temporary file left behind


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="simulation.json"):
        SimulationResult.read(tmp_path)
    (tmp_path / "simulation.json").write_text(json.dumps({"settings": {}}))
    pd.DataFrame({"scenario": ["null"]}).to_csv(tmp_path / "replicates.csv", index=False)
    with pytest.raises(
        ValueError, match=r"replicates.csv: column\(s\) \['replicate', 'estimand'\]"
    ):
        SimulationResult.read(tmp_path)


def test_load_results_prefers_a_new_run_over_the_reference(small_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="painanx simulate"):
        load_results(root=tmp_path)
    small_run.write(tmp_path / "data" / "simulation")
    assert load_results(root=tmp_path).location == tmp_path / "data" / "simulation"
    small_run.write(tmp_path / "reports" / "simulation")
    assert load_results(root=tmp_path).location == tmp_path / "reports" / "simulation"


def test_figures(small_run):
    import matplotlib.pyplot as plt

    fig = simulation_figures.coverage(small_run)
    assert len(fig.axes[0].get_yticklabels()) == len(KEYS)
    plt.close(fig)
    fig = simulation_figures.errors(small_run)
    assert fig.axes[0].get_xlabel().startswith("estimate - truth")
    plt.close(fig)
    fig = simulation_figures.verdicts(small_run)
    assert len(fig.axes[0].get_yticklabels()) == 2 * len(SPEC["claims"])
    plt.close(fig)


def test_cli_simulate_writes_results(tmp_path):
    out = tmp_path / "sim"
    res = CliRunner().invoke(
        app,
        [
            "simulate",
            "--replicates",
            "1",
            "--n",
            "2000",
            "--scenario",
            "null",
            "--workers",
            "1",
            "--bootstrap-replicates",
            "3",
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "never evidence" in res.output and (out / "estimates.csv").is_file()
    bad = CliRunner().invoke(app, ["simulate", "--scenario", "imaginary", "--out", str(out)])
    assert bad.exit_code == 2 and "imaginary" in bad.output


# ----------------------------------------------------------------------- the reference run


REFERENCE = Path(__file__).resolve().parents[1] / "data" / "simulation"


def test_reference_run_meets_the_bar():
    """The committed reference run (shown in the report): >= 500 samples per scenario, and
    the null world's C2 and C3 rules never (or all but never) say 'supported'."""
    ref = load_results(REFERENCE)
    counts = ref.verdicts.groupby("scenario").size()
    assert counts.loc["literature"] >= 500 and counts.loc["null"] >= 500
    fp = ref.false_positives.set_index("claim")
    for claim in SPEC["null_world_claims"]:
        assert fp.loc[claim, "upper_95"] < 0.05, fp
    est = ref.estimates
    assert (est.groupby("scenario").size() == len(KEYS)).all()


def test_local_workers_keep_thread_limits_but_not_dasks_malloc_trim():
    """Dask's MALLOC_TRIM_THRESHOLD_ makes each sample ~70% slower here; thread limits stay."""
    import dask

    with dask.config.set(
        {
            "distributed.nanny.pre-spawn-environ": {
                "MALLOC_TRIM_THRESHOLD_": 65536,
                "OMP_NUM_THREADS": 1,
            }
        }
    ):
        env = simulation._worker_environ()
    assert env == {"OMP_NUM_THREADS": 1}
