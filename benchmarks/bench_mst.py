"""Time the exact Euclidean MST over all eligible addresses of a run (default: the demo's latest run).

    python -m benchmarks.bench_mst [RUN_DIR] [RULE]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pandas as pd

from coverage.costs import euclidean_mst


def measure(run: Path, rule: str = "gigabit_2024") -> str:
    """One line: the MST over the run's addresses eligible under ``rule``, wall and CPU seconds, the load."""
    a = pd.read_parquet(run / "addresses.parquet", columns=["x", "y", f"fund_{rule}"])
    xy = a.loc[a[f"fund_{rule}"], ["x", "y"]].to_numpy(dtype="float64")
    load = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    _, _, length = euclidean_mst(xy)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    # CPU seconds next to wall seconds: on a shared machine the wall time mostly measures the other jobs.
    return (f"MST over {len(xy):,} addresses eligible under {rule}: {length.sum() / 1000:,.0f} km in "
            f"{wall:.1f} s wall, {cpu:.1f} s CPU ({os.cpu_count()} cores, load average {load:.2f} at start)")


def main(argv: list[str]) -> None:
    run = Path(argv[0]) if argv else Path("data/processed/latest")
    print(measure(run, argv[1] if len(argv) > 1 else "gigabit_2024"))


if __name__ == "__main__":
    main(sys.argv[1:])
