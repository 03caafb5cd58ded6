"""The ``painanx`` command. Each group of subcommands lives in its own module.

The root command is a `OneLineErrorGroup`: an OS or network error in any subcommand ends
as one line naming the path or URL and what to do (exit code 1); ``--debug`` shows the
traceback.
"""

from __future__ import annotations

import gc

import typer

from analysis import __version__
from analysis.cli.errors import DEBUG_ENV, OneLineErrorGroup

app = typer.Typer(
    name="painanx",
    help=(
        "painanx checks the claims of the article 'Xanax for Back Pain' against survey data "
        "and published evidence.\n\n"
        "Typical use:\n\n"
        "\b\n"
        "  painanx run                             build reports/ (synthetic + HELP + published)\n"
        "  painanx data synth --n 30000            draw a synthetic sample (validation only)\n"
        "  painanx data fetch nhis --years 2019    download an NHIS adult file (checksummed)\n"
        "  painanx data prepare nhis --years 2019  recode it into the tidy schema\n"
        "  painanx claims                          re-judge the claims from the findings\n"
        "  painanx simulate                        simulation study: bias, coverage, false positives\n\n"
        "Each command has its own --help. Open reports/index.html to read the results."
    ),
    cls=OneLineErrorGroup,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)

data_app = typer.Typer(help="Make, fetch and prepare data sources.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"painanx {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version."
    ),
    debug: bool = typer.Option(
        False,
        "--debug",
        envvar=DEBUG_ENV,
        help="Show the full traceback of an error (file-system and network errors are "
        "otherwise one line).",
    ),
) -> None:
    """painanx command line."""


# Subcommand modules register themselves on `app` / `data_app` when imported.
from analysis.cli import claims_commands as _claims_commands  # noqa: E402,F401
from analysis.cli import realdata_commands as _realdata_commands  # noqa: E402,F401
from analysis.cli import run_commands as _run_commands  # noqa: E402,F401
from analysis.cli import simulate_commands as _simulate_commands  # noqa: E402,F401
from analysis.cli import synth_commands as _synth_commands  # noqa: E402,F401


def main() -> None:
    try:
        app()
    finally:
        # The command is done and the process ends: without this, the interpreter's last
        # garbage collections traverse every object the libraries made (~0.7 s after a build);
        # objects are still freed, only unreachable cycles are left to the system.
        gc.freeze()
