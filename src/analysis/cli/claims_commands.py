"""``painanx claims``: judge the article's claims from the findings the notebooks wrote, and keep
the verdict ledger (``diff``, ``record``).

The library is imported inside each command so that ``painanx --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from analysis.cli import app

claims_app = typer.Typer(
    help="Judge the claims from the findings in reports/, and keep the verdict ledger.",
    no_args_is_help=False,
)
app.add_typer(claims_app, name="claims")

ReportsOption = Annotated[
    Path | None,
    typer.Option(
        "--reports",
        help="Folder holding <source>/findings/*.json (default: the project's reports/).",
    ),
]
RegistryOption = Annotated[
    Path | None,
    typer.Option(
        "--registry",
        help="A claims registry YAML to use instead of the packaged "
        "src/analysis/resources/claims.yaml.",
    ),
]
LedgerOption = Annotated[
    Path | None,
    typer.Option("--ledger", help="The verdict ledger (default: data/verdicts.yaml)."),
]


def _verdicts(reports: Path | None, registry: Path | None, *, require_findings: bool = True):
    from analysis.build.claims_step import judged_findings_files
    from analysis.claims.registry import load_registry
    from analysis.claims.verdicts import evaluate_claims
    from analysis.core.findings import read_findings
    from analysis.core.paths import reports_dir

    folder = Path(reports) if reports is not None else reports_dir()
    files = judged_findings_files(folder)  # what the last build judged, as the dashboard shows
    if require_findings and not files:
        raise typer.BadParameter(
            f"{folder} holds no <source>/findings/*.json: build first with `painanx run`",
            param_hint="--reports",
        )
    reg = load_registry(registry)
    return folder, reg, evaluate_claims(read_findings(files), reg)


@claims_app.callback(invoke_without_command=True)
def claims_command(
    ctx: typer.Context, reports: ReportsOption = None, registry: RegistryOption = None
) -> None:
    """Apply the fixed rules of the claims registry to every findings file and write
    <reports>/claims.json and <reports>/claims.csv (both or neither), then print the verdicts.

    Synthetic findings are shown as validation only and never count as evidence.

    Example: painanx claims --reports reports
    """
    if ctx.invoked_subcommand is not None:
        return
    from analysis.claims.verdicts import write_claims
    from analysis.core.io import check_writable
    from analysis.core.paths import reports_dir

    folder = Path(reports) if reports is not None else reports_dir()
    check_writable(folder / "claims.json")
    check_writable(folder / "claims.csv")
    folder, _, verdicts = _verdicts(folder, registry, require_findings=False)
    pj, pc = write_claims(verdicts, folder / "claims.json", folder / "claims.csv")
    typer.echo(verdicts.summary())
    typer.echo(f"wrote {pj} and {pc}")


@claims_app.command("diff")
def diff_command(
    reports: ReportsOption = None, registry: RegistryOption = None, ledger: LedgerOption = None
) -> None:
    """Show which verdicts or certainties of the last build differ from the ledger, and why:
    the findings that moved and the claims whose registry entry changed. Exit 1 if any does.

    Example: painanx claims diff
    """
    from analysis.claims.ledger import diff, load_ledger

    _, reg, verdicts = _verdicts(reports, registry)
    changes = diff(load_ledger(ledger), verdicts, reg)
    if not changes:
        typer.echo("The verdicts and certainties match the ledger.")
        return
    typer.echo("\n".join(c.describe() for c in changes))
    typer.echo('Record them with: painanx claims record --reason "<why the verdict changed>"')
    raise typer.Exit(1)


@claims_app.command("record")
def record_command(
    reason: Annotated[
        str,
        typer.Option(
            "--reason",
            help="Why the verdicts changed, in words a reader understands (required; "
            "placeholders such as 'update' or 'TODO' are refused).",
        ),
    ],
    reports: ReportsOption = None,
    registry: RegistryOption = None,
    ledger: LedgerOption = None,
    date: Annotated[
        str | None, typer.Option("--date", help="YYYY-MM-DD (default: today, UTC).")
    ] = None,
    claim: Annotated[
        list[str] | None,
        typer.Option(
            "--claim",
            help="Record only this claim's change (repeatable), so each claim gets its own reason.",
        ),
    ] = None,
) -> None:
    """Append the changed verdicts of the last build to the ledger, with their reason; the
    previous verdicts move to each claim's history.

    Example: painanx claims record --reason "NHIS 2017 findings added for C1, C3 and C7"
    """
    from analysis.claims.ledger import (
        LedgerError,
        check_reason,
        diff,
        load_ledger,
        record,
        write_ledger,
    )

    try:
        check_reason(reason)
    except LedgerError as exc:
        raise typer.BadParameter(str(exc), param_hint="--reason") from None
    _, reg, verdicts = _verdicts(reports, registry)
    book = load_ledger(ledger)
    changes = diff(book, verdicts, reg)
    if claim:
        unknown = sorted(set(claim) - {c.id for c in reg.claims})
        if unknown:
            raise typer.BadParameter(f"no such claim {unknown}", param_hint="--claim")
        changes = [c for c in changes if c.claim_id in claim]
    if not changes:
        typer.echo("Nothing to record: the verdicts and certainties match the ledger.")
        return
    path = write_ledger(record(book, changes, reason, date=date), ledger)
    typer.echo("\n".join(c.describe() for c in changes))
    typer.echo(f"recorded {len(changes)} change(s) in {path}")
