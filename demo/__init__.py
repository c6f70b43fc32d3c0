"""Deterministic synthetic demo inputs (addresses, sites, fictional provider deliveries).

Not part of the library: this package uses :mod:`coverage` (readers, CRS, errors), never the
other way round. The generators (this module's :func:`generate_demo` for MV, :mod:`.addresses`,
:mod:`.sites`, :mod:`.providers`, :mod:`.germany` for Germany) are pure functions: no file I/O;
all randomness comes from the one ``numpy.random.Generator`` passed in, so the same inputs and
seed give identical output. :mod:`.build_mv` and :mod:`.build_germany` read the open data and
write the demo folders (``bbcov synth``). The data are APPROXIMATE on purpose (see the module
docstrings of :mod:`.addresses`, :mod:`.sites`, :mod:`.providers`): realistic enough for demos
and tests, never a statement about real addresses or networks.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd

from coverage.model import Boundaries
from demo.addresses import area_polygon, finalise_addresses, generate_addresses, spread_duplicates
from demo.businesses import place_businesses
from demo.providers import PROVIDERS, Deliveries, generate_deliveries
from demo.run_households import run_households
from demo.sites import choose_schools, place_sites, school_curves, school_names

log = logging.getLogger(__name__)

METHOD_VERSION = "synth-mv-6"  # 6: issue 19 (per-threshold union placement, Zensus households; schools chosen
#                               to the Kreis table, businesses at the register's count)
ADDRESS_COLUMNS = (
    "address_id",
    "x",
    "y",
    "households",
    "businesses",
    "site_kind",
    "site_name",
    "street",
    "house_number",
    "postcode",
    "locality",
)

__all__ = ["ADDRESS_COLUMNS", "METHOD_VERSION", "PROVIDERS", "DemoData", "generate_demo"]


@dataclass(frozen=True)
class DemoData:
    """Everything the demo writer needs; ``addresses`` has :data:`ADDRESS_COLUMNS` (+ ``ags``)."""

    addresses: pd.DataFrame
    dsl: pd.DataFrame
    fibre: pd.DataFrame
    hfc_polygons: gpd.GeoDataFrame
    mobile_raster: np.ndarray
    mobile_transform: tuple[float, float, float]
    assignment: pd.DataFrame
    unmatched_gemeinden: list[str]
    counts: dict[str, int] = field(default_factory=dict)


def generate_demo(
    boundaries: Boundaries,
    grid_100m: pd.DataFrame,
    grid_1km: pd.DataFrame,
    bba_wide: pd.DataFrame,
    rng: np.random.Generator,
    kreise: Sequence[str] | None = None,
    prefix: str = "MV",
    earlier: Sequence[pd.DataFrame] = (),
    bba_biz: pd.DataFrame | None = None,
    later: Sequence[pd.DataFrame] = (),
    biz_thresholds: Sequence[float] = (),
    businesses_total: float | None = None,
    school_counts: Mapping[str, int] | None = None,
    bba_kreis: pd.DataFrame | None = None,
) -> DemoData:
    """Generate addresses, sites and provider deliveries for the boundaries' Gemeinden.

    ``kreise`` (Kreis AGS) limits the output to some Kreise (addresses are still located
    against all Gemeinden). ``bba_wide`` is the Breitbandatlas table of the vintage in wide form;
    ``earlier`` the tables of the earlier vintages (oldest first), so that the vintages of one seed
    are consistent (same addresses; service only goes down where the published shares do).

    ``bba_biz`` (the Breitbandatlas business table in wide form) places the drawn businesses of each
    Gemeinde on the addresses so that their shares at ``biz_thresholds`` match it
    (:func:`demo.businesses.place_businesses`), against the offers of the business table's vintage:
    ``later`` are the household tables after ``bba_wide`` up to that vintage (oldest first), so
    every vintage of a seed has the same businesses at the same addresses.

    ``businesses_total`` is the expected number of businesses over the whole Land
    (:func:`demo.addresses.generate_addresses`). ``school_counts`` (Kreis AGS -> schools) places a
    pool of candidate schools per Kreis; after the offers (of the business table's vintage) are
    generated, those whose coverage matches the school columns of ``bba_kreis`` (the Breitbandatlas
    Kreis table, long form, :func:`coverage.sources.breitbandatlas.read_bba_kreis_table`) at
    ``biz_thresholds`` are kept and the others dropped with their offers (:func:`_keep_chosen_schools`).
    """
    addr = generate_addresses(boundaries, grid_100m, grid_1km, rng, kreise=kreise, businesses_total=businesses_total)
    gem = boundaries.gemeinde
    ags = gem["ags"].to_numpy()
    if kreise is not None:
        ags = ags[np.isin(gem["krs_ags"].to_numpy(), list(kreise))]
    sites = place_sites(addr, boundaries, rng, ags=ags, school_counts=school_counts)
    both = pd.concat(
        [addr.assign(site_kind="", site_name="", school_rank=-1),
         sites[[*addr.columns, "site_kind", "site_name", "school_rank"]]],
        ignore_index=True,
    )
    both = finalise_addresses(spread_duplicates(both, gem, rng), gem, rng, prefix=prefix)
    amt_of = dict(zip(gem["ags"], gem["vwg_ars"], strict=True))
    amt_kind = dict(zip(boundaries.amt["vwg_ars"], boundaries.amt["bez"], strict=True))
    amt_of = {a: v for a, v in amt_of.items() if amt_kind.get(v) == "Amt"}
    # calibrate against the households the demo run will count (its Zensus estimate), not our own column
    weights = run_households(both, boundaries, grid_1km, grid_100m)
    deliveries = generate_deliveries(
        both, bba_wide, gem.crs, rng, amt_of, area_polygon(boundaries), earlier=earlier, later=later,
        weights=weights,
    )
    candidates = int((both["school_rank"] >= 0).sum())
    if school_counts is not None:
        curves = school_curves(bba_kreis, biz_thresholds) if bba_kreis is not None else {}
        both, deliveries = _keep_chosen_schools(both, deliveries, school_counts, curves,
                                                dict(zip(gem["ags"], gem["name"], strict=True)))
    if bba_biz is not None:
        both["businesses"] = place_businesses(both, deliveries["reference_assignment"], bba_biz, biz_thresholds)
    counts = {
        "addresses": len(both),
        "households": int(both["households"].sum()),
        "businesses": int(both["businesses"].sum()),
        "gemeinden": len(ags),
        "sites": int((both["site_kind"] != "").sum()),
        "estimated_addresses": int(both["estimated"].sum()),
        "dsl_rows": len(deliveries["dsl"]),
        "fibre_rows": len(deliveries["fibre"]),
        "fibre_planned_rows": int((deliveries["fibre"]["status"] == "planned").sum()),
        "hfc_polygons": len(deliveries["hfc_polygons"]),
        "gemeinden_without_bba": len(deliveries["unmatched"]),
        "school_candidates_dropped": candidates - int((both["school_rank"] >= 0).sum()),
    }
    for kind in ("gemeinde_office", "amt_office", "kreis_office", "school"):
        counts[kind] = int((both["site_kind"] == kind).sum())
    return DemoData(
        addresses=both[[*ADDRESS_COLUMNS, "ags"]],
        dsl=deliveries["dsl"],
        fibre=deliveries["fibre"],
        hfc_polygons=deliveries["hfc_polygons"],
        mobile_raster=deliveries["mobile_raster"],
        mobile_transform=deliveries["mobile_transform"],
        assignment=deliveries["assignment"],
        unmatched_gemeinden=deliveries["unmatched"],
        counts=counts,
    )


def _keep_chosen_schools(
    both: pd.DataFrame,
    deliveries: Deliveries,
    counts: Mapping[str, int],
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    names: Mapping[str, str],
) -> tuple[pd.DataFrame, Deliveries]:
    """Keep the candidate schools :func:`demo.sites.choose_schools` picks against the reference
    offers (best download of any technology), name them, and drop the other candidates with
    their DSL rows (by address_id) and fibre rows (by coordinates). Cable polygons and the mobile
    raster are areas and stay as they are. A kept school that :func:`~demo.sites.choose_schools` lifts
    to a class gets a line of its own in it (:func:`_lift_schools`)."""
    cand = np.flatnonzero(both["school_rank"].to_numpy() >= 0)
    ref = deliveries["reference_assignment"].set_index("address_id")
    ref = ref.reindex(both["address_id"].to_numpy()[cand])
    down = np.nan_to_num(ref[["dsl_down", "hfc_down", "fibre_down", "mobile_down"]].to_numpy(float)).max(axis=1)
    cand_ags = both["ags"].to_numpy()[cand].astype(str)
    cand_krs = np.array([a[:5] for a in cand_ags])
    keep, lift = choose_schools(cand_krs, both["school_rank"].to_numpy()[cand], down, counts, curves)
    dropped = both.iloc[cand[~keep]]
    out = both.drop(index=dropped.index)
    chosen = both.index[cand[keep]]
    out.loc[chosen, "site_name"] = school_names(out.loc[chosen, "ags"].astype(str), names)
    gone = set(dropped["address_id"])
    xy = pd.MultiIndex.from_frame(dropped[["x", "y"]])
    fibre = deliveries["fibre"]
    result: Deliveries = {
        **deliveries,
        "dsl": deliveries["dsl"][~deliveries["dsl"]["address_id"].isin(gone)].reset_index(drop=True),
        "fibre": fibre[~pd.MultiIndex.from_frame(fibre[["x", "y"]]).isin(xy)].reset_index(drop=True),
        "assignment": deliveries["assignment"][~deliveries["assignment"]["address_id"].isin(gone)],
        "reference_assignment": deliveries["reference_assignment"][
            ~deliveries["reference_assignment"]["address_id"].isin(gone)],
    }
    lifted = cand[keep & (lift > 0)]
    levels = np.array([curves[k][0][c - 1] if c > 0 else 0.0 for k, c in zip(cand_krs, lift, strict=True)])
    result = _lift_schools(result, both.iloc[lifted], levels[keep & (lift > 0)], curves, cand_krs[keep & (lift > 0)])
    log.info("schools: %d of %d candidates kept (%d Kreise), %d lifted to their class by a line of their own",
             int(keep.sum()), len(cand), len(counts), len(lifted))
    return out.reset_index(drop=True), result


def _lift_schools(
    deliveries: Deliveries,
    schools: pd.DataFrame,
    level: np.ndarray,
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    krs: np.ndarray,
) -> Deliveries:
    """Give each school (``address_id``, ``x``, ``y``) a line in the class starting at ``level`` (Mbit/s,
    a threshold of its Kreis' curve): DSL below 100 Mbit/s, fibre (FTTH) from 100, the class' slowest
    product (:data:`demo.providers.PRODUCTS`), never slower than the school's own offer. A school has
    no households, so no household share changes; APPROXIMATE: where the Breitbandatlas counts
    schools in a class the demo's places do not reach, a school line (as under the DigitalPakt) does."""
    from demo.providers import PRODUCTS, _current_fibre_table, _dsl_table, class_speeds

    if not len(schools):
        return deliveries
    down = np.zeros(len(schools))
    for i, (k, lv) in enumerate(zip(krs, level, strict=True)):
        ts = np.asarray(curves[str(k)][0], float)
        c = np.array([int(np.searchsorted(ts, lv, side="right"))])
        down[i] = class_speeds(c, ts, PRODUCTS["dsl" if lv < 100 else "fibre"], u=np.zeros(1))[0]
    ids = schools["address_id"].to_numpy()
    by_dsl = level < 100
    out: Deliveries = {
        **deliveries,
        "assignment": _lifted(deliveries["assignment"], ids, down, by_dsl),
        "reference_assignment": _lifted(deliveries["reference_assignment"], ids, down, by_dsl),
    }
    assign = out["assignment"].set_index("address_id").loc[ids]
    dsl_ids = ids[by_dsl]
    new_dsl = _dsl_table(assign.loc[dsl_ids].reset_index())
    out["dsl"] = pd.concat([deliveries["dsl"][~deliveries["dsl"]["address_id"].isin(dsl_ids)], new_dsl],
                           ignore_index=True)
    fib = schools[~by_dsl]
    fibre = deliveries["fibre"]
    xy = pd.MultiIndex.from_frame(fib[["x", "y"]])
    mine = pd.MultiIndex.from_frame(fibre[["x", "y"]]).isin(xy) & (fibre["status"] == "current").to_numpy()
    rows = _current_fibre_table(fib.assign(density=0.0), assign.loc[fib["address_id"], "fibre_down"].to_numpy(),
                                np.ones(len(fib)))
    out["fibre"] = pd.concat([fibre[~mine], rows], ignore_index=True)
    return out


def _lifted(frame: pd.DataFrame, ids: np.ndarray, down: np.ndarray, by_dsl: np.ndarray) -> pd.DataFrame:
    """``frame`` (an assignment) with DSL (``by_dsl``) or fibre of the addresses ``ids`` raised to ``down``."""
    frame = frame.copy()
    at = frame["address_id"].isin(ids).to_numpy()
    want = pd.Series(down, index=ids).reindex(frame["address_id"][at]).to_numpy()
    use_dsl = pd.Series(by_dsl, index=ids).reindex(frame["address_id"][at]).to_numpy()
    rows = frame.index[at]
    for col, sel in (("dsl_down", use_dsl), ("fibre_down", ~use_dsl)):
        frame.loc[rows[sel], col] = np.maximum(frame.loc[rows[sel], col].to_numpy(), want[sel])
    dsl = frame["dsl_down"].to_numpy()
    up = np.maximum(frame["dsl_up"].to_numpy(), np.maximum(0.5, np.round(dsl / 10, 1)))
    frame["dsl_up"] = np.where(dsl > 0, up, 0.0)
    frame["fibre_up"] = frame["fibre_down"] / 2
    return frame
