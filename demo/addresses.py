"""Synthetic address points with households on the real Zensus 2022 grids.

Method (approximate on purpose; these are demo data, not a model of real addresses):

1. **Where**: one point per residential building of the 100 m grid (``buildings``; a cell with
   no building but dwellings > 0 gets one point), jittered uniformly inside its 100 m cell with a
   1 m margin from the edges (jitter in EPSG:3035, then transformed to the working CRS).
   A 100 m cell belongs to the area if its centre lies in the Land's land area or its coastal
   water. Points outside every Gemeinde polygon (the coarse VG5000 coastlines) are moved to the
   nearest point of the nearest Gemeinde shrunk by 1 m, so every point lies inside one Gemeinde.
   Because the 100 m grid undercounts (small counts are suppressed per class), there are fewer
   points than real buildings.
2. **How many households**: per 1 km cell, ``H = einwohner / hh_groesse_d`` (both positive).
   ``round(H × f)`` households (round half up), ``f`` = share of the 1 km cell's dwellings (of the
   100 m grid) that lies in the area, are distributed over the cell's points in proportion to the
   dwellings of their 100 m cell divided among its buildings, as integers by largest-remainder
   rounding. Where the 1 km values are suppressed or missing, ``H`` is **estimated** from the
   dwellings of the 100 m grid: ``dwellings × (1 − leerstandsquote/100)``, or ``× 0.95`` without
   a vacancy rate. 1 km cells with ``H > 0`` but no building in the 100 m grid get ``ceil(H/2)``
   points jittered in the whole 1 km cell (if its centre lies in the area).
3. **Businesses**: Poisson, with a higher rate in dense 1 km cells. With ``businesses_total`` (the
   MV demo: the business register's count, :data:`demo.businesses.MV_BUSINESS_LOCATIONS`) the rate
   of an address is proportional to its households + :data:`BUSINESS_WEIGHT_PER_ADDRESS` (business
   locations roughly follow the population; the constant stands for farms and workshops), scaled
   so that the expected total over the whole area is that number. Approximate: real business
   density varies (tourism on the coast, industry in towns).
4. **Labels**: addresses sharing coordinates (several points pulled onto one coastline vertex) are
   spread by a few metres inside their Gemeinde. Streets are 200 m × 400 m blocks named from a
   fixed catalogue (big towns run out of names and get "Neue …"/"Alte …" variants); house numbers
   rise along the block; postcodes are fictional (17000–19999), one per Gemeinde.

The household total therefore matches the Zensus total of populated, unsuppressed 1 km cells
up to rounding, plus the dwelling-based estimates for suppressed cells.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import cast

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer

from coverage.crs import INSPIRE_GRID_CRS, to_crs
from coverage.errors import InputDataError
from coverage.model import Boundaries

log = logging.getLogger(__name__)

MARGIN_M = 1.0
DEFAULT_VACANCY = 0.05
#: With ``businesses_total``: business rate ∝ households + this per address (see the module docstring).
BUSINESS_WEIGHT_PER_ADDRESS = 0.5
_KEY = 100_000  # cell key = col * _KEY + row, col/row = floor(coordinate / size)


def cell_key(x: np.ndarray, y: np.ndarray, size: float) -> np.ndarray:
    """INSPIRE cell key of EPSG:3035 coordinates for cells of ``size`` metres (floor)."""
    return np.floor(np.asarray(x) / size).astype(np.int64) * _KEY + np.floor(np.asarray(y) / size).astype(
        np.int64
    )


def key_centre(key: np.ndarray, size: float) -> tuple[np.ndarray, np.ndarray]:
    key = np.asarray(key, dtype=np.int64)
    return (key // _KEY) * size + size / 2, (key % _KEY) * size + size / 2


def area_polygon(boundaries: Boundaries, crs: object = INSPIRE_GRID_CRS) -> shapely.Geometry:
    """Land area plus coastal water of the boundaries, as one prepared geometry in ``crs``."""
    parts = [to_crs(boundaries.land, crs, "land").geometry]
    if len(boundaries.coastal_water):
        parts.append(to_crs(boundaries.coastal_water, crs, "coastal water").geometry)
    geom = shapely.union_all(np.concatenate([p.values for p in parts]))
    shapely.prepare(geom)
    return geom


def largest_remainder(group: np.ndarray, weight: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Split integer ``target[g]`` over the rows of each group ``g`` in proportion to ``weight``.

    ``group`` holds codes 0..G-1 per row, ``target`` one non-negative integer per group. Groups whose
    weights sum to 0 are split equally. Ties are broken by row order, so the result is deterministic.
    """
    group = np.asarray(group, dtype=np.int64)
    weight = np.asarray(weight, dtype=float).copy()
    ngroups = len(target)
    wsum = np.bincount(group, weight, minlength=ngroups)
    zero = wsum[group] <= 0
    weight[zero] = 1.0
    wsum = np.bincount(group, weight, minlength=ngroups)
    quota = np.asarray(target, dtype=float)[group] * weight / wsum[group]
    base = np.floor(quota + 1e-9)
    rest = np.asarray(target, dtype=float) - np.bincount(group, base, minlength=ngroups)
    frac = quota - base
    order = np.lexsort((np.arange(len(group)), -frac, group))
    sorted_groups = group[order]
    starts = np.searchsorted(sorted_groups, np.arange(ngroups))
    rank = np.empty(len(group), dtype=np.int64)
    rank[order] = np.arange(len(group)) - starts[sorted_groups]
    out = base + (rank < np.round(rest[group])).astype(float)
    return out.astype(np.int64)


def _cells_1km(g100: pd.DataFrame, g1: pd.DataFrame, in_area: np.ndarray, npts: np.ndarray) -> pd.DataFrame:
    """Per 1 km cell: dwellings in/total, points, households H (Zensus or estimate), target."""
    k = cell_key(g100["x"].to_numpy(), g100["y"].to_numpy(), 1000)
    d = g100["dwellings"].to_numpy()
    b = g100["buildings"].to_numpy()
    per = (
        pd.DataFrame(
            {
                "key": k,
                "d_all": d,
                "d_in": d * in_area,
                "b_all": b,
                "b_in": b * in_area,
                "n_all": npts,
                "n_in": npts * in_area,
            }
        )
        .groupby("key")
        .sum()
    )
    k1 = pd.DataFrame(
        {
            "key": cell_key(g1["x"].to_numpy(), g1["y"].to_numpy(), 1000),
            "einwohner": g1["einwohner"].to_numpy(),
            "hh_size": g1["hh_groesse_d"].to_numpy(),
            "vacancy": g1["leerstandsquote"].to_numpy(),
        }
    ).set_index("key")
    k1["H_zensus"] = (k1["einwohner"] / k1["hh_size"]).where((k1["einwohner"] > 0) & (k1["hh_size"] > 0))
    cells = per.join(k1, how="outer")
    for col in ("d_all", "d_in", "b_all", "b_in", "n_all", "n_in"):
        cells[col] = cells[col].fillna(0.0)
    vacancy = (cells["vacancy"] / 100).fillna(DEFAULT_VACANCY).clip(0, 1)
    estimate = cells["d_all"] * (1 - vacancy)
    suppressed = cells["H_zensus"].isna() & (cells["n_in"] > 0)
    cells["estimated"] = suppressed
    cells["H"] = cells["H_zensus"].where(~suppressed, estimate)
    f_d = (cells["d_in"] / cells["d_all"]).where(cells["d_all"] > 0)
    f_b = (cells["b_in"] / cells["b_all"]).where(cells["b_all"] > 0)
    f_n = (cells["n_in"] / cells["n_all"]).where(cells["n_all"] > 0)
    cells["f"] = f_d.fillna(f_b).fillna(f_n).fillna(0.0)
    cells["target"] = np.floor(cells["H"].fillna(0.0) * cells["f"] + 0.5)
    return cells


def addresses_per_cell(
    buildings: np.ndarray, dwellings: np.ndarray, dwellings_per_address: float | None = None
) -> np.ndarray:
    """Address points per 100 m cell.

    Default (the MV method): one per residential building; a cell without buildings but with
    dwellings gets one. With ``dwellings_per_address = k`` multi-dwelling cells are split into
    several entrances: ``max(that, ceil(dwellings / k))`` (used for Germany, where the suppressed
    grid undercounts buildings: 14.4 M here against ~19.9 M officially).
    """
    b = np.asarray(buildings, dtype=float)
    d = np.asarray(dwellings, dtype=float)
    n = np.where(b > 0, b, (d > 0).astype(float))
    if dwellings_per_address is not None:
        if dwellings_per_address <= 0:
            raise ValueError(f"dwellings_per_address must be positive, got {dwellings_per_address}")
        n = np.maximum(n, np.ceil(d / dwellings_per_address))
    return n.astype(np.int64)


def smoothed_density(cells_h: pd.Series) -> pd.Series:
    """3 × 3 moving mean of households per 1 km cell (key-indexed), for scores and rates."""
    h = cells_h.fillna(0.0)
    total = pd.Series(0.0, index=h.index)
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            total += h.reindex(h.index + dx * _KEY + dy).fillna(0.0).to_numpy()
    return total / 9.0


def generate_addresses(
    boundaries: Boundaries,
    grid_100m: pd.DataFrame,
    grid_1km: pd.DataFrame,
    rng: np.random.Generator,
    kreise: Sequence[str] | None = None,
    dwellings_per_address: float | None = None,
    businesses_total: float | None = None,
) -> pd.DataFrame:
    """Address points with households for the Gemeinden of ``boundaries`` (optionally some Kreise).

    ``businesses_total`` scales the Poisson business rates so that their sum over all addresses of
    the area (before the ``kreise`` selection) is that number.

    ``dwellings_per_address`` splits multi-dwelling cells into several addresses
    (:func:`addresses_per_cell`); the default keeps one point per building (the MV method).
    Households per 1 km cell do not depend on it.

    Returns a frame with ``x, y`` (working CRS = the boundaries' CRS, rounded to 0.01 m),
    ``ags, households, businesses`` and helper columns ``hh_size`` (local household size),
    ``density`` (smoothed households per km²), ``cell_1km`` (key), ``estimated`` (bool).
    """
    gem = boundaries.gemeinde
    crs = CRS.from_user_input(gem.crs)
    area = area_polygon(boundaries)
    g100 = grid_100m.copy()
    g100["buildings"] = g100["buildings"].fillna(0.0)
    g100["dwellings"] = g100["dwellings"].fillna(0.0)
    cx = g100["x"].to_numpy(float)
    cy = g100["y"].to_numpy(float)
    in_area = shapely.contains_xy(area, cx, cy)
    b = g100["buildings"].to_numpy()
    d = g100["dwellings"].to_numpy()
    npts = addresses_per_cell(b, d, dwellings_per_address)
    cells = _cells_1km(g100, grid_1km, in_area, npts)
    density = smoothed_density(cells["H"])

    # points of the 100 m grid
    sel = np.flatnonzero(in_area & (npts > 0))
    rep = np.repeat(sel, npts[sel])
    half = 50.0 - MARGIN_M
    px = cx[rep] + rng.uniform(-half, half, len(rep))
    py = cy[rep] + rng.uniform(-half, half, len(rep))
    weight = d[rep] / npts[rep]
    key = cell_key(cx[rep], cy[rep], 1000)

    # 1 km cells with households but no building in the 100 m grid
    lonely = cells[(cells["n_all"] == 0) & (cells["H_zensus"] > 0)]
    lx, ly = key_centre(lonely.index.to_numpy(), 1000)
    lonely = lonely[shapely.contains_xy(area, lx, ly)]
    m = np.ceil(lonely["H_zensus"].to_numpy() / 2).astype(np.int64)
    lkeys = np.repeat(lonely.index.to_numpy(), m)
    lcx, lcy = key_centre(lkeys, 1000)
    half1 = 500.0 - MARGIN_M
    px = np.concatenate([px, lcx + rng.uniform(-half1, half1, len(lkeys))])
    py = np.concatenate([py, lcy + rng.uniform(-half1, half1, len(lkeys))])
    weight = np.concatenate([weight, np.ones(len(lkeys))])
    key = np.concatenate([key, lkeys])
    cells.loc[lonely.index, "target"] = np.floor(lonely["H_zensus"] + 0.5)

    codes, uniq = pd.factorize(key, sort=True)
    target = cells["target"].reindex(uniq).fillna(0.0).to_numpy()
    households = largest_remainder(codes, weight, target)

    tr = Transformer.from_crs(INSPIRE_GRID_CRS, crs, always_xy=True)
    wx, wy = tr.transform(px, py)
    wx, wy, gidx, moved = locate_inside(np.asarray(wx), np.asarray(wy), gem)

    hh_size = cells["hh_size"].reindex(key).to_numpy()
    fallback = float(np.nanmedian(cells["hh_size"])) if cells["hh_size"].notna().any() else 2.0
    hh_size = np.where(np.isfinite(hh_size) & (hh_size > 0), hh_size, fallback)
    dens = density.reindex(key).fillna(0.0).to_numpy()
    rate = 0.02 + 0.3 * np.minimum(1.0, dens / 3000.0)
    if businesses_total is not None:  # business locations follow the people: households + ½ per building
        weight = households + BUSINESS_WEIGHT_PER_ADDRESS
        rate = weight * (businesses_total / weight.sum()) if weight.sum() > 0 else rate
    out = pd.DataFrame(
        {
            "x": wx,
            "y": wy,
            "ags": gem["ags"].to_numpy()[gidx],
            "households": households,
            "businesses": rng.poisson(rate).astype(np.int64),
            "hh_size": hh_size,
            "density": dens,
            "cell_1km": key,
            "estimated": cells["estimated"].reindex(key).fillna(False).to_numpy(bool),
        }
    )
    if kreise is not None:
        out = out[out["ags"].str[:5].isin(list(kreise))].reset_index(drop=True)
    log.info(
        "synthetic addresses: %d points (%d from 1 km cells without buildings), %d households, "
        "%d moved inside a Gemeinde",
        len(out),
        len(lkeys),
        int(out["households"].sum()),
        moved,
    )
    return out


def locate_inside(
    x: np.ndarray, y: np.ndarray, gem: gpd.GeoDataFrame
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Gemeinde index of each point; points outside all Gemeinden move 1 m inside the nearest one.

    Returns rounded (0.01 m) coordinates strictly inside the returned Gemeinde, the Gemeinde
    row positions and the number of moved points.
    """
    geoms = gem.geometry.to_numpy()
    tree = shapely.STRtree(geoms)
    x = np.round(x, 2)
    y = np.round(y, 2)
    # shapely's stubs type points() of arrays as Point | array; of 1-d x, y it is always an array.
    pts = cast(np.ndarray, shapely.points(x, y))
    pairs = tree.query(pts, predicate="within")
    gidx = np.full(len(x), -1, dtype=np.int64)
    first_inputs, first_pos = np.unique(pairs[0], return_index=True)
    gidx[first_inputs] = pairs[1][first_pos]
    out = np.flatnonzero(gidx < 0)
    if len(out):
        nearest = tree.query_nearest(pts[out], all_matches=False)
        gi = nearest[1][np.argsort(nearest[0])]
        uniq, inv = np.unique(gi, return_inverse=True)
        shrunk = shapely.buffer(geoms[uniq], -MARGIN_M)
        lines = shapely.shortest_line(pts[out], shrunk[inv])
        ends = shapely.get_coordinates(shapely.get_point(lines, 1))
        x[out] = np.round(ends[:, 0], 2)
        y[out] = np.round(ends[:, 1], 2)
        gidx[out] = gi
    inside = shapely.contains_xy(geoms[gidx], x, y) if len(x) else np.ones(0, bool)
    if not inside.all():
        bad = np.flatnonzero(~inside)
        reps = shapely.get_coordinates(shapely.point_on_surface(geoms[gidx[bad]]))
        x[bad] = np.round(reps[:, 0], 2)
        y[bad] = np.round(reps[:, 1], 2)
        log.warning("%d point(s) could not be moved inside a Gemeinde; placed on its surface point", len(bad))
        if not shapely.contains_xy(geoms[gidx[bad]], x[bad], y[bad]).all():
            raise InputDataError("cannot place synthetic addresses inside their Gemeinde polygons")
    return x, y, gidx, len(out)


_STREET_STEMS = (
    "Linden",
    "Birken",
    "Eichen",
    "Buchen",
    "Kastanien",
    "Ahorn",
    "Kiefern",
    "Rosen",
    "Tulpen",
    "Flieder",
    "Wiesen",
    "Feld",
    "Garten",
    "Mühlen",
    "Kirch",
    "Schul",
    "Bahnhof",
    "See",
    "Strand",
    "Hafen",
    "Wald",
    "Bach",
    "Teich",
    "Kloster",
    "Schloss",
    "Goethe",
    "Schiller",
    "Fritz-Reuter",
    "John-Brinckman",
    "Ernst-Barlach",
    "Lessing",
    "Heine",
    "Bäcker",
    "Schmiede",
    "Fischer",
    "Moor",
    "Dünen",
    "Heide",
    "Sonnen",
    "Park",
    "Friedhof",
    "Post",
    "Sport",
    "Gutshof",
    "Dorf",
    "Haupt",
    "Rügener",
    "Anklamer",
    "Pasewalker",
    "Demminer",
    "Wismarsche",
    "Güstrower",
    "Schweriner",
    "Rostocker",
    "Stralsunder",
    "Ostsee",
    "Bodden",
    "Achter",
    "Kamp",
    "Acker",
)
_STREET_SUFFIXES = ("straße", "weg", "allee", "ring", "stieg", "gang", "damm", "winkel")
_STREET_SPECIAL = (
    "Dorfstraße",
    "Hauptstraße",
    "Am Markt",
    "Schulstraße",
    "Lindenallee",
    "Strandweg",
    "Kirchplatz",
    "Am Anger",
    "Bahnhofstraße",
    "Mühlenweg",
    "Am See",
    "Lange Straße",
)
_PREFIXES = ("", "Neue ", "Alte ", "Obere ", "Untere ")


def street_catalogue() -> list[str]:
    """Plausible German street names, the most common first (deterministic order)."""
    names = list(_STREET_SPECIAL)
    seen = set(names)
    towns = (
        "Rügener",
        "Anklamer",
        "Pasewalker",
        "Demminer",
        "Wismarsche",
        "Güstrower",
        "Schweriner",
        "Rostocker",
        "Stralsunder",
    )
    for suffix in _STREET_SUFFIXES:
        for stem in _STREET_STEMS:
            if "-" in stem:
                name = f"{stem}-{suffix.capitalize()}"
            elif stem in towns:
                name = f"{stem} {suffix.capitalize()}"
            else:
                name = stem + suffix
            if name not in seen:
                names.append(name)
                seen.add(name)
    return names


def finalise_addresses(
    addresses: pd.DataFrame, gemeinde: gpd.GeoDataFrame, rng: np.random.Generator, prefix: str = "MV"
) -> pd.DataFrame:
    """Sort, number (address_id) and add street, house_number, postcode and locality.

    Streets: addresses of one Gemeinde in the same 200 m × 400 m block (working CRS) share a
    street; the block with most addresses gets the first name of the catalogue, and so on.
    House numbers rise along the street (x + y), odd-only on some streets, ~5 % with suffix "a".
    Postcodes: a fictional 5-digit code per Gemeinde in 17000–19999 (not the real ones).
    """
    a = addresses.copy()
    a["_bx"] = np.floor(a["x"] / 400).astype(np.int64)
    a["_by"] = np.floor(a["y"] / 200).astype(np.int64)
    a = a.sort_values(["ags", "_by", "_bx", "y", "x"], kind="stable").reset_index(drop=True)
    width = max(7, len(str(len(a))))
    a.insert(0, "address_id", [f"{prefix}-{i:0{width}d}" for i in range(1, len(a) + 1)])

    street = a.groupby(["ags", "_by", "_bx"], sort=False).ngroup().to_numpy()
    size = np.bincount(street)
    first = pd.DataFrame(
        {"street": np.arange(len(size)), "size": size, "ags": a.groupby(street)["ags"].first().to_numpy()}
    )
    first = first.sort_values(["ags", "size", "street"], ascending=[True, False, True], kind="stable")
    first["rank"] = first.groupby("ags").cumcount().to_numpy()
    cat = street_catalogue()
    shuffle = np.concatenate(
        [np.arange(6), 6 + rng.permutation(len(cat) - 6)]
    )  # keep the classic first names
    rank = first["rank"].to_numpy()
    base = np.asarray(cat, dtype=object)[shuffle[rank % len(cat)]]
    pre = np.asarray(_PREFIXES, dtype=object)[np.minimum(rank // len(cat), len(_PREFIXES) - 1)]
    loops = rank // (len(cat) * len(_PREFIXES))
    names = pre + base + np.where(loops > 0, " " + (loops + 1).astype(str), "")
    street_name = pd.Series(names, index=first["street"].to_numpy()).reindex(np.arange(len(size))).to_numpy()
    a["street"] = street_name[street]

    order = np.lexsort((a["x"].to_numpy() + a["y"].to_numpy(), street))
    s_sorted = street[order]
    firsts = np.r_[True, s_sorted[1:] != s_sorted[:-1]]
    step = rng.choice([1, 2], size=len(size), p=[0.7, 0.3])[s_sorted]
    suffix = (rng.random(len(a)) < 0.05) & ~firsts
    suffix &= ~np.r_[False, suffix[:-1]]
    inc = np.where(firsts | suffix, 0, step)
    cum = np.cumsum(inc)
    start = np.maximum.accumulate(np.where(firsts, cum, 0))
    number = 1 + cum - start
    hn = number.astype(str).astype(object)
    hn[suffix] = hn[suffix] + "a"
    house = np.empty(len(a), dtype=object)
    house[order] = hn
    a["house_number"] = house

    all_ags = np.sort(gemeinde["ags"].to_numpy())
    codes = np.sort(rng.choice(np.arange(17000, 20000), len(all_ags), replace=False))
    a["postcode"] = pd.Series(codes.astype(str), index=all_ags).reindex(a["ags"]).to_numpy()
    a["locality"] = gemeinde.set_index("ags")["name"].reindex(a["ags"]).to_numpy()
    return a.drop(columns=["_bx", "_by"])


def spread_duplicates(
    addresses: pd.DataFrame, gemeinde: gpd.GeoDataFrame, rng: np.random.Generator, max_rounds: int = 12
) -> pd.DataFrame:
    """Move addresses that share coordinates (e.g. several points pulled onto the same coastline
    vertex) by a few metres, staying inside their Gemeinde, so coordinates identify an address."""
    a = addresses.copy()
    geoms = gemeinde.set_index("ags").geometry
    radius = 2.0
    for _ in range(max_rounds):
        dup = a.duplicated(["x", "y"], keep="first").to_numpy()
        if not dup.any():
            return a
        idx = np.flatnonzero(dup)
        nx = np.round(a["x"].to_numpy()[idx] + rng.uniform(-radius, radius, len(idx)), 2)
        ny = np.round(a["y"].to_numpy()[idx] + rng.uniform(-radius, radius, len(idx)), 2)
        ok = shapely.contains_xy(geoms.reindex(a["ags"].to_numpy()[idx]).to_numpy(), nx, ny)
        a.loc[a.index[idx[ok]], "x"] = nx[ok]
        a.loc[a.index[idx[ok]], "y"] = ny[ok]
        radius = min(radius * 1.5, 30.0)
    left = int(a.duplicated(["x", "y"]).sum())
    if left:
        log.warning("%d address(es) still share coordinates with another one", left)
    return a
