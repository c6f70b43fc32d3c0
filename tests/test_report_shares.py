"""The atlas's page work shared between this process and forked ones (pipelines.processes.run_shared,
pipelines.report._shares)."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from pipelines.processes import run_shared
from pipelines.report import _shares


def test_run_shared_runs_here_and_forked_in_order():
    big = {"rows": list(range(100_000))}  # read by the forked job without being sent to it
    jobs = [lambda: (os.getpid(), sum(big["rows"][:10])),  # lambdas cannot be pickled: the children are forked
            lambda: (os.getpid(), len(big["rows"])),
            lambda: (os.getpid(), big["rows"][-1])]
    results = run_shared(jobs)
    assert [r[1] for r in results] == [45, 100_000, 99_999]
    assert results[0][0] == os.getpid()
    assert len({pid for pid, _ in results}) == 3


def test_run_shared_raises_a_forked_jobs_failure_with_its_traceback():
    def fail() -> int:
        raise ValueError("page 4711 cannot be written")

    with pytest.raises(RuntimeError, match="page 4711 cannot be written") as info:
        run_shared([lambda: 1, fail])
    assert "ValueError" in str(info.value)


def test_shares_deal_every_kreis_and_amt_once_and_balance_the_gemeinden():
    gem = pd.DataFrame({"ags": [f"g{i}" for i in range(60)],
                        "vwg_ars": [f"a{i // 3}" for i in range(60)],  # 20 Ämter of 3 Gemeinden
                        "krs_ags": [f"k{i // 15}" for i in range(60)]})  # 4 Kreise of 15
    tables = {"kreis": pd.DataFrame({"krs_ags": ["k0", "k1", "k2", "k3", "k_empty"]}),
              "amt": pd.DataFrame({"vwg_ars": [f"a{i}" for i in range(19)] + ["a_empty"]})}  # a19 only in gem
    members = {level: dict(iter(gem.groupby(col, sort=True))) for level, col in (("kreis", "krs_ags"),
                                                                                ("amt", "vwg_ars"))}
    shares = _shares(tables, members, 2)
    for level, keys in (("kreis", {"k0", "k1", "k2", "k3", "k_empty"}),
                        ("amt", {f"a{i}" for i in range(20)} | {"a_empty"})):
        dealt = [k for share in shares for k in share[level]]
        assert sorted(dealt) == sorted(keys)  # each exactly once, a map's key without a table row too
    # expected work as _shares weighs it (Kreis page 40 + 2 per Gemeinde, Amt page 10 + 8 per Gemeinde): largest
    # first to the least loaded leaves the shares at most one unit apart
    def work(share: dict[str, set[str]]) -> int:
        return (sum(40 + 2 * len(members["kreis"].get(k, ())) for k in share["kreis"])
                + sum(10 + 8 * len(members["amt"].get(a, ())) for a in share["amt"]))

    loads = [work(share) for share in shares]
    assert abs(loads[0] - loads[1]) <= 40 + 2 * 15
    assert all(share["amt"] for share in shares)  # both processes write Amt and Gemeinde pages
