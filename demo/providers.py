"""Fictional provider deliveries calibrated to the published Breitbandatlas shares.

All provider names carry "(fiktiv)": these are NOT real network data.

Method (household-weighted quantile mapping, per Gemeinde and technology group):

1. Every 100 m cell gets one shared *place score* ("how well connected is this place"): log of
   the smoothed household density of the surrounding 1 km cells plus 500 m cluster noise and
   small cell noise. Each technology's score is ``w · z(place) + √(1 − w²) · z(own)`` (z =
   standardised within the Gemeinde, ``w`` = :data:`SHARED_WEIGHT`), with ``own``:
   - DSL: minus the distance to a fictional exchange at the household-weighted centre of the
     Gemeinde's densest 1 km cell, plus noise per 100 m cell (sd 150 m) and per address (20 m);
   - HFC (cable) and FTTH/B: independent 500 m cluster noise plus 100 m cell noise.
   The scores say where a technology goes *first*; how much of it overlaps the others is set by step 3.
2. Households are those the demo run will count (its Zensus estimate, :mod:`demo.run_households`).
   HFC (cable) and mobile are assigned per 100 m cell (all addresses of a cell get the same class,
   the cell counts for the Gemeinde holding most of its households) by quantile mapping: cells of a
   Gemeinde walked in descending score; with ``c`` the household fraction up to the middle of the
   cell, it gets the highest published class ``t`` with ``share_ge_t > 100 c``
   (:func:`quantile_classes`). Their shares are reproduced up to one cell's households.
3. Order: HFC, then DSL, then fibre, both per address by :func:`union_classes`: the addresses are
   put into *bins* by the best speed of the technologies already placed, one small linear programme
   per Gemeinde decides how many households of each class go into each bin (class sizes exactly the
   published ones; the union DSL ∪ HFC ∪ fibre, "wired", as close as possible to the published
   wired share at *every* threshold; DSL may stay below it by what fibre can still add), and inside
   a bin the addresses are taken by descending score, carrying the rounding from bin to bin (an
   address' households are indivisible; where the score order misses, the big addresses of a small
   Gemeinde first). So single technologies and "wired" both match per Gemeinde up to household
   granularity, except where the published wired share exceeds DSL + cable + fibre (other wired
   technologies the table does not list separately; five MV Gemeinden by more than 5 pp). Then
   :func:`demo.polish.polish_classes` moves single addresses where granularity or the classes kept
   from an earlier vintage (7.) still leave a share or the union above "wired"/"all" far off.
4. A class ``[t_i, t_{i+1})`` gets a realistic product speed inside it (never on the wrong side
   of a threshold). Uploads: DSL ≈ down/10, HFC ≈ down/20 (≤ 50), fibre down/2.
5. Gemeinden without a Breitbandatlas row (AGS changed by mergers) use the household-weighted
   shares of their Kreis' matched Gemeinden.
6. Mobile (:func:`calibrate_mobile`), per 100 m cell and last: the published mobile shares ≥ 1/2/6
   are reproduced (cells without ≥ 6 Mbit/s are put where wired already gives ≥ 6); above 6 Mbit/s
   the raster is calibrated so that "all" (wired ∪ mobile per address) matches the published "all":
   households whose best wired speed is below ``t`` reach ``t`` by mobile only in the proportion
   ``all_t − wired_t`` published (≈ 0 for t ≥ 30, small at 16). Mobile speeds are therefore
   **"as the Breitbandatlas counted them", not realistic LTE speeds**: the Breitbandatlas counted
   mobile only at low bandwidths (its mobile columns stop at 6 Mbit/s), so its "all" is close to
   "wired"; realistic LTE speeds (50–150 Mbit/s in towns) would lift "all" far above the published
   values. A cell keeps an invented speed (towns 50–150, rural 10–50 Mbit/s) only where that lifts
   no household over a threshold it may not cross; elsewhere it is clipped to just below the next
   threshold above the cell's slowest wired household (e.g. 6–15 Mbit/s where DSL is < 16).
   Where the generated wired falls short of the published one (see 3), mobile may lift households
   up to the published "all" at thresholds below :data:`MOBILE_FILL_BELOW` (30 Mbit/s).
   Unpopulated pixels of the raster get uncalibrated values.
7. Vintages (:func:`generate_deliveries` ``earlier``): all random draws (scores, noise, the product
   inside a class per address/cell, the invented mobile speed) come first and do not depend on the
   Breitbandatlas table. Cable and mobile cells are ordered by the levels (Mbit/s) they had in the
   earlier vintages before their score. Each address must keep, per group (DSL, cable, fibre,
   mobile, and "all" where wired does not give it any more), the highest threshold it reached in
   any earlier vintage where the published share of its Gemeinde at that threshold does not fall
   (:func:`_kept_level`; no published row: everything): a hard floor. DSL and fibre carry it into
   :func:`union_classes` (the linear programme pays :data:`UNION_KEEP_WEIGHT` per household short,
   the bins place those addresses first), cable and mobile cells keep the most any of their
   addresses needs, and DSL and fibre are placed first where mobile gave an "all" level
   (:data:`ALL_OVERLAP_BONUS`). So a later vintage never takes a class away where the published
   shares do not drop; the price is granularity: a kept address or cell may push a small
   Gemeinde's share above the published one by up to one address/cell (README, "Vintages").
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, TypedDict

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer

from coverage.crs import INSPIRE_GRID_CRS
from demo.addresses import _KEY, cell_key
from demo.polish import polish_classes

log = logging.getLogger(__name__)

PROVIDERS = {
    "dsl": "Küstennetz Telekommunikation GmbH (fiktiv)",
    "hfc": "Boddenkabel AG (fiktiv)",
    "fibre": "Seenplatte Glasfaser eG (fiktiv)",
    "mobile": "Hansefunk Mobil GmbH (fiktiv)",
}
#: Product download speeds (Mbit/s) per technology group; a class without a product uses its lower bound.
PRODUCTS = {
    "dsl": (1, 2, 6, 16, 50, 100, 250),
    "hfc": (32, 50, 100, 250, 400, 500, 1000),
    "fibre": (100, 150, 250, 300, 500, 600, 1000),
    "mobile": (1, 2, 3, 4, 5),
}
GROUPS = ("dsl", "hfc", "fibre", "mobile")
#: Weight of the shared per-place score in each technology's score (rest: technology-specific).
#: Chosen by a grid search over (dsl, hfc = fibre) in {0.3, 0.6, 0.8, 0.95}² minimising the
#: mean abs "wired" error on the matched MV Gemeinden (2021-06): 0.95/0.95 gave 1.02 pp, 0.6/0.7 1.21.
#: In MV the overlap is now set by :func:`union_classes`; the score still decides the places inside
#: a bin. The Germany demo still nests cable by :func:`nested_classes`.
SHARED_WEIGHT = {"dsl": 0.95, "hfc": 0.95, "fibre": 0.95}
BASE_CLUSTER_SD = 0.7
#: Mobile download offered at a cell where nothing limits it (towns, rural), before calibration.
MOBILE_TOWN = (50, 151)
NEST_RANGE = 8.0
NEST_ITERATIONS = 12
MOBILE_RURAL = (10, 51)
#: Mobile fills "all" where the generated wired falls short only at thresholds below this (Mbit/s).
MOBILE_FILL_BELOW = 30.0


def _thresholds(wide: pd.DataFrame, group: str) -> list[tuple[float, str]]:
    found = []
    for col in wide.columns:
        parts = str(col).split("_")
        if len(parts) == 4 and parts[0] == "share" and parts[1] == "ge" and parts[3] == group:
            found.append((float(parts[2]), col))
    return sorted(found)


def gemeinde_shares(
    wide: pd.DataFrame, ags: np.ndarray, households: pd.Series, group: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shares (%) per Gemeinde (rows in ``ags`` order) × published threshold of ``group``.

    Returns ``(thresholds, shares, matched)``; unmatched Gemeinden get the household-weighted
    shares of their Kreis' matched Gemeinden (else of all matched ones). Shares are made
    non-increasing over the thresholds.
    """
    cols = _thresholds(wide, group)
    thresholds = np.array([t for t, _ in cols])
    table = wide.set_index("key")[[c for _, c in cols]]
    shares = table.reindex(ags).to_numpy(float)
    matched = ~np.isnan(shares).all(axis=1)
    shares = np.where(np.isnan(shares) & matched[:, None], 0.0, shares)
    hh = households.reindex(ags).fillna(0).to_numpy(float)
    krs = np.array([a[:5] for a in ags])
    overall = _weighted(shares[matched], hh[matched])
    for k in np.unique(krs[~matched]):
        src = matched & (krs == k)
        fill = _weighted(shares[src], hh[src]) if src.any() else overall
        shares[(krs == k) & ~matched] = fill
    shares = np.minimum.accumulate(np.clip(shares, 0, 100), axis=1)
    return thresholds, shares, matched


def _weighted(shares: np.ndarray, w: np.ndarray) -> np.ndarray:
    if len(shares) == 0:
        return np.zeros(shares.shape[1])
    if w.sum() <= 0:
        return shares.mean(axis=0)
    return (shares * w[:, None]).sum(axis=0) / w.sum()


def quantile_classes(
    codes: np.ndarray, score: np.ndarray, weight: np.ndarray, shares: np.ndarray
) -> np.ndarray:
    """Class index 0..K per row: the number of thresholds whose share exceeds the row's quantile.

    Rows of group ``codes[i]`` are ordered by descending ``score``; ``c`` is the weight fraction up
    to the middle of the row. ``shares`` is G × K in %, non-increasing along K.
    """
    codes = np.asarray(codes, dtype=np.int64)
    ngroups = shares.shape[0]
    tot = np.bincount(codes, weight, minlength=ngroups)
    w = np.where(tot[codes] > 0, weight, 1.0)
    tot = np.bincount(codes, w, minlength=ngroups)
    order = np.lexsort((-np.asarray(score), codes))
    g = codes[order]
    ws = w[order]
    cum = np.cumsum(ws)
    start = np.concatenate([[0.0], np.cumsum(tot)])[g]
    c = (cum - ws / 2 - start) / tot[g]
    k_sorted = (shares[g] > 100.0 * c[:, None]).sum(axis=1)
    out = np.empty(len(codes), dtype=np.int64)
    out[order] = k_sorted
    return out


def class_speeds(
    k: np.ndarray,
    thresholds: np.ndarray,
    products: tuple[float, ...],
    rng: np.random.Generator | None = None,
    u: np.ndarray | None = None,
) -> np.ndarray:
    """Download speed per row for class ``k`` (0 = none): a product inside ``[t_k-1, t_k)``.

    The product is drawn from ``rng`` or, if given, picked by the per-row uniform ``u`` in [0, 1)
    (so a row keeping its class keeps its speed whatever the other rows do).
    """
    down = np.zeros(len(k))
    bounds = [*thresholds.tolist(), np.inf]
    for cls in range(1, len(thresholds) + 1):
        rows = np.flatnonzero(k == cls)
        if not len(rows):
            continue
        lo, hi = bounds[cls - 1], bounds[cls]
        inside = [p for p in products if lo <= p < hi] or [lo]
        if u is not None:
            pick = np.minimum((np.asarray(u)[rows] * len(inside)).astype(np.int64), len(inside) - 1)
        elif rng is not None:
            pick = rng.integers(0, len(inside), len(rows))
        else:
            raise TypeError("class_speeds needs rng or u")
        down[rows] = np.asarray(inside, float)[pick]
    return down


def _zscore(values: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``values`` standardised within each group of ``codes`` (sd 0 -> 0)."""
    codes = np.asarray(codes, dtype=np.int64)
    n = np.bincount(codes).astype(float)
    mean = np.bincount(codes, values) / np.maximum(n, 1)
    dev = values - mean[codes]
    sd = np.sqrt(np.bincount(codes, dev * dev) / np.maximum(n, 1))
    return np.where(sd[codes] > 0, dev / np.where(sd[codes] > 0, sd[codes], 1.0), 0.0)


def _blend(shared: np.ndarray, own: np.ndarray, weight: float) -> np.ndarray:
    return weight * shared + np.sqrt(max(0.0, 1.0 - weight * weight)) * own


def nested_classes(
    cg: np.ndarray,
    inv: np.ndarray,
    hh: np.ndarray,
    codes: np.ndarray,
    score: np.ndarray,
    chh: np.ndarray,
    thresholds: np.ndarray,
    shares: np.ndarray,
    other: np.ndarray,
    wired: tuple[np.ndarray, np.ndarray],
    iterations: int = NEST_ITERATIONS,
) -> np.ndarray:
    """Cell classes (as :func:`quantile_classes`) whose union with ``other`` matches "wired".

    ``other`` is each address' best download of the technologies already assigned. A cell's
    ``overlap`` is the mean, over the published wired thresholds, of its household fraction that
    ``other`` already serves at that threshold; the cells are ordered by ``score + λ_g · overlap``
    with one ``λ_g`` per Gemeinde found by bisection in ``[-NEST_RANGE, NEST_RANGE]`` so that the
    summed difference (generated − published) of the union shares over the thresholds is ≈ 0
    (larger λ = more nested = smaller union). The technology's own shares are unchanged.
    """
    ncell = len(cg)
    t_w, s_w = wired
    ngem = s_w.shape[0]
    gem_hh = np.maximum(np.bincount(codes, hh, ngem), 1e-9)
    below = np.stack([np.bincount(inv, hh * (other < tw), ncell) for tw in t_w], axis=1)
    base = 100.0 * np.stack([np.bincount(codes, hh * (other >= tw), ngem) for tw in t_w], axis=1) / gem_hh[:, None]
    overlap = 1.0 - (below / np.maximum(chh, 1e-9)[:, None]).mean(axis=1)
    overlap = np.where(chh > 0, overlap, 0.0)
    # class index needed to reach each wired threshold (published tech thresholds >= t_w)
    need_k = np.searchsorted(thresholds, t_w, side="left") + 1

    def error(lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = quantile_classes(cg, score + lam[cg] * overlap, chh, shares)
        gain = np.stack([np.bincount(cg, below[:, j] * (k >= need_k[j]), ngem) for j in range(len(t_w))], axis=1)
        union = base + 100.0 * gain / gem_hh[:, None]
        return np.nansum(union - s_w, axis=1), k

    lo = np.full(ngem, -NEST_RANGE)
    hi = np.full(ngem, NEST_RANGE)
    for _ in range(iterations):
        mid = (lo + hi) / 2
        err, _ = error(mid)
        lo = np.where(err > 0, mid, lo)
        hi = np.where(err > 0, hi, mid)
    return error((lo + hi) / 2)[1]


#: Weight of keeping a technology where its own score puts it, against the "wired" error (both in households).
UNION_TIE_WEIGHT = 0.01
#: Weight per household of an earlier vintage's class taken away, against the "wired" error.
UNION_KEEP_WEIGHT = 20.0
#: Gemeinden per linear programme of :func:`union_classes` (one block-diagonal HiGHS LP over all MV
#: Gemeinden took 9.8 s per full-MV synth, chunks of about 50 gave the same optimum in 7.2 s).
UNION_CHUNK = 50
#: Score bonus (the scores are standardised) per wired threshold by which the "all" level an address must
#: keep (mobile gave it in an earlier vintage) exceeds what is already placed: DSL and fibre go there first.
ALL_OVERLAP_BONUS = 1.0


def union_classes(
    codes: np.ndarray,
    score: np.ndarray,
    hh: np.ndarray,
    thresholds: np.ndarray,
    shares: np.ndarray,
    other: np.ndarray,
    wired: tuple[np.ndarray, np.ndarray],
    room: np.ndarray | None = None,
    floor: np.ndarray | None = None,
) -> np.ndarray:
    """Class index 0..K per address (as :func:`quantile_classes`) whose union with ``other`` matches
    the published "wired" shares at every wired threshold, not only on their sum.

    ``room`` (% per Gemeinde × wired threshold, default 0) lets the union fall short of "wired"
    by that much without penalty: what a technology placed later can still add.

    ``floor`` (class index per address, default 0) is the class an address had in the previous
    vintage: the households of class >= c per bin should not fall below those with floor >= c
    (a soft constraint, :data:`UNION_KEEP_WEIGHT` per household short, so a vintage only takes a
    class away where the published share fell), and inside a bin they are taken first.

    ``other`` is each address' best download of the technologies already placed; it puts the
    address in a *bin* (how many wired thresholds it already reaches). One small linear programme
    per Gemeinde (solved together, block-diagonal, HiGHS) decides how many households of each class
    go to each bin: the class sizes are the published ones exactly, a bin holds at most its
    households, and the households a class adds to the union at each wired threshold (those in bins
    below it) should equal the published wired share minus what ``other`` already reaches; it
    minimises the summed absolute miss (households) plus :data:`UNION_TIE_WEIGHT` × the distance
    from the allocation the score alone would give. Inside a bin the addresses are then taken by
    descending ``score`` (quantile mapping), so the places stay those of the score where possible.
    """
    from scipy import sparse
    from scipy.optimize import linprog

    codes = np.asarray(codes, dtype=np.int64)
    ngem, nk = shares.shape
    if ngem > UNION_CHUNK:  # the Gemeinden are independent: smaller programmes solve faster than one big one
        out = np.zeros(len(codes), dtype=np.int64)
        t_w, s_w = wired
        for lo in range(0, ngem, UNION_CHUNK):
            gems = np.arange(lo, min(lo + UNION_CHUNK, ngem))
            part = np.flatnonzero((codes >= gems[0]) & (codes <= gems[-1]))
            out[part] = union_classes(
                codes[part] - lo, np.asarray(score)[part], np.asarray(hh)[part], thresholds, shares[gems],
                np.asarray(other)[part], (t_w, np.asarray(s_w)[gems]),
                room=None if room is None else np.asarray(room)[gems],
                floor=None if floor is None else np.asarray(floor)[part],
            )
        return out
    hh = np.asarray(hh, float)
    hh = np.where(np.bincount(codes, hh, ngem)[codes] > 0, hh, 1.0)  # a Gemeinde without households: by address
    t_w, s_w = wired
    nm = len(t_w)
    nb = nm + 1
    b = np.searchsorted(t_w, np.asarray(other, float), side="right")
    q = codes * nb + b
    cap = np.bincount(q, hh, ngem * nb).reshape(ngem, nb)
    gem_hh = cap.sum(axis=1)
    pct = np.c_[shares, np.zeros(ngem)] / 100.0 * gem_hh[:, None]
    size = np.maximum(pct[:, :-1] - pct[:, 1:], 0.0)  # households per exact class 1..K
    reach = np.searchsorted(t_w, thresholds, side="right")  # class c reaches wired thresholds i < reach[c-1]
    fl = np.zeros(len(codes), dtype=np.int64) if floor is None else np.asarray(floor, dtype=np.int64)
    natural = quantile_classes(codes, score + _PRIOR_STEP * fl, hh, shares)
    n0 = np.zeros((ngem, nk, nb))
    served = natural > 0
    np.add.at(n0, (codes[served], natural[served] - 1, b[served]), hh[served])
    already = cap[:, ::-1].cumsum(axis=1)[:, ::-1][:, 1:]  # households with other >= t_w[i]
    target = np.asarray(s_w, float) / 100.0 * gem_hh[:, None] - already
    valid = ~np.isnan(target) & (gem_hh[:, None] > 0)
    slack = np.zeros((ngem, nm)) if room is None else np.clip(np.nan_to_num(room), 0, None) / 100.0 * gem_hh[:, None]

    # variables per Gemeinde: n[c, b], d+[c, b], d-[c, b] (n - n0 = d+ - d-), e+[i], e-[i], s[i]
    # (gain - e+ + e- + s = target, 0 <= s <= room: a shortfall up to ``room`` is free), u[c, b]
    # (households of an earlier class >= c+1 in bin b not kept)
    nv = nk * nb
    per = 4 * nv + 3 * nm
    base = np.arange(ngem)[:, None] * per
    cols_n = base + np.arange(nv)[None, :]  # ngem × nv, index c * nb + b
    rows, cols, vals, rhs_eq = [], [], [], []
    r = 0
    # class sizes
    for c in range(nk):
        rr = r + np.arange(ngem)
        for bb in range(nb):
            rows.append(rr)
            cols.append(cols_n[:, c * nb + bb])
            vals.append(np.ones(ngem))
        rhs_eq.append(size[:, c])
        r += ngem
    # n - d+ + d- = n0
    for j in range(nv):
        rr = r + np.arange(ngem)
        rows += [rr, rr, rr]
        cols += [cols_n[:, j], base[:, 0] + nv + j, base[:, 0] + 2 * nv + j]
        vals += [np.ones(ngem), -np.ones(ngem), np.ones(ngem)]
        c, bb = divmod(j, nb)
        rhs_eq.append(n0[:, c, bb])
        r += ngem
    # gain at wired threshold i: classes reaching i, bins <= i; minus e+ plus e- = target
    for i in range(nm):
        g_ok = np.flatnonzero(valid[:, i])
        rr = r + np.arange(len(g_ok))
        for c in range(nk):
            if reach[c] <= i:
                continue
            for bb in range(i + 1):
                rows.append(rr)
                cols.append(cols_n[g_ok, c * nb + bb])
                vals.append(np.ones(len(g_ok)))
        rows += [rr, rr, rr]
        cols += [base[g_ok, 0] + 3 * nv + i, base[g_ok, 0] + 3 * nv + nm + i, base[g_ok, 0] + 3 * nv + 2 * nm + i]
        vals += [-np.ones(len(g_ok)), np.ones(len(g_ok)), np.ones(len(g_ok))]
        rhs_eq.append(np.nan_to_num(target[g_ok, i]))
        r += len(g_ok)
    a_eq = sparse.csr_array(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(r, ngem * per)
    )
    # bin capacities
    crow = [np.arange(ngem) * nb + bb for bb in range(nb) for _ in range(nk)]
    ccol = [cols_n[:, c * nb + bb] for bb in range(nb) for c in range(nk)]
    cval = [np.ones(ngem) for _ in range(nb * nk)]
    b_ub = [cap.ravel() * (1 + 1e-9) + 1e-9]
    # keep: -sum_{c' >= c} n[c', b] - u[c, b] <= -(households with floor >= c+1 in bin b)
    kept = np.zeros((ngem, nk, nb))
    has = fl > 0
    np.add.at(kept, (codes[has], np.minimum(fl[has], nk) - 1, b[has]), hh[has])
    kept = kept[:, ::-1, :].cumsum(axis=1)[:, ::-1, :]
    r_ub = ngem * nb
    for c in range(nk):
        for bb in range(nb):
            rr = r_ub + np.arange(ngem)
            for c2 in range(c, nk):
                crow.append(rr)
                ccol.append(cols_n[:, c2 * nb + bb])
                cval.append(-np.ones(ngem))
            crow.append(rr)
            ccol.append(base[:, 0] + 3 * nv + 3 * nm + c * nb + bb)
            cval.append(-np.ones(ngem))
            b_ub.append(-kept[:, c, bb] * (1 - 1e-9))
            r_ub += ngem
    a_ub = sparse.csr_array(
        (np.concatenate(cval), (np.concatenate(crow), np.concatenate(ccol))), shape=(r_ub, ngem * per)
    )
    cost = np.zeros(per)
    cost[nv : 3 * nv] = UNION_TIE_WEIGHT
    cost[3 * nv : 3 * nv + 2 * nm] = 1.0
    cost[3 * nv + 3 * nm :] = UNION_KEEP_WEIGHT
    upper = np.full((ngem, per), np.inf)
    upper[:, 3 * nv + 2 * nm : 3 * nv + 3 * nm] = slack
    res = linprog(
        np.tile(cost, ngem), A_ub=a_ub, b_ub=np.concatenate(b_ub), A_eq=a_eq,
        b_eq=np.concatenate(rhs_eq), bounds=np.c_[np.zeros(ngem * per), upper.ravel()], method="highs",
    )
    if res.status != 0:
        log.warning("union placement: linear programme not solved (%s); score order kept", res.message)
        return natural
    n = res.x.reshape(ngem, per)[:, :nv].reshape(ngem, nk, nb)
    out = _realise_bins(n, codes, b, score, hh, cap, fl)
    # Addresses without households (sites) count for nothing in the bins, so filling them would put every
    # site into the top class (all schools of Rostock at DSL 250); they get the class their score has
    # among the households instead, and at least their earlier class.
    return np.where(hh > 0, out, np.maximum(natural, np.minimum(fl, nk)))


def _realise_bins(
    n: np.ndarray,
    codes: np.ndarray,
    b: np.ndarray,
    score: np.ndarray,
    hh: np.ndarray,
    cap: np.ndarray,
    floor: np.ndarray,
) -> np.ndarray:
    """Classes per address from households per (Gemeinde, class, bin) ``n``.

    Inside a bin the addresses are taken by descending ``score``, highest class first
    (:func:`_fill`); an address never gets less than its ``floor`` (the class it must keep from an
    earlier vintage, :func:`_kept_class`): those are placed before the others are filled, and a
    higher floor goes first into the higher classes too (so floors are not left over for the lower
    classes). Bins are filled in turn
    and each carries the rounding of the ones before (an
    address' households are indivisible), so a Gemeinde's class sizes miss by about half an address
    at most, not half an address per bin."""
    ngem, nk, nb = n.shape
    above = n[:, ::-1, :].cumsum(axis=1)[:, ::-1, :]  # households of class >= c+1, per bin
    order = np.lexsort((-np.asarray(score), -floor, codes))
    carry = np.zeros((ngem, nk))
    out = np.zeros(len(codes), dtype=np.int64)
    for bb in range(nb):
        rows = order[b[order] == bb]
        want = np.minimum.accumulate(np.clip(above[:, :, bb] + carry, 0.0, cap[:, bb, None]), axis=1)
        have = np.zeros(ngem)
        for c in range(nk - 1, -1, -1):
            free = rows[out[rows] == 0]
            # an address whose floor is above c gets at least c + 1 whatever the fit; the others fill the rest
            forced = free[floor[free] > c]
            out[forced] = c + 1
            have += np.bincount(codes[forced], hh[forced], ngem)
            free = free[floor[free] <= c]
            take = _fill(free, codes, hh, want[:, c] - have, floor)
            out[take] = c + 1
            have += np.bincount(codes[take], hh[take], ngem)
            carry[:, c] += above[:, c, bb] - have
    # addresses without households (sites) change no share: they keep their earlier class
    return np.where(hh > 0, out, np.maximum(out, np.minimum(floor, nk)))


def _fill(rows: np.ndarray, codes: np.ndarray, hh: np.ndarray, need: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """Rows (sorted by Gemeinde, then preference) that meet each Gemeinde's ``need`` (households)
    closely: :func:`_fill_in_order` in the preference order, or, where that misses by more, by
    ``floor`` then descending households (big addresses of small Gemeinden first: a closer subset sum)."""
    first = _fill_in_order(rows, codes, hh, need)
    by_size = rows[np.lexsort((-hh[rows], -floor[rows], codes[rows]))]
    second = _fill_in_order(by_size, codes, hh, need)
    ngem = len(need)
    miss1 = np.abs(need - np.bincount(codes[first], hh[first], ngem))
    miss2 = np.abs(need - np.bincount(codes[second], hh[second], ngem))
    better = miss2 < miss1 - 1e-9
    return np.concatenate([first[~better[codes[first]]], second[better[codes[second]]]])


def _fill_in_order(
    rows: np.ndarray, codes: np.ndarray, hh: np.ndarray, need: np.ndarray, rounds: int = 3
) -> np.ndarray:
    """Rows taken in order until each Gemeinde's ``need`` is met: a row is taken if the households
    before it plus half its own stay below the need; rows too large to fit are skipped so smaller
    ones after them can still fill it."""
    taken = []
    rem = need.astype(float).copy()
    cand = rows
    for _ in range(rounds):
        if not len(cand):
            break
        w = hh[cand]
        cand = cand[w / 2 < rem[codes[cand]]]
        if not len(cand):
            break
        g = codes[cand]
        w = hh[cand]
        cum = np.cumsum(w)
        first = np.r_[True, g[1:] != g[:-1]]
        start = np.maximum.accumulate(np.where(first, cum - w, 0.0))
        inc = (cum - start - w / 2) < rem[g]
        taken.append(cand[inc])
        rem -= np.bincount(g[inc], w[inc], len(rem))
        cand = cand[~inc]
    return np.concatenate(taken) if taken else np.zeros(0, dtype=np.int64)


def calibrate_mobile(
    cg: np.ndarray,
    inv: np.ndarray,
    hh: np.ndarray,
    codes: np.ndarray,
    wired: np.ndarray,
    mscore: np.ndarray,
    town: np.ndarray,
    shares_by_group: Mapping[str, tuple[np.ndarray, np.ndarray]],
    rng: np.random.Generator,
    noise: Mapping[str, np.ndarray] | None = None,
    prior: Mapping[str, Any] | None = None,
    keep: np.ndarray | None = None,
) -> np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]:
    """Mobile download per 100 m cell so that mobile ≥ 1/2/6 and "all" (wired ∪ mobile) match.

    ``cg`` is the cell's Gemeinde code, ``inv`` the cell of each address, ``wired`` each address'
    best wired download; shares are those of :func:`gemeinde_shares` per group. Steps:

    1. mobile classes < 6 Mbit/s by quantile mapping of ``mscore``, with cells whose households
       all have wired ≥ 6 Mbit/s placed last (so "no mobile" falls where wired already serves);
    2. for each published "all" threshold ``t`` > 6, from the highest down, per Gemeinde: the
       households with wired < t that may reach t by mobile are
       ``clip(all_t − wired_t(generated), 0, all_t − wired_t(published))`` % of the Gemeinde; cells
       (descending ``mscore``) are lifted to ≥ t until their households with wired < t reach that;
    3. each cell ≥ 6 gets its invented speed (towns 50–150, rural 10–50) clipped into
       ``[max(6, lift), next threshold above both the lift and the cell's slowest wired household)``,
       so no household crosses a threshold by mobile unless step 2 allowed it.

    With ``noise`` (per cell: ``u`` uniform for the product in a class, ``want`` the invented
    speed) nothing is drawn from ``rng`` and ``(down, state)`` is returned; ``state`` (classes
    ``km`` and ``lift``) passed back as ``prior`` for a later vintage puts the cells that had a
    class / lift before first, so the later vintage's cells are supersets where shares do not drop.
    """
    ncell = len(cg)
    hh = np.asarray(hh, float)
    has_hh = hh > 0
    wmin = np.full(ncell, np.inf)
    np.minimum.at(wmin, inv[has_hh], wired[has_hh])
    chh = np.bincount(inv, hh, ncell)

    t_m, s_m = shares_by_group["mobile"]
    low_ok = wmin >= 6
    key = mscore - 1e3 * low_ok
    if prior is not None:
        key = key + _PRIOR_STEP * 1e2 * _prior_rank(prior["km"], prior["km_max"])
    km = quantile_classes(cg, key, chh, s_m)
    if keep is not None:  # what each cell must keep from the earlier vintages (:func:`_kept_level`)
        km = np.maximum(km, np.searchsorted(t_m, keep, side="right"))
    if noise is not None:
        down = class_speeds(km, t_m, PRODUCTS["mobile"], u=noise["u"])
    else:
        down = class_speeds(km, t_m, PRODUCTS["mobile"], rng)
    top = km == len(t_m)

    t_all, s_all = shares_by_group["all"]
    t_w, s_w = shares_by_group["wired"]
    s_w = pd.DataFrame(s_w, columns=t_w).reindex(columns=t_all).to_numpy()
    pick = t_all > 6
    t_all, s_all, s_w = t_all[pick], s_all[:, pick], s_w[:, pick]
    ngem = s_all.shape[0]
    gem_hh = np.bincount(codes, hh, ngem)
    lift = np.full(ncell, -1)
    for j in range(len(t_all) - 1, -1, -1):
        t = t_all[j]
        below = np.bincount(inv, hh * (wired < t), ncell)
        ours = 100.0 - 100.0 * np.bincount(codes, hh * (wired < t), ngem) / np.maximum(gem_hh, 1e-9)
        # lift by the published gap all − wired; below MOBILE_FILL_BELOW also where the generated wired
        # falls short of the published one (a published wired above DSL + cable + fibre counts other
        # wired technologies); never to gigabit speeds for that
        gap = s_all[:, j] - s_w[:, j]
        if t < MOBILE_FILL_BELOW:
            gap = np.maximum(gap, s_all[:, j] - ours)
        gap = np.nan_to_num(gap, nan=0.0)
        target = np.clip(s_all[:, j] - ours, 0.0, np.maximum(gap, 0.0)) / 100.0 * gem_hh
        have = np.bincount(cg, below * (lift >= j), ngem)
        need = target - have
        cand = np.flatnonzero(top & (lift < j) & (below > 0) & (need[cg] > 0))
        if not len(cand):
            continue
        if prior is None:
            mkey = mscore
        else:
            mkey = mscore + _PRIOR_STEP * (prior["lift"] >= t) + 1e2 * (prior["lift_max"] >= t)
        order = cand[np.lexsort((-mkey[cand], cg[cand]))]
        g = cg[order]
        gain = below[order]
        cum = np.cumsum(gain)
        first = np.r_[True, g[1:] != g[:-1]]
        start = np.maximum.accumulate(np.where(first, cum - gain, 0.0))
        take = (cum - start - gain / 2) < need[g]
        lift[order[take]] = j

    bounds = np.r_[t_all, np.inf]
    lo = np.where(lift >= 0, bounds[np.maximum(lift, 0)], 6.0)
    lo = np.maximum(lo, 6.0)
    if keep is not None:
        lo = np.maximum(lo, keep)
    # next threshold strictly above both the lift level and the slowest wired household
    floor_ = np.maximum(lo, np.where(np.isfinite(wmin), wmin, np.inf))
    nxt = np.searchsorted(t_all, floor_, side="right")
    hi = np.where(np.isfinite(floor_), bounds[np.minimum(nxt, len(t_all))], np.inf)
    if noise is not None:
        want = noise["want"]
    else:
        want = np.where(
            town, rng.integers(*MOBILE_TOWN, ncell), rng.integers(*MOBILE_RURAL, ncell)
        ).astype(float)
    val = np.minimum(np.maximum(want, lo), np.minimum(hi - 1, 65535))
    down[top] = val[top]
    if noise is None:
        return down
    # state as levels in Mbit/s (the threshold columns differ between Breitbandatlas releases)
    return down, {"km": np.r_[0.0, t_m][km], "lift": np.where(lift >= 0, t_all[np.maximum(lift, 0)], 0.0)}


#: Key step that puts earlier-vintage levels before any score difference (scores + λ are O(20)).
_PRIOR_STEP = 1e4


def _prior_rank(latest: np.ndarray, best: np.ndarray) -> np.ndarray:
    """Sort key from the levels (Mbit/s of the class' lower threshold, 0 = none) of earlier vintages:
    the previous vintage's level first, then the best level of any earlier vintage (so a cell that
    lost service in between comes back first). Dense ranks, so the key steps are ≥ 1/50."""
    latest = np.asarray(latest, float)
    best = np.asarray(best, float)
    levels = np.unique(np.r_[latest, best])
    return np.searchsorted(levels, latest) + np.searchsorted(levels, best) / 50.0


def _cluster_noise(key: np.ndarray, sd: float, rng: np.random.Generator) -> np.ndarray:
    uniq, inv = np.unique(key, return_inverse=True)
    return rng.normal(0, sd, len(uniq))[inv]


def _cells_3035(addresses: pd.DataFrame, crs: object) -> tuple[np.ndarray, np.ndarray]:
    tr = Transformer.from_crs(crs, INSPIRE_GRID_CRS, always_xy=True)
    return tr.transform(addresses["x"].to_numpy(float), addresses["y"].to_numpy(float))


def _cell_majority(
    cell: np.ndarray, codes: np.ndarray, hh: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per 100 m cell: its Gemeinde code (most households, then most addresses), households; row -> cell."""
    frame = pd.DataFrame({"cell": cell, "g": codes, "hh": hh + 1e-6})
    per = frame.groupby(["cell", "g"], sort=True)["hh"].sum().reset_index()
    per = per.sort_values(["cell", "hh", "g"], ascending=[True, False, True], kind="stable")
    major = per.drop_duplicates("cell").set_index("cell")
    cells = major.index.to_numpy()
    inv = np.searchsorted(cells, cell)
    cell_hh = pd.Series(hh).groupby(cell).sum().reindex(cells).to_numpy(float)
    return major["g"].to_numpy(np.int64), cell_hh, inv


class Deliveries(TypedDict):
    """What :func:`generate_deliveries` returns (see there)."""

    unmatched: list[str]
    dsl: pd.DataFrame
    hfc_polygons: gpd.GeoDataFrame
    mobile_raster: np.ndarray
    mobile_transform: tuple[float, float, float]
    fibre: pd.DataFrame
    planned_amts: list[str]
    assignment: pd.DataFrame
    #: the assignment of the last table of ``later`` (= ``assignment`` without ``later``)
    reference_assignment: pd.DataFrame


class _AddressArrays(TypedDict):
    """The addresses and their per-address arrays that :func:`_calibrate_vintage` needs."""

    addresses: pd.DataFrame
    ags_all: np.ndarray
    codes: np.ndarray
    hh: np.ndarray


class Draws(NamedTuple):
    """The random inputs of a placement (:func:`draw_scores`)."""

    ucells: np.ndarray  # the 100 m cells with addresses (keys, sorted)
    cells: dict[str, np.ndarray]  # cg, chh: Gemeinde and households per cell; inv: cell per address; town
    scores: dict[str, np.ndarray]  # per technology: per address (dsl, fibre) or cell (hfc, mobile)
    uniform: dict[str, np.ndarray]  # the product inside a class
    mobile_noise: dict[str, np.ndarray]


def draw_scores(addresses: pd.DataFrame, codes: np.ndarray, hh: np.ndarray, ngem: int, cell100: np.ndarray,
                cluster500: np.ndarray, logd: np.ndarray, rng: np.random.Generator) -> Draws:
    """Every score and uniform the placement of MV and of a German Land uses, drawn in one fixed order (so a
    seed gives the same demo, and a retry of a placement draws nothing new)."""
    n = len(addresses)
    # one shared "how well connected is this place" score per 100 m cell (density + 500 m clusters)
    cg, chh, inv = _cell_majority(cell100, codes, hh)
    ucells = np.unique(cell100)
    ncell = len(ucells)
    cell_logd = pd.Series(logd).groupby(cell100).max().reindex(ucells).to_numpy()
    ccx = (ucells // _KEY) * 100.0 + 50
    ccy = (ucells % _KEY) * 100.0 + 50
    cl500 = cell_key(ccx, ccy, 500)
    cl2k = cell_key(ccx, ccy, 2000)
    base_cell = cell_logd + _cluster_noise(cl500, BASE_CLUSTER_SD, rng) + rng.normal(0, 0.2, ncell)
    base_addr = _zscore(base_cell[inv], codes)
    # DSL: distance to a fictional exchange in the densest place, blended with the shared score
    dist = exchange_distance(addresses, codes, hh, ngem)
    own = -dist + _cluster_noise(cell100, 150.0, rng) + rng.normal(0, 20.0, n)
    scores = {"dsl": _blend(base_addr, _zscore(own, codes), SHARED_WEIGHT["dsl"])}
    # fibre: per address, shared score plus cluster noise
    own = _cluster_noise(cluster500, 0.8, rng) + _cluster_noise(cell100, 0.3, rng) + rng.normal(0, 0.01, n)
    scores["fibre"] = _blend(base_addr, _zscore(own, codes), SHARED_WEIGHT["fibre"])
    # HFC: per 100 m cell
    own = _cluster_noise(cl500, 0.7, rng) + rng.normal(0, 0.2, ncell)
    scores["hfc"] = _blend(_zscore(base_cell, cg), _zscore(own, cg), SHARED_WEIGHT["hfc"])
    # mobile: per 100 m cell
    scores["mobile"] = cell_logd + _cluster_noise(cl2k, 0.8, rng) + rng.normal(0, 0.3, ncell)
    town = np.expm1(cell_logd) > 800
    # the product inside a class: one uniform per address (DSL, fibre) or cell (HFC, mobile)
    uniform = {"dsl": rng.random(n), "fibre": rng.random(n), "hfc": rng.random(ncell)}
    mobile_noise = {
        "u": rng.random(ncell),
        "want": np.where(
            town, rng.integers(*MOBILE_TOWN, ncell), rng.integers(*MOBILE_RURAL, ncell)
        ).astype(float),
    }
    return Draws(ucells, {"cg": cg, "chh": chh, "inv": inv, "town": town}, scores, uniform, mobile_noise)


def generate_deliveries(
    addresses: pd.DataFrame,
    bba: pd.DataFrame,
    crs: object,
    rng: np.random.Generator,
    amt_of: Mapping[str, str],
    area_3035: shapely.Geometry,
    planned_amt_count: int = 3,
    earlier: Sequence[pd.DataFrame] = (),
    later: Sequence[pd.DataFrame] = (),
    weights: np.ndarray | None = None,
) -> Deliveries:
    """Provider deliveries for ``addresses`` (needs address_id, x, y, ags, households, density, cell_1km).

    ``bba`` is :func:`coverage.sources.breitbandatlas.bba_wide` output. Returns a dict with
    ``assignment`` (per address: down/up per group), ``dsl`` and ``fibre`` tables, ``hfc_polygons``
    (GeoDataFrame in EPSG:3035), ``mobile_raster`` (uint16 array) and ``mobile_transform``
    (x of the left edge, y of the top edge, 100 m), ``unmatched`` (Gemeinden without BBA row).

    Vintage consistency: every random draw that orders or nests addresses/cells (scores, noise,
    the product inside a class, the invented mobile speed) is made first and does not depend on the
    Breitbandatlas table. ``earlier`` are the tables of the earlier vintages (oldest first): they
    are calibrated in turn with the same draws, and their cable / mobile classes are carried as a
    leading sort key (:func:`_prior_rank`), so where the published shares do not go down the
    later vintage serves a superset at the same or a higher class (see :func:`_calibrate_vintage`).
    ``later`` are the tables of later vintages (oldest first), calibrated after ``bba`` in the same
    way; only their last assignment is returned (``reference_assignment``: the offers the demo's
    businesses are placed against, the same for every vintage). They draw nothing and change nothing else.
    ``weights`` are the households per address the shares are calibrated against (default: the
    ``households`` column); the MV demo passes the run's Zensus estimate (:mod:`demo.run_households`).
    """
    crs = CRS.from_user_input(crs)
    ags_all = np.sort(addresses["ags"].unique())
    codes = np.searchsorted(ags_all, addresses["ags"].to_numpy())
    hh = addresses["households"].to_numpy(float) if weights is None else np.asarray(weights, float)
    x3, y3 = _cells_3035(addresses, crs)
    cell100 = cell_key(x3, y3, 100)
    cluster500 = cell_key(x3, y3, 500)
    logd = np.log1p(addresses["density"].to_numpy(float))
    n = len(addresses)

    drawn = draw_scores(addresses, codes, hh, len(ags_all), cell100, cluster500, logd, rng)
    cells, scores, uniform, mobile_noise = drawn.cells, drawn.scores, drawn.uniform, drawn.mobile_noise
    ucells, inv = drawn.ucells, drawn.cells["inv"]
    ncell = len(ucells)
    fttb_u = rng.random(n)
    plan_u = rng.random(n)
    span = (np.datetime64("2026-12-31") - np.datetime64("2022-01-01")).astype(int) + 1
    plan_days = rng.integers(0, span, n)

    frame: _AddressArrays = {"addresses": addresses, "ags_all": ags_all, "codes": codes, "hh": hh}
    prior = None
    for table in earlier:
        _, prior = _calibrate_vintage(frame, cells, table, scores, uniform, mobile_noise, rng, prior)
    (assign, _shares_by_group, unmatched), prior = _calibrate_vintage(
        frame, cells, bba, scores, uniform, mobile_noise, rng, prior
    )
    reference = assign
    for table in later:
        (reference, _, _), prior = _calibrate_vintage(frame, cells, table, scores, uniform, mobile_noise, rng, prior)
    dsl = _dsl_table(assign)
    cdown = assign["hfc_down"].to_numpy()
    cdown_cell = np.zeros(ncell)
    cup_cell = np.zeros(ncell)
    cdown_cell[inv] = cdown
    cup_cell[inv] = assign["hfc_up"].to_numpy()
    hfc_polygons = _dissolved_cells(ucells, cdown_cell, cup_cell)
    mdown = np.zeros(ncell)
    mdown[inv] = assign["mobile_down"].to_numpy()
    mobile_raster, mobile_transform = _mobile_raster(ucells, mdown, area_3035, rng)

    down = assign["fibre_down"].to_numpy()
    current = _current_fibre_table(addresses, down, fttb_u)
    # planned fibre (not a service): the only draw whose size depends on the vintage, so it is last
    planned, chosen = _planned_fibre_table(addresses, down > 0, amt_of, planned_amt_count, plan_u, plan_days, rng)
    result: Deliveries = {
        "unmatched": sorted(unmatched),
        "dsl": dsl,
        "hfc_polygons": hfc_polygons,
        "mobile_raster": mobile_raster,
        "mobile_transform": mobile_transform,
        "fibre": pd.concat([current, planned], ignore_index=True),
        "planned_amts": sorted(str(a) for a in chosen),
        "assignment": assign,
        "reference_assignment": reference,
    }
    log.info(
        "deliveries: dsl %d, fibre %d current + %d planned, hfc %d addresses, mobile %d addresses; "
        "%d Gemeinden without Breitbandatlas row; %d earlier vintages carried",
        len(result["dsl"]),
        len(current),
        len(planned),
        int((assign["hfc_down"] > 0).sum()),
        int((assign["mobile_down"] > 0).sum()),
        len(unmatched),
        len(earlier),
    )
    return result


def _calibrate_vintage(
    frame: _AddressArrays,
    cells: Mapping[str, np.ndarray],
    bba: pd.DataFrame,
    scores: Mapping[str, np.ndarray],
    uniform: Mapping[str, np.ndarray],
    mobile_noise: Mapping[str, np.ndarray],
    rng: np.random.Generator,
    prior: Mapping[str, Any] | None,
) -> tuple[tuple[pd.DataFrame, dict, set[str]], dict[str, Any]]:
    """Classes and speeds of one vintage (``bba``) from the vintage-independent draws.

    DSL and fibre use a fixed per-address score, so their classes only depend on the published
    shares at the address' quantile (higher shares -> same or higher class). Cable and mobile cells
    are ordered by ``prior`` (the classes of the earlier vintages, :func:`_prior_rank`) before their
    score, so the per-vintage wired nesting (λ) and the "all" lifts only reorder cells within the
    same earlier class. Nothing is drawn from ``rng`` here. Returns ``((assignment, shares by group,
    unmatched Gemeinden), state)``; ``state`` is the ``prior`` for the next vintage.
    """
    addresses = frame["addresses"]
    ags_all, codes, hh = frame["ags_all"], frame["codes"], frame["hh"]
    cg, chh, inv = cells["cg"], cells["chh"], cells["inv"]
    hh_by_ags = pd.Series(hh).groupby(addresses["ags"].to_numpy()).sum()
    unmatched: set[str] = set()
    shares_by_group = {}
    for group in (*GROUPS, "wired", "all"):
        thresholds, shares, matched = gemeinde_shares(bba, ags_all, hh_by_ags, group)
        shares_by_group[group] = (thresholds, shares)
        unmatched |= set(ags_all[~matched])
    assign = pd.DataFrame(
        {
            "address_id": addresses["address_id"].to_numpy(),
            "ags": addresses["ags"].to_numpy(),
            "households": addresses["households"].to_numpy(),
        }
    )
    t_w, s_w = shares_by_group["wired"]
    t_f, s_f = shares_by_group["fibre"]
    fibre_at_w = np.c_[s_f, np.zeros(len(s_f))][:, np.minimum(np.searchsorted(t_f, t_w, side="left"), len(t_f))]

    # HFC first: per 100 m cell, quantile mapping of its score; in a later vintage the earlier
    # vintages' cells first, and the new cells nested (λ per Gemeinde, :func:`nested_classes`) with
    # the previous vintage's DSL and fibre towards "wired", so that DSL and fibre can keep their places
    history: list[tuple[pd.DataFrame, dict[str, np.ndarray]]] = [] if prior is None else prior["history"]
    t_c, s = shares_by_group["hfc"]
    if prior is None:
        kc = quantile_classes(cg, scores["hfc"], chh, s)
    else:
        hkey = scores["hfc"] + _PRIOR_STEP * _prior_rank(prior["kc"], prior["kc_max"])
        before = np.maximum(prior["kd"], prior["kf"])
        kc = nested_classes(cg, inv, hh, codes, hkey, chh, t_c, s, before, (t_w, s_w))
        # a cell keeps the class any of its addresses must keep (the Gemeinde of the address counts)
        need = np.zeros(len(cg), dtype=np.int64)
        np.maximum.at(need, inv, _kept_class(history, bba, "hfc", t_c, ags_all, codes))
        kc = np.maximum(kc, need)
    cdown = class_speeds(kc, t_c, PRODUCTS["hfc"], u=uniform["hfc"])
    cup = np.where(cdown > 0, np.minimum(50.0, np.maximum(1.0, np.round(cdown / 20, 1))), 0.0)
    assign["hfc_down"] = cdown[inv]
    assign["hfc_up"] = cup[inv]

    # DSL: per address, placed against HFC so that the union reaches "wired" less at most what
    # fibre (placed last) can still add
    t, s = shares_by_group["dsl"]
    dfloor = None if prior is None else _kept_class(history, bba, "dsl", t, ags_all, codes)
    # where "all" must stay (mobile served it before), wired is placed first: the published "all" did not
    # fall there, so the new wired lines overlap what mobile gave (else "all" would overshoot)
    need_all = np.zeros(len(codes)) if prior is None else _kept_level(history, bba, "all", ags_all, codes)
    all_steps = np.searchsorted(t_w, need_all, side="right")  # wired thresholds the kept "all" level reaches

    def overlap_bonus(other: np.ndarray) -> np.ndarray:
        return ALL_OVERLAP_BONUS * np.maximum(all_steps - np.searchsorted(t_w, other, side="right"), 0)

    dscore = scores["dsl"] + overlap_bonus(assign["hfc_down"].to_numpy())
    kd = union_classes(
        codes, dscore, hh, t, s, assign["hfc_down"].to_numpy(), (t_w, s_w), room=fibre_at_w, floor=dfloor
    )
    kd = kd if dfloor is None else np.maximum(kd, dfloor)
    # granularity and kept classes: single addresses moved where the class sizes or the union miss most
    t_a, s_a = shares_by_group["all"]
    cable = assign["hfc_down"].to_numpy()
    kd = polish_classes(codes, kd, hh, dfloor, t, s,
                        [(cable, t_w, s_w, fibre_room(shares_by_group)), (np.maximum(cable, need_all), t_a, s_a)])
    down = class_speeds(kd, t, PRODUCTS["dsl"], u=uniform["dsl"])
    assign["dsl_down"] = down
    assign["dsl_up"] = np.where(down > 0, np.maximum(0.5, np.round(down / 10, 1)), 0.0)

    # fibre: per address, placed so that DSL ∪ HFC ∪ fibre matches "wired" at every threshold
    ffloor = None if prior is None else _kept_class(history, bba, "fibre", t_f, ags_all, codes)
    other = np.maximum(assign["dsl_down"].to_numpy(), assign["hfc_down"].to_numpy())
    fscore = scores["fibre"] + overlap_bonus(other)
    kf = union_classes(codes, fscore, hh, t_f, s_f, other, (t_w, s_w), floor=ffloor)
    kf = kf if ffloor is None else np.maximum(kf, ffloor)
    kf = polish_classes(codes, kf, hh, ffloor, t_f, s_f,
                        [(other, t_w, s_w), (np.maximum(other, need_all), t_a, s_a)])
    down = class_speeds(kf, t_f, PRODUCTS["fibre"], u=uniform["fibre"])
    assign["fibre_down"] = down
    assign["fibre_up"] = down / 2

    # mobile: per 100 m cell, calibrated against the wired speeds ("all" = wired ∪ mobile)
    wired = assign[["dsl_down", "hfc_down", "fibre_down"]].to_numpy().max(axis=1)
    keep_m = None
    if prior is not None:
        # mobile keeps its own classes, and "all" what wired no longer gives (a cell: the most any address needs)
        need = _kept_level(history, bba, "mobile", ags_all, codes)
        need_all = _kept_level(history, bba, "all", ags_all, codes)
        need = np.maximum(need, np.where(wired >= need_all, 0.0, need_all))
        keep_m = np.zeros(len(cg))
        np.maximum.at(keep_m, inv, need)
    mdown, mstate = calibrate_mobile(
        cg, inv, hh, codes, wired, scores["mobile"], cells["town"], shares_by_group, rng, mobile_noise, prior,
        keep=keep_m,
    )
    assign["mobile_down"] = mdown[inv]
    state: dict[str, Any] = {
        "kc": np.r_[0.0, t_c][kc], "kd": np.r_[0.0, t][kd], "kf": np.r_[0.0, t_f][kf],
        "km": mstate["km"], "lift": mstate["lift"],
    }
    for key in ("kc", "kd", "kf", "km", "lift"):
        state[f"{key}_max"] = state[key] if prior is None else np.maximum(state[key], prior[f"{key}_max"])
    levels = {g: assign[f"{g}_down"].to_numpy() for g in GROUPS}
    levels["all"] = np.maximum(wired, levels["mobile"])
    state["history"] = [*history, (bba, levels)]
    return (assign, shares_by_group, unmatched), state


def fibre_room(shares_by_group: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Gemeinden × wired thresholds (%): at most what fibre, placed last, can add to DSL ∪ cable at each
    wired threshold ``t``. With ``j`` the first fibre threshold ≥ ``t``: no more than its published share
    there, and for every fibre threshold ``i`` ≥ ``j``, no more than the published wired share at ``i``
    exceeds the larger of DSL and cable there (fibre reaching ``i`` outside DSL ∪ cable at ``t`` is
    outside them at ``i`` too) plus the fibre between ``j`` and ``i`` (fibre below ``i`` is not bound
    there). An upper bound: DSL is asked to close a "wired" gap only beyond it
    (:func:`demo.polish.polish_classes`); NaN where fibre is not published (no such ask)."""
    t_w, _ = shares_by_group["wired"]
    t_f, s_f = shares_by_group["fibre"]
    first = np.minimum(np.searchsorted(t_f, t_w, side="left"), len(t_f))

    def published(group: str, missing: float) -> np.ndarray:
        t_g, s_g = shares_by_group[group]
        cols = [s_g[:, list(t_g).index(t)] if t in t_g else np.full(len(s_g), np.nan) for t in t_f]
        return np.nan_to_num(np.stack(cols, axis=1), nan=missing)

    gap = np.maximum(published("wired", np.inf) - np.maximum(published("dsl", 0.0), published("hfc", 0.0)), 0.0)
    # room at j = min(s_f[j], min over i >= j of gap[i] - s_f[i] + s_f[j])
    tail = np.minimum.accumulate((gap - s_f)[:, ::-1], axis=1)[:, ::-1]
    room = np.minimum(s_f, tail + s_f)
    return np.c_[room, np.zeros(len(s_f))][:, first]


def _kept_class(
    history: Sequence[tuple[pd.DataFrame, Mapping[str, np.ndarray]]],
    bba: pd.DataFrame,
    group: str,
    thresholds: np.ndarray,
    ags_all: np.ndarray,
    codes: np.ndarray,
) -> np.ndarray:
    """The class (index into ``thresholds``, 0 = none) each address must keep in the vintage of ``bba``:
    the highest threshold of ``group`` it reached in an earlier vintage of ``history`` (its table, its
    downloads per group) where the published share of its Gemeinde at that threshold does not fall
    from that table to ``bba`` (a Gemeinde without a published share keeps everything). Issue 19: a
    later vintage never takes a class away unless the published share falls."""
    need = _kept_level(history, bba, group, ags_all, codes)
    return np.searchsorted(np.asarray(thresholds, float), need, side="right").astype(np.int64)


def _kept_level(
    history: Sequence[tuple[pd.DataFrame, Mapping[str, np.ndarray]]],
    bba: pd.DataFrame,
    group: str,
    ags_all: np.ndarray,
    codes: np.ndarray,
) -> np.ndarray:
    """:func:`_kept_class` as the threshold (Mbit/s, 0 = none) each address must keep reaching."""
    need = np.zeros(len(codes))
    now = bba.set_index("key")
    for table, levels in history:
        then = table.set_index("key")
        down = np.asarray(levels[group], float)
        for t, col in _thresholds(table, group):
            if col not in now.columns:
                continue
            before = then[col].reindex(ags_all).to_numpy(float)
            after = now[col].reindex(ags_all).to_numpy(float)
            kept = ~(after < before)  # NaN compares False: kept
            need = np.where((down >= t) & kept[codes], np.maximum(need, t), need)
    return need


def exchange_distance(addresses: pd.DataFrame, codes: np.ndarray, hh: np.ndarray, ngem: int) -> np.ndarray:
    """Distance (CRS units) of each address to its Gemeinde's fictional DSL exchange.

    The exchange sits at the household-weighted centre (+0.01 per address) of the Gemeinde's 1 km
    cell with the most households (ties: the first cell in sort order). ``codes`` are the Gemeinde
    codes 0..``ngem``-1 of the rows, ``hh`` their households; ``addresses`` needs ags, cell_1km, x, y.
    """
    cell_1km = addresses["cell_1km"].to_numpy()
    per = pd.DataFrame({"ags": addresses["ags"].to_numpy(), "cell": cell_1km, "hh": hh})
    per = per.groupby(["ags", "cell"], sort=True)["hh"].sum().reset_index()
    densest = per.sort_values(["ags", "hh"], ascending=[True, False], kind="stable").drop_duplicates("ags")
    in_dense = cell_1km == densest.set_index("ags")["cell"].reindex(addresses["ags"]).to_numpy()
    w = np.where(in_dense, hh + 0.01, 0.0)
    x = addresses["x"].to_numpy(float)
    y = addresses["y"].to_numpy(float)
    wsum = np.bincount(codes, w, ngem)
    ex = np.bincount(codes, w * x, ngem) / wsum
    ey = np.bincount(codes, w * y, ngem) / wsum
    return np.hypot(x - ex[codes], y - ey[codes])


def _dsl_table(assign: pd.DataFrame) -> pd.DataFrame:
    """The DSL delivery: one row per served address, technology named by its download speed."""
    down = assign["dsl_down"].to_numpy()
    tech = np.select(
        [down <= 2, down <= 16, down <= 50, down <= 100],
        ["ADSL", "ADSL2+", "VDSL2", "VDSL2-Vectoring"],
        "SVDSL",
    )
    served = down > 0
    return pd.DataFrame(
        {
            "address_id": assign["address_id"][served].to_numpy(),
            "provider": PROVIDERS["dsl"],
            "technology": tech[served],
            "down_mbps": down[served],
            "up_mbps": assign["dsl_up"][served].to_numpy(),
        }
    )


def _current_fibre_table(addresses: pd.DataFrame, down: np.ndarray, fttb_u: np.ndarray) -> pd.DataFrame:
    """Fibre in service (down > 0) by address coordinates; FTTB for half of the dense (> 1500) places."""
    fttb = (addresses["density"].to_numpy() > 1500) & (fttb_u < 0.5)
    served = down > 0
    return pd.DataFrame(
        {
            "provider": PROVIDERS["fibre"],
            "technology": np.where(fttb, "FTTB", "FTTH")[served],
            "down_mbps": down[served],
            "up_mbps": down[served] / 2,
            "x": addresses["x"].to_numpy()[served],
            "y": addresses["y"].to_numpy()[served],
            "status": "current",
            "planned_date": "",
        }
    )


def _planned_fibre_table(
    addresses: pd.DataFrame,
    served: np.ndarray,
    amt_of: Mapping[str, str],
    planned_amt_count: int,
    plan_u: np.ndarray,
    plan_days: np.ndarray,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, np.ndarray | list]:
    """Planned FTTH (1000/500) in ``planned_amt_count`` Ämter drawn from ``rng`` among those with
    unserved households: 60 % of those addresses (``plan_u``), dated 2022-01-01 + ``plan_days``.
    Returns the table and the chosen Ämter."""
    hh = addresses["households"].to_numpy(float)
    amts = np.array([amt_of.get(a, "") for a in addresses["ags"]])
    cand_amts = np.unique(amts[~served & (hh > 0) & (amts != "")])
    chosen: np.ndarray | list[str] = (
        rng.choice(cand_amts, size=min(planned_amt_count, len(cand_amts)), replace=False)
        if len(cand_amts)
        else []
    )
    plan = ~served & (hh > 0) & np.isin(amts, chosen) & (plan_u < 0.6)
    dates = (np.datetime64("2022-01-01") + plan_days[plan].astype("timedelta64[D]")).astype(str)
    planned = pd.DataFrame(
        {
            "provider": PROVIDERS["fibre"],
            "technology": "FTTH",
            "down_mbps": 1000.0,
            "up_mbps": 500.0,
            "x": addresses["x"].to_numpy()[plan],
            "y": addresses["y"].to_numpy()[plan],
            "status": "planned",
            "planned_date": dates,
        }
    )
    return planned, chosen


def _square_cells(cells: np.ndarray) -> np.ndarray:
    x0 = (cells // _KEY) * 100.0
    y0 = (cells % _KEY) * 100.0
    return shapely.box(x0, y0, x0 + 100.0, y0 + 100.0)


def _dissolved_cells(cells: np.ndarray, down: np.ndarray, up: np.ndarray) -> gpd.GeoDataFrame:
    """Union of the 100 m squares per (down, up) class, EPSG:3035; empty classes are left out."""
    rows = []
    served = down > 0
    pairs = sorted(set(zip(down[served].tolist(), up[served].tolist(), strict=True)))
    for d, u in pairs:
        sel = served & (down == d) & (up == u)
        geom = shapely.coverage_union_all(_square_cells(cells[sel]))
        if not shapely.is_valid(geom):
            geom = shapely.make_valid(geom)
        rows.append({"down_mbps": float(d), "up_mbps": float(u), "geometry": geom})
    if not rows:
        return gpd.GeoDataFrame({"down_mbps": [], "up_mbps": []}, geometry=[], crs=INSPIRE_GRID_CRS)
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=INSPIRE_GRID_CRS)


def _mobile_raster(
    cells: np.ndarray, down: np.ndarray, area_3035: shapely.Geometry, rng: np.random.Generator
) -> tuple[np.ndarray, tuple[float, float, float]]:
    """uint16 raster over the area's bbox (100 m pixels on the INSPIRE grid), 0 = no service.

    Populated cells carry their calibrated value; other pixels in the area get an uncalibrated
    value per 1 km block (the block's best populated value, else 8–40 Mbit/s, 5 % of blocks none).
    """
    from rasterio import features
    from rasterio.transform import from_origin

    minx, miny, maxx, maxy = shapely.bounds(area_3035)
    left = np.floor(minx / 1000) * 1000
    bottom = np.floor(miny / 1000) * 1000
    right = np.ceil(maxx / 1000) * 1000
    top = np.ceil(maxy / 1000) * 1000
    width = round((right - left) / 100)
    height = round((top - bottom) / 100)
    transform = from_origin(left, top, 100.0, 100.0)
    inside = features.geometry_mask([area_3035], (height, width), transform, invert=True, all_touched=True)
    bh, bw = height // 10, width // 10
    block = rng.integers(8, 41, (bh, bw)).astype(np.uint16)
    block[rng.random((bh, bw)) < 0.05] = 0
    col = ((cells // _KEY) * 100 - left) // 100
    row = (top - (cells % _KEY) * 100) // 100 - 1
    col = col.astype(np.int64)
    row = row.astype(np.int64)
    ok = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    best = np.zeros((bh, bw), dtype=np.uint16)
    np.maximum.at(best, (row[ok] // 10, col[ok] // 10), down[ok].astype(np.uint16))
    block = np.where(best > 0, best, block)
    raster = np.repeat(np.repeat(block, 10, axis=0), 10, axis=1)
    raster = np.where(inside, raster, 0).astype(np.uint16)
    raster[row[ok], col[ok]] = down[ok].astype(np.uint16)
    return raster, (left, top, 100.0)
