"""Speed of loading the embedded NHIS 2017 extract (the default `nhis` source).

Times `load_nhis([2017])` (read the committed Parquet file and validate it against the tidy
schema) in a fresh Python process per run, so every run pays the cold start a notebook pays;
prints the median and the target.

    .venv/bin/python benchmarks/bench_nhis.py [--runs 5]

Target (issue 13): 0.5 s or less per load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

TARGET_SECONDS = 0.5

# imports happen before the clock starts: only the load is timed
CHILD = """
import json, time
from analysis.data.nhis.prepare import embedded_dir, load_nhis
start = time.perf_counter()
frame = load_nhis([2017])
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "rows": len(frame), "columns": frame.shape[1],
                  "bytes": (embedded_dir() / "nhis_adult_2017.parquet").stat().st_size}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    results = []
    for _ in range(args.runs):
        out = subprocess.run(
            [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    seconds = [r["seconds"] for r in results]
    first = results[0]
    median = statistics.median(seconds)
    print(
        f"NHIS 2017 extract: {first['rows']:,} rows x {first['columns']} columns, "
        f"{first['bytes'] / 1e6:.2f} MB"
    )
    print(
        f"load_nhis([2017]) in a fresh process: median {median:.3f} s over {args.runs} runs "
        f"(min {min(seconds):.3f}, max {max(seconds):.3f}); target {TARGET_SECONDS} s: "
        + ("met" if median <= TARGET_SECONDS else "MISSED")
    )


if __name__ == "__main__":
    main()
