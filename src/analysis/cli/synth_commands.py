"""``painanx data synth``: draw a sample from the synthetic survey world."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from analysis.cli import data_app


def _parse_overrides(assignments: list[str]) -> dict[str, Any]:
    """NAME=VALUE pairs; VALUE is read as YAML (0.3, -1, [0.2, 0.3, 0.3, 0.2])."""
    overrides: dict[str, Any] = {}
    for item in assignments:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--set")
        try:
            overrides[name.strip()] = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise typer.BadParameter(
                f"cannot read the value of {name.strip()!r}: {exc}", param_hint="--set"
            ) from None
    return overrides


def truth_path_for(out: Path) -> Path:
    """The truth JSON written beside a synthetic Parquet file (synthetic.truth.json)."""
    return out.with_name(out.stem + ".truth.json")


@data_app.command("synth")
def synth_command(
    n: Annotated[
        int, typer.Option("--n", min=1, help="Number of adults (rows) in the sample.")
    ] = 30_000,
    seed: Annotated[
        int, typer.Option("--seed", min=0, help="Random seed: the same seed gives the same rows.")
    ] = 2019,
    scenario: Annotated[
        str,
        typer.Option(
            "--scenario",
            help="'literature' (effect sizes from published studies) or 'null' "
            "(anxiety has no effect on muscle tension or back pain).",
        ),
    ] = "literature",
    assignments: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="NAME=VALUE",
            help="Override one parameter of src/analysis/resources/synthetic_world.yaml "
            "(repeatable), e.g. --set benzodiazepine_pain_log_or=-0.2.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Parquet file to write [default: data/processed/synthetic.parquet]; the "
            "true population estimands go beside it as <name>.truth.json (both files are "
            "replaced together, or neither).",
        ),
    ] = None,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show progress bars.")
    ] = True,
) -> None:
    """Draw a survey sample from the synthetic world and write it with its true estimands.

    The world is a structural causal model calibrated to published NHIS 2019 figures
    (back pain 39.0%, GAD-7 >= 5 15.6%, ...) with a complex sample design (strata, PSUs,
    unequal selection, non-response-adjusted weights). Its truth (prevalences, adjusted
    odds ratios, natural direct/indirect effects through muscle tension, the
    benzodiazepine effect) lets every estimator be checked. Synthetic data validate the
    pipeline; they are never evidence.

    \b
    Examples:
      painanx data synth
      painanx data synth --n 100000 --seed 7 --scenario null
      painanx data synth --n 10000000 --set benzodiazepine_pain_log_or=-0.2 --out big.parquet
    """
    # the synthetic world needs pandas, pyarrow and statsmodels: imported here, so
    # `painanx --help` stays quick
    from analysis.core import paths
    from analysis.core.io import atomic_paths, check_writable
    from analysis.data import synthetic as synth
    from analysis.models import synthetic_truth

    target = out if out is not None else paths.processed_dir() / "synthetic.parquet"
    truth_target = truth_path_for(target)
    overrides = _parse_overrides(assignments or [])
    check_writable(target)  # before minutes of work, not after
    check_writable(truth_target)
    try:
        synth.world_model(scenario, overrides)  # bad parameters: nothing written, no folder made
        # the sample and its truth replace the previous pair together, or not at all
        with atomic_paths({"sample": target, "truth": truth_target}) as temps:
            result = synth.generate_to_parquet(
                temps["sample"],
                n=n,
                seed=seed,
                scenario=scenario,
                overrides=overrides,
                progress=progress,
            )
            truth = synthetic_truth.true_estimands(result.model, progress=progress)
            temps["truth"].write_text(truth.to_json(), encoding="utf-8")
    except synth.SynthParameterError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(dataclasses.replace(result, path=target).summary())
    typer.echo(f"  wrote the true population estimands to {truth_target}")
    typer.echo(truth.summary())
