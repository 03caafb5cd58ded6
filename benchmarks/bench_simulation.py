"""Speed of the simulation study: one replicate in-process, and replicates per second on a
Dask local cluster with 1 and 2 workers (the parallel speed-up).

Prints seconds per replicate (n = 30,000, 50 bootstrap replicates per mediation CI, as
`painanx simulate` runs by default), the throughput with each cluster size, and the speed-up
ratio. Synthetic data: timing only, never evidence.
Run: .venv/bin/python benchmarks/bench_simulation.py
"""

import os
import time

from analysis.data import synthetic
from analysis.models import synthetic_truth
from analysis.simulation import study as simulation

N, B, REPS = 30_000, 50, 8


def main() -> None:
    truth = dict(synthetic_truth.true_estimands(synthetic.world_model("literature")).values)
    simulation.run_replicate("literature", 0, seed=1, n=N, truth=truth, bootstrap_replicates=B)
    t = time.perf_counter()
    for r in range(3):
        simulation.run_replicate("literature", r, seed=r, n=N, truth=truth, bootstrap_replicates=B)
    serial = (time.perf_counter() - t) / 3
    print(f"one replicate in-process (n = {N:,}, B = {B}):  {serial:6.2f} s")
    cpus = len(os.sched_getaffinity(0))
    rates = {}
    for workers in sorted({1, min(2, cpus)}):
        t = time.perf_counter()
        simulation.run_simulation(
            REPS,
            n=N,
            scenarios=["literature"],
            bootstrap_replicates=B,
            workers=workers,
            progress=False,
        )
        wall = time.perf_counter() - t
        rates[workers] = REPS / wall
        print(
            f"{REPS} replicates on a LocalCluster of {workers} worker(s): {wall:6.1f} s "
            f"({rates[workers]:.2f} replicates/s, incl. cluster start-up)"
        )
    if len(rates) > 1:
        print(f"speed-up 2 workers vs 1: {rates[2] / rates[1]:.2f}x (ideal 2.00x on {cpus} CPUs)")
    full = 2 * 500 * serial / max(rates)
    print(
        f"estimated wall time of the default study (2 x 500 replicates): {full / 60:.0f} min"
        f" on {max(rates)} worker(s)"
    )


if __name__ == "__main__":
    main()
