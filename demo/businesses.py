"""Place the demo's businesses so that their shares match the published Breitbandatlas Gewerbe table.

The addresses' Poisson business counts (:func:`demo.addresses.generate_addresses`; in MV about
:data:`MV_BUSINESS_LOCATIONS` in all, at a rate ∝ households + ½ per address) know nothing of the offers,
so their business-weighted shares were 7–14 pp off the published business shares per Gemeinde. This
module keeps the **number of businesses of each Gemeinde** as drawn and only chooses **which addresses**
hold them, after the offers are generated (method, per Gemeinde
with a row in the business table):

1. Features: for each group (dsl, hfc, fibre and wired = their union) and each published threshold
   ``t`` the demo analyses, whether an address' best download of the group is ≥ ``t``. Addresses with
   the same feature vector form a *cell* (at most one per combination of DSL, cable and fibre class).
   Targets: businesses of the Gemeinde × published share (made non-increasing over the thresholds).
2. Iterative proportional fitting of the cell weights (start: the drawn businesses + 0.1 per address
   of the cell, so dense places keep more) against the class distributions of the four groups.
3. The weights are rounded to whole businesses (largest remainder) and polished greedily: move one
   business from a cell to another while that lowers Σ |count ≥ t − target| (each group's thresholds
   weighted 1 / their number, as the comparison averages per group).
4. Within a cell the businesses are split over its addresses in proportion to the drawn businesses
   + 0.1 (largest remainder, ties by address order).

Sites (offices, schools) never hold businesses; Gemeinden without a row keep the drawn businesses. No
random draws are made: the result depends only on the drawn businesses and the offers it is given.
With few businesses a Gemeinde's shares can only be met up to one business (e.g. 10 pp with 10); with
the register's count the median Gemeinde has 26. Where a published share needs a class none of the
Gemeinde's addresses has (the offers are calibrated to households), it cannot be met at all.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from demo.addresses import largest_remainder

log = logging.getLogger(__name__)

#: Technology groups calibrated (columns ``{g}_down`` of the assignment; wired = their maximum).
BUSINESS_GROUPS = ("dsl", "hfc", "fibre", "wired")
#: Active business locations (Niederlassungen with employees or taxable turnover) in
#: Mecklenburg-Vorpommern in 2021: 66,707 (statistical business register, Registerstand 30 Sep 2022;
#: Statistisches Amt MV press release). The MV demo draws about this many businesses
#: (:func:`demo.addresses.generate_addresses` ``businesses_total``). The Breitbandatlas does not say
#: how many businesses its Gewerbe table counts, so this is the closest official figure, not its own.
MV_BUSINESS_LOCATIONS = 66_707
IPF_ITERATIONS = 40
POLISH_MOVES = 400
PRIOR_PER_ADDRESS = 0.1


def published_curves(
    wide: pd.DataFrame, ags: str, thresholds: Sequence[float]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per group: (thresholds, shares in %) published for ``ags`` among ``thresholds``; non-increasing."""
    row = wide.loc[ags]
    out = {}
    for g in BUSINESS_GROUPS:
        ts, ss = [], []
        for t in sorted(thresholds):
            col = f"share_ge_{t:g}_{g}"
            if col in row.index and pd.notna(row[col]):
                ts.append(float(t))
                ss.append(float(row[col]))
        if ts:
            out[g] = (np.array(ts), np.minimum.accumulate(np.clip(np.array(ss), 0.0, 100.0)))
    return out


def fit_cells(
    classes: dict[str, np.ndarray], targets: dict[str, np.ndarray], prior: np.ndarray, total: int
) -> np.ndarray:
    """Whole businesses per cell: IPF of ``prior`` to the class masses, rounding, greedy polish.

    ``classes[g]`` is each cell's class (number of thresholds reached, 0..K_g), ``targets[g]`` the
    published ≥ t business counts (length K_g, non-increasing, ≤ ``total``).
    """
    ncell = len(prior)
    x = prior / prior.sum() * total
    mass = {}
    for g, tg in targets.items():
        ge = np.concatenate([[float(total)], tg, [0.0]])
        mass[g] = ge[:-1] - ge[1:]  # businesses per class 0..K
    for _ in range(IPF_ITERATIONS):
        for g, k in classes.items():
            have = np.bincount(k, x, minlength=len(mass[g]))
            factor = np.where(have > 0, mass[g] / np.where(have > 0, have, 1.0), 1.0)
            x = x * factor[k]
            s = x.sum()
            x = x / s * total if s > 0 else prior / prior.sum() * total
    n = largest_remainder(np.zeros(ncell, dtype=np.int64), x, np.array([total]))
    # greedy polish on the objective the comparison measures (L1 per threshold, groups weighted equally)
    feats = []
    weights = []
    target = []
    for g, k in classes.items():
        for j, tj in enumerate(targets[g]):
            feats.append((k > j).astype(float))
            weights.append(1.0 / len(targets[g]))
            target.append(tj)
    if not feats or ncell < 2:
        return n
    a = np.stack(feats, axis=1)  # cells × features
    w = np.array(weights)
    tgt = np.array(target)
    step = a[None, :, :] - a[:, None, :]  # [i, j]: moving one business from cell i to cell j
    for _ in range(POLISH_MOVES):
        r = n @ a - tgt
        delta = (np.abs(r + step) - np.abs(r)) @ w
        delta[n == 0, :] = np.inf
        i, j = (int(v) for v in np.unravel_index(np.argmin(delta), delta.shape))
        if not delta[i, j] < -1e-9:
            break
        n[i] -= 1
        n[j] += 1
    return n


def place_businesses(
    addresses: pd.DataFrame,
    assignment: pd.DataFrame,
    bba_biz: pd.DataFrame,
    thresholds: Sequence[float],
) -> np.ndarray:
    """Businesses per address (rows of ``addresses``) matching the published business shares.

    ``addresses`` needs ``address_id, ags, businesses`` (the drawn counts) and ``site_kind``;
    ``assignment`` (from :func:`demo.providers.generate_deliveries`) ``address_id`` and
    ``dsl_down, hfc_down, fibre_down``; ``bba_biz`` is the Gewerbe table in wide form. The total per
    Gemeinde is kept; see the module docstring for the method.
    """
    drawn = addresses["businesses"].to_numpy(np.int64)
    speeds = assignment.set_index("address_id")[["dsl_down", "hfc_down", "fibre_down"]]
    speeds = speeds.reindex(addresses["address_id"]).fillna(0.0)
    down = {g: speeds[f"{g}_down"].to_numpy(float) for g in ("dsl", "hfc", "fibre")}
    down["wired"] = np.maximum.reduce([down["dsl"], down["hfc"], down["fibre"]])
    eligible = addresses["site_kind"].astype(str).to_numpy() == ""
    wide = bba_biz.set_index("key")
    ags = addresses["ags"].astype(str).to_numpy()
    out = np.where(eligible, drawn, 0)
    moved_sites = int(drawn[~eligible].sum())
    order = np.argsort(ags, kind="stable")
    bounds = np.flatnonzero(np.r_[True, ags[order][1:] != ags[order][:-1], True])
    fitted = 0
    for lo, hi in itertools.pairwise(bounds):
        rows = order[lo:hi]
        rows = rows[eligible[rows]]
        key = ags[order[lo]]
        total = int(drawn[order[lo:hi]].sum())
        if total == 0 or not len(rows) or key not in wide.index:
            if total and len(rows):
                out[rows] = largest_remainder(np.zeros(len(rows), np.int64), drawn[rows] + 0.0, np.array([total]))
            continue
        curves = published_curves(wide, key, thresholds)
        if not curves:
            continue
        cls = np.stack(
            [np.searchsorted(curves[g][0], down[g][rows], side="right") for g in curves], axis=1
        )
        cells, inv = np.unique(cls, axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        prior = np.bincount(inv, drawn[rows] + PRIOR_PER_ADDRESS, len(cells))
        classes = {g: cells[:, i] for i, g in enumerate(curves)}
        targets = {g: total * curves[g][1] / 100.0 for g in curves}
        n_cell = fit_cells(classes, targets, prior, total)
        out[rows] = largest_remainder(inv, drawn[rows] + PRIOR_PER_ADDRESS, n_cell)
        fitted += 1
    log.info(
        "businesses placed to the published Gewerbe shares in %d Gemeinden (%d businesses, %d moved off sites)",
        fitted,
        int(out.sum()),
        moved_sites,
    )
    return out
