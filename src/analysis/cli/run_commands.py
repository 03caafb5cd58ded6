"""``painanx run``: execute the notebooks and build the HTML site."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from analysis.cli import app


def parse_years(values: list[str] | None) -> list[int] | None:
    """'2019', '2019,2022' and '2019-2021' (repeatable) -> sorted unique years."""
    if not values:
        return None
    years: set[int] = set()
    for value in values:
        for part in filter(None, (p.strip() for p in value.split(","))):
            m = re.fullmatch(r"(\d{4})(?:-(\d{4}))?", part)
            if not m:
                raise typer.BadParameter(
                    f"{part!r} is not a year (2019) or a range (2019-2022)", param_hint="'--years'"
                )
            first, last = int(m.group(1)), int(m.group(2) or m.group(1))
            if last < first:
                raise typer.BadParameter(
                    f"year range {part!r} runs backwards", param_hint="'--years'"
                )
            years.update(range(first, last + 1))
    return sorted(years)


@app.command("run")
def run(
    data: Annotated[
        list[str] | None,
        typer.Option(
            "--data",
            "-d",
            metavar="SOURCE",
            help="Data source(s) to build: synthetic, help, nhis, published. Repeat or "
            "comma-separate. Default: synthetic + help + published, and nhis when "
            "data/processed/nhis_adult_*.parquet exist.",
        ),
    ] = None,
    years: Annotated[
        list[str] | None,
        typer.Option(
            "--years",
            metavar="YEARS",
            help="Survey years for NHIS, e.g. --years 2019,2022 or --years 2019-2024 "
            "(default: all present).",
        ),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            metavar="NOTEBOOK",
            help="Build only this notebook (name or prefix, e.g. 02 or 02_comorbidity; "
            "repeatable). Its dependencies are run too when out of date.",
        ),
    ] = None,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", min=1, help="Notebooks run in parallel.")
    ] = 2,
    force: Annotated[
        bool, typer.Option("--force", help="Re-run every selected notebook even if unchanged.")
    ] = False,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Random seed (synthetic world, bootstraps). Default 2019."),
    ] = None,
    n: Annotated[
        int | None, typer.Option("--n", min=1, help="Synthetic world size. Default 30000.")
    ] = None,
    scenario: Annotated[
        str | None,
        typer.Option("--scenario", help="Synthetic scenario: literature (default) or null."),
    ] = None,
    notebooks_dir: Annotated[
        Path | None, typer.Option("--notebooks-dir", help="Default: notebooks/.")
    ] = None,
    reports_dir: Annotated[
        Path | None, typer.Option("--reports-dir", help="Default: reports/.")
    ] = None,
    plan: Annotated[
        Path | None,
        typer.Option(
            "--plan",
            help="Notebook order/applicability file. Default: the package's notebooks.yaml.",
        ),
    ] = None,
    warm_kernels: Annotated[
        bool,
        typer.Option(
            "--warm-kernels/--no-warm-kernels",
            help="Start the next notebooks' kernels ahead, forked from one process that "
            "imported the heavy libraries once (faster). The pages are the same.",
        ),
    ] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Execute the notebooks (papermill) and build the HTML site in reports/.

    Each notebook runs once per data source into reports/<source>/, in dependency order,
    independent ones in parallel. Only notebooks whose source, parameters, library code or input
    data changed are re-run (fingerprints in reports/manifest.json); a rebuild with nothing changed
    takes about a second. Then the claims step writes reports/claims.json and the dashboard
    reports/index.html. A failing notebook is reported (notebook, cell, exception), its
    executed-so-far .ipynb is kept, the others still build, and the exit code is 1.

    Ctrl-C once: the running notebooks finish and are recorded, nothing new starts, the index
    is refreshed, exit code 130. Twice: the running notebooks are stopped at once. One build
    at a time per reports folder (reports/.painanx-run.lock).

    \b
    Examples:
      painanx run                          default build (what `make report` runs)
      painanx run --data nhis --years 2019,2022
      painanx run --only 02 --force        re-run one notebook (and stale dependencies)
    """
    # the build machinery (papermill, nbconvert, the claims engine) loads slowly: imported
    # here, so `painanx --help` stays quick
    from analysis.build.execute import skip_unused_dev_tools
    from analysis.build.plan import OptionError, PlanError
    from analysis.build.results import EXIT_INTERRUPTED
    from analysis.build.runner import build
    from analysis.build.workspace import BuildLocked

    skip_unused_dev_tools()  # this process and its kernels: ~0.9 s of CPU no build uses
    try:
        result = build(
            notebooks_dir=notebooks_dir,
            reports_dir=reports_dir,
            plan_path=plan,
            sources=data or None,
            years=parse_years(years),
            seed=seed,
            n=n,
            scenario=scenario,
            only=only or None,
            jobs=jobs,
            force=force,
            warm_kernels=warm_kernels,
            progress=not quiet,
        )
    except OptionError as exc:
        raise typer.BadParameter(str(exc), param_hint=f"'{exc.option}'") from None
    except PlanError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--plan'") from None
    except BuildLocked as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("stopped at once: the index was not refreshed", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    typer.echo(result.summary())
    index = result.reports_dir / "index.html"
    typer.echo(f"Open {index} in a browser.")
    raise typer.Exit(result.exit_code)
