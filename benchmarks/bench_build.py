"""Benchmark of `painanx run`: the cold default build against its floor, the no-change rebuild,
`painanx --help`, and the peak memory of the whole process tree.

- floor: papermill on a one-cell pandas notebook (a kernel's start, ``import pandas`` and a
  frame, and its shutdown: the notebook the issue measured its floor with) x the number of
  notebooks the build runs / jobs; no build of N notebooks in separate kernels beats it by much.
  The same with a bare cell (``1 + 1``: a kernel's start and shutdown alone) is printed beside
  it, with the build's ratio to that stricter floor;
- cold build: `painanx run --reports-dir <scratch>` as a new process, from an empty folder and
  an empty cache (``PAINANX_CACHE``; target <= 1.5 x the floor);
- the same cold build again, in new folders, with the CPU time and the peak memory of its
  process and all its descendants (kernels, their template), sampled every 50 ms (target
  <= 1 GB, proportional set sizes summed; resident sizes summed, an upper bound, are printed
  too); sampling costs CPU, so this run's wall time is not the one compared with the floor;
- no-change rebuild: the same command again, a new process (target <= 1.0 s);
- `painanx --help` as a new process, the best of 3 (target <= 0.5 s).

The machine's load average is printed before and after: other work on the machine slows every
figure. reports/ is left alone.

    python benchmarks/bench_build.py                 # the default build (what `make report` runs)
    python benchmarks/bench_build.py --jobs 2 --data synthetic
    python benchmarks/bench_build.py --compare-cold  # also a build without the warm kernel pool
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import papermill
import psutil

FLOOR_RATIO_TARGET = 1.5
REBUILD_TARGET_S = 1.0
HELP_TARGET_S = 0.5
MEMORY_TARGET_GB = 1.0
PAINANX = [sys.executable, "-c", "from analysis.cli import main; main()"]


class ProcessTree:
    """What a process (``root``) and all its descendants use while the ``with`` block runs,
    sampled in a background thread (the benchmark itself is not counted):

    - peak memory as the largest sum of proportional set sizes (PSS: a page shared by k
      processes counts 1/k in each, so the sum is the memory the tree really holds; forked
      kernels share most of theirs with their template), and, as an upper bound, the largest
      sum of resident sizes (RSS: a shared page counts once per process);
    - CPU time: the last CPU time seen of each process, summed (a process that ends between
      two samples loses at most one interval), so that the figure still means something when
      the machine is loaded.
    """

    def __init__(self, root: int, interval_s: float = 0.05):
        self.root = root
        self.interval_s = interval_s
        self.peak_pss = self.peak_rss = 0
        self.processes_at_peak = 0
        self._cpu: dict[tuple[int, float], float] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> ProcessTree:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()

    @property
    def cpu_s(self) -> float:
        return sum(self._cpu.values())

    def _sample(self) -> None:
        try:
            root = psutil.Process(self.root)
        except psutil.NoSuchProcess:
            return
        while not self._done.is_set():
            pss = rss = count = 0
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:  # the root ended
                return
            for proc in tree:
                try:
                    with proc.oneshot():
                        memory = proc.memory_full_info()
                        times = proc.cpu_times()
                        started = proc.create_time()
                except psutil.Error:  # ended between listing and reading
                    continue
                pss, rss, count = pss + memory.pss, rss + memory.rss, count + 1
                self._cpu[(proc.pid, started)] = times.user + times.system
            if pss > self.peak_pss:
                self.peak_pss, self.processes_at_peak = pss, count
            self.peak_rss = max(self.peak_rss, rss)
            self._done.wait(self.interval_s)


PANDAS_CELL = 'import pandas as pd\npd.DataFrame({"x": [1, 2, 3]})'
BARE_CELL = "1 + 1"


def one_cell_notebook_s(folder: Path, cell: str, repeats: int = 7) -> float:
    """Median time papermill takes for a notebook with one cell (now and then a kernel start
    stalls for ~3 s on these machines: the median of 7 leaves such a stall out)."""
    source, executed = folder / "one_cell.ipynb", folder / "one_cell.out.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)]), source)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        papermill.execute_notebook(
            str(source), str(executed), kernel_name="python3", progress_bar=False
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timed_command(
    args: list[str], env: dict[str, str] | None = None
) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, check=False, env=env)
    return time.perf_counter() - start, done


def sampled_command(args: list[str], env: dict[str, str]) -> ProcessTree:
    """Run ``args`` as a new process and sample what its process tree uses (the sampling costs
    the machine CPU: the wall time of such a run is not the one compared with the floor)."""
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with ProcessTree(process.pid) as tree:
        process.wait()
    return tree


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", action="append", help="data source(s); default: the default build"
    )
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--compare-cold",
        action="store_true",
        help="also build without the warm kernel pool (--no-warm-kernels), for comparison",
    )
    args = parser.parse_args()
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="painanx-bench-") as tmp:

        def run_args(reports: str, *extra: str) -> list[str]:
            command = [*PAINANX, "run", "-q", "--reports-dir", str(Path(tmp) / reports)]
            command += ["--jobs", str(args.jobs), *extra]
            for source in args.data or []:
                command += ["--data", source]
            return command

        def clean_cache(name: str) -> dict[str, str]:
            """An empty cache: the build solves or reads from the package what a fresh clone
            would."""
            return {**os.environ, "PAINANX_CACHE": str(Path(tmp) / name)}

        build_s, build = timed_command(run_args("reports"), clean_cache("cache"))
        ran = sum(" ran " in line for line in build.stdout.splitlines())
        if build.returncode != 0:
            print(f"the build failed (exit {build.returncode}):\n{build.stdout}{build.stderr}")
        one_cell_s = one_cell_notebook_s(Path(tmp), PANDAS_CELL)
        floor_s = one_cell_s * ran / args.jobs
        bare_s = one_cell_notebook_s(Path(tmp), BARE_CELL)
        bare_floor_s = bare_s * ran / args.jobs
        rebuild_s, rebuild = timed_command(run_args("reports"), clean_cache("cache"))
        help_s = min(timed_command([*PAINANX, "--help"])[0] for _ in range(3))
        # the same cold build again, in new folders, its process tree sampled
        tree = sampled_command(run_args("sampled"), clean_cache("sampled-cache"))
        if args.compare_cold:
            cold_s, _ = timed_command(
                run_args("cold", "--no-warm-kernels"), clean_cache("cold-cache")
            )

    print(f"load average before: {' '.join(f'{x:.2f}' for x in load_before)}")
    print(f"one-cell pandas notebook (papermill, median of 7) {one_cell_s:7.2f} s")
    print(f"floor: {one_cell_s:.2f} s x {ran} notebooks / {args.jobs} jobs        {floor_s:7.2f} s")
    print(
        f"bare one-cell notebook ({BARE_CELL}), floor      {bare_floor_s:7.2f} s  "
        f"({bare_s:.2f} s x {ran} / {args.jobs}; a kernel's start and shutdown alone)"
    )
    ratio = build_s / floor_s if floor_s else float("nan")
    print(
        f"cold build, `painanx run` (new process)       {build_s:7.2f} s  = {ratio:.2f} x floor "
        f"(target <= {FLOOR_RATIO_TARGET} x: {verdict(ratio <= FLOOR_RATIO_TARGET)}); "
        f"{build_s / bare_floor_s:.2f} x the bare floor"
    )
    if args.compare_cold:
        print(
            f"cold build, --no-warm-kernels (new process)  {cold_s:7.2f} s  "
            f"= {cold_s / floor_s:.2f} x floor; the warm pool saves {cold_s - build_s:.2f} s"
        )
    cores = len(os.sched_getaffinity(0))
    print(
        f"CPU time of the build's process tree          {tree.cpu_s:7.2f} s  "
        f"(/ {cores} cores = {tree.cpu_s / cores:.2f} s: the least wall time it can take)"
    )
    gb = tree.peak_pss / 1e9
    print(
        f"peak memory, process tree (PSS, summed)       {gb:7.2f} GB over "
        f"{tree.processes_at_peak} processes (target <= {MEMORY_TARGET_GB} GB: "
        f"{verdict(gb <= MEMORY_TARGET_GB)}); RSS summed {tree.peak_rss / 1e9:.2f} GB"
    )
    reran = sum(" ran " in line for line in rebuild.stdout.splitlines())
    note = f"; {reran} notebook(s) re-ran" if reran else ""
    print(
        f"no-change rebuild (new process)               {rebuild_s:7.2f} s  "
        f"(target <= {REBUILD_TARGET_S} s: {verdict(rebuild_s <= REBUILD_TARGET_S)}{note})"
    )
    print(
        f"painanx --help (new process, best of 3)       {help_s:7.2f} s  "
        f"(target <= {HELP_TARGET_S} s: {verdict(help_s <= HELP_TARGET_S)})"
    )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
