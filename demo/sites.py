"""Public sites (administration offices, schools) as extra synthetic addresses.

Method (approximate, for demo reports on "public institutions"):

- ``gemeinde_office``: one per Gemeinde, near the address with most households in the
  Gemeinde's densest 1 km cell (Gemeinden without addresses: on the polygon's surface point).
- ``amt_office``: one per Amt (``bez == "Amt"``), near the office of its member Gemeinde with
  most households.
- ``kreis_office``: one per Kreis, near the office of the Kreisstadt (by name within the Kreis,
  see :data:`KREISSTAEDTE`; otherwise the Kreis' most populous Gemeinde).
- ``school``: about one per 1,500 inhabitants per Gemeinde (inhabitants ≈ households × local
  household size, rounded half up), near addresses drawn with probability ∝ households.

Every site is a NEW address with 0 households, placed 1–40 m from its anchor address and inside
the anchor's Gemeinde, so household totals are unaffected. Real site counts differ (MV has far
fewer schools than this rule gives for small Gemeinden and more in towns).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import shapely

from coverage.model import Boundaries

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
    addresses: pd.DataFrame, boundaries: Boundaries, rng: np.random.Generator, ags: np.ndarray | None = None
) -> pd.DataFrame:
    """New site addresses (households 0) for the Gemeinden ``ags`` (default: all with addresses).

    ``addresses`` needs ``x, y, ags, households, hh_size, cell_1km, density``. Returns rows with the
    same columns plus ``site_kind`` and ``site_name``.
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

    # schools: about one per 1,500 inhabitants, near households (weighted draw without replacement)
    pop = addresses[addresses["households"] > 0]
    inh = (pop["households"] * pop["hh_size"]).groupby(pop["ags"]).sum().reindex(ags).fillna(0)
    n_school = np.floor(inh / INHABITANTS_PER_SCHOOL + 0.5).astype(int)
    u = rng.random(len(pop))
    key = np.log(np.maximum(u, 1e-300)) / pop["households"].to_numpy()
    order = pop.assign(_k=key).sort_values(["ags", "_k"], ascending=[True, False], kind="stable")
    rank = order.groupby("ags").cumcount().to_numpy()
    schools = order[rank < n_school.reindex(order["ags"]).to_numpy()].drop(columns="_k")
    num = schools.groupby("ags").cumcount().to_numpy() + 1
    loc = gem["name"].reindex(schools["ags"]).to_numpy()
    rows.append(
        schools.assign(
            site_kind="school", site_name=[f"Grundschule {n} {i}" for n, i in zip(loc, num, strict=True)]
        )
    )

    sites = pd.concat([r.reset_index(drop=True) for r in rows], ignore_index=True)
    sites = sites[["x", "y", "ags", "hh_size", "density", "cell_1km", "site_kind", "site_name"]]
    x, y = _near(
        sites["x"].to_numpy(float), sites["y"].to_numpy(float), geoms.reindex(sites["ags"]).to_numpy(), rng
    )
    sites = sites.assign(x=x, y=y, households=0, businesses=0, estimated=False)
    log.info("sites: %s", sites["site_kind"].value_counts().to_dict())
    return sites
