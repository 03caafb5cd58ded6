"""Simulation study: do the notebooks' estimators and the claims' rules work where truth is known?

Draw many independent survey samples from the synthetic world (scenario ``literature`` and
the ``null`` world, where anxiety has no effect on muscle tension or pain), run in each the
same library functions the notebooks run (`comorbidity.comorbidity`,
`anxiety_pain.anxiety_and_pain`, `mediation.c2_findings` and `synthetic_truth_check`,
`benzodiazepines.benzodiazepines_and_pain`), and apply the claims registry's fixed rules to
the sample as if it were evidence (`claims.rule_verdict`). Over the replicates:

* bias (log scale for ratios) and 95% CI coverage of each estimator against the world's
  truth, with Monte-Carlo SEs; the empirical SE beside the mean SE implied by the CIs;
* how often each rule says "supported", notably in the null world for C2 and C3 (the
  false-positive rate of a verdict), and how often a CI excludes the null value.

Replicates run in parallel on Dask: a `LocalCluster` on this machine by default, or any
running Dask scheduler (``scheduler="tcp://host:8786"``; its workers need this package
installed). Results are written atomically to ``reports/simulation/``. Settings and the
tracked estimands live in ``resources/simulation.yaml``. Synthetic data validate the
pipeline; they are never evidence.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from analysis.claims.verdicts import rule_verdict
from analysis.core import paths, provenance
from analysis.core.io import atomic_paths, write_text_atomic
from analysis.data import synthetic
from analysis.models import anxiety_pain, benzodiazepines, comorbidity, mediation, synthetic_truth
from analysis.models.design import survey_design
from analysis.simulation.summaries import (
    false_positive_rates,
    load_spec,
    summarise_estimates,
    summarise_verdicts,
)

SYNTHETIC_NOTE = (
    "Simulation study on the SYNTHETIC world: it validates the estimators and the claims' "
    "rules against known truth; it is never evidence about back pain or anxiety."
)


class SimulationError(RuntimeError):
    """A replicate failed; the message names the scenario, replicate and seed."""


def replicate_seed(seed: int, scenario_index: int, replicate: int) -> int:
    """The sample seed of replicate ``replicate`` of the ``scenario_index``-th scenario."""
    state = np.random.SeedSequence([int(seed), int(scenario_index), int(replicate)])
    return int(state.generate_state(1, dtype=np.uint32)[0])


# --------------------------------------------------------------------------- one replicate


def run_replicate(
    scenario: str,
    replicate: int,
    *,
    seed: int,
    n: int,
    truth: dict[str, float],
    bootstrap_replicates: int = 50,
) -> dict[str, Any]:
    """Draw one sample and run the notebooks' estimators and the claims' rules on it.

    Returns ``{"scenario", "replicate", "seed", "seconds", "estimates": [row, ...],
    "verdicts": {claim: verdict}}``; a row holds estimate, CI and truth of one estimand.
    ``truth`` is passed in (computed once by the caller) so workers never recompute it.
    """
    spec = load_spec()
    t0 = time.perf_counter()
    world = synthetic.generate(n=n, seed=seed, scenario=scenario)
    design = survey_design(world.data)
    findings = comorbidity.comorbidity(design).to_findings("synthetic", truth=truth)
    findings += anxiety_pain.anxiety_and_pain(design).to_findings("synthetic", truth=truth)
    _, c2 = mediation.c2_findings(
        design, source="synthetic", replicates=bootstrap_replicates, seed=seed, progress=False
    )
    findings += c2
    found = {f.estimand: f for f in findings if f.measured}
    rows: dict[str, dict[str, Any]] = {}
    for key, f in found.items():
        if f.truth is not None and f.ci_low is not None:
            rows[key] = {
                "estimate": f.estimate,
                "ci_low": f.ci_low,
                "ci_high": f.ci_high,
                "truth": f.truth,
            }
    _, check = mediation.synthetic_truth_check(
        design, truth, replicates=bootstrap_replicates, seed=seed, progress=False
    )
    for effect, key in mediation.TRUTH_KEYS.items():
        r = check.loc[effect]
        rows[key] = {
            "estimate": float(r["estimate"]),
            "ci_low": float(r["ci_low"]),
            "ci_high": float(r["ci_high"]),
            "truth": float(r["truth"]),
        }
    benzo = benzodiazepines.benzodiazepines_and_pain(design, truth=truth)
    if benzo.true_log_or is not None:
        for model in ("naive", "adjusted"):
            est = getattr(benzo, model)
            lo, hi = est.ci()
            rows[f"benzodiazepine_{model}_or"] = {
                "estimate": est.odds_ratio,
                "ci_low": lo,
                "ci_high": hi,
                "truth": math.exp(benzo.true_log_or),
            }
    tracked = {e["key"] for e in spec["estimands"]}
    estimates = [
        {"estimand": key, **{k: float(v) for k, v in row.items()}}
        for key, row in rows.items()
        if key in tracked
    ]
    verdicts = {cid: rule_verdict(cid, findings) for cid in spec["claims"]}
    return {
        "scenario": scenario,
        "replicate": int(replicate),
        "seed": int(seed),
        "seconds": time.perf_counter() - t0,
        "estimates": estimates,
        "verdicts": verdicts,
    }


# --------------------------------------------------------------------------- result


@dataclass
class SimulationResult:
    """Per-replicate estimates and verdicts of a simulation study, with its summaries."""

    replicates: pd.DataFrame  # one row per scenario x replicate x estimand
    verdicts: pd.DataFrame  # one row per scenario x replicate; a column per claim
    settings: dict[str, Any]
    timing: dict[str, Any] = field(default_factory=dict)
    spec: dict[str, Any] = field(default_factory=load_spec, repr=False)
    provenance: dict[str, Any] = field(default_factory=dict, repr=False)  # set when read
    location: Path | None = None  # the folder read from

    @cached_property
    def estimates(self) -> pd.DataFrame:
        return summarise_estimates(self.replicates, self.spec)

    @cached_property
    def verdict_shares(self) -> pd.DataFrame:
        return summarise_verdicts(self.verdicts)

    @cached_property
    def false_positives(self) -> pd.DataFrame:
        return false_positive_rates(self.verdicts, self.spec)

    def summary(self) -> str:
        s = self.settings
        lines = [
            SYNTHETIC_NOTE,
            f"Simulation study: {s['replicates']} replicates per scenario "
            f"({', '.join(s['scenarios'])}), n = {s['n']:,} per sample, seed {s['seed']}, "
            f"{s['bootstrap_replicates']} bootstrap replicates for mediation CIs.",
        ]
        if self.timing:
            t = self.timing
            lines.append(
                f"Ran on {t.get('scheduler', '?')} with {t.get('workers', '?')} workers in "
                f"{t.get('wall_seconds', math.nan):.0f} s ({t.get('seconds_per_replicate', math.nan):.2f} "
                "s of worker time per replicate)."
            )
        est = self.estimates
        if not est.empty:
            cols = [
                "scenario",
                "label",
                "truth",
                "mean_estimate",
                "bias",
                "se_ratio",
                "coverage",
                "null_excluded_rate",
            ]
            lines += ["", "Estimators against the truth (bias on the log scale for ratios):"]
            lines.append(est[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        fp = self.false_positives
        if not fp.empty:
            lines += ["", "Null world (anxiety has no effect): rules saying 'supported':"]
            for _, r in fp.iterrows():
                lines.append(
                    f"  {r['claim']}: {int(r['supported'])} of {int(r['replicates'])} "
                    f"({100 * r['false_positive_rate']:.1f}%; 95% upper bound "
                    f"{100 * r['upper_95']:.1f}%)"
                )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def provenance_line(self) -> str:
        """Where and from which code these results came."""
        p = self.provenance or {}
        git = p.get("git") or {}
        commit = (git.get("commit") or "unknown")[:10]
        dirty = " (uncommitted changes)" if git.get("dirty") else ""
        where = f"{self.location}" if self.location else "memory"
        return (
            f"Results read from {where}: commit {commit}{dirty}, library sha256 "
            f"{(p.get('library_sha256') or 'unknown')[:12]}, written {p.get('written_utc', '?')}."
        )

    def conclusions(self) -> list[str]:
        """Plain sentences computed from the results (no number typed by hand)."""
        est = self.estimates
        out = []
        cons = est[est["expected"] == "consistent"]
        if not cons.empty:
            ok = cons[cons["coverage_ok"].astype(bool)]
            out.append(
                f"{len(ok)} of {len(cons)} consistent estimator-scenario pairs cover the truth "
                f"within Monte-Carlo error of 95% (coverage {cons['coverage'].min():.3f} to "
                f"{cons['coverage'].max():.3f})."
            )
            for _, r in cons[~cons["coverage_ok"].astype(bool)].iterrows():
                out.append(
                    f"Flagged: {r['label']} ({r['scenario']}): coverage {r['coverage']:.3f} "
                    f"(MC SE {r['coverage_mc_se']:.3f}), bias {r['bias']:+.4f} "
                    f"({'log scale' if r['scale'] == 'log' else 'absolute'}), model/empirical "
                    f"SE {r['se_ratio']:.2f}."
                )
        biased = est[est["expected"] == "biased by design"]
        for _, r in biased.iterrows():
            out.append(
                f"As designed, {r['label']} ({r['scenario']}) misses the true effect: mean "
                f"{r['mean_estimate']:.2f} vs truth {r['truth']:.2f}, coverage {r['coverage']:.3f} "
                "(confounding by indication: surveys cannot say whether the drug helps)."
            )
        for _, r in self.false_positives.iterrows():
            out.append(
                f"Null world: the {r['claim']} rule said 'supported' in {int(r['supported'])} of "
                f"{int(r['replicates'])} samples ({100 * r['false_positive_rate']:.1f}%, 95% upper "
                f"bound {100 * r['upper_95']:.1f}%)."
            )
        return out

    def write_summary(self, path: str | os.PathLike[str]) -> Path:
        """The summaries (not the replicates) as one JSON file, written atomically."""
        payload = {
            "note": SYNTHETIC_NOTE,
            "settings": self.settings,
            "provenance": self.provenance,
            "estimates": self.estimates.to_dict(orient="records"),
            "false_positives": self.false_positives.to_dict(orient="records"),
            "verdict_shares": self.verdict_shares.to_dict(orient="records"),
            "conclusions": self.conclusions(),
        }
        return write_text_atomic(path, json.dumps(payload, indent=2, default=_json_default) + "\n")

    # ------------------------------------------------------------------ files

    FILES = {
        "replicates": "replicates.csv",
        "verdicts": "verdicts.csv",
        "estimates": "estimates.csv",
        "verdict_shares": "verdict_shares.csv",
        "false_positives": "false_positives.csv",
        "meta": "simulation.json",
    }

    def write(self, output_dir: str | os.PathLike[str]) -> dict[str, Path]:
        """Write every table and ``simulation.json`` (settings, timing, provenance): all of
        them or none. Each file is written to a temporary name; they replace the previous
        files together, so a failure or a Ctrl-C leaves the previous results as they were.
        """
        out = Path(output_dir)
        tables = {
            "replicates": self.replicates,
            "verdicts": self.verdicts,
            "estimates": self.estimates,
            "verdict_shares": self.verdict_shares,
            "false_positives": self.false_positives,
        }
        meta = {
            "note": SYNTHETIC_NOTE,
            "settings": self.settings,
            "timing": self.timing,
            "provenance": _provenance(),
            "files": {k: v for k, v in self.FILES.items() if k != "meta"},
        }
        paths = {k: out / v for k, v in self.FILES.items()}
        with atomic_paths(paths) as tmp:
            for key, table in tables.items():
                table.to_csv(tmp[key], index=False)
            tmp["meta"].write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
        return paths

    @classmethod
    def read(cls, output_dir: str | os.PathLike[str]) -> SimulationResult:
        """Read results written by `write` (e.g. by ``painanx simulate``)."""
        out = Path(output_dir)
        meta_path = out / cls.FILES["meta"]
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"{meta_path}: no simulation results here (expected {cls.FILES['meta']} written "
                "by `painanx simulate`)"
            )
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        reps = _read_csv(out / cls.FILES["replicates"], ["scenario", "replicate", "estimand"])
        verdicts = _read_csv(out / cls.FILES["verdicts"], ["scenario", "replicate"])
        return cls(
            reps,
            verdicts,
            meta["settings"],
            meta.get("timing", {}),
            provenance=meta.get("provenance", {}),
            location=out,
        )


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return str(v)


def _read_csv(path: Path, required: Sequence[str]) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing simulation table")
    # keep "null" (a scenario) and "NA" as text: only empty cells are missing
    df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: column(s) {missing} missing; expected at least {list(required)}")
    return df


def _provenance() -> dict[str, Any]:
    """Commit, library-code hash and package versions: which code produced these numbers."""
    return {
        "git": provenance.git_info(paths.project_root()),
        "library_sha256": provenance.library_code_hash(),
        "packages": provenance.package_versions(
            (*provenance.REPORTED_PACKAGES, "dask", "distributed")
        ),
        "written_utc": provenance.now_utc(),
    }


# --------------------------------------------------------------------------- driver


def run_simulation(
    replicates: int | None = None,
    *,
    n: int | None = None,
    scenarios: Iterable[str] | None = None,
    seed: int | None = None,
    bootstrap_replicates: int | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> SimulationResult:
    """Run the simulation study on Dask; unset arguments take ``simulation.yaml``'s defaults.

    ``scheduler``: address of a running Dask scheduler (e.g. ``tcp://10.0.0.5:8786``) to
    scale out; by default a `LocalCluster` of ``workers`` processes (default: the CPUs this
    process may use) is started and closed. A failing replicate stops the run with a
    `SimulationError` naming it.
    """
    d = load_spec()["defaults"]
    settings = {
        "replicates": int(d["replicates"] if replicates is None else replicates),
        "n": int(d["n"] if n is None else n),
        "scenarios": list(d["scenarios"] if scenarios is None else scenarios),
        "seed": int(d["seed"] if seed is None else seed),
        "bootstrap_replicates": int(
            d["bootstrap_replicates"] if bootstrap_replicates is None else bootstrap_replicates
        ),
    }
    if settings["replicates"] < 1:
        raise ValueError(f"replicates: expected a whole number >= 1, got {settings['replicates']}")
    if settings["n"] < 100:
        raise ValueError(f"n: expected at least 100 respondents per sample, got {settings['n']}")
    if settings["bootstrap_replicates"] < 2:
        raise ValueError("bootstrap_replicates: expected at least 2")
    unknown = [s for s in settings["scenarios"] if s not in synthetic.SCENARIOS]
    if unknown or not settings["scenarios"]:
        raise ValueError(
            f"scenarios: {unknown or 'none given'}; the synthetic world has {list(synthetic.SCENARIOS)}"
        )
    truths = _truths(settings["scenarios"], progress)
    tasks = [
        (s, i, r, replicate_seed(settings["seed"], i, r))
        for i, s in enumerate(settings["scenarios"])
        for r in range(settings["replicates"])
    ]
    t0 = time.perf_counter()
    results, timing = _run_on_dask(tasks, truths, settings, scheduler, workers, progress)
    timing["wall_seconds"] = time.perf_counter() - t0
    timing["seconds_per_replicate"] = float(np.mean([r["seconds"] for r in results]))
    results.sort(key=lambda r: (settings["scenarios"].index(r["scenario"]), r["replicate"]))
    rows, verdict_rows = [], []
    for r in results:
        base = {"scenario": r["scenario"], "replicate": r["replicate"], "seed": r["seed"]}
        rows += [{**base, **e} for e in r["estimates"]]
        verdict_rows.append(
            {"scenario": r["scenario"], "replicate": r["replicate"], **r["verdicts"]}
        )
    return SimulationResult(pd.DataFrame(rows), pd.DataFrame(verdict_rows), settings, timing)


def _truths(scenarios: Sequence[str], progress: bool) -> dict[str, dict[str, float]]:
    """Each scenario's truth, once, here (cached on disk): workers receive it with each task."""
    return {
        s: dict(synthetic_truth.true_estimands(synthetic.world_model(s), progress=progress).values)
        for s in scenarios
    }


def _worker_environ() -> dict[str, Any]:
    """Dask's environment for new worker processes, without ``MALLOC_TRIM_THRESHOLD_``.

    Dask sets it to 64 KiB to return memory to the OS sooner; glibc then maps and unmaps
    every array above 128 KiB afresh, and a replicate here (many 30,000-row arrays) runs
    about 70% slower (2.1 s -> 3.6 s per sample, measured; benchmarks/bench_simulation.py).
    The thread limits (one BLAS thread per single-threaded worker) are kept.
    """
    import dask

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    return environ


def _run_on_dask(tasks, truths, settings, scheduler, workers, progress):
    import dask
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        n_workers = int(workers or max(1, len(os.sched_getaffinity(0))))
        with dask.config.set({"distributed.nanny.pre-spawn-environ": _worker_environ()}):
            cluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # any free port: never clash with another cluster
                silence_logs=40,  # logging.ERROR
            )
        client = Client(cluster)
    try:
        n_workers = len(client.scheduler_info().get("workers", {}))
        timing = {
            "scheduler": scheduler or "LocalCluster",
            "workers": n_workers,
        }
        futures = {}
        for scenario, _index, rep, s in tasks:
            fut = client.submit(
                run_replicate,
                scenario,
                rep,
                seed=s,
                n=settings["n"],
                truth=truths[scenario],
                bootstrap_replicates=settings["bootstrap_replicates"],
                key=f"painanx-sim-{settings['seed']}-{scenario}-{rep}",
                pure=False,
            )
            futures[fut] = (scenario, rep, s)
        results = []
        bar = tqdm(total=len(futures), desc="simulation", unit="sample", disable=not progress)
        try:
            for fut in as_completed(futures):
                scenario, rep, s = futures[fut]
                try:
                    results.append(fut.result())
                except Exception as exc:
                    for other in futures:
                        other.cancel()
                    raise SimulationError(
                        f"replicate {rep} of scenario {scenario!r} (seed {s}) failed: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                bar.update(1)
        finally:
            bar.close()
        return results, timing
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# --------------------------------------------------------------------------- reading + figures


def result_locations(root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Where results are looked for, in order: a run of ``painanx simulate`` (reports/simulation)
    first, then the reference run committed with the code (data/simulation)."""
    base = Path(root) if root is not None else paths.project_root()
    return [base / load_spec()["defaults"]["output_dir"], base / "data" / "simulation"]


def load_results(
    path: str | os.PathLike[str] | None = None, *, root: str | os.PathLike[str] | None = None
) -> SimulationResult:
    """Read simulation results from ``path``, or from the first of `result_locations` (under
    ``root``, default the project) that holds them. FileNotFoundError names every place."""
    candidates = [Path(path)] if path is not None else result_locations(root)
    for folder in candidates:
        if (folder / SimulationResult.FILES["meta"]).is_file():
            return SimulationResult.read(folder)
    raise FileNotFoundError(
        "no simulation results in "
        + ", ".join(str(c) for c in candidates)
        + ": run `painanx simulate` first"
    )
