"""Data of the interactive page map: layers per Gemeinde, the 100 m grid, addresses and cost trees.

The page maps (:mod:`coverage.report.svgmap`) are drawn once with one figure; ``static/map.js``
switches them between layers. What it switches to is written here as small JavaScript files that
assign JSON (``<script src>`` works from ``file://``, ``fetch()`` does not):

- :func:`layer_data`: per Gemeinde its value in every layer (share ≥ t per technology group and
  threshold; share of households in white/grey spots with and without planned supply), the
  classes and labels of the legend; one file for the whole atlas (``maps/layers.js``).
- :func:`grid_data`: the run's 100 m cells as centres in the map's CRS with a class per layer
  (one character per cell), read lazily when the grid layer is chosen.
- :func:`address_data`: per Gemeinde its addresses (internal atlas only), columnar, with class,
  best service per group, funding verdicts, sites, objections and the cost-estimate tree lines.

Everything is built with whole-array operations (one pass per column, not per address) and
serialised by :func:`js_assign`, which escapes ``<``, ``>`` and ``&`` so no data can close a script.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import shapely

from coverage.model import GROUP_LABELS, threshold_tag
from coverage.report.maps import SHARE_BREAKS, Classes, classify, share_classes

#: White/grey spots (rule name, label): households without a fixed-network offer at the rule's level.
SPOTS = (("white", "Weiße Flecken (Haushalte ohne Festnetz ≥ 30 Mbit/s)"),
         ("white_plan", "Weiße Flecken mit geplantem Ausbau"),
         ("grey", "Graue Flecken (Haushalte ohne Festnetz ≥ 100 Mbit/s)"),
         ("grey_plan", "Graue Flecken mit geplantem Ausbau"))
#: The spot layers keep the share classes' breaks but read "more is worse": ColorBrewer OrRd, 6 classes.
SPOT_COLOURS = ("#fef0d9", "#fdd49e", "#fdbb84", "#fc8d59", "#e34a33", "#b30000")
#: Address classes by the best current download over all technologies (the ``all`` group).
ADDRESS_CLASSES = (("≥ 1000 Mbit/s", "#253494"), ("≥ 100 Mbit/s", "#1d91c0"), ("≥ 30 Mbit/s", "#7fcdbb"),
                   ("< 30 Mbit/s", "#fd8d3c"), ("kein Angebot", "#bd0026"))
ADDRESS_BREAKS = (1000.0, 100.0, 30.0)


def js_assign(target: str, key: str | None, value: Any) -> str:
    """``window.BBCOV.<target>[key] = <json>;`` with every ``<``, ``>``, ``&`` and line separator
    escaped as ``\\uXXXX`` (valid JSON, inert inside ``<script>``)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for ch in ("<", ">", "&", "\u2028", "\u2029"):
        text = text.replace(ch, f"\\u{ord(ch):04x}")
    slot = f"window.BBCOV.{target}" + ("" if key is None else f"[{json.dumps(str(key))}]")
    init = f"window.BBCOV=window.BBCOV||{{}};window.BBCOV.{target}=window.BBCOV.{target}||{{}};" \
        if key is not None else "window.BBCOV=window.BBCOV||{};"
    return f"{init}{slot}={text};\n"


def _classes_json(classes: Classes) -> dict[str, Any]:
    return {"breaks": list(classes.breaks), "colours": list(classes.colours), "labels": list(classes.labels),
            "nodata": [classes.nodata_colour, classes.nodata_label]}


def spot_classes() -> Classes:
    """The share classes (same breaks and labels) in a palette where dark means many households left out."""
    return Classes(breaks=SHARE_BREAKS, colours=SPOT_COLOURS, labels=share_classes().labels)


def layer_columns(table: pd.DataFrame, groups: Sequence[str], thresholds: Sequence[float]
                  ) -> list[dict[str, str]]:
    """The layers the table can show, in menu order: share ≥ t per group, then the spots it has."""
    out = []
    for g in groups:
        for t in thresholds:
            col = f"share_ge_{threshold_tag(t)}_{g}"
            if col in table.columns:
                out.append({"id": col, "kind": "share", "group": str(g), "t": threshold_tag(t),
                            "label": f"Anteil der Haushalte ≥ {threshold_tag(t)} Mbit/s "
                                     f"({GROUP_LABELS.get(g, g)})"})
    for rule, label in SPOTS:
        if f"hh_fund_{rule}" in table.columns:
            out.append({"id": f"fund_{rule}", "kind": "spot", "rule": rule, "label": label})
    return out


def _rounded(values: np.ndarray, digits: int) -> list[float | None]:
    v = np.round(values.astype("float64"), digits)
    return [None if x != x else x for x in v.tolist()]  # NaN -> null


def layer_values(table: pd.DataFrame, layers: Sequence[Mapping[str, str]]) -> np.ndarray:
    """(areas, layers) values: the share in percent; for spot layers the share of households in them."""
    hh = pd.to_numeric(table["households"], errors="coerce").to_numpy(dtype="float64")
    cols = []
    for layer in layers:
        if layer["kind"] == "share":
            cols.append(pd.to_numeric(table[layer["id"]], errors="coerce").to_numpy(dtype="float64"))
        else:
            n = pd.to_numeric(table[f"hh_{layer['id']}"], errors="coerce").to_numpy(dtype="float64")
            with np.errstate(invalid="ignore", divide="ignore"):
                cols.append(np.where(hh > 0, 100.0 * n / hh, np.nan))
    return np.column_stack(cols) if cols else np.zeros((len(table), 0))


def layer_data(gem: pd.DataFrame, groups: Sequence[str], thresholds: Sequence[float], default: str,
               grid: bool) -> dict[str, Any]:
    """The layer file of the atlas: menu, classes and per Gemeinde name, households and values."""
    layers = layer_columns(gem, groups, thresholds)
    values = layer_values(gem, layers)
    spots = [i for i, layer in enumerate(layers) if layer["kind"] == "spot"]
    counts = {layers[i]["id"]: pd.to_numeric(gem[f"hh_{layers[i]['id']}"], errors="coerce").to_numpy() for i in spots}
    keys = gem["ags"].astype(str).tolist()
    names = gem["name"].astype(str).tolist()
    hh = _rounded(pd.to_numeric(gem["households"], errors="coerce").to_numpy(), 0)
    per_layer = [_rounded(values[:, j], 1) for j in range(values.shape[1])]
    spot_counts = {k: _rounded(np.asarray(v, dtype="float64"), 0) for k, v in counts.items()}
    areas = {}
    for i, k in enumerate(keys):
        rec: dict[str, Any] = {"n": names[i], "h": hh[i], "v": [col[i] for col in per_layer]}
        if spot_counts:
            rec["f"] = [spot_counts[layers[j]["id"]][i] for j in spots]
        areas[k] = rec
    return {"layers": layers, "default": default if any(x["id"] == default for x in layers) else layers[0]["id"],
            "groups": [[g, GROUP_LABELS.get(g, g)] for g in groups if any(x.get("group") == g for x in layers)],
            "thresholds": [threshold_tag(t) for t in thresholds
                           if any(x.get("t") == threshold_tag(t) for x in layers)],
            "classes": {"share": _classes_json(share_classes()), "spot": _classes_json(spot_classes()),
                        "address": [list(c) for c in ADDRESS_CLASSES]},
            "areas": areas, "grid": grid}


def grid_data(cells: pd.DataFrame, x: np.ndarray, y: np.ndarray, groups: Sequence[str],
              thresholds: Sequence[float], size_m: float) -> dict[str, Any]:
    """The grid file: cell centres (``x``, ``y`` in the map's CRS, whole metres) and per layer
    (``share_ge_<t>_<g>``) one class character per cell (``"0"``–``"5"``, ``"-"``: no households).

    ``cells`` has ``households`` and ``hh_ge_<t>_<g>`` counts. The cells are squares of the INSPIRE
    grid (EPSG:3035); drawn as squares of ``size_m`` around their centre in the map's CRS (rotated by
    under a degree in MV: an approximation for display, the figures are the grid's own)."""
    hh = pd.to_numeric(cells["households"], errors="coerce").to_numpy(dtype="float64")
    classes = share_classes()
    codes: dict[str, str] = {}
    for g in groups:
        for t in thresholds:
            col = f"hh_ge_{threshold_tag(t)}_{g}"
            if col not in cells.columns:
                continue
            n = cells[col].to_numpy(dtype="float64")
            with np.errstate(invalid="ignore", divide="ignore"):
                share = np.where(hh > 0, 100.0 * n / hh, np.nan)
            cls = classify(share, classes)
            chars = np.where(cls < 0, ord("-"), cls + ord("0")).astype(np.uint8)
            codes[f"share_ge_{threshold_tag(t)}_{g}"] = chars.tobytes().decode("ascii")
    return {"x": np.round(x).astype(np.int64).tolist(), "y": np.round(y).astype(np.int64).tolist(),
            "size": float(size_m), "classes": codes}


def address_class(best_down_all: np.ndarray) -> np.ndarray:
    """0 ≥ 1000, 1 ≥ 100, 2 ≥ 30, 3 < 30 Mbit/s, 4 no offer (NaN or 0) — by the best current download
    over all technologies."""
    d = np.asarray(best_down_all, dtype="float64")
    out = np.full(len(d), 4, dtype=np.int8)
    served = np.isfinite(d) & (d > 0)
    out[served] = 3
    for i, t in enumerate(ADDRESS_BREAKS):
        out[served & (d >= t) & (out == 3)] = i
    return out


def _codes(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Dictionary encoding: code per row (-1 for missing) and the distinct texts."""
    codes, uniques = pd.factorize(series.astype("object").where(series.notna(), None), sort=False)
    return codes.astype(np.int32), [str(u) for u in uniques]


def address_data(results: pd.DataFrame, groups: Sequence[str], rules: Sequence[tuple[str, str]],
                 tree: pd.DataFrame | None = None) -> dict[str, dict[str, Any]]:
    """Per Gemeinde (``ags``) its addresses as columns for the map (see the module doc).

    ``results``: the run's addresses (x, y or a point geometry, ags, street, house_number, households,
    site_kind, best_down_<g>, best_tech_<g>, best_provider_all, best_up_all, plan_best_down_all,
    fund_<rule>, fund_<rule>_plan, contested); ``rules``: (name, label) of the funding rules;
    ``tree``: cost-estimate lines (area = ags, kind, x0, y0, x1, y1) or None. Text columns are
    dictionary-encoded once over all addresses, so each Gemeinde's file holds small integers and its
    own short string tables."""
    n = len(results)
    order = np.argsort(results["ags"].astype(str).to_numpy(), kind="stable")
    r = results.iloc[order]
    ags = r["ags"].astype(str).to_numpy()
    bounds = np.flatnonzero(np.r_[True, ags[1:] != ags[:-1], True]) if n else np.array([0])
    if "x" in r.columns:
        x, y = r["x"].to_numpy(dtype="float64"), r["y"].to_numpy(dtype="float64")
    else:  # the run's in-memory results carry points, addresses.parquet x/y
        pts = np.asarray(r.geometry.values, dtype=object)
        x, y = shapely.get_x(pts), shapely.get_y(pts)
    cols: dict[str, np.ndarray] = {
        "x": np.round(x).astype(np.int64),
        "y": np.round(y).astype(np.int64),
        "c": address_class(r["best_down_all"].to_numpy(dtype="float64")),
        "h": np.round(pd.to_numeric(r["households"], errors="coerce").fillna(0).to_numpy(), 1),
    }
    site = r["site_kind"].notna() & (r["site_kind"].astype("object") != "") if "site_kind" in r else None
    cols["s"] = site.to_numpy(dtype=np.int8) if site is not None else np.zeros(n, np.int8)
    cols["k"] = (r["contested"].fillna(False).to_numpy(dtype=bool).astype(np.int8) if "contested" in r
                 else np.zeros(n, np.int8))
    texts: dict[str, list[str]] = {}
    street = (r["street"].fillna("").astype(str) + " " + r["house_number"].fillna("").astype(str)).str.strip()
    cols["a"], texts["a"] = _codes(street)
    tech_codes, techs = _codes(pd.concat([r[f"best_tech_{g}"].astype("object") for g in groups],
                                         ignore_index=True))
    texts["techs"] = techs
    for i, g in enumerate(groups):
        down = r[f"best_down_{g}"].to_numpy(dtype="float64")
        cols[f"d_{g}"] = np.where(np.isfinite(down), np.round(down), -1).astype(np.int64)
        cols[f"t_{g}"] = tech_codes[i * n:(i + 1) * n]
    up = r["best_up_all"].to_numpy(dtype="float64") if "best_up_all" in r else np.full(n, np.nan)
    cols["u"] = np.where(np.isfinite(up), np.round(up), -1).astype(np.int64)
    plan = r["plan_best_down_all"].to_numpy(dtype="float64") if "plan_best_down_all" in r else np.full(n, np.nan)
    cols["pd"] = np.where(np.isfinite(plan), np.round(plan), -1).astype(np.int64)
    if "best_provider_all" in r:
        cols["p"], texts["providers"] = _codes(r["best_provider_all"])
    fund = np.zeros(n, np.int64)
    fund_plan = np.zeros(n, np.int64)
    for i, (name, _label) in enumerate(rules):
        if f"fund_{name}" in r:
            fund |= r[f"fund_{name}"].fillna(False).to_numpy(dtype=bool).astype(np.int64) << i
        if f"fund_{name}_plan" in r:
            fund_plan |= r[f"fund_{name}_plan"].fillna(False).to_numpy(dtype=bool).astype(np.int64) << i
    cols["f"], cols["fp"] = fund, fund_plan
    lists = {k: v.tolist() for k, v in cols.items()}  # one conversion per column, sliced per Gemeinde below
    trees = _tree_by_area(tree)
    out: dict[str, dict[str, Any]] = {}
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        key = ags[lo]
        rec: dict[str, Any] = {k: v[lo:hi] for k, v in lists.items()}
        # Per-file string tables: re-number the codes of this Gemeinde's rows.
        for col, table in (("a", "a"), ("p", "providers")):
            if col in rec:
                rec[col], rec[f"{col}_text"] = _renumber(cols[col][lo:hi], texts[table])
        rec["techs"] = techs
        rec["groups"] = [[g, GROUP_LABELS.get(g, g)] for g in groups]
        rec["rules"] = [label for _name, label in rules]
        if key in trees:
            rec["tree"], rec["tree_kind"] = trees[key]
        out[key] = rec
    return out


def _renumber(codes: np.ndarray, table: Sequence[str]) -> tuple[list[int], list[str]]:
    used, inverse = np.unique(codes, return_inverse=True)
    keep = used >= 0
    texts = [table[int(c)] for c in used[keep]]
    shift = int((~keep).sum())  # -1 (missing), if present, sorts first
    new = inverse.astype(np.int64) - shift
    return new.tolist(), texts


def _tree_by_area(tree: pd.DataFrame | None) -> dict[str, tuple[list[int], list[int]]]:
    """Area key -> (flat x0, y0, x1, y1 coordinates in whole metres, kind per line: 0 tree, 1 link)."""
    if tree is None or len(tree) == 0:
        return {}
    area = tree["area"].astype(str).to_numpy()
    order = np.argsort(area, kind="stable")
    area = area[order]
    xy = np.round(tree[["x0", "y0", "x1", "y1"]].to_numpy(dtype="float64")[order]).astype(np.int64)
    kind = (tree["kind"].astype(str).to_numpy()[order] != "tree").astype(np.int8)
    cut = np.flatnonzero(np.r_[True, area[1:] != area[:-1], True])
    return {area[lo]: (xy[lo:hi].reshape(-1).tolist(), kind[lo:hi].tolist())
            for lo, hi in zip(cut[:-1].tolist(), cut[1:].tolist(), strict=True)}
