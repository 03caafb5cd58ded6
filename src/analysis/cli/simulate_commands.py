"""``painanx simulate``: the simulation study (bias, CI coverage, null-world false positives)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from analysis.cli import app


@app.command("simulate")
def simulate_command(
    replicates: Annotated[
        int | None,
        typer.Option(help="Samples per scenario (default 500, from resources/simulation.yaml)."),
    ] = None,
    n: Annotated[int | None, typer.Option(help="Respondents per sample (default 30000).")] = None,
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            "--scenario",
            help="Scenario to simulate; repeat for several (default: literature, null).",
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Master seed of the study.")] = None,
    bootstrap_replicates: Annotated[
        int | None,
        typer.Option(help="Design-bootstrap replicates for the mediation CIs in each sample."),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786 (its workers need "
            "painanx installed). Default: a local cluster on this machine."
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Worker processes of the local cluster (default: the usable CPUs)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Output folder (default: reports/simulation)."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Draw many samples from the synthetic world (literature and null scenarios), run the
    notebooks' estimators and the claims' rules in each, in parallel on Dask, and write bias,
    95% CI coverage and the null-world false-positive rate to <out>/ (CSV + simulation.json,
    replaced together or not at all). Notebook 07_simulation_study shows the result.

    Synthetic data validate the pipeline; they are never evidence.

    Examples:

    \b
      painanx simulate                                  500 per scenario, local cluster
      painanx simulate --replicates 50 --n 5000         a quick look
      painanx simulate --scheduler tcp://host:8786      scale out on a Dask cluster
    """
    from analysis.core import paths
    from analysis.core.io import check_writable
    from analysis.simulation.study import SimulationResult, run_simulation
    from analysis.simulation.summaries import load_spec

    folder = out
    if folder is None:
        folder = paths.project_root() / load_spec()["defaults"]["output_dir"]
    check_writable(folder, folder=True)  # before hours of simulation, not after
    for name in SimulationResult.FILES.values():
        check_writable(folder / name)
    try:
        result = run_simulation(
            replicates,
            n=n,
            scenarios=scenario or None,
            seed=seed,
            bootstrap_replicates=bootstrap_replicates,
            scheduler=scheduler,
            workers=workers,
            progress=progress,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    written = result.write(folder)
    typer.echo(result.summary())
    typer.echo(f"wrote {len(written)} files to {folder}")
