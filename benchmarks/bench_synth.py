"""Benchmark: stream 10 million synthetic adults to Parquet; print rows/s and peak memory.

The generation runs in a child process so that its peak resident memory (ru_maxrss of
the finished child) is measured on its own. Targets (issue 2): 10 million rows in
<= 10 s and <= 2 GB peak memory; 30,000 rows in memory well under 1 s.

    python benchmarks/bench_synth.py [--n 10000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from analysis.data import synthetic as synth
synth.world_model()  # calibration (read from the on-disk cache after the first run)
t1 = time.perf_counter()
synth.generate_to_parquet(sys.argv[1], n=int(sys.argv[2]), seed=1, progress=False)
t2 = time.perf_counter()
for seed in range(3):  # warm
    synth.generate(30_000, seed=seed)
t3 = time.perf_counter()
for seed in range(10):
    synth.generate(30_000, seed=100 + seed)
t4 = time.perf_counter()
print(json.dumps({"setup_s": t1 - t0, "write_s": t2 - t1, "in_memory_30k_s": (t4 - t3) / 10}))
"""

TARGET_SECONDS = 10.0
TARGET_BYTES = 2 * 1024**3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "synthetic.parquet"
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(target), str(args.n)],
            check=True,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - start
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak = usage.ru_maxrss * 1024  # ru_maxrss is in KiB on Linux
        cpu = usage.ru_utime + usage.ru_stime
        size = target.stat().st_size
    t = json.loads(done.stdout.strip().splitlines()[-1])
    rate = args.n / t["write_s"]
    print(f"synthetic world: {args.n:,} rows streamed to Parquet ({size / 1e6:,.0f} MB)")
    print(f"  generate_to_parquet wall time   {t['write_s']:6.2f} s   ({rate:,.0f} rows/s)")
    print(
        f"  child process total             {wall:6.2f} s   (import + cached calibration "
        f"{t['setup_s']:.2f} s)"
    )
    print(
        f"  child CPU time (user + system)  {cpu:6.2f} s   (load average now "
        f"{os.getloadavg()[0]:.1f}; other work on the machine slows the wall time)"
    )
    print(f"  peak resident memory (child)    {peak / 1024**2:6.0f} MB")
    print(f"  generate(n=30,000) in memory    {1000 * t['in_memory_30k_s']:6.0f} ms")
    print(
        f"  vs targets: time {t['write_s'] / TARGET_SECONDS:.2f} x 10 s, "
        f"memory {peak / TARGET_BYTES:.2f} x 2 GB"
    )


if __name__ == "__main__":
    main()
