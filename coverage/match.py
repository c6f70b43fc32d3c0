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
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import Transformer

from coverage.addressing import address_key, normalise_locality, strip_postcode
from coverage.columns import concat_frames, constant
from coverage.config import MAX_SPEED_MBPS
from coverage.crs import assert_same_crs
from coverage.errors import SchemaError
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


#: Builds the linked rows of (records, their address positions, addresses, method, distance); must give
#: a ``match_method`` column. Provider records become offers (:func:`_offers`); business and site
#: records keep their own columns (:mod:`coverage.sources.address_lists`).
LinkBuilder = Callable[[pd.DataFrame, np.ndarray, pd.DataFrame, str, np.ndarray | float], pd.DataFrame]


def link_table_records(records: pd.DataFrame, addresses: gpd.GeoDataFrame, max_distance_m: float,
                       rejected_ids: pd.Index | None = None, build: LinkBuilder = _offers
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Link address-level records by address_id, else coordinates, else street address.

    ``rejected_ids`` are address ids that were in the address file but quarantined: records
    pointing at them are reported as ``address_quarantined`` rather than ``unknown_address``.
    ``build`` makes the linked rows (default: offers).
    """
    parts, quarantine = [], []
    method = records["locator"]
    is_id = (method == "address_id").to_numpy(dtype=bool)
    by_id = records if is_id.all() else records[is_id]
    if len(by_id):
        pos = StringLookup(addresses["address_id"]).positions(by_id["address_id"])
        known = pos >= 0
        parts.append(build(by_id if known.all() else by_id[known], pos[known], addresses, "address_id", 0.0))
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
        parts.append(build(by_xy.iloc[rec_i], addr_i, addresses, "xy", dist))
        bad = by_xy[~found]
        quarantine.append(rows(_src(bad), bad["source_row"], "x", bad["x"].round(2).astype(str) + " " +
                               bad["y"].round(2).astype(str), "no_address_nearby",
                               f"no address within {max_distance_m:g} m"))
    by_addr = records[(method == "address").to_numpy(dtype=bool)]
    if len(by_addr):
        require_street_addresses(addresses, _src(by_addr), len(by_addr))
        linked, bad, ambiguous = _link_by_street(by_addr, addresses, build)
        parts.append(linked)
        for frame, reason in ((bad, "address_not_found"), (ambiguous, "ambiguous_address")):
            quarantine.append(rows(_src(frame), frame["source_row"], "street",
                                   (frame["street"].astype(str) + " " + frame["house_number"].astype(str) + ", "
                                    + frame["postcode"].astype(str)), reason))
    non_empty = [p for p in parts if len(p)]
    if not non_empty:
        return (empty_offers() if build is _offers else build(records.iloc[:0], np.zeros(0, dtype=np.int64),
                                                               addresses, "address_id", 0.0)), concat(quarantine)
    return concat_frames(non_empty), concat(quarantine)


def _src(frame: pd.DataFrame) -> str:
    return str(frame["source"].iloc[0]) if len(frame) else ""


def require_street_addresses(addresses: pd.DataFrame, delivery: str, n_records: int) -> None:
    """Records located by street address need streets and house numbers in the address list: without
    them every such record would be quarantined as ``address_not_found``, which is a setup mistake."""
    missing = [c for c in ("street", "house_number")
               if c not in addresses.columns or not (addresses[c].astype(str) != "").any()]
    if missing:
        mapping = ", ".join(f'{c} = "…"' for c in missing)
        raise SchemaError(f"{delivery}: {n_records} record(s) are located by street address, but the address list "
                          f"has no {' / '.join(missing)} values; map its column(s) with [addresses] columns = "
                          f"{{ {mapping} }}, or locate the delivery by address_id or x/y")


def _link_by_street(records: pd.DataFrame, addresses: pd.DataFrame, build: LinkBuilder = _offers
                    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Link records to the one address with their street and house number; returns
    (offers, records matching no address, records matching several).

    Candidates share the normalised street and house number. A postcode, ``locality`` or Gemeinde
    key (``ags``) the record gives narrows them: candidates with the same postcode are preferred (a
    match that had to ignore the record's postcode is labelled ``address_no_postcode``); candidates
    whose locality or ags differ from the record's are dropped (unknown values drop nothing). What
    is left with more than one candidate is ambiguous and never linked to one of them.
    """
    rec_key = address_key(records["street"], records["house_number"], records["postcode"])
    rec = pd.DataFrame({"rid": np.arange(len(records)), "key": strip_postcode(rec_key).to_numpy(),
                        "plz": _postcode(rec_key), "loc": _column(records, "locality", normalise_locality),
                        "ags": _column(records, "ags", _ags)})
    addr_key = address_key(addresses["street"], addresses["house_number"], addresses["postcode"])
    loose = strip_postcode(addr_key)
    wanted = member(loose, rec["key"].unique())
    adr = pd.DataFrame({"pos": np.flatnonzero(wanted), "key": loose[wanted].to_numpy(),
                        "a_plz": _postcode(addr_key[wanted]),
                        "a_loc": _column(addresses, "locality", normalise_locality, wanted),
                        "a_ags": _column(addresses, "ags", _ags, wanted)})
    cand = rec.merge(adr, on="key", how="inner")
    for mine, theirs in (("loc", "a_loc"), ("ags", "a_ags")):
        cand = cand[(cand[mine] == "") | (cand[theirs] == "") | (cand[mine] == cand[theirs])]
    same_plz = (cand["plz"] != "") & (cand["plz"] == cand["a_plz"])
    has_same = same_plz.groupby(cand["rid"]).transform("any")
    cand = cand[same_plz | ~has_same].assign(exact=same_plz)
    n = cand.groupby("rid")["pos"].transform("size")
    hit = cand[n == 1]
    counts = cand.groupby("rid").size().reindex(rec["rid"], fill_value=0).to_numpy()
    order = np.argsort(hit["rid"].to_numpy(), kind="stable")
    rid, pos = hit["rid"].to_numpy()[order], hit["pos"].to_numpy()[order]
    offers = build(records.iloc[rid], pos, addresses, "address", 0.0)
    # Quality: a match that needed to ignore the postcode is weaker and is labelled so.
    offers["match_method"] = pd.Categorical(np.where(hit["exact"].to_numpy()[order], "address",
                                                     "address_no_postcode"))
    if (counts > 1).any():
        log.info("%s: %d street address(es) match several addresses", _src(records), int((counts > 1).sum()))
    return offers, records[counts == 0], records[counts > 1]


def _postcode(keys: pd.Series) -> np.ndarray:
    return keys.str.extract(r"\|(\d*)$", expand=False).fillna("").to_numpy(dtype=object)


def _column(frame: pd.DataFrame, name: str, clean: Callable[[pd.Series], pd.Series],
            rows: np.ndarray | None = None) -> np.ndarray:
    """Column ``name`` cleaned (of the ``rows`` mask only); "" everywhere when the frame lacks it."""
    n = len(frame) if rows is None else int(rows.sum())
    if name not in frame.columns:
        return np.full(n, "", dtype=object)
    values = frame[name] if rows is None else frame[name][rows]
    return clean(values).to_numpy(dtype=object)


def _ags(values: pd.Series) -> pd.Series:
    """Gemeinde keys compared as 8 digits (``"13003000"``); anything else as given."""
    s = values.astype("string").fillna("").str.strip()
    return s.where(~s.str.fullmatch(r"\d{1,8}"), s.str.zfill(8)).astype(str)


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


@dataclass(frozen=True)
class RasterSample:
    """What sampling a raster at the addresses gave: ``offers`` (one per address in a served cell),
    ``quarantine`` (one row per address under an absurd or negative cell), how many addresses lie
    ``outside`` the raster (no offer) and how many blocks were read."""

    offers: pd.DataFrame
    quarantine: pd.DataFrame
    outside: int
    blocks_read: int


def sample_raster(delivery: RasterDelivery, addresses: gpd.GeoDataFrame) -> RasterSample:
    """The cell under each address; nodata, NaN, 0 and outside mean no offer.

    Cells are read block by block (:func:`read_cells`), never the whole raster. A cell above
    :data:`~coverage.config.MAX_SPEED_MBPS` (``absurd_speed``) or below 0 (``negative_value``) is no offer:
    each address under it is quarantined, ``row`` = the address's row in the address list (the raster has
    no rows of its own), ``key`` = its address_id, ``value`` = the cell value and the cell's 0-based row/col.
    """
    to_raster = Transformer.from_crs(addresses.crs, delivery.crs, always_xy=True)
    x, y = to_raster.transform(addresses.geometry.x.to_numpy(), addresses.geometry.y.to_numpy())
    a, b, c, d, e, f = (~delivery.transform)[:6]  # world -> pixel, applied to whole arrays
    x, y = np.asarray(x), np.asarray(y)
    col = np.floor(a * x + b * y + c).astype(np.int64)
    row = np.floor(d * x + e * y + f).astype(np.int64)
    h, w = delivery.shape
    inside = (row >= 0) & (row < h) & (col >= 0) & (col < w)
    values = np.full(len(addresses), np.nan)
    values[inside], blocks_read = read_cells(delivery, row[inside], col[inside])
    negative = values < 0  # NaN (nodata) compares False
    absurd = values > MAX_SPEED_MBPS
    served = (values > 0) & ~absurd
    n = int(served.sum())
    served_at = np.flatnonzero(served)
    offers = pd.DataFrame({
        "address_id": addresses["address_id"].take(served_at).to_numpy(), "addr": served_at,
        "provider": delivery.provider, "technology": delivery.technology.value,
        "down_mbps": values[served].astype("float64"), "up_mbps": np.full(n, delivery.up_mbps),
        "status": str(delivery.status), "planned_date": delivery.planned_date, "source": delivery.source,
        "match_method": "raster", "match_distance_m": 0.0,
    })
    for name in ("provider", "technology", "status", "planned_date", "source", "match_method"):
        offers[name] = offers[name].astype("category")
    checks = ((absurd, "absurd_speed", f"a cell value above the plausible maximum of {MAX_SPEED_MBPS:,.0f} Mbit/s "
                                       "(a unit mistake?)"),
              (negative, "negative_value", "a negative cell value that is not the raster's nodata ("
                                           + ("none set" if delivery.nodata is None else f"{delivery.nodata:g}")
                                           + ")"))
    quarantine = concat([_cell_rows(delivery, addresses, np.flatnonzero(hit), values, row, col, reason, detail)
                         for hit, reason, detail in checks if hit.any()])
    outside = int((~inside).sum())
    log.info("raster %s: %d of %d addresses inside a served cell, %d outside the raster, %d under absurd and %d "
             "under negative cells (quarantined); %d block(s) read", delivery.source, n, len(addresses), outside,
             int(absurd.sum()), int(negative.sum()), blocks_read)
    return RasterSample(offers, quarantine, outside, blocks_read)


def read_cells(delivery: RasterDelivery, row: np.ndarray, col: np.ndarray) -> tuple[np.ndarray, int]:
    """The values (float64, NaN = nodata) of the cells at (``row``, ``col``), all inside the raster, and
    the number of blocks read.

    Only the blocks holding one of the cells are read, one at a time, in storage order, each only as
    far as the window spanning its cells: memory stays at one block whatever the raster's size. The
    values equal indexing the whole band at once. A cell equal to nodata as a float64 or in the band's
    own float type (float32 bands store ``-3.4e38`` rounded) is NaN, as GDAL's nodata mask has it.
    """
    out = np.full(len(row), np.nan)
    if not len(row):
        return out, 0
    bh, bw = delivery.block_shape
    n_block_cols = -(-delivery.shape[1] // bw)
    block = (row // bh) * n_block_cols + col // bw
    order = np.argsort(block, kind="stable")
    first = np.flatnonzero(np.r_[True, block[order][1:] != block[order][:-1]])
    bounds = np.r_[first, len(order)]
    nodata = delivery.nodata
    with delivery.cells.open() as read:
        for start, stop in pairwise(bounds.tolist()):
            members = order[start:stop]
            r, c = row[members], col[members]
            r0, c0 = int(r.min()), int(c.min())
            cells = read(r0, c0, int(r.max()) - r0 + 1, int(c.max()) - c0 + 1)[r - r0, c - c0]
            values = cells.astype(np.float64)
            if nodata is not None and not np.isnan(nodata):
                missing = values == nodata
                if np.issubdtype(cells.dtype, np.floating):
                    with np.errstate(over="ignore"):  # a nodata beyond the type's range matches no cell
                        typed = cells.dtype.type(nodata)
                    if np.isfinite(typed):
                        missing |= cells == typed
                values[missing] = np.nan
            out[members] = values
    return out, len(first)


def _cell_rows(delivery: RasterDelivery, addresses: gpd.GeoDataFrame, at: np.ndarray, values: np.ndarray,
               row: np.ndarray, col: np.ndarray, reason: str, detail: str) -> pd.DataFrame:
    """Quarantine rows for the addresses at positions ``at``: their row in the address list (position + 1
    where the addresses carry no ``source_row``), the cell value and where the cell is."""
    numbers = (addresses["source_row"].take(at) if "source_row" in addresses.columns
               else pd.Series(at + 1)).reset_index(drop=True)
    shown = pd.Series([f"{v:.15g} at cell row {r}, col {c}" for v, r, c in zip(values[at], row[at], col[at],
                                                                                 strict=True)], dtype="string")
    keys = addresses["address_id"].take(at).reset_index(drop=True)
    return rows(delivery.source, numbers, f"band {delivery.band}", shown, reason, detail, keys)
