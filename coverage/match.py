"""Provider records -> addresses: by id, by location, by street address, by polygon, by raster.

Every record ends up as one or more offers (one row per address it reaches)
or in the quarantine table with the reason it reached none. The match method
is kept per offer (``address_id``, ``xy``, ``address``, ``polygon``, ``raster``)
together with the match distance where one applies, and the row position of the
address (``addr``), which later stages use instead of hashing the id again. Ids are
looked up through :class:`coverage.membership.StringLookup` (exact, compiled).
"""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import Transformer

from coverage.addressing import address_key, strip_postcode
from coverage.columns import concat_frames, constant
from coverage.crs import assert_same_crs
from coverage.membership import StringLookup, member
from coverage.model import OFFER_COLUMNS, OFFER_FIELDS, RasterDelivery
from coverage.quarantine import concat, rows

log = logging.getLogger(__name__)


def _offers(records: pd.DataFrame, positions: np.ndarray, addresses: pd.DataFrame, method: str,
            distance: np.ndarray | float = 0.0) -> pd.DataFrame:
    """Offer rows for ``records`` at the addresses in row ``positions`` of ``addresses``."""
    positions = np.asarray(positions, dtype=np.int64)
    out = records[[*OFFER_FIELDS, "source"]].reset_index(drop=True)
    out.insert(0, "address_id", addresses["address_id"].take(positions).reset_index(drop=True))
    out.insert(1, "addr", positions)
    out["match_method"] = constant(method, out.index)
    out["match_distance_m"] = distance
    return out[[*OFFER_COLUMNS, "match_distance_m"]]


def empty_offers() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="object") for c in OFFER_COLUMNS})
    for c in ("down_mbps", "up_mbps"):
        frame[c] = frame[c].astype("float64")
    frame["addr"] = frame["addr"].astype("int64")
    frame["match_distance_m"] = pd.Series(dtype="float64")
    return frame


def link_table_records(records: pd.DataFrame, addresses: gpd.GeoDataFrame, max_distance_m: float,
                       rejected_ids: pd.Index | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Link address-level records by address_id, else coordinates, else street address.

    ``rejected_ids`` are address ids that were in the address file but quarantined: records
    pointing at them are reported as ``address_quarantined`` rather than ``unknown_address``.
    """
    parts, quarantine = [], []
    method = records["locator"]
    is_id = (method == "address_id").to_numpy(dtype=bool)
    by_id = records if is_id.all() else records[is_id]
    if len(by_id):
        pos = StringLookup(addresses["address_id"]).positions(by_id["address_id"])
        known = pos >= 0
        parts.append(_offers(by_id if known.all() else by_id[known], pos[known], addresses, "address_id"))
        bad = by_id[~known]
        held = member(bad["address_id"], rejected_ids if rejected_ids is not None else [])
        quarantine.append(rows(_src(bad), bad["source_row"][~held], "address_id", bad["address_id"][~held],
                               "unknown_address"))
        quarantine.append(rows(_src(bad), bad["source_row"][held], "address_id", bad["address_id"][held],
                               "address_quarantined", "its address is in the address quarantine"))
    by_xy = records[(method == "xy").to_numpy(dtype=bool)]
    if len(by_xy):
        pts = gpd.points_from_xy(by_xy["x"], by_xy["y"])
        (rec_i, addr_i), dist = addresses.sindex.nearest(pts, max_distance=max_distance_m, return_all=False,
                                                         return_distance=True)
        found = np.zeros(len(by_xy), dtype=bool)
        found[rec_i] = True
        parts.append(_offers(by_xy.iloc[rec_i], addr_i, addresses, "xy", dist))
        bad = by_xy[~found]
        quarantine.append(rows(_src(bad), bad["source_row"], "x", bad["x"].round(2).astype(str) + " " +
                               bad["y"].round(2).astype(str), "no_address_nearby",
                               f"no address within {max_distance_m:g} m"))
    by_addr = records[(method == "address").to_numpy(dtype=bool)]
    if len(by_addr):
        linked, bad = _link_by_street(by_addr, addresses)
        parts.append(linked)
        quarantine.append(rows(_src(bad), bad["source_row"], "street",
                               (bad["street"].astype(str) + " " + bad["house_number"].astype(str) + ", "
                                + bad["postcode"].astype(str)), "address_not_found"))
    non_empty = [p for p in parts if len(p)]
    offers = concat_frames(non_empty) if non_empty else empty_offers()
    return offers, concat(quarantine)


def _src(frame: pd.DataFrame) -> str:
    return str(frame["source"].iloc[0]) if len(frame) else ""


def _link_by_street(records: pd.DataFrame, addresses: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Exact match on the normalised key; without a postcode, on street + number if unique."""
    addr_key = address_key(addresses["street"], addresses["house_number"], addresses["postcode"])
    positions = np.arange(len(addresses))
    lookup = pd.Series(positions, index=addr_key.to_numpy())
    lookup = lookup[~lookup.index.duplicated(keep=False)]
    loose = strip_postcode(addr_key)
    loose_lookup = pd.Series(positions, index=loose.to_numpy())
    loose_lookup = loose_lookup[~loose_lookup.index.duplicated(keep=False)]  # ambiguous without postcode
    rec_key = address_key(records["street"], records["house_number"], records["postcode"])
    exact = rec_key.map(lookup)
    loose = strip_postcode(rec_key).map(loose_lookup)
    pos = exact.fillna(loose)
    found = pos.notna().to_numpy()
    offers = _offers(records[found], pos[found].to_numpy(dtype=np.int64), addresses, "address")
    # Quality: a match that needed to ignore the postcode is weaker and is labelled so.
    offers["match_method"] = pd.Categorical(np.where(exact[found].notna().to_numpy(), "address",
                                                     "address_no_postcode"))
    return offers, records[~found]


def link_polygons(polygons: gpd.GeoDataFrame, addresses: gpd.GeoDataFrame) -> tuple[pd.DataFrame, int]:
    """Every address inside (or on the edge of) a coverage polygon gets its offer.

    Returns (offers, number of polygons that reached no address). Such polygons
    are not errors (coverage may lie over fields) but are counted.
    """
    assert_same_crs(addresses, polygons, names=("addresses", "coverage polygons"))
    if not len(polygons):
        return empty_offers(), 0
    poly_i, addr_i = addresses.sindex.query(polygons.geometry.to_numpy(), predicate="intersects")
    offers = _offers(polygons.iloc[poly_i], addr_i, addresses, "polygon")
    unused = len(polygons) - len(np.unique(poly_i))
    return offers, unused


def sample_raster(delivery: RasterDelivery, addresses: gpd.GeoDataFrame) -> pd.DataFrame:
    """Direct array indexing: the cell under each address; nodata, 0 and outside mean no offer."""
    to_raster = Transformer.from_crs(addresses.crs, delivery.crs, always_xy=True)
    x, y = to_raster.transform(addresses.geometry.x.to_numpy(), addresses.geometry.y.to_numpy())
    a, b, c, d, e, f = (~delivery.transform)[:6]  # world -> pixel, applied to whole arrays
    x, y = np.asarray(x), np.asarray(y)
    col = np.floor(a * x + b * y + c).astype(np.int64)
    row = np.floor(d * x + e * y + f).astype(np.int64)
    h, w = delivery.values.shape
    inside = (row >= 0) & (row < h) & (col >= 0) & (col < w)
    values = np.full(len(addresses), np.nan)
    values[inside] = delivery.values[row[inside], col[inside]]
    if delivery.nodata is not None and not np.isnan(delivery.nodata):
        values[values == delivery.nodata] = np.nan
    served = np.isfinite(values) & (values > 0)
    n = int(served.sum())
    served_at = np.flatnonzero(served)
    offers = pd.DataFrame({
        "address_id": addresses["address_id"].take(served_at).to_numpy(), "addr": served_at,
        "provider": delivery.provider, "technology": delivery.technology.value,
        "down_mbps": values[served].astype("float64"), "up_mbps": np.full(n, delivery.up_mbps),
        "status": str(delivery.status), "planned_date": delivery.planned_date, "source": delivery.source,
        "match_method": "raster", "match_distance_m": 0.0,
    })
    for col in ("provider", "technology", "status", "planned_date", "source", "match_method"):
        offers[col] = offers[col].astype("category")
    log.info("raster %s: %d of %d addresses inside a served cell", delivery.source, n, len(addresses))
    return offers
