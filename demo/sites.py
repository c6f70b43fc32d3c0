"""Public sites (administration offices, schools) as extra synthetic addresses.

Method (approximate, for demo reports on "public institutions"):

- ``gemeinde_office``: one per Gemeinde, near the address with most households in the
  Gemeinde's densest 1 km cell (Gemeinden without addresses: on the polygon's surface point).
- ``amt_office``: one per Amt (``bez == "Amt"``), near the office of its member Gemeinde with
  most households.
- ``kreis_office``: one per Kreis, near the office of the Kreisstadt (by name within the Kreis,
  see :data:`KREISSTAEDTE`; otherwise the Kreis' most populous Gemeinde).
- ``school`` without ``school_counts`` (the Germany demo): about one per 1,500 inhabitants per
  Gemeinde (inhabitants ≈ households × local household size, rounded half up), near addresses
  drawn with probability ∝ households.
- ``school`` with ``school_counts`` (the MV demo, :func:`school_counts`): a *pool* of
  :data:`SCHOOL_POOL_FACTOR` candidates per school of the Kreis, near residential addresses of the
  Kreis drawn uniformly (each candidate carries its draw rank, ``school_rank``). After the offers
  are generated, :func:`choose_schools` keeps as many as the Kreis has schools so that their
  coverage matches the Breitbandatlas Kreis table's school columns; the rest are dropped with
  their offers (:func:`demo.generate_demo`).

Every site is a NEW address with 0 households, placed 1–40 m from its anchor address and inside
the anchor's Gemeinde, so household totals are unaffected. Where the schools are is approximate:
a Kreis' schools sit where the offers reach the published school classes, not at real schools.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import shapely

from coverage.crs import INSPIRE_GRID_CRS, transform_xy
from coverage.model import Boundaries
from demo.addresses import largest_remainder

log = logging.getLogger(__name__)

SITE_KINDS = ("gemeinde_office", "amt_office", "kreis_office", "school")
#: Kreis AGS -> name of its Kreisstadt (seat of the Kreisverwaltung) in Mecklenburg-Vorpommern.
KREISSTAEDTE = {
    "13003": "Rostock",
    "13004": "Schwerin",
    "13071": "Neubrandenburg",
    "13072": "Güstrow",
    "13073": "Stralsund",
    "13074": "Wismar",
    "13075": "Greifswald",
    "13076": "Parchim",
}
INHABITANTS_PER_SCHOOL = 1500.0
#: General-education schools (allgemein bildende Schulen) in Mecklenburg-Vorpommern in 2021: about 560
#: (Statistisches Amt MV, Statistisches Jahrbuch 2022, as quoted by KATAPULT MV; the 57 vocational schools
#: are not counted). No count per Kreis was at hand (the Breitbandatlas Kreis table has shares only), so
#: :func:`school_counts` splits it over the Kreise in proportion to their Zensus 2022 inhabitants.
MV_SCHOOLS = 560
#: Candidate school sites per school of a Kreis (enough poorly served places for the Kreis table:
#: Rostock's schools reach ≥ 200 Mbit/s at 49 % where 92 % of its addresses do; 12 left it short).
SCHOOL_POOL_FACTOR = 30


def _near(
    ax: np.ndarray, ay: np.ndarray, geoms: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Points 1–40 m from the anchors, inside ``geoms`` (shrinking the offset where needed)."""
    n = len(ax)
    x = np.full(n, np.nan)
    y = np.full(n, np.nan)
    todo = np.arange(n)
    radius = 40.0
    for _ in range(8):
        if not len(todo):
            break
        r = rng.uniform(max(1.0, radius / 4), radius, len(todo))
        phi = rng.uniform(0, 2 * np.pi, len(todo))
        cx = np.round(ax[todo] + r * np.cos(phi), 2)
        cy = np.round(ay[todo] + r * np.sin(phi), 2)
        ok = shapely.contains_xy(geoms[todo], cx, cy)
        x[todo[ok]] = cx[ok]
        y[todo[ok]] = cy[ok]
        todo = todo[~ok]
        radius = max(1.0, radius / 2)
    if len(todo):  # anchor itself (inside by construction), a hundredth of a metre off
        x[todo] = ax[todo]
        y[todo] = ay[todo]
        log.info("%d site(s) placed at their anchor point", len(todo))
    return x, y


def place_sites(
    addresses: pd.DataFrame,
    boundaries: Boundaries,
    rng: np.random.Generator,
    ags: np.ndarray | None = None,
    school_counts: Mapping[str, int] | None = None,
) -> pd.DataFrame:
    """New site addresses (households 0) for the Gemeinden ``ags`` (default: all with addresses).

    ``addresses`` needs ``x, y, ags, households, hh_size, cell_1km, density``. Returns rows with the
    same columns plus ``site_kind``, ``site_name`` and ``school_rank`` (the candidate's draw rank
    within its Kreis when ``school_counts`` (Kreis AGS -> schools) asks for a pool of candidate
    schools, see the module docstring; else -1).
    """
    gem = boundaries.gemeinde.set_index("ags")
    if ags is None:
        ags = np.sort(addresses["ags"].unique())
    ags = np.asarray(sorted(set(ags)))
    geoms = gem.geometry
    hh = addresses.groupby("ags")["households"].sum().reindex(ags).fillna(0)

    # Gemeinde office anchors: most households in the densest 1 km cell
    cell_hh = addresses.groupby(["ags", "cell_1km"])["households"].sum().reset_index()
    cell_hh = cell_hh.sort_values(["ags", "households", "cell_1km"], ascending=[True, False, True])
    densest = cell_hh.drop_duplicates("ags").set_index("ags")["cell_1km"]
    cand = addresses[addresses["cell_1km"].to_numpy() == densest.reindex(addresses["ags"]).to_numpy()]
    cand = cand.sort_values(["ags", "households"], ascending=[True, False], kind="stable").drop_duplicates(
        "ags"
    )
    anchor = cand.set_index("ags").reindex(ags)
    empty = anchor["x"].isna().to_numpy()
    if empty.any():
        pts = shapely.get_coordinates(shapely.point_on_surface(geoms.reindex(ags[empty]).to_numpy()))
        anchor.loc[ags[empty], "x"] = pts[:, 0]
        anchor.loc[ags[empty], "y"] = pts[:, 1]
        anchor.loc[ags[empty], ["hh_size", "density"]] = (2.0, 0.0)
        anchor.loc[ags[empty], "cell_1km"] = -1
    anchor = anchor.assign(ags=ags)

    rows = []
    names = gem["name"].reindex(ags).to_numpy()
    rows.append(
        anchor.assign(site_kind="gemeinde_office", site_name=[f"Gemeindeverwaltung {n}" for n in names])
    )

    amt = boundaries.amt
    amt = amt[(amt["bez"] == "Amt") & amt["vwg_ars"].isin(gem.loc[ags, "vwg_ars"])]
    members = gem.loc[ags, ["vwg_ars"]].assign(hh=hh.to_numpy()).reset_index()
    members = members.sort_values(["vwg_ars", "hh", "ags"], ascending=[True, False, True]).drop_duplicates(
        "vwg_ars"
    )
    amt_seat = members.set_index("vwg_ars")["ags"].reindex(amt["vwg_ars"]).to_numpy()
    rows.append(
        anchor.loc[amt_seat].assign(site_kind="amt_office", site_name=[f"Amt {n}" for n in amt["name"]])
    )

    kreis = boundaries.kreis
    krs = sorted({a[:5] for a in ags})
    seats, knames = [], []
    for k in krs:
        in_k = [a for a in ags if a.startswith(k)]
        town = KREISSTAEDTE.get(k)
        hit = [a for a in in_k if town and gem.at[a, "name"].casefold() == town.casefold()]
        seats.append(hit[0] if hit else max(in_k, key=lambda a: (hh[a], a)))
        kname = kreis.loc[kreis["krs_ags"] == k, "name"]
        knames.append(f"Kreisverwaltung {kname.iloc[0] if len(kname) else k}")
    rows.append(anchor.loc[seats].assign(site_kind="kreis_office", site_name=knames))

    rows = [r.assign(school_rank=-1) for r in rows]
    pop = addresses[addresses["households"] > 0]
    if school_counts is None:
        rows.append(_schools_per_inhabitants(pop, gem, ags, rng).assign(school_rank=-1))
    else:
        rows.append(_school_pool(pop[pop["ags"].isin(ags)], school_counts, rng))

    sites = pd.concat([r.reset_index(drop=True) for r in rows], ignore_index=True)
    sites = sites[["x", "y", "ags", "hh_size", "density", "cell_1km", "site_kind", "site_name", "school_rank"]]
    x, y = _near(
        sites["x"].to_numpy(float), sites["y"].to_numpy(float), geoms.reindex(sites["ags"]).to_numpy(), rng
    )
    sites = sites.assign(x=x, y=y, households=0, businesses=0, estimated=False)
    log.info("sites: %s", sites["site_kind"].value_counts().to_dict())
    return sites


def _schools_per_inhabitants(
    pop: pd.DataFrame, gem: pd.DataFrame, ags: np.ndarray, rng: np.random.Generator
) -> pd.DataFrame:
    """About one school per 1,500 inhabitants, near households (weighted draw without replacement)."""
    inh = (pop["households"] * pop["hh_size"]).groupby(pop["ags"]).sum().reindex(ags).fillna(0)
    n_school = np.floor(inh / INHABITANTS_PER_SCHOOL + 0.5).astype(int)
    u = rng.random(len(pop))
    key = np.log(np.maximum(u, 1e-300)) / pop["households"].to_numpy()
    order = pop.assign(_k=key).sort_values(["ags", "_k"], ascending=[True, False], kind="stable")
    rank = order.groupby("ags").cumcount().to_numpy()
    schools = order[rank < n_school.reindex(order["ags"]).to_numpy()].drop(columns="_k")
    num = schools.groupby("ags").cumcount().to_numpy() + 1
    loc = gem["name"].reindex(schools["ags"]).to_numpy()
    return schools.assign(
        site_kind="school", site_name=[f"Grundschule {n} {i}" for n, i in zip(loc, num, strict=True)]
    )


def _school_pool(pop: pd.DataFrame, school_counts: Mapping[str, int], rng: np.random.Generator) -> pd.DataFrame:
    """:data:`SCHOOL_POOL_FACTOR` candidates per school of each Kreis, near residential addresses
    drawn uniformly without replacement; ``school_rank`` = the draw rank within the Kreis."""
    krs = pop["ags"].str[:5].to_numpy()
    order = np.lexsort((rng.random(len(pop)), krs))
    rank = np.empty(len(pop), dtype=np.int64)
    starts = np.searchsorted(krs[order], krs[order])
    rank[order] = np.arange(len(pop)) - starts
    want = np.array([SCHOOL_POOL_FACTOR * int(school_counts.get(k, 0)) for k in krs])
    keep = rank < want
    pool = pop[keep].assign(site_kind="school", site_name="", school_rank=rank[keep])
    return pool.sort_values(["ags", "school_rank"], kind="stable")


def school_counts(
    boundaries: Boundaries, grid_1km: pd.DataFrame, total: int = MV_SCHOOLS, kreise: Sequence[str] | None = None
) -> dict[str, int]:
    """Schools per Kreis: ``total`` split in proportion to the Zensus inhabitants of each Kreis (1 km
    cells with inhabitants > 0 whose centre lies in the Kreis; largest remainder). ``kreise`` keeps
    some of them (the split is over all Kreise of ``boundaries``)."""
    kreis = boundaries.kreis.reset_index(drop=True)
    g = grid_1km[grid_1km["einwohner"] > 0]
    x, y = transform_xy(g["x"].to_numpy(float), g["y"].to_numpy(float), INSPIRE_GRID_CRS, kreis.crs)
    tree = shapely.STRtree(kreis.geometry.to_numpy())
    pts, polys = tree.query(shapely.points(x, y), predicate="within")
    first, pos = np.unique(pts, return_index=True)
    inh = np.bincount(polys[pos], g["einwohner"].to_numpy(float)[first], minlength=len(kreis))
    n = largest_remainder(np.zeros(len(kreis), dtype=np.int64), inh, np.array([total]))
    counts = dict(zip(kreis["krs_ags"].astype(str), (int(v) for v in n), strict=True))
    return {k: v for k, v in counts.items() if kreise is None or k in kreise}


def fit_class_counts(available: np.ndarray, targets: np.ndarray, total: int) -> np.ndarray:
    """Sites per class 0..K (class = thresholds reached), at most ``available[c]``, summing to
    ``total`` (≤ available total), minimising Σ_j |sites with class > j − targets[j]| (``targets``:
    the published ≥ t counts, non-increasing, length K). Rounded start, then greedy repair and polish."""
    k = len(targets)
    ge = np.concatenate([[float(total)], np.clip(np.round(targets), 0, total), [0.0]])
    ge = np.minimum.accumulate(ge)
    x = np.minimum((ge[:-1] - ge[1:]).astype(np.int64), available)

    def cost(v: np.ndarray) -> float:
        return float(np.abs(np.cumsum(v[::-1])[::-1][1:] - targets).sum()) if k else 0.0

    while x.sum() < total:  # classes short of candidates: the nearest other class that costs least
        spare = np.flatnonzero(x < available)
        trial = [cost(x + np.eye(k + 1, dtype=np.int64)[c]) for c in spare]
        x[spare[int(np.argmin(trial))]] += 1
    for _ in range(4 * total):
        best, move = cost(x), None
        for i in np.flatnonzero(x > 0):
            for j in np.flatnonzero(x < available):
                if i != j:
                    y = x.copy()
                    y[i] -= 1
                    y[j] += 1
                    if (c := cost(y)) < best - 1e-9:
                        best, move = c, y
        if move is None:
            break
        x = move
    return x


def choose_schools(
    krs: np.ndarray,
    rank: np.ndarray,
    down: np.ndarray,
    counts: Mapping[str, int],
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """Which candidate schools to keep (bool per candidate), and the class each kept one is lifted to.

    Per Kreis ``k``: ``counts[k]`` of its candidates (``krs``; ``down`` = best download of any
    technology, ``rank`` = draw order) so that the shares ≥ t match ``curves[k]`` = (thresholds,
    published school shares in %): the number per class (:func:`fit_class_counts`), and within a
    class the candidates of lowest rank. Where a class has too few candidates (Rostock's places
    rarely reach exactly 200–400 Mbit/s: cable gives 400 or more where it is), candidates of the
    nearest lower class are kept and *lifted* to it: the second array is the class (index into the
    thresholds, 0 = no lift) their school gets by a line of its own (:func:`demo._keep_chosen_schools`).
    A Kreis without a curve keeps its first candidates by rank.
    """
    keep = np.zeros(len(krs), dtype=bool)
    lift = np.zeros(len(krs), dtype=np.int64)
    for k in np.unique(krs):
        idx = np.flatnonzero(krs == k)
        idx = idx[np.argsort(rank[idx], kind="stable")]
        n = min(int(counts.get(str(k), 0)), len(idx))
        if str(k) not in curves:
            keep[idx[:n]] = True
            continue
        ts, shares = curves[str(k)]
        cls = np.searchsorted(np.asarray(ts, float), down[idx], side="right")
        # a class can take its own candidates and lifted ones from below
        avail = np.cumsum(np.bincount(cls, minlength=len(ts) + 1))
        per = fit_class_counts(avail, n * np.minimum.accumulate(np.clip(shares, 0, 100)) / 100.0, n)
        for c, m in enumerate(per):
            own = idx[(cls == c) & ~keep[idx]][:m]
            keep[own] = True
            if len(own) < m and c > 0:
                low = (cls < c) & ~keep[idx]
                below = idx[low][np.lexsort((rank[idx[low]], -cls[low]))]  # the nearest class first, then rank
                up = below[: m - len(own)]
                keep[up] = True
                lift[up] = c
        rest = idx[~keep[idx]][: n - int(keep[idx].sum())]  # classes short even with lifts: by rank
        keep[rest] = True
    return keep, lift


def school_names(ags: pd.Series, names: Mapping[str, str]) -> list[str]:
    """``Schule <Gemeinde>``, numbered where a name has several schools (in row order): by the name, not
    the key, since Gemeinden of the same name (four Neuenkirchen in MV) would otherwise share one."""
    label = ags.map(names)
    num = label.groupby(label.to_numpy()).cumcount().to_numpy() + 1
    many = label.map(label.value_counts()).to_numpy() > 1
    return [f"Schule {n} {i}" if m else f"Schule {n}" for n, i, m in zip(label, num, many, strict=True)]


def school_curves(kreis_long: pd.DataFrame, thresholds: Sequence[float]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per Kreis: (thresholds, published school shares in %) of the Kreis table's ``schools``/``all``
    rows at the ``thresholds`` the demo analyses (e.g. 16–1000 of the published 10–1000)."""
    rows = kreis_long[(kreis_long["kind"] == "schools") & (kreis_long["group"] == "all")
                      & kreis_long["threshold_mbps"].isin([float(t) for t in thresholds])]
    out = {}
    for key, part in rows.groupby("key", sort=True):
        part = part.sort_values("threshold_mbps")
        out[str(key)] = (part["threshold_mbps"].to_numpy(float), part["share"].to_numpy(float))
    return out
