"""Germany-scale synthetic demo inputs, one Land at a time (EPSG:3035 throughout).

Same method as the MV generator (:mod:`.addresses`, :mod:`.sites`, :mod:`.providers`), reused
function by function, with these documented simplifications (APPROXIMATE on purpose, demo data):

- **Addresses**: multi-dwelling 100 m cells are split into several entrances:
  ``addresses per cell = max(buildings, ceil(dwellings / k))`` with ``k`` =
  :data:`DWELLINGS_PER_ADDRESS` (= 2). The suppressed Zensus grid undercounts buildings (14.4 M
  against ~19.9 M) and dwellings (31.3 M against ~43 M); ``k = 2`` gives ~21 M addresses for
  Germany, close to the ~22 M official house coordinates, and is the largest ``k`` reaching 20 M.
  Households per 1 km cell are the Zensus households exactly as in MV (the split only changes over
  how many points a cell's households are spread). Working CRS EPSG:3035 for every Land.
  A 1 km cell crossing a Land border is shared by dwelling share and rounded in each Land
  (±1 household per border cell); the parts of border cells outside the VG5000 polygons are lost.
- **Sites**: Gemeinde offices, Amt offices (only where ``bez == "Amt"``) and schools, as in MV;
  no Kreis offices (the Kreisstadt table exists for MV only). No street names, house numbers,
  postcodes or localities (not part of the Germany output).
- **Providers**: placed as the MV demo places its first vintage (:func:`_place`): cable/HFC per
  100 m cell by household-weighted quantile mapping, DSL and fibre per address by
  :func:`demo.providers.union_classes` (DSL ∪ cable ∪ fibre fitted to the published "wired" share at
  every threshold; unlike MV, DSL first fits "wired" alone, see :func:`_place`), mobile per 100 m
  cell by :func:`demo.providers.calibrate_mobile` (mobile ≥ 1/2/6 and "all" = wired ∪ mobile),
  written as one raster over the built Länder. **Land fit**: with the
  Land table (vintage 2021-06 only) every group's Gemeinde shares of a Land are first shifted by one
  logit offset per threshold so that the household-weighted Land share is the published one
  (:mod:`demo.land_shares`); a Land whose wired or "all" share still misses by more than
  :data:`LAND_RETRY_PP` is placed again, up to three times while it does: with its target moved by the
  miss, then with DSL leaving room for fibre as in MV, then both (the closest placement is kept). Besides the
  DSL incumbent, up to two fictional **resellers** offer DSL on the same lines
  (the incumbent's product or one product lower, more often in dense places), so an
  address has several offers (~2.5 records per address on average) while the best DSL speed per
  address, and hence the calibration, is the incumbent's. Planned fibre: in randomly chosen 2 km blocks
  (:data:`PLANNED_BLOCK_SHARE` of them) 60 % of the addresses with households and without
  fibre get a planned FTTH offer dated 2022-01-01..2026-12-31.

All randomness comes from the ``numpy.random.Generator`` passed in; no I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypedDict

import numpy as np
import pandas as pd

from coverage.model import Boundaries
from demo.addresses import cell_key, generate_addresses, spread_duplicates
from demo.land_shares import LAND_GROUPS, land_targets, shift_to_land, weighted_shares
from demo.providers import (
    PRODUCTS,
    _thresholds,
    calibrate_mobile,
    class_speeds,
    draw_scores,
    gemeinde_shares,
    quantile_classes,
    union_classes,
)
from demo.sites import place_sites

log = logging.getLogger(__name__)

METHOD_VERSION = "synth-de-2"
DWELLINGS_PER_ADDRESS = 2.0
#: Fictional providers of the Germany demo.
GERMANY_PROVIDERS = {
    "dsl": "Fernmeldenetz Deutschland AG (fiktiv)",
    "dsl_resale_1": "Vielfalt Telekommunikation GmbH (fiktiv)",
    "dsl_resale_2": "Regionetz Breitband GmbH (fiktiv)",
    "hfc": "Koaxial Kabel Deutschland GmbH (fiktiv)",
    "fibre": "Glasfaser Deutschland eG (fiktiv)",
    "mobile": "Funknetz Deutschland GmbH (fiktiv)",
}
#: Groups whose Gemeinde shares are calibrated (``wired`` and ``all`` as the targets of the union / mobile).
SHARE_GROUPS = ("dsl", "hfc", "fibre", "wired", "all", "mobile")
#: A Land whose wired or "all" share misses the Land table by more than this (pp) is placed once more.
LAND_RETRY_PP = 0.5
#: Reseller probability per DSL-served address: base + dense × min(1, density / 3000).
RESALE_RATES = ((0.35, 0.2), (0.15, 0.3))
RESALE_LOWER = 0.3  # probability that a reseller sells one product below the incumbent's
PLANNED_BLOCK_SHARE = 0.05
SITE_KINDS_DE = ("gemeinde_office", "amt_office", "school")
ADDRESS_COLUMNS_DE = ("address_id", "x", "y", "households", "businesses", "site_kind", "site_name", "ags")
OFFER_COLUMNS = ("address_id", "provider", "technology", "down_mbps", "up_mbps", "status", "planned_date")


@dataclass(frozen=True)
class LandData:
    """One Land: ``addresses`` (:data:`ADDRESS_COLUMNS_DE`, x/y in EPSG:3035) and offer tables."""

    addresses: pd.DataFrame
    dsl: pd.DataFrame
    hfc: pd.DataFrame
    fibre: pd.DataFrame
    unmatched_gemeinden: list[str]
    #: the 100 m cells with addresses (INSPIRE keys, :func:`demo.addresses.cell_key`) and their mobile download
    mobile_cells: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    mobile_down: np.ndarray = field(default_factory=lambda: np.zeros(0))
    counts: dict[str, int] = field(default_factory=dict)
    land_fit: dict[str, object] = field(default_factory=dict)


_DSL_TECH = np.array(["ADSL", "ADSL2+", "VDSL2", "VDSL2-Vectoring", "SVDSL"], dtype=object)


def _dsl_technology(down: np.ndarray) -> np.ndarray:
    """DSL technology label by download speed (≤ 2 ADSL, ≤ 16 ADSL2+, ≤ 50 VDSL2, ≤ 100 vectoring, else SVDSL).

    Labels are shared string objects (memory: millions of rows)."""
    return _DSL_TECH[np.searchsorted([2.0, 16.0, 50.0, 100.0], down, side="left")]


def _label(values: str | np.ndarray, n: int) -> np.ndarray:
    if isinstance(values, str):
        out = np.empty(n, dtype=object)
        out[:] = values  # one shared object
        return out
    return np.asarray(values, dtype=object)


def _offers(
    rows: np.ndarray,
    rank: int,
    provider: str,
    tech: str | np.ndarray,
    down: np.ndarray,
    up: np.ndarray,
    status: str = "current",
    planned: str | np.ndarray = "",
) -> dict[str, np.ndarray]:
    """One provider's offers at address positions ``rows`` (``rank`` orders providers per address)."""
    n = len(rows)
    return {
        "rows": np.asarray(rows, dtype=np.int64),
        "rank": np.full(n, rank, dtype=np.int64),
        "provider": _label(provider, n),
        "technology": _label(tech, n),
        "down_mbps": np.asarray(down, dtype=np.float32),
        "up_mbps": np.asarray(up, dtype=np.float32),
        "status": _label(status, n),
        "planned_date": _label(planned, n),
    }


class Offers(TypedDict):
    """What :func:`generate_offers` returns (see there)."""

    dsl: pd.DataFrame
    hfc: pd.DataFrame
    fibre: pd.DataFrame
    best: pd.DataFrame
    mobile_cells: np.ndarray
    mobile_down: np.ndarray
    land_fit: dict[str, object]
    unmatched: list[str]


def generate_offers(
    addresses: pd.DataFrame,
    bba: pd.DataFrame,
    rng: np.random.Generator,
    land_target: Mapping[str, np.ndarray] | None = None,
) -> Offers:
    """Offer tables ``dsl``, ``hfc``, ``fibre`` (:data:`OFFER_COLUMNS`) and the mobile cells for ``addresses``.

    ``addresses`` needs address_id, x, y (EPSG:3035), ags, households, density, cell_1km;
    ``bba`` is :func:`coverage.sources.breitbandatlas.bba_wide` output. ``land_target`` (group ->
    published Land share % at that group's Gemeinde thresholds, NaN = none; :func:`land_target_of`)
    shifts the Gemeinde shares so the Land meets it (:func:`demo.land_shares.shift_to_land`); a Land
    whose wired or "all" share then misses by more than :data:`LAND_RETRY_PP` is placed again (target
    moved by the miss; then DSL leaving room for fibre), and the closest placement is kept. Also returns ``best`` (per
    address: best dsl/hfc/fibre current download and mobile, 0 = none), ``mobile_cells`` /
    ``mobile_down`` (100 m cell keys and their calibrated mobile download), ``land_fit`` and ``unmatched``.
    """
    ags_all = np.sort(addresses["ags"].unique())
    codes = np.searchsorted(ags_all, addresses["ags"].to_numpy())
    hh = addresses["households"].to_numpy(float)
    hh_by_ags = addresses.groupby("ags")["households"].sum()
    gem_hh = hh_by_ags.reindex(ags_all).fillna(0).to_numpy(float)
    x = addresses["x"].to_numpy(float)
    y = addresses["y"].to_numpy(float)
    ids = addresses["address_id"].to_numpy()
    density = addresses["density"].to_numpy(float)
    cell100 = cell_key(x, y, 100)
    cluster500 = cell_key(x, y, 500)
    logd = np.log1p(density)
    unmatched: set[str] = set()
    shares = {}
    for group in SHARE_GROUPS:
        thresholds, s, matched = gemeinde_shares(bba, ags_all, hh_by_ags, group)
        shares[group] = (thresholds, s)
        unmatched |= set(ags_all[~matched])

    # every draw first: the placement below draws nothing, so a retry places the same places again
    drawn = draw_scores(addresses, codes, hh, len(ags_all), cell100, cluster500, logd, rng)
    cells, scores, uniform, mobile_noise = drawn.cells, drawn.scores, drawn.uniform, drawn.mobile_noise

    def place(target: Mapping[str, np.ndarray] | None, dsl_room: bool = False) -> dict[str, np.ndarray]:
        fitted = shares if target is None else {
            g: (t, shift_to_land(s, gem_hh, target[g]) if g in target else s) for g, (t, s) in shares.items()
        }
        return _place(fitted, codes, hh, cells, scores, uniform, mobile_noise, rng, dsl_room)

    levels = place(land_target)
    land_fit: dict[str, object] = {}
    if land_target is not None:
        miss = _land_miss(levels, hh, shares, land_target)
        tried = [_max_abs(miss)]
        # retries: the target moved by the miss; then, where still off, DSL leaving room for fibre as in MV
        for dsl_room, moved in ((False, True), (True, False), (True, True)):
            if _max_abs(miss) <= LAND_RETRY_PP:
                break
            target = land_target
            if moved:
                target = {g: np.clip(v - miss.get(g, 0.0), 0.0, 100.0) for g, v in land_target.items()}
            again = place(target, dsl_room)
            miss2 = _land_miss(again, hh, shares, land_target)
            tried.append(_max_abs(miss2))
            if _max_abs(miss2) < _max_abs(miss):
                levels, miss = again, miss2
        land_fit = {"max_abs_miss_pp": _max_abs(miss), "attempts_max_abs_miss_pp": [round(v, 3) for v in tried]}
        land_fit["miss_pp"] = {g: [round(float(v), 3) for v in m] for g, m in miss.items()}

    dsl_down, hfc_down, fibre_down = levels["dsl"], levels["hfc"], levels["fibre"]
    dsl_up = np.where(dsl_down > 0, np.maximum(0.5, np.round(dsl_down / 10, 1)), 0.0)
    hfc_up = np.where(hfc_down > 0, np.minimum(50.0, np.maximum(1.0, np.round(hfc_down / 20, 1))), 0.0)
    dsl = _interleave(_dsl_offers(dsl_down, dsl_up, density, rng), ids)
    hrows = np.flatnonzero(hfc_down > 0)
    docsis = np.array(["DOCSIS 3.0", "DOCSIS 3.1"], dtype=object)[(hfc_down[hrows] >= 400).astype(int)]
    hfc = _interleave([_offers(hrows, 0, GERMANY_PROVIDERS["hfc"], docsis, hfc_down[hrows], hfc_up[hrows])], ids)
    fibre = _interleave(_fibre_offers(fibre_down, density, hh, x, y, rng), ids)
    best = pd.DataFrame(
        {"address_id": ids, "dsl": dsl_down, "hfc": hfc_down, "fibre": fibre_down, "mobile": levels["mobile"]}
    )
    return {
        "dsl": dsl,
        "hfc": hfc,
        "fibre": fibre,
        "best": best,
        "mobile_cells": drawn.ucells,
        "mobile_down": levels["mobile_cell"],
        "land_fit": land_fit,
        "unmatched": sorted(str(a) for a in unmatched),
    }


def _place(
    shares: Mapping[str, tuple[np.ndarray, np.ndarray]],
    codes: np.ndarray,
    hh: np.ndarray,
    cells: Mapping[str, np.ndarray],
    scores: Mapping[str, np.ndarray],
    uniform: Mapping[str, np.ndarray],
    mobile_noise: Mapping[str, np.ndarray],
    rng: np.random.Generator,
    dsl_room: bool = False,
) -> dict[str, np.ndarray]:
    """Downloads per address (dsl, hfc, fibre, mobile) and per cell (``mobile_cell``) for ``shares``,
    placed as the MV demo places its first vintage: cable per cell by quantile mapping, then DSL and
    fibre by :func:`~demo.providers.union_classes` (DSL ∪ cable ∪ fibre fitted to "wired" at every
    threshold), then mobile by :func:`~demo.providers.calibrate_mobile`. Draws nothing from ``rng``.
    ``dsl_room``: DSL may fall short of "wired" by what fibre can still add (as in MV); False (the
    Germany default): DSL fits "wired" alone as far as it can and fibre comes on top. With room, a Land of
    one big Gemeinde (Berlin) was 1.05 pp off at 400 Mbit/s (fibre cannot fill wired at 30 Mbit/s
    without overshooting at 400, its lines being gigabit); without, 0.10 pp, and on seven Länder
    (01, 03, 06, 07, 08, 10, 14) every Land within 0.45 pp at the first placement, against up to 1.10."""
    cg, chh, inv = cells["cg"], cells["chh"], cells["inv"]
    t_c, s_c = shares["hfc"]
    kc = quantile_classes(cg, scores["hfc"], chh, s_c)
    hfc_down = class_speeds(kc, t_c, PRODUCTS["hfc"], u=uniform["hfc"])[inv]
    t_w, s_w = shares["wired"]
    t_f, s_f = shares["fibre"]
    fibre_at_w = np.c_[s_f, np.zeros(len(s_f))][:, np.minimum(np.searchsorted(t_f, t_w, side="left"), len(t_f))]
    t_d, s_d = shares["dsl"]
    room = fibre_at_w if dsl_room else None
    kd = union_classes(codes, scores["dsl"], hh, t_d, s_d, hfc_down, (t_w, s_w), room=room)
    dsl_down = class_speeds(kd, t_d, PRODUCTS["dsl"], u=uniform["dsl"])
    kf = union_classes(codes, scores["fibre"], hh, t_f, s_f, np.maximum(dsl_down, hfc_down), (t_w, s_w))
    fibre_down = class_speeds(kf, t_f, PRODUCTS["fibre"], u=uniform["fibre"])
    wired = np.maximum.reduce([dsl_down, hfc_down, fibre_down])
    mcell, _ = calibrate_mobile(
        cg, inv, hh, codes, wired, scores["mobile"], cells["town"], shares, rng, mobile_noise
    )
    return {"dsl": dsl_down, "hfc": hfc_down, "fibre": fibre_down, "mobile": mcell[inv], "mobile_cell": mcell}


def land_target_of(land_wide: pd.DataFrame, land: str, bba: pd.DataFrame) -> dict[str, np.ndarray]:
    """Published Land shares of ``land`` per group at the thresholds the Gemeinde table ``bba`` has."""
    out = {}
    for group in LAND_GROUPS:
        thresholds = np.array([t for t, _ in _thresholds(bba, group)])
        target = land_targets(land_wide, land, group, thresholds)
        if len(target) and not np.isnan(target).all():
            out[group] = target
    return out


def _land_miss(
    levels: Mapping[str, np.ndarray],
    hh: np.ndarray,
    shares: Mapping[str, tuple[np.ndarray, np.ndarray]],
    target: Mapping[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Generated minus published Land share (pp) for wired and "all" at the Gemeinde thresholds (NaN -> 0)."""
    wired = np.maximum.reduce([levels["dsl"], levels["hfc"], levels["fibre"]])
    best = {"wired": wired, "all": np.maximum(wired, levels["mobile"])}
    out = {}
    for group, down in best.items():
        if group in target:
            got = weighted_shares(hh, down, shares[group][0])
            out[group] = np.nan_to_num(got - target[group])
    return out


def _max_abs(miss: Mapping[str, np.ndarray]) -> float:
    return max((float(np.abs(m).max()) for m in miss.values() if len(m)), default=0.0)


def _dsl_offers(
    dsl_down: np.ndarray, dsl_up: np.ndarray, density: np.ndarray, rng: np.random.Generator
) -> list[dict[str, np.ndarray]]:
    """DSL offers: the incumbent at every served address, then each reseller of :data:`RESALE_RATES`
    on some of the same lines (more often in dense places), at the incumbent's product or, with
    probability :data:`RESALE_LOWER`, one product lower."""
    n = len(dsl_down)
    dense = np.minimum(1.0, density / 3000.0)
    srows = np.flatnonzero(dsl_down > 0)
    parts = [
        _offers(srows, 0, GERMANY_PROVIDERS["dsl"], _dsl_technology(dsl_down[srows]), dsl_down[srows], dsl_up[srows])
    ]
    products = np.asarray(PRODUCTS["dsl"], dtype=float)
    for j, (base, extra) in enumerate(RESALE_RATES, start=1):
        take = (dsl_down > 0) & (rng.random(n) < base + extra * dense)
        lower = rng.random(n) < RESALE_LOWER
        pos = np.searchsorted(products, dsl_down, side="left")  # product index of the incumbent speed
        below = products[np.maximum(pos - 1, 0)]
        down = np.where(lower & (pos > 0) & (below < dsl_down), below, dsl_down)
        rows = np.flatnonzero(take)
        parts.append(
            _offers(
                rows,
                j,
                GERMANY_PROVIDERS[f"dsl_resale_{j}"],
                _dsl_technology(down[rows]),
                down[rows],
                np.maximum(0.5, np.round(down[rows] / 10, 1)),
            )
        )
    return parts


def _fibre_offers(
    fibre_down: np.ndarray,
    density: np.ndarray,
    hh: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator,
) -> list[dict[str, np.ndarray]]:
    """Fibre offers: current ones where ``fibre_down`` > 0 (FTTB for half of the dense places), then
    planned FTTH (1000/500) for 60 % of the unserved addresses with households in the randomly
    chosen 2 km blocks (:data:`PLANNED_BLOCK_SHARE`), dated 2022-01-01..2026-12-31."""
    n = len(fibre_down)
    frows = np.flatnonzero(fibre_down > 0)
    fttb = (density[frows] > 1500) & (rng.random(len(frows)) < 0.5)
    ftype = np.array(["FTTH", "FTTB"], dtype=object)[fttb.astype(int)]
    current = _offers(frows, 0, GERMANY_PROVIDERS["fibre"], ftype, fibre_down[frows], fibre_down[frows] / 2)
    cl2k = cell_key(x, y, 2000)
    blocks, block_of = np.unique(cl2k, return_inverse=True)
    chosen = rng.random(len(blocks)) < PLANNED_BLOCK_SHARE
    plan = (fibre_down <= 0) & (hh > 0) & chosen[block_of] & (rng.random(n) < 0.6)
    prows = np.flatnonzero(plan)
    span = (np.datetime64("2026-12-31") - np.datetime64("2022-01-01")).astype(int) + 1
    dates = (np.datetime64("2022-01-01") + rng.integers(0, span, len(prows)).astype("timedelta64[D]")).astype(str)
    planned = _offers(
        prows,
        1,
        GERMANY_PROVIDERS["fibre"],
        "FTTH",
        np.full(len(prows), 1000.0),
        np.full(len(prows), 500.0),
        "planned",
        dates.astype(object),
    )
    return [current, planned]


def _interleave(parts: list[dict[str, np.ndarray]], ids: np.ndarray) -> pd.DataFrame:
    """One offer table (:data:`OFFER_COLUMNS`) ordered by address position, then provider rank."""
    rows = np.concatenate([p["rows"] for p in parts])
    order = np.lexsort((np.concatenate([p["rank"] for p in parts]), rows))
    data = {"address_id": ids[rows[order]]}
    for col in OFFER_COLUMNS[1:]:
        data[col] = np.concatenate([p[col] for p in parts])[order]
    return pd.DataFrame(data)


def generate_land(
    boundaries: Boundaries,
    grid_100m: pd.DataFrame,
    grid_1km: pd.DataFrame,
    bba_wide: pd.DataFrame,
    rng: np.random.Generator,
    prefix: str,
    dwellings_per_address: float = DWELLINGS_PER_ADDRESS,
    land_target: Mapping[str, np.ndarray] | None = None,
) -> LandData:
    """Addresses, sites and offers for one Land's ``boundaries`` (working CRS EPSG:3035).

    ``grid_100m``/``grid_1km`` must cover the Land with a 1 km margin (whole 1 km cells).
    Address ids are ``{prefix}-{n:08d}``, numbered in (ags, y, x) order. ``land_target``: the
    published Land shares the Land is fitted to (:func:`land_target_of`; None: Gemeinde shares only).
    """
    gem = boundaries.gemeinde
    addr = generate_addresses(boundaries, grid_100m, grid_1km, rng, dwellings_per_address=dwellings_per_address)
    sites = place_sites(addr, boundaries, rng, ags=gem["ags"].to_numpy())
    sites = sites[sites["site_kind"].isin(SITE_KINDS_DE)]
    both = pd.concat(
        [addr.assign(site_kind="", site_name=""), sites[[*addr.columns, "site_kind", "site_name"]]],
        ignore_index=True,
    )
    del addr
    both = spread_duplicates(both, gem, rng)
    both = both.sort_values(["ags", "y", "x"], kind="stable").reset_index(drop=True)
    width = max(8, len(str(len(both))))
    both.insert(0, "address_id", [f"{prefix}-{i:0{width}d}" for i in range(1, len(both) + 1)])
    estimated = int(both["estimated"].sum())
    both = both[
        ["address_id", "x", "y", "ags", "households", "businesses", "density", "cell_1km", "site_kind", "site_name"]
    ]
    offers = generate_offers(both, bba_wide, rng, land_target)
    out = pd.DataFrame(
        {
            "address_id": both["address_id"].to_numpy(),
            "x": both["x"].to_numpy(float),
            "y": both["y"].to_numpy(float),
            "households": both["households"].to_numpy().astype(np.int32),
            "businesses": np.minimum(both["businesses"].to_numpy(), np.iinfo(np.int16).max).astype(np.int16),
            "site_kind": both["site_kind"].astype(str).to_numpy(),
            "site_name": both["site_name"].astype(str).to_numpy(),
            "ags": both["ags"].astype(str).to_numpy(),
        }
    )
    counts = {
        "addresses": len(out),
        "households": int(out["households"].to_numpy().sum(dtype=np.int64)),
        "businesses": int(out["businesses"].to_numpy().sum(dtype=np.int64)),
        "gemeinden": len(gem),
        "gemeinden_with_addresses": int(out["ags"].nunique()),
        "sites": int((out["site_kind"] != "").sum()),
        "estimated_addresses": estimated,
        "dsl_rows": len(offers["dsl"]),
        "hfc_rows": len(offers["hfc"]),
        "fibre_rows": len(offers["fibre"]),
        "fibre_planned_rows": int((offers["fibre"]["status"] == "planned").sum()),
        "gemeinden_without_bba": len(offers["unmatched"]),
        "mobile_cells": int((offers["mobile_down"] > 0).sum()),
        "mobile_addresses": int((offers["best"]["mobile"].to_numpy() > 0).sum()),
    }
    counts["provider_rows"] = counts["dsl_rows"] + counts["hfc_rows"] + counts["fibre_rows"]
    log.info("Land %s: %s", prefix, counts)
    return LandData(
        addresses=out,
        dsl=offers["dsl"],
        hfc=offers["hfc"],
        fibre=offers["fibre"],
        unmatched_gemeinden=offers["unmatched"],
        mobile_cells=offers["mobile_cells"],
        mobile_down=offers["mobile_down"],
        counts=counts,
        land_fit=offers["land_fit"],
    )
