"""Write the simulation study's tables into docs/simulation.md from the committed reference run.

No figure in the docs is typed by hand: this reads data/simulation/ (simulation.json,
estimates.csv, verdict_shares.csv, false_positives.csv) and replaces what stands between the
``generated:simulation`` markers of docs/simulation.md. tests/test_docs_tables.py fails when
the committed page differs from what this script would write.

    python scripts/make_docs_tables.py            # rewrite docs/simulation.md
    python scripts/make_docs_tables.py --check    # exit 1 when it is out of date
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

from analysis.claims.registry import VERDICTS

ROOT = Path(__file__).resolve().parents[1]
SIMULATION_DIR = ROOT / "data" / "simulation"
DOC = ROOT / "docs" / "simulation.md"
COMMAND = "python scripts/make_docs_tables.py"
START = "<!-- generated:simulation:start -->"
END = "<!-- generated:simulation:end -->"


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def number(text: str) -> float:
    """A CSV cell as a float; an empty cell is NaN."""
    return float(text) if text.strip() else math.nan


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def run_line(settings: dict, timing: dict, provenance: dict) -> str:
    commit = (provenance.get("git") or {}).get("commit") or "unknown"
    return (
        f"Reference run: {settings['replicates']} samples per scenario "
        f"({', '.join(settings['scenarios'])}) of n = {settings['n']:,} adults, "
        f"{settings['bootstrap_replicates']} design-bootstrap replicates per mediation CI, "
        f"master seed {settings['seed']}; {timing['scheduler']} with {timing['workers']} "
        f"workers, {timing['wall_seconds'] / 60:.0f} minutes wall time "
        f"({timing['seconds_per_replicate']:.1f} s per sample on one worker); "
        f"commit `{commit[:10]}`, written {provenance.get('written_utc', 'unknown')}."
    )


def estimates_table(rows: list[dict[str, str]], scenarios: list[str]) -> list[str]:
    """One row per estimand, each cell 'first scenario / second scenario / ...'."""
    by_key: dict[str, dict[str, dict[str, str]]] = {}
    for row in rows:
        by_key.setdefault(row["estimand"], {})[row["scenario"]] = row

    def cells(per_scenario: dict[str, dict[str, str]], show) -> str:
        return " / ".join(show(per_scenario[s]) if s in per_scenario else "—" for s in scenarios)

    def value(row: dict[str, str], column: str) -> str:
        x = number(row[column])
        return f"{x:.2f}" if row["scale"] == "log" else f"{x:.3f}"

    def rate(row: dict[str, str], column: str) -> str:
        x = number(row[column])
        return "—" if math.isnan(x) else f"{x:.3f}"

    def coverage_ok(row: dict[str, str]) -> str:
        return {"True": "yes", "False": "**no**"}.get(row["coverage_ok"], "—")

    out = []
    for per_scenario in by_key.values():
        first = next(iter(per_scenario.values()))
        log = " (log)" if first["scale"] == "log" else ""
        out.append(
            [
                first["label"],
                cells(per_scenario, lambda r: value(r, "truth")),
                cells(per_scenario, lambda r: value(r, "mean_estimate")),
                cells(per_scenario, lambda r: f"{number(r['bias']):+.4f}") + log,
                cells(per_scenario, lambda r: f"{number(r['coverage']):.3f}"),
                cells(per_scenario, lambda r: f"{number(r['coverage_mc_se']):.3f}"),
                cells(per_scenario, lambda r: f"{number(r['se_ratio']):.2f}"),
                cells(per_scenario, lambda r: rate(r, "null_excluded_rate")),
                cells(per_scenario, coverage_ok),
            ]
        )
    header = [
        "estimand",
        "truth",
        "mean estimate",
        "bias",
        "coverage",
        "its MC SE",
        "model SE / empirical SE",
        "CI excludes no effect",
        "coverage as nominal",
    ]
    return table(header, out)


def verdicts_table(rows: list[dict[str, str]], scenarios: list[str]) -> list[str]:
    shares = {(r["claim"], r["scenario"], r["verdict"]): number(r["share"]) for r in rows}
    verdicts = [v for v in VERDICTS if any(key[2] == v for key in shares)]
    claims = sorted({r["claim"] for r in rows})
    body = [
        [claim, scenario]
        + [f"{100 * shares.get((claim, scenario, v), 0.0):.1f}%" for v in verdicts]
        for claim in claims
        for scenario in scenarios
    ]
    return table(["claim", "world", *verdicts], body)


def false_positives_table(rows: list[dict[str, str]]) -> list[str]:
    body = [
        [
            r["claim"],
            r["replicates"],
            r["supported"],
            f"{100 * number(r['false_positive_rate']):.1f}%",
            f"{100 * number(r['upper_95']):.1f}%",
        ]
        for r in rows
    ]
    header = ["claim", "null-world samples", "judged supported", "share", "95% upper bound"]
    return table(header, body)


def render(simulation_dir: Path = SIMULATION_DIR) -> str:
    """The generated block, markers included."""
    run = json.loads((simulation_dir / "simulation.json").read_text())
    scenarios = list(run["settings"]["scenarios"])
    worlds = " / ".join(scenarios)
    lines = [
        START,
        f"<!-- written by `{COMMAND}` from data/simulation/; do not edit by hand -->",
        "",
        run_line(run["settings"], run["timing"], run["provenance"]),
        "",
        f"**Estimators** (each cell: {worlds} world; `estimates.csv`):",
        "",
        *estimates_table(read_rows(simulation_dir / "estimates.csv"), scenarios),
        "",
        "**Verdicts of the claims' rules** (share of samples; `verdict_shares.csv`):",
        "",
        *verdicts_table(read_rows(simulation_dir / "verdict_shares.csv"), scenarios),
        "",
        "**Null world, judged *supported*** (`false_positives.csv`):",
        "",
        *false_positives_table(read_rows(simulation_dir / "false_positives.csv")),
        "",
        END,
    ]
    return "\n".join(lines)


def updated(text: str, block: str) -> str:
    """`text` with the part between the markers (markers included) replaced by `block`."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{DOC.name} needs the markers {START} and {END}, in that order")
    return text[:start] + block + text[end + len(END) :]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is stale")
    args = parser.parse_args()
    current = DOC.read_text()
    new = updated(current, render())
    if args.check:
        if new != current:
            print(f"{DOC.relative_to(ROOT)} is out of date: run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    if new != current:
        DOC.write_text(new)
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
