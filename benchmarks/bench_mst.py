"""Time the exact Euclidean MST over all eligible addresses of a run (default: the demo's latest run).

    python -m benchmarks.bench_mst [RUN_DIR] [RULE]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd

from coverage.costs import euclidean_mst


def main(argv: list[str]) -> None:
    run = Path(argv[0]) if argv else Path("data/processed/latest")
    rule = argv[1] if len(argv) > 1 else "gigabit_2024"
    a = pd.read_parquet(run / "addresses.parquet", columns=["x", "y", f"fund_{rule}"])
    xy = a.loc[a[f"fund_{rule}"], ["x", "y"]].to_numpy(dtype="float64")
    t0 = time.perf_counter()
    _, _, length = euclidean_mst(xy)
    print(f"MST over {len(xy)} addresses eligible under {rule}: {length.sum() / 1000:.0f} km in "
          f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
