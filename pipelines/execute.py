"""Runs a list of stages over a run state, the one way every run and every partition is executed.

Each stage's result is taken into the state, its accounting checked (an entry that does not
balance stops the run: rows were lost) and its quarantine rows kept with the stage's name.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from coverage import quarantine as q
from pipelines.stages import Accounting, RunState, Stage, StageResult, provider_stage_name

log = logging.getLogger(__name__)


@dataclass
class Ledger:
    """What the stages of a run reported: accounting, quarantine, status and time per stage."""

    accounting: list[Accounting] = field(default_factory=list)
    #: (stage name, quarantine rows) in the order the stages ran
    quarantine: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    status: dict[str, str] = field(default_factory=dict)  # stage -> "ran" | "reused"
    seconds: dict[str, float] = field(default_factory=dict)
    by_stage: dict[str, list[Accounting]] = field(default_factory=dict)  # the entries each stage recorded

    def record(self, stage: str, result: StageResult, status: str, seconds: float) -> None:
        for entry in result.accounting:
            if not entry.balanced:
                raise AssertionError(f"row accounting does not add up in {entry.stage}: {entry.as_dict()}")
        self.accounting += result.accounting
        self.by_stage[stage] = list(result.accounting)
        self.quarantine += [(stage, frame) for frame in result.quarantine if len(frame)]
        self.status[stage] = status
        self.seconds[stage] = round(seconds, 3)

    def merge(self, other: Ledger, prefix: str) -> None:
        """Take a partition's ledger, its accounting named after the partition."""
        for entry in other.accounting:
            entry.stage = f"{prefix}: {entry.stage}"
        self.accounting += other.accounting
        self.quarantine += other.quarantine

    def stage_quarantine(self, stage: str) -> pd.DataFrame:
        return q.concat([frame for name, frame in self.quarantine if name == stage])

    def all_quarantine(self) -> pd.DataFrame:
        return q.concat([frame for _, frame in self.quarantine])


#: Given a stage, the result of an earlier run to reuse, or None to run it.
Reuse = Callable[[Stage], StageResult | None]


def run_stages(stages: Sequence[Stage], state: RunState, ledger: Ledger, reuse: Reuse | None = None,
               label: str = "", between: Callable[[], None] | None = None) -> None:
    """Run (or reuse) each stage in order, taking its outputs into ``state``; ``between`` is called after
    each stage (a worker process hands freed memory back there)."""
    for stage in stages:
        t0 = time.perf_counter()
        result = reuse(stage) if reuse is not None and stage.reusable else None
        status = "ran" if result is None else "reused"
        if result is None:
            result = stage.call(state)
        state.update(result.outputs)
        ledger.record(stage.name, result, status, time.perf_counter() - t0)
        log.info("%sstage %s %s in %.1f s", label, stage.name, status, ledger.seconds[stage.name])
        if between is not None:
            between()


def deliveries_linking_nothing(ledger: Ledger, deliveries: Sequence[str]) -> str | None:
    """One line naming every delivery that reached no address at all (every record quarantined, no
    records, or polygons and raster cells over no address), with its top quarantine reasons; None if
    every delivery linked something. Such a delivery is a mistake (wrong columns, area or CRS), not a result.
    """
    problems = []
    for name in deliveries:
        stage = provider_stage_name(name)
        entries = [a for a in ledger.accounting if a.stage == stage or a.stage.endswith(f": {stage}")]
        linked = [a.linked for a in entries]
        if not entries or None in linked or sum(n or 0 for n in linked) > 0:
            continue
        rows = sum(a.rows_in for a in entries)
        why: Counter[str] = Counter()
        for a in entries:
            why.update(a.quarantined)
        top = ", ".join(f"{k} {v}" for k, v in why.most_common(3))
        detail = f"top quarantine reasons: {top}" if top else entries[0].note if len(entries) == 1 else "no offers"
        problems.append(f"{name} ({rows} row(s) in; {detail})" if rows else f"{name} (no records)")
    if not problems:
        return None
    return (f"{len(problems)} delivery/deliveries linked no record to any address: " + "; ".join(problems)
            + " — see the quarantine rows of `bbcov validate` / quarantine/<file>.csv")
