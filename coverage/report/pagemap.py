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
from coverage.technology import technology_label

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


#: The characters of the column codes: ``#`` … ``~`` without the backslash (91; JSON needs no escape).
CODE_CHARS = bytes(c for c in range(35, 127) if c != 92)
_BASE = len(CODE_CHARS)


def _encode(values: pd.Series) -> tuple[bytes, int, list[Any]]:
    """A column as fixed-width codes: ``k`` characters per row (base 91 digits of the row's index into
    the value table), the bytes of all rows, and the table (``None`` first when values are missing).
    The whole column at once; a Gemeinde's part is a slice of the bytes."""
    codes, uniques = pd.factorize(values, sort=True, use_na_sentinel=True)
    table: list[Any] = [None, *pd.Series(uniques).tolist()]
    idx = codes.astype(np.int64) + 1  # missing (-1) -> 0
    k = 1
    while _BASE ** k < len(table):
        k += 1
    digits = np.empty((len(idx), k), dtype=np.uint8)
    lut = np.frombuffer(CODE_CHARS, dtype=np.uint8)
    for j in range(k):
        digits[:, j] = lut[(idx // _BASE ** (k - 1 - j)) % _BASE]
    return digits.tobytes(), k, [x.item() if isinstance(x, np.generic) else x for x in table]


def _tech_labels(values: pd.Series) -> np.ndarray:
    """Technology keys as planners read them ("ftth" -> "Glasfaser (FTTH)"), labelled once per distinct key."""
    inverse, keys = pd.factorize(values.astype("object").fillna("").astype(str).to_numpy())  # hashing: no sort
    return np.array([technology_label(k) for k in keys], dtype=object)[inverse]


def address_data(results: pd.DataFrame, groups: Sequence[str], rules: Sequence[tuple[str, str]],
                 tree: pd.DataFrame | None = None) -> dict[str, dict[str, Any]]:
    """Per Gemeinde (``ags``) its addresses as columns for the map (see the module doc).

    ``results``: the run's addresses (x, y or a point geometry, ags, street, house_number, households,
    site_kind, best_down_<g>, best_tech_<g>, best_provider_all, best_up_all, plan_best_down_all,
    fund_<rule>, fund_<rule>_plan, contested); ``rules``: (name, label) of the funding rules;
    ``tree``: cost-estimate lines (area = ags, kind, x0, y0, x1, y1) or None.

    Per Gemeinde: ``n`` addresses, ``ox``/``oy`` (an origin in whole metres) and ``x``/``y`` relative to
    it, ``a`` street and number, ``ip``/``i`` the address ids as their common prefix and the rest of each
    (when ``results`` has ``address_id``; the search's ``#adresse=<id>`` finds the point by them), and
    ``cols``: every other column as ``{"k": width, "s": codes, "v": table}`` (see :func:`_encode`;
    ``static/map.js`` decodes them). Encoded once over all addresses, so the per-Gemeinde work is slicing."""
    n = len(results)
    # the rows by Gemeinde, in their order within each: a stable sort of the keys' sorted codes (the
    # same order as sorting the key strings, without comparing 268,000 strings)
    order = np.argsort(pd.factorize(results["ags"].astype(str).to_numpy(), sort=True)[0], kind="stable")
    r = results.iloc[order]
    ags = r["ags"].astype(str).to_numpy()
    bounds = np.flatnonzero(np.r_[True, ags[1:] != ags[:-1], True]) if n else np.array([0])
    if "x" in r.columns:
        x, y = r["x"].to_numpy(dtype="float64"), r["y"].to_numpy(dtype="float64")
    else:  # the run's in-memory results carry points, addresses.parquet x/y
        pts = np.asarray(r.geometry.values, dtype=object)
        x, y = shapely.get_x(pts), shapely.get_y(pts)
    xi, yi = np.round(x).astype(np.int64), np.round(y).astype(np.int64)
    starts = bounds[:-1]
    ox = np.minimum.reduceat(xi, starts) if n else np.zeros(0, np.int64)
    oy = np.minimum.reduceat(yi, starts) if n else np.zeros(0, np.int64)
    rep = np.repeat(np.arange(len(starts)), np.diff(bounds))
    lists = {"x": (xi - ox[rep]).tolist(), "y": (yi - oy[rep]).tolist(),
             "a": (r["street"].fillna("").astype(str) + " " + r["house_number"].fillna("").astype(str))
             .str.strip().tolist()}
    ids = r["address_id"].astype("object").fillna("").astype(str).tolist() if "address_id" in r.columns else None

    def down(col: str) -> pd.Series:
        v = r[col].to_numpy(dtype="float64") if col in r.columns else np.full(n, np.nan)
        return pd.Series(np.where(np.isfinite(v), np.round(v), np.nan))

    columns: dict[str, pd.Series] = {
        "c": pd.Series(address_class(r["best_down_all"].to_numpy(dtype="float64"))),
        "h": pd.Series(np.round(pd.to_numeric(r["households"], errors="coerce").fillna(0).to_numpy(), 1)),
        "s": pd.Series((r["site_kind"].notna() & (r["site_kind"].astype("object") != "")).to_numpy(dtype=np.int8)
                       if "site_kind" in r.columns else np.zeros(n, np.int8)),
        "k": pd.Series(r["contested"].fillna(False).to_numpy(dtype=bool).astype(np.int8) if "contested" in r.columns
                       else np.zeros(n, np.int8)),
        "u": down("best_up_all"), "pd": down("plan_best_down_all")}
    for g in groups:
        columns[f"d_{g}"] = down(f"best_down_{g}")
        columns[f"t_{g}"] = pd.Series(_tech_labels(r[f"best_tech_{g}"]))
    if "best_provider_all" in r.columns:
        columns["p"] = pd.Series(r["best_provider_all"].astype("object").to_numpy())
    fund = np.zeros(n, np.int64)
    fund_plan = np.zeros(n, np.int64)
    for i, (name, _label) in enumerate(rules):
        if f"fund_{name}" in r.columns:
            fund |= r[f"fund_{name}"].fillna(False).to_numpy(dtype=bool).astype(np.int64) << i
        if f"fund_{name}_plan" in r.columns:
            fund_plan |= r[f"fund_{name}_plan"].fillna(False).to_numpy(dtype=bool).astype(np.int64) << i
    columns["f"], columns["fp"] = pd.Series(fund), pd.Series(fund_plan)
    encoded = {name: _encode(col) for name, col in columns.items()}
    trees = _tree_by_area(tree)
    meta = {"groups": [[g, GROUP_LABELS.get(g, g)] for g in groups], "rules": [label for _name, label in rules]}
    out: dict[str, dict[str, Any]] = {}
    for i, (lo, hi) in enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)):
        key = ags[lo]
        o = (int(ox[i]), int(oy[i]))
        rec: dict[str, Any] = {"n": hi - lo, "ox": o[0], "oy": o[1], **{k: v[lo:hi] for k, v in lists.items()},
                               "cols": {name: {"k": k, "s": data[lo * k:hi * k].decode("ascii"), "v": table}
                                        for name, (data, k, table) in encoded.items()}, **meta}
        if ids is not None:
            rec["ip"], rec["i"] = _prefixed(ids[lo:hi])
        if key in trees:
            xy, kind = trees[key]
            rec["tree"] = (xy - np.tile(np.asarray(o, dtype=np.int64), 2)).reshape(-1).tolist()
            rec["tree_kind"] = kind
        out[key] = rec
    return out


def _prefixed(ids: list[str]) -> tuple[str, list[str]]:
    """The ids' longest common prefix and the rest of each: ids of one Gemeinde often share most of
    their characters ("MV-00012…"), so the list grows the address file by little."""
    if not ids:
        return "", []
    lo, hi = min(ids), max(ids)  # the common prefix of all strings is that of the least and the greatest
    n = 0
    while n < len(lo) and lo[n] == hi[n]:
        n += 1
    prefix = lo[:n]
    return prefix, [x[len(prefix):] for x in ids]


def _tree_by_area(tree: pd.DataFrame | None) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Area key -> ((lines, 4) x0, y0, x1, y1 in whole metres, kind per line: 0 tree, 1 link)."""
    if tree is None or len(tree) == 0:
        return {}
    area = tree["area"].astype(str).to_numpy()
    order = np.argsort(area, kind="stable")
    area = area[order]
    xy = np.round(tree[["x0", "y0", "x1", "y1"]].to_numpy(dtype="float64")[order]).astype(np.int64)
    kind = (tree["kind"].astype(str).to_numpy()[order] != "tree").astype(np.int8)
    cut = np.flatnonzero(np.r_[True, area[1:] != area[:-1], True])
    return {area[lo]: (xy[lo:hi], kind[lo:hi].tolist())
            for lo, hi in zip(cut[:-1].tolist(), cut[1:].tolist(), strict=True)}
