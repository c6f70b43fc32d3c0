"""Eligible-address lists for a funding application: every address of an area with its verdicts.

An area is a Gemeinde, Amt or Kreis (by key or by name) or a project area (a polygon of a
``[[project_areas]]`` file). Per address the list holds its Gemeinde, street address, households,
businesses, site, best current and planned download per group, each funding rule's verdict (current
and with planned supply) and the offer that decided the current verdict: the best disqualifying
offer when the address is not eligible, else the best offer of the rule's technologies that was not
enough (empty when there is none).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from coverage.errors import CoverageError
from coverage.funding import FundingRule, disqualifying_offers
from coverage.model import GROUP_LABELS, LEVEL_KEYS, OfferStatus

LEVEL_LABELS = {"gemeinde": "Gemeinde", "amt": "Amt", "kreis": "Kreis", "land": "Land", "project": "Projektgebiet"}
OFFER_FIELDS = ("provider", "technology", "down_mbps", "up_mbps")


def deciding_offers(address_ids: pd.Series, offers: pd.DataFrame, rules: Sequence[FundingRule]) -> pd.DataFrame:
    """Per address (index: address_id) and rule: ``{rule}_provider``, ``_technology``, ``_down_mbps``,
    ``_up_mbps`` of the current offer that decided the verdict (best by download, then upload): the
    best disqualifying offer, else the best offer of the rule's technologies; empty without one.

    Provider, technology and status are compared and picked as codes of their distinct values (the
    text of a row is only made for the chosen offers' columns, never per offer)."""
    ids = pd.Index(address_ids.astype(str).to_numpy(), name="address_id")
    pos = _positions(ids, offers)
    status, status_names = _codes(offers["status"])
    current = np.isin(status, np.flatnonzero(status_names == OfferStatus.CURRENT.value)) & (pos >= 0)
    down = offers["down_mbps"].to_numpy(dtype="float64")
    up = offers["up_mbps"].to_numpy(dtype="float64")
    order = np.lexsort((-np.nan_to_num(up, nan=-np.inf), -down, pos))  # per address, the best offer first
    order = order[current[order]]
    pos_sorted = pos[order]
    tech, tech_names = _codes(offers["technology"])
    texts = {"provider": _codes(offers["provider"]), "technology": (tech, tech_names)}
    out = pd.DataFrame(index=ids)
    for rule in rules:
        choice = np.full(len(ids), -1, dtype="int64")
        in_rule = np.isin(tech[order], np.flatnonzero(np.isin(tech_names, [t.value for t in rule.technologies])))
        hit = disqualifying_offers(offers, rule).to_numpy()[order]
        for mask in (in_rule, hit):  # the best disqualifying offer overrides the best offer of the rule
            where = np.flatnonzero(mask)
            first_pos, first = np.unique(pos_sorted[where], return_index=True)
            choice[first_pos] = order[where[first]]
        found = choice >= 0
        for f in OFFER_FIELDS:
            if f in texts:
                codes, names = texts[f]
                picked = np.full(len(ids), -1, dtype="int64")
                picked[found] = codes[choice[found]]
                out[f"{rule.name}_{f}"] = _text_of_codes(picked, names)
            else:
                column = np.full(len(ids), np.nan)
                column[found] = (down if f == "down_mbps" else up)[choice[found]]
                out[f"{rule.name}_{f}"] = column
    return out


def _positions(ids: pd.Index, offers: pd.DataFrame) -> np.ndarray:
    """Each offer's position in ``ids`` (−1: not there). A single run's offers carry it (``addr``): taken
    when every one names the id at its position (checked), else looked up by id (hashing 690,000 ids
    of the MV offers cost a third of the deciding offers' time)."""
    offer_ids = offers["address_id"].astype(str)
    if _ARROW_TEXT and "addr" in offers.columns and len(offers) and len(ids) and not offers["addr"].hasnans:
        addr = offers["addr"].to_numpy(dtype="int64")
        if addr.min() >= 0 and addr.max() < len(ids):
            named, given = pa.array(ids.take(addr).array), pa.array(offer_ids.array)
            if named.type == given.type and pc.all(pc.equal(named, given), skip_nulls=False).as_py():
                return addr
    return np.asarray(ids.get_indexer(offer_ids.to_numpy()), dtype="int64")


#: The dtype ``astype(str)`` gives text: pandas 3's Arrow-backed ``str``, pandas 2's object.
_TEXT = pd.Series(["x"]).astype(str).dtype
_ARROW_TEXT = isinstance(_TEXT, pd.StringDtype) and _TEXT.storage == "pyarrow"


def _text_of_codes(codes: np.ndarray, names: np.ndarray) -> Any:
    """``pd.Categorical.from_codes(codes, names).astype(str)`` (code −1: missing), through Arrow's take of
    the names where text is Arrow-backed: pandas makes a Python string of every value first (about 0.05 s
    per column of the 268,000 MV addresses, most of a list's text columns' time)."""
    if not _ARROW_TEXT:
        return pd.Categorical.from_codes(codes, names).astype(str)
    texts = pa.array(np.asarray(names, dtype=object), type=pa.large_string())
    return pd.array(texts.take(pa.array(codes, mask=codes < 0)), dtype=_TEXT)


def _text(values: pd.Series) -> pd.Series:
    """``values.astype(str)``; a categorical of text from its codes (:func:`_text_of_codes`; pandas writes
    the numbers of a categorical with missing values as floats, "3.0", so those keep ``astype``)."""
    if isinstance(values.dtype, pd.CategoricalDtype) and pd.api.types.is_string_dtype(values.cat.categories):
        names = np.asarray(values.cat.categories.astype(str), dtype=object)
        return pd.Series(_text_of_codes(values.cat.codes.to_numpy(), names), index=values.index)
    return values.astype(str)


def _codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes into the distinct values as text (``astype(str)`` of each, a missing value's too)."""
    codes, names = pd.factorize(values.astype(str) if values.hasnans else values)
    return codes.astype("int64"), np.asarray(pd.Index(names).astype(str), dtype=object)


_PLAIN_COLUMNS = ("vwg_ars", "street", "house_number", "postcode", "locality", "x", "y", "households", "businesses",
                  "site_kind", "site_name")
_OBJECTION_COLUMNS = ("contested", "objection_changed")  # Stellungnahmen: named in one / changed the verdicts here


def _service_columns(groups: Sequence[str]) -> list[str]:
    return [f"{prefix}best_{what}_{g}" for g in groups for prefix in ("", "plan_") for what in ("down", "tech")]


def list_input_columns(columns: Sequence[str], groups: Sequence[str], rules: Sequence[FundingRule]) -> list[str]:
    """Which of the address columns ``columns`` (of addresses.parquet) :func:`eligible_list` reads: a worker
    reads only those (about half of a run's 90 columns)."""
    wanted = {"address_id", "ags", *_PLAIN_COLUMNS, *_service_columns(groups), *_OBJECTION_COLUMNS,
              *(f"fund_{r.name}{plan}" for r in rules for plan in ("", "_plan"))}
    return [c for c in columns if c in wanted]


def eligible_list(addresses: pd.DataFrame, offers: pd.DataFrame, groups: Sequence[str],
                  rules: Sequence[FundingRule], names: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The list's columns for ``addresses`` (rows of addresses.parquet), in address order."""
    a = addresses
    # Text columns are handed over as arrays (.array): through NumPy they would become Python objects
    # and be converted back to Arrow strings, which cost more than the rest of the list.
    out = pd.DataFrame({"address_id": _text(a["address_id"]).array})
    out["ags"] = _text(a["ags"]).array
    out["gemeinde_name"] = out["ags"].map(names or {}).fillna("").array
    for c in _PLAIN_COLUMNS:
        if c in a.columns:
            values = a[c].to_numpy()
            out[c] = values if a[c].dtype.kind in "fiub" else _text(a[c]).fillna("").array
    for col in _service_columns(groups):
        if col in a.columns:
            out[col] = a[col].to_numpy() if "_down_" in col else _text(a[col]).array
    for c in _OBJECTION_COLUMNS:
        if c in a.columns:
            out[c] = a[c].to_numpy(dtype=bool)
    decided = deciding_offers(a["address_id"], offers, rules)
    for rule in rules:
        out[f"fund_{rule.name}"] = a[f"fund_{rule.name}"].to_numpy(dtype=bool)
        out[f"fund_{rule.name}_plan"] = a[f"fund_{rule.name}_plan"].to_numpy(dtype=bool)
        for f in OFFER_FIELDS:
            out[f"{rule.name}_{f}"] = decided[f"{rule.name}_{f}"].array
    return out


_OFFER_LABELS = {"provider": "Anbieter", "technology": "Technologie", "down_mbps": "Download (Mbit/s)",
                 "up_mbps": "Upload (Mbit/s)"}


def list_labels(columns: Sequence[str], groups: Sequence[str], rules: Sequence[FundingRule]) -> dict[str, str]:
    """German headers of an eligible-address list."""
    from coverage.report.labels import german_label  # here: the report package imports matplotlib

    labels = {c: german_label(c) for c in columns}
    for g in groups:
        glabel = GROUP_LABELS.get(g, g)
        labels[f"best_down_{g}"] = f"Beste Bandbreite Download (Mbit/s), {glabel}"
        labels[f"best_tech_{g}"] = f"Technologie, {glabel}"
        labels[f"plan_best_down_{g}"] = f"Download mit Planung (Mbit/s), {glabel}"
        labels[f"plan_best_tech_{g}"] = f"Technologie mit Planung, {glabel}"
    for r in rules:
        labels[f"fund_{r.name}"] = f"Förderfähig: {r.label}"
        labels[f"fund_{r.name}_plan"] = f"Förderfähig: {r.label}, mit Planung"
        for f, text in _OFFER_LABELS.items():
            labels[f"{r.name}_{f}"] = f"Entscheidendes Angebot ({r.label}): {text}"
    labels.update({"x": "Rechtswert (m)", "y": "Hochwert (m)"})
    return {c: labels[c] for c in columns}


@dataclass(frozen=True)
class Area:
    level: str  # gemeinde, amt, kreis, land or project
    key: str  # the level's key, or the project area's name
    name: str

    def describe(self) -> str:
        return f"{self.name} ({LEVEL_LABELS.get(self.level, self.level)} {self.key})"


def area_catalog(tables: Mapping[str, pd.DataFrame], project_names: Sequence[str] = ()) -> pd.DataFrame:
    """Every area one can ask for: level, key, name and display name (from the run's tables)."""
    parts = []
    for level in ("gemeinde", "amt", "kreis", "land"):
        if level not in tables:
            continue
        t = tables[level]
        key = LEVEL_KEYS[level]
        name = t["name"].astype(str) if "name" in t else t[key].astype(str)
        display = t["display_name"].astype(str) if "display_name" in t else name
        parts.append(pd.DataFrame({"level": level, "key": t[key].astype(str).to_numpy(), "name": name.to_numpy(),
                                   "display_name": display.to_numpy()}))
    parts.append(pd.DataFrame({"level": "project", "key": list(project_names), "name": list(project_names),
                               "display_name": list(project_names)}))
    return pd.concat(parts, ignore_index=True)


def resolve_area(query: str, catalog: pd.DataFrame, members: Any = None) -> Area:
    """The one area ``query`` means: a key of any level, else a display name, else a name (case-insensitive).

    Several areas with that name are one answer when ``members(area)`` (a boolean mask over the
    addresses) gives them the same addresses (a city that is its own Amt and Kreis): the smallest
    level is taken. Otherwise a :class:`CoverageError` lists the candidates.
    """
    q = query.strip()
    hits = catalog[catalog["key"] == q]
    if hits.empty:
        folded = q.casefold()  # the display name first ("Rostock" is the city, not "Landkreis Rostock")
        hits = catalog[catalog["display_name"].str.casefold() == folded]
        if hits.empty:
            hits = catalog[catalog["name"].str.casefold() == folded]
    if hits.empty:
        close = catalog[catalog["name"].str.casefold().str.contains(q.casefold(), regex=False)
                        | catalog["display_name"].str.casefold().str.contains(q.casefold(), regex=False)]
        hint = (f"; did you mean {', '.join(_describe(close.head(5)))}" + (" …" if len(close) > 5 else "") + "?"
                if len(close) else "")
        raise CoverageError(f"{q!r}: no Gemeinde, Amt, Kreis or project area with this key or name{hint}")
    areas = [Area(r.level, r.key, r.display_name) for r in hits.itertuples()]
    if len(areas) > 1 and members is not None:
        first = members(areas[0])
        if all(np.array_equal(first, members(a)) for a in areas[1:]):
            return areas[0]  # catalog order: the smallest level first
    if len(areas) > 1:
        raise CoverageError(f"{q!r} is ambiguous: {'; '.join(a.describe() for a in areas)}; give the key")
    return areas[0]


def _describe(rows: pd.DataFrame) -> list[str]:
    return [Area(r.level, r.key, r.display_name).describe() for r in rows.itertuples()]


def in_polygon(x: np.ndarray, y: np.ndarray, polygon: Any) -> np.ndarray:
    """Which points lie in (or on the boundary of) a polygon."""
    shapely.prepare(polygon)
    return np.asarray(shapely.intersects_xy(polygon, x, y), dtype=bool)


def area_mask(addresses: pd.DataFrame, area: Area, polygons: Mapping[str, Any] | None = None) -> np.ndarray:
    """Boolean mask of the addresses in ``area`` (``polygons``: project area name -> polygon)."""
    if area.level == "project":
        if polygons is None or area.key not in polygons:
            raise CoverageError(f"{area.key}: no such project area")
        return in_polygon(addresses["x"].to_numpy(), addresses["y"].to_numpy(), polygons[area.key])
    key = LEVEL_KEYS[area.level]
    return np.asarray(addresses[key].astype(str).to_numpy() == area.key, dtype=bool)
