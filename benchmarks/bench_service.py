"""Benchmark best_service, evaluate_rules and gemeinde_counts at Germany scale (not part of the tests).

    .venv/bin/python -m benchmarks.bench_service [n_addresses] [n_offers] [old_addresses] [old_offers]

Synthetic data (default 22 M addresses, 55 M offers; ids "DE" + number as Arrow-backed ``str`` like the
pipeline's frames; 300 providers, the 8 technologies, downloads/uploads from small sets so that ties are
common, 10 % unknown uploads, 15 % planned offers with dates in and beyond the horizon, 1 % of offers for
unknown addresses, 11,000 Gemeinden). Times the new code after a JIT warm-up (numba caches to disk), then
the former implementation (tests/test_service_fast.py keeps it as the reference) on a subset (default
2 M / 5 M) and extrapolates linearly. Prints peak RSS (``resource.getrusage``).
"""

from __future__ import annotations

import resource
import sys
import time
from datetime import date
from functools import partial

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from coverage.aggregate import gemeinde_counts
from coverage.funding import DEFAULT_RULES, evaluate_rules
from coverage.service import best_service, numba, offers_in_scope
from coverage.technology import DEFAULT_GROUPS, Technology

HORIZON = date(2026, 12, 31)


def _strings(prefix: str, values: np.ndarray) -> pd.Series:
    joined = pc.binary_join_element_wise(pa.scalar(prefix), pc.cast(pa.array(values), pa.string()), "")
    return pd.Series(pd.array(joined, dtype="str"))


def _pick(options: list[str], codes: np.ndarray) -> pd.Series:
    return pd.Series(pd.array(pc.take(pa.array(options, type=pa.large_string()), pa.array(codes)), dtype="str"))


def synthetic(n_addr: int, n_offers: int, seed: int = 0) -> tuple[pd.Series, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = _strings("DE", np.arange(n_addr))
    addr = rng.integers(0, int(n_addr * 1.01), n_offers)
    status = (rng.random(n_offers) < 0.15).astype(np.int64)
    dates = np.where(status == 1, rng.integers(1, 4, n_offers), 0)
    offers = pd.DataFrame({
        "address_id": _strings("DE", addr),
        "provider": _pick([f"Provider {i:03d}" for i in range(300)], np.minimum(rng.zipf(1.3, n_offers), 300) - 1),
        "technology": _pick([t.value for t in Technology], rng.integers(0, len(Technology), n_offers)),
        "down_mbps": np.array([0, 2, 16, 50, 100, 100, 250, 500, 1000], dtype=float)[rng.integers(0, 9, n_offers)],
        "up_mbps": np.array([1, 10, 40, 50, 100, 500, 1000, np.nan, np.nan, np.nan], dtype=float)[
            rng.integers(0, 10, n_offers)],
        "status": _pick(["current", "planned"], status),
        "planned_date": _pick(["", "2025-06-01", "2026-12-31", "2031-01-01"], dates),
    })
    addresses = pd.DataFrame({
        "address_id": ids,
        "ags": _strings("0", rng.integers(1_000_000, 1_011_000, n_addr)),
        "households": rng.integers(0, 12, n_addr).astype(float),
        "businesses": (rng.random(n_addr) < 0.05).astype(float),
        "site_kind": _pick(["", "school"], (rng.random(n_addr) < 0.001).astype(np.int64)),
    })
    return ids, offers, addresses


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def timed(label: str, f):
    t0 = time.perf_counter()
    out = f()
    dt = time.perf_counter() - t0
    print(f"  {label}: {dt:.1f} s (peak RSS so far {peak_gb():.1f} GB)", flush=True)
    return out, dt


def run_new(n_addr: int, n_offers: int) -> dict[str, float]:
    ids, offers, addresses = synthetic(n_addr, n_offers)
    print(f"new code, {n_addr:,} addresses, {n_offers:,} offers, {numba.get_num_threads()} threads "
          f"(data {peak_gb():.1f} GB)", flush=True)
    service, t_service = timed("best_service", partial(best_service, ids, offers, DEFAULT_GROUPS, HORIZON))
    scopes, t_scope = timed("offers_in_scope", partial(offers_in_scope, offers, HORIZON))
    funding, t_fund = timed("evaluate_rules", partial(evaluate_rules, ids, scopes, DEFAULT_RULES))
    del scopes, offers
    flags = [c for c in funding.columns if c != "address_id"]
    merged = pd.concat([addresses.drop(columns="address_id"), service, funding[flags]], axis=1)
    del service, funding
    _, t_counts = timed("gemeinde_counts", lambda: gemeinde_counts(
        merged, (2, 16, 30, 50, 100, 200, 500, 1000), list(DEFAULT_GROUPS), ("", "plan_"), flags))
    return {"best_service": t_service, "evaluate_rules": t_scope + t_fund, "gemeinde_counts": t_counts}


def run_old(n_addr: int, n_offers: int) -> dict[str, float]:
    from tests.test_service_fast import ref_best_service, ref_evaluate_rules, ref_gemeinde_counts, ref_offers_in_scope

    ids, offers, addresses = synthetic(n_addr, n_offers)
    print(f"former code, {n_addr:,} addresses, {n_offers:,} offers", flush=True)
    service, t_service = timed("best_service", lambda: ref_best_service(ids, offers, DEFAULT_GROUPS, HORIZON))
    scopes, t_scope = timed("offers_in_scope", lambda: ref_offers_in_scope(offers, HORIZON))
    funding, t_fund = timed("evaluate_rules", lambda: ref_evaluate_rules(ids, scopes, DEFAULT_RULES))
    flags = [c for c in funding.columns if c != "address_id"]
    merged = pd.concat([addresses.drop(columns="address_id"), service, funding[flags]], axis=1)
    _, t_counts = timed("gemeinde_counts", lambda: ref_gemeinde_counts(
        merged, (2, 16, 30, 50, 100, 200, 500, 1000), list(DEFAULT_GROUPS), ("", "plan_"), flags))
    return {"best_service": t_service, "evaluate_rules": t_scope + t_fund, "gemeinde_counts": t_counts}


def main() -> None:
    args = [int(a) for a in sys.argv[1:]]
    n_addr, n_offers, old_addr, old_offers = args + [22_000_000, 55_000_000, 2_000_000, 5_000_000][len(args):]
    ids, offers, _ = synthetic(1000, 2500, seed=1)
    best_service(ids, offers, DEFAULT_GROUPS, HORIZON)  # JIT warm-up (or cache load)
    if old_addr:
        old = run_old(old_addr, old_offers)
        scale = n_offers / old_offers
        print(f"  extrapolated to full size (x{scale:.1f}): "
              + ", ".join(f"{k} {v * scale:.0f} s" for k, v in old.items()), flush=True)
    run_new(n_addr, n_offers)
    print(f"peak RSS {peak_gb():.1f} GB")


if __name__ == "__main__":
    main()
