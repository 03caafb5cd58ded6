"""Benchmark of `painanx run`: the default build from scratch, then a rebuild with nothing changed.

Prints each notebook's time, the wall time of the whole build (target: <= 30 s on 2 cores for the
synthetic world of 30,000 adults plus the HELP study) and of the no-change rebuild (target: <= 2 s),
and the peak memory of the build's whole process tree (this process and the notebook kernels,
resident memory summed, sampled every 50 ms). Builds into a temporary folder, so reports/ is left
alone.

    python benchmarks/bench_report.py                 # the default build (what `make report` runs)
    python benchmarks/bench_report.py --data synthetic --jobs 2
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from analysis.build import runner
from analysis.build.results import BuildResult

BUILD_TARGET_S = 30.0
REBUILD_TARGET_S = 2.0


class PeakMemory:
    """The largest sum of resident memory of this process and all its descendants, sampled in
    a background thread while the ``with`` block runs. Pages shared between processes count
    once per process, so this is an upper bound."""

    def __init__(self, interval_s: float = 0.05):
        self.interval_s = interval_s
        self.peak_bytes = 0
        self.processes_at_peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._done.is_set():
            total, count = 0, 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                    count += 1
                except psutil.Error:  # ended between listing and reading
                    continue
            if total > self.peak_bytes:
                self.peak_bytes, self.processes_at_peak = total, count
            self._done.wait(self.interval_s)


def timed_build(reports_dir: Path, args) -> tuple[BuildResult, float]:
    start = time.perf_counter()
    result = runner.build(
        reports_dir=reports_dir,
        sources=args.data,
        jobs=args.jobs,
        progress=False,
        echo=lambda msg: None,
    )
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", action="append", help="data source(s); default: the default build"
    )
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="painanx-bench-") as tmp:
        reports = Path(tmp) / "reports"
        with PeakMemory() as memory:
            first, first_s = timed_build(reports, args)
        print(f"painanx run from scratch (jobs={args.jobs}) into {reports}")
        print(f"{'notebook':<44} {'status':<8} {'seconds':>8}")
        for run in first.runs:
            if run.status in ("ran", "failed"):
                print(f"{run.key:<44} {run.status:<8} {run.duration_s:8.2f}")
        executed = sum(r.duration_s or 0 for r in first.runs if r.status in ("ran", "failed"))
        print(f"{'sum of notebook times':<53} {executed:8.2f}")
        verdict = "met" if first_s <= BUILD_TARGET_S else "NOT met"
        if first.failed:
            verdict = "not judged: the build has failures"
        print(
            f"{'build wall time':<53} {first_s:8.2f}  (target <= {BUILD_TARGET_S:.0f} s: "
            f"{verdict}; parallel speed-up {executed / first_s:.2f}x)"
        )
        print(
            f"{'peak memory, process tree (resident, summed)':<53} "
            f"{memory.peak_bytes / 1e9:8.2f}  GB over {memory.processes_at_peak} processes"
        )
        second, second_s = timed_build(reports, args)
        reran = [r.key for r in second.runs if r.status in ("ran", "failed")]
        verdict = "met" if second_s <= REBUILD_TARGET_S else "NOT met"
        if reran:
            verdict = f"not judged: failed notebooks re-ran ({', '.join(reran)})"
        print(
            f"{'no-change rebuild wall time':<53} {second_s:8.2f}  "
            f"(target <= {REBUILD_TARGET_S:.0f} s: {verdict})"
        )
        cmd = [sys.executable, "-c", "from analysis.cli import main; main()", "run", "-q",
               "--reports-dir", str(reports), "--jobs", str(args.jobs)]  # fmt: skip
        for source in args.data or []:
            cmd += ["--data", source]
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=False)
        cli_s = time.perf_counter() - start
        print(f"{'no-change rebuild, `painanx run` command (new process)':<53} {cli_s:8.2f}")
        if first.failed:
            print("note: failed notebooks always re-run; the build is not complete:")
            for run in first.failed:
                print(f"  {run.describe_error()}")


if __name__ == "__main__":
    main()
