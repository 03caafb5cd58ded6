"""``painanx claims``: judge the article's claims from the findings the notebooks wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from analysis.cli import app


@app.command("claims")
def claims_command(
    reports: Annotated[
        Path | None,
        typer.Option(
            "--reports",
            help="Folder holding <source>/findings/*.json (default: the project's reports/).",
        ),
    ] = None,
    registry: Annotated[
        Path | None,
        typer.Option(
            "--registry",
            help="A claims registry YAML to use instead of the packaged "
            "src/analysis/resources/claims.yaml.",
        ),
    ] = None,
) -> None:
    """Apply the fixed rules of the claims registry to every findings file and write
    <reports>/claims.json and <reports>/claims.csv (both or neither), then print the verdicts.

    Synthetic findings are shown as validation only and never count as evidence.

    Example: painanx claims --reports reports
    """
    from analysis.claims.registry import load_registry
    from analysis.claims.verdicts import collect_findings, evaluate_claims, write_claims
    from analysis.core.io import check_writable
    from analysis.core.paths import reports_dir

    folder = Path(reports) if reports is not None else reports_dir()
    check_writable(folder / "claims.json")
    check_writable(folder / "claims.csv")
    reg = load_registry(registry)
    verdicts = evaluate_claims(collect_findings(folder), reg)
    pj, pc = write_claims(verdicts, folder / "claims.json", folder / "claims.csv")
    typer.echo(verdicts.summary())
    typer.echo(f"wrote {pj} and {pc}")
