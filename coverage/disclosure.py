"""Disclosure control for the open-data publication (``bbcov publish``): what may leave the house.

Pure functions over a run's tables, per-address results and offers; nothing here reads or writes files.
The rules (``[publish]`` in the run configuration, defaults when absent):

- **minimum addresses** — every figure of an area or grid cell with fewer than ``min_addresses``
  addresses is suppressed (the area row stays, its figures are empty). A 100 m grid cell below it is
  *merged* into its enclosing 1 km cell: the 1 km row holds the addresses of exactly those small
  100 m cells (published 100 m cells inside it are not counted again) and is suppressed in its turn
  when it still has fewer than ``min_addresses``.
- **dominance** — per area (or cell), technology group and kind of count (households; businesses):
  the share of the served households (businesses) whose best offer in the group comes from one
  provider. An address with ``best_down_{g}`` > 0 is served in group g; its best offers are the
  current offers of the group's technologies with exactly that download speed (``offers.parquet``)
  and the run's ``best_provider_{g}``; ties count for *every* tied provider (conservative). Where a
  provider's share exceeds ``dominance_share``, the group's coverage figures are suppressed:
  ``hh_ge_*_{g}`` with their shares (or ``biz_ge_*_{g}`` for the businesses' share). The funding
  counts (``hh_fund_*``, ``addr_fund_*``, ``biz_fund_*``, ``*_no_offer``) follow the verdict of group
  ``all``: they classify by the best offer over all technologies. Totals (addresses, households,
  businesses) describe no network and are never suppressed by this rule.
- **complementary suppression** — every sum that is published (Amt = Σ its Gemeinden, Kreis = Σ
  Ämter, Land = Σ Kreise, Land = Σ grid rows) may not have exactly one suppressed term, or that term
  is the published total minus the others. Where it has, a second term is suppressed: the child with
  the smallest positive count (then the smallest count, then the smallest key), or the total itself
  when all its children are suppressed already. Repeated per figure until every sum is safe.
- **rounding** — published counts are rounded to the nearest multiple of ``round_to`` (halves up);
  shares are computed from the *rounded* counts, so a share never gives an exact count back.
- Nothing per address, no provider name (only the planned figures' absence: ``plan_*`` columns are
  announced expansions of single providers and are not published).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from coverage.model import LEVEL_KEYS
from coverage.sections import DisclosureRules

#: Licence of the publication: Datenlizenz Deutschland – Namensnennung – Version 2.0.
LICENCE_NAME = "Datenlizenz Deutschland – Namensnennung – Version 2.0"
LICENCE_ID = "dl-by-de/2.0"
LICENCE_URL = "https://www.govdata.de/dl-de/by-2-0"

#: Child level -> (parent level, the children's column naming their parent).
PARENTS = {"gemeinde": ("amt", "vwg_ars"), "amt": ("kreis", "krs_ags"), "kreis": ("land", "land")}

#: Reasons in disclosure_report.csv.
MIN_ADDRESSES, DOMINANCE, COMPLEMENTARY, MERGED = "min_addresses", "dominance", "complementary", "merged_into_1km"
#: A figure a layer does not publish (the grid has no funding counts): unknown to a reader, not reported.
NOT_PUBLISHED = "not_published"


# --- which figures are published ---------------------------------------------------------------------

TOTALS = ("addresses", "households", "businesses")


def published_counts(columns: Iterable[str]) -> list[str]:
    """The count columns of a run table that are published, in the table's order."""
    out = []
    for c in columns:
        if c in TOTALS or c.startswith(("hh_ge_", "biz_ge_", "hh_fund_", "addr_fund_", "biz_fund_")) \
                or c in ("hh_no_offer", "addr_no_offer", "biz_no_offer"):
            out.append(c)
    return out


def figure_group(column: str) -> tuple[str, str] | None:
    """(kind, group) whose dominance verdict a count column follows; None for the totals.

    ``hh_ge_100_fibre`` -> ("hh", "fibre"); ``biz_ge_30_all`` -> ("biz", "all"); funding counts -> group all."""
    for prefix, kind in (("hh_ge_", "hh"), ("biz_ge_", "biz")):
        if column.startswith(prefix):
            return kind, column[len(prefix):].split("_", 1)[1]  # the tag holds no "_"; group names may
    if column in TOTALS:
        return None
    return ("biz" if column.startswith("biz_") else "hh"), "all"


def share_of(column: str) -> tuple[str, str] | None:
    """The share column computed from a count column, and its denominator."""
    if column.startswith("hh_ge_"):
        return "share_ge_" + column[len("hh_ge_"):], "households"
    if column.startswith("biz_ge_"):
        return "biz_share_ge_" + column[len("biz_ge_"):], "businesses"
    return None


# --- dominance ---------------------------------------------------------------------------------------

def best_offer_providers(addresses: pd.DataFrame, offers: pd.DataFrame, groups: Mapping[str, Sequence[str]]
                         ) -> dict[str, pd.DataFrame]:
    """Per group: (address_id, provider) pairs of every served address's best offers (ties: every provider),
    with ``row``, the address's position in ``addresses`` (so that sums need no lookup by id).

    ``addresses``: address_id (unique) and ``best_down_{g}`` (optionally ``best_provider_{g}``); ``offers``:
    address_id, provider, technology, down_mbps, status. Pairs come in the order of the offers, then the
    run's own best providers in address order; each pair once."""
    ids = _unique_ids(addresses)
    current = offers[(offers["status"].astype(str) == "current").to_numpy()]
    at = ids.get_indexer(current["address_id"].astype(str))  # -1: an offer for no address of the frame
    technology = current["technology"].astype(str)
    provider_codes, provider_names = pd.factorize(current["provider"].astype(str))
    down = current["down_mbps"].to_numpy(float)
    out = {}
    for g, techs in groups.items():
        col = f"best_down_{g}"
        if col not in addresses:
            continue
        best = addresses[col].to_numpy(float)
        served = np.nan_to_num(best, nan=0.0) > 0
        take = technology.isin({str(t) for t in techs}).to_numpy() & (at >= 0)
        rows = at[take]
        keep = served[rows] & np.isclose(down[take], best[rows], rtol=1e-9, atol=1e-9)
        pair_rows, pair_providers = [rows[keep]], [provider_codes[take][keep]]
        names = pd.Index(provider_names)
        if f"best_provider_{g}" in addresses:
            own_codes, own_names = pd.factorize(addresses[f"best_provider_{g}"].astype(str))
            mine = served & (own_names[own_codes] != "") & (own_codes >= 0) if len(own_names) else served & False
            names = names.append(pd.Index(own_names).difference(names, sort=False))
            pair_rows.append(np.flatnonzero(mine))
            pair_providers.append(names.get_indexer(own_names)[own_codes[mine]])
        code = np.concatenate(pair_providers)
        pairs = pd.DataFrame({"row": np.concatenate(pair_rows), "code": code}).drop_duplicates()
        out[g] = pd.DataFrame({"address_id": ids.take(pairs["row"].to_numpy()).astype(str),
                               "provider": names.take(pairs["code"].to_numpy()).astype(str),
                               "row": pairs["row"].to_numpy()})
    return out


def _unique_ids(addresses: pd.DataFrame) -> pd.Index:
    ids = pd.Index(addresses["address_id"].astype(str))
    if not ids.is_unique:
        raise ValueError("disclosure control needs unique address ids (a run's addresses have them)")
    return ids


def dominance_shares(units: pd.Series, addresses: pd.DataFrame, pairs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per unit (index: the unit keys of ``units``, aligned with ``addresses``): columns ``(kind, group)``,
    the largest share of one provider in the served households (kind hh) or businesses (kind biz); NaN where
    nothing is served.

    Sums run over integer codes (unit, provider) in the order of the addresses (totals) and of the pairs
    (per provider), as a merge of the pairs with the addresses on address_id would order them."""
    unit_codes, unit_keys = pd.factorize(pd.Series(units).astype(str), sort=True)  # Arrow strings: fast
    weights = {"hh": addresses["households"].to_numpy(float),
               "biz": (addresses["businesses"].to_numpy(float) if "businesses" in addresses
                       else np.zeros(len(addresses)))}
    weights = {k: np.nan_to_num(w, nan=0.0) for k, w in weights.items()}
    index = pd.Index(np.asarray(unit_keys, dtype=object).astype(str), name="unit")
    columns = {}
    ids: pd.Index | None = None
    for g, p in pairs.items():
        if "row" in p:
            at = p["row"].to_numpy(np.int64)
        else:  # pairs made elsewhere: find their addresses by id
            ids = _unique_ids(addresses) if ids is None else ids
            at = ids.get_indexer(p["address_id"].astype(str))
        known = at >= 0  # pairs of addresses not in the frame count for nothing (as an inner merge)
        at = at[known]
        provider = pd.factorize(p["provider"].astype(str))[0][known]
        served = np.zeros(len(addresses), dtype=bool)
        served[at] = True
        rows = np.flatnonzero(served)
        for kind, w in weights.items():
            total = pd.Series(w[rows]).groupby(unit_codes[rows]).sum()
            by_provider = pd.Series(w[at]).groupby([unit_codes[at], provider]).sum()
            top = by_provider.groupby(level=0).max()
            with np.errstate(invalid="ignore", divide="ignore"):
                share = (top.reindex(total.index) / total).where(total > 0)
            columns[(kind, g)] = pd.Series(share.reindex(np.arange(len(index))).to_numpy(), index=index)
    return pd.DataFrame(columns, index=index)


# --- suppression -------------------------------------------------------------------------------------

@dataclass
class Suppression:
    """Per level (or grid layer): the true counts, and per count column which rows are suppressed and why."""

    counts: dict[str, pd.DataFrame]  # level -> frame (index: unit key) of the published count columns
    reason: dict[str, pd.DataFrame] = field(default_factory=dict)  # level -> same shape, "" or the reason

    def suppressed(self, level: str) -> pd.DataFrame:
        return self.reason[level] != ""


def primary(counts: pd.DataFrame, dominance: pd.DataFrame | None, rules: DisclosureRules) -> pd.DataFrame:
    """Reasons of the primary suppressions of one level: min_addresses, then dominance."""
    reason = np.full(counts.shape, "", dtype=object)
    small = counts["addresses"].to_numpy(float) < rules.min_addresses
    reason[small, :] = MIN_ADDRESSES
    if dominance is not None:
        dom = dominance.reindex(counts.index)
        for j, c in enumerate(counts.columns):
            key = figure_group(c)
            if key is None or key not in dom.columns:
                continue
            hit = (dom[key].to_numpy(float) > rules.dominance_share) & ~small
            reason[hit, j] = DOMINANCE
    return pd.DataFrame(reason, index=counts.index, columns=counts.columns, dtype=object)


def complementary(s: Suppression, sums: Sequence[tuple[str, str, np.ndarray]]) -> None:
    """Suppress second terms until no published sum has exactly one suppressed term (see the module text).

    ``sums``: (child level, parent level, parent position of every child row). Per figure and sum, every
    parent with exactly one unknown term is settled at once (its second term is picked among its own
    children, so the parents do not influence each other); the sums are visited in turn until none changes.
    """
    levels = list(s.counts)
    columns = list(s.counts[levels[0]].columns)
    reason = {lv: s.reason[lv].to_numpy(dtype=object, copy=True) for lv in levels}
    keys = {lv: np.array([str(k) for k in s.counts[lv].index], dtype=str) for lv in levels}
    values = {lv: s.counts[lv].to_numpy(float) for lv in levels}
    for j in range(len(columns)):
        sup = {lv: reason[lv][:, j] != "" for lv in levels}
        changed = True
        while changed:
            changed = False
            for child, parent, pos in sums:
                unknown = np.bincount(pos[sup[child]], minlength=len(sup[parent])) + sup[parent]
                single = unknown == 1
                if not single.any():
                    continue
                changed = True
                rows = np.flatnonzero(single[pos] & ~sup[child])  # children still published of those parents
                v = values[child][rows, j]
                rows = rows[np.lexsort((keys[child][rows], v, ~(v > 0), pos[rows]))]
                first = np.ones(len(rows), dtype=bool)
                first[1:] = pos[rows[1:]] != pos[rows[:-1]]
                picks = rows[first]  # per parent: the smallest positive count, then smallest count, then key
                sup[child][picks] = True
                reason[child][picks, j] = COMPLEMENTARY
                alone = single.copy()  # parents without a published child: the total itself
                alone[pos[picks]] = False
                sup[parent][alone] = True
                reason[parent][alone, j] = COMPLEMENTARY
    for lv in levels:
        s.reason[lv] = pd.DataFrame(reason[lv], index=s.reason[lv].index, columns=s.reason[lv].columns, dtype=object)


def round_counts(values: np.ndarray, round_to: int) -> np.ndarray:
    """Nearest multiple of ``round_to``, halves up (4 -> 0, 5 -> 10, 15 -> 20 with 10)."""
    return np.floor(np.asarray(values, float) / round_to + 0.5) * round_to


def published(counts: pd.DataFrame, reason: pd.DataFrame, rules: DisclosureRules) -> pd.DataFrame:
    """Rounded counts, suppressed cells empty, shares (percent, one decimal) from the rounded counts."""
    rounded = round_counts(counts.to_numpy(float), rules.round_to)
    rounded[(reason[list(counts.columns)] != "").to_numpy()] = np.nan
    missing = np.isnan(rounded)
    whole = np.where(missing, 0, rounded).astype(np.int64)
    position = {c: j for j, c in enumerate(counts.columns)}
    data: dict[str, Any] = {c: pd.arrays.IntegerArray(whole[:, j], missing[:, j]) for c, j in position.items()}
    for c, j in position.items():
        share = share_of(c)
        if share is None or share[1] not in position:
            continue
        den = rounded[:, position[share[1]]]
        with np.errstate(invalid="ignore", divide="ignore"):
            data[share[0]] = np.round(np.where(den > 0, 100.0 * rounded[:, j] / den, np.nan), 1)
    return pd.DataFrame({c: data[c] for c in _ordered(list(data))}, index=counts.index)


def _ordered(columns: list[str]) -> list[str]:
    """Totals, then household counts and shares, business counts and shares, funding counts."""
    def rank(c: str) -> tuple[int, int]:
        i = columns.index(c)
        if c in TOTALS:
            return 0, i
        for k, prefix in enumerate(("hh_ge_", "share_ge_", "biz_ge_", "biz_share_ge_")):
            if c.startswith(prefix):
                return 1 + k, i
        return 9, i
    return sorted(columns, key=rank)


def report_rows(level: str, reason: pd.DataFrame, names: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """One row per (unit, reason): the figures suppressed for it ("all" when every one is)."""
    return report_frame(level, reason, names).to_dict("records")


REPORT_COLUMNS = ["level", "id", "name", "reason", "figures"]


def report_frame(level: str, reason: pd.DataFrame, names: Mapping[str, str] | None = None) -> pd.DataFrame:
    """:func:`report_rows` as a frame (columns :data:`REPORT_COLUMNS`), in unit order, then reason order."""
    values = reason.to_numpy(dtype=object)
    columns = np.array([str(c) for c in reason.columns], dtype=object)
    units: list[np.ndarray] = []
    whys: list[np.ndarray] = []
    figures: list[np.ndarray] = []
    for k, why in enumerate((MIN_ADDRESSES, DOMINANCE, COMPLEMENTARY)):
        hit = values == why
        n = hit.sum(axis=1)
        rows = np.flatnonzero(n > 0)
        if not len(rows):
            continue
        text = np.full(len(rows), "all", dtype=object)
        part = n[rows] < values.shape[1]
        if part.any():  # the figures of one pattern are joined once, however many units share it
            patterns, inverse = np.unique(np.packbits(hit[rows[part]], axis=1), axis=0, return_inverse=True)
            joined = np.array([";".join(columns[np.unpackbits(p, count=len(columns)).astype(bool)])
                               for p in patterns], dtype=object)
            text[part] = joined[inverse.reshape(-1)]
        units.append(rows)
        whys.append(np.full(len(rows), k))
        figures.append(text)
    if not units:
        return pd.DataFrame(columns=REPORT_COLUMNS, dtype=str)
    unit, rank, text = np.concatenate(units), np.concatenate(whys), np.concatenate(figures)
    order = np.lexsort((rank, unit))
    ids = np.array([str(k) for k in reason.index], dtype=object)[unit[order]]
    why_names = np.array([MIN_ADDRESSES, DOMINANCE, COMPLEMENTARY], dtype=object)
    return pd.DataFrame({"level": level, "id": ids,
                         "name": [names.get(k, "") for k in ids] if names else "",
                         "reason": why_names[rank[order]], "figures": text[order]}, columns=REPORT_COLUMNS, dtype=str)


# --- areas -------------------------------------------------------------------------------------------

def protect_all(tables: Mapping[str, pd.DataFrame], addresses: pd.DataFrame, pairs: Mapping[str, pd.DataFrame],
                rules: DisclosureRules, grid: Mapping[str, tuple[pd.DataFrame, pd.Series]] | None = None
                ) -> Suppression:
    """Primary and complementary suppression of the area tables and grid layers together.

    ``tables``: the run's level tables (``coverage_{level}.csv``); ``addresses``: per-address results with
    address_id, households, businesses, the level keys and ``best_down_{g}``; ``pairs``: from
    :func:`best_offer_providers`; ``grid``: layer name -> (counts per cell, index cell_id; the cell of every
    address, aligned with ``addresses``). The grid layers together sum up to the Land: they take part in
    the complementary suppression as one more set of children of the Land (a figure the grid does not
    publish counts as unknown there, so it constrains nothing)."""
    counts: dict[str, pd.DataFrame] = {}
    reasons: dict[str, pd.DataFrame] = {}
    columns = published_counts(tables["gemeinde"].columns)
    for level, key in LEVEL_KEYS.items():
        frame = tables[level].astype({key: str}).set_index(key)[columns].astype(float)
        counts[level] = frame
        dom = dominance_shares(addresses[key].astype(str), addresses, pairs)
        reasons[level] = primary(frame, dom, rules)
    sums = []
    for child, (parent, col) in PARENTS.items():
        parent_of = tables[child].astype({col: str}).set_index(LEVEL_KEYS[child]).reindex(counts[child].index)[col]
        pos = pd.Index(counts[parent].index).get_indexer(parent_of)
        if (pos < 0).any():
            raise ValueError(f"{child} rows whose {col} is not in the {parent} table")
        sums.append((child, parent, pos))
    layers = list(grid or {})
    if grid:
        cells, cell_reasons = [], []
        shares: dict[int, pd.DataFrame] = {}  # layers usually share one address -> cell series
        for frame, unit in grid.values():
            dom = shares.get(id(unit))
            if dom is None:
                dom = shares[id(unit)] = dominance_shares(unit, addresses, pairs)
            r = primary(frame, dom, rules).reindex(columns=columns, fill_value=NOT_PUBLISHED)
            cells.append(frame.reindex(columns=columns, fill_value=0.0))
            cell_reasons.append(r)
        counts["grid"] = pd.concat(cells, keys=layers)
        reasons["grid"] = pd.concat(cell_reasons, keys=layers)
        sums.append(("grid", "land", np.zeros(len(counts["grid"]), dtype=np.int64)))
    s = Suppression(counts, reasons)
    complementary(s, sums)
    if grid:
        joined_counts, joined_reason = s.counts.pop("grid"), s.reason.pop("grid")
        for name, (frame, _) in grid.items():
            s.counts[name] = frame
            part = joined_reason[joined_reason.index.get_level_values(0) == name].droplevel(0)
            s.reason[name] = part.reindex(index=frame.index, columns=list(frame.columns))
        del joined_counts
    return s


# --- grid ---------------------------------------------------------------------------------------------

def grid_units(east: np.ndarray, north: np.ndarray, min_addresses: int) -> tuple[pd.Series, pd.Series]:
    """Each address's published cell: its 100 m cell, or the enclosing 1 km cell where the 100 m cell has
    fewer than ``min_addresses`` addresses. Returns (cell id, resolution in m) per address."""
    from coverage.grid import cell_id

    e100 = (np.floor(np.asarray(east, float) / 100) * 100).astype(np.int64)
    n100 = (np.floor(np.asarray(north, float) / 100) * 100).astype(np.int64)
    id100 = pd.Series(cell_id(e100, n100, 100))
    small = id100.map(id100.value_counts()).to_numpy() < min_addresses
    e1k, n1k = (e100 // 1000) * 1000, (n100 // 1000) * 1000
    id1k = pd.Series(cell_id(e1k, n1k, 1000))
    unit = id100.where(~small, id1k)
    return unit, pd.Series(np.where(small, 1000, 100))


def grid_cell_counts(unit: pd.Series, addresses: pd.DataFrame, thresholds: Sequence[float],
                     groups: Sequence[str]) -> pd.DataFrame:
    """Counts per cell (index: cell id, sorted): addresses, households, businesses and ``hh_ge_*`` /
    ``biz_ge_*`` per group, summed from the addresses as :func:`coverage.aggregate.gemeinde_counts` does."""
    from coverage.aggregate import GroupSum, households_at_least
    from coverage.columns import factorize_sorted
    from coverage.model import threshold_tag

    codes, keys = factorize_sorted(unit.astype(str).reset_index(drop=True))
    codes = np.asarray(codes, dtype=np.int64)
    n = len(keys)
    hh_sum = GroupSum(codes, n, addresses["households"].to_numpy(dtype="float64"))
    biz = addresses["businesses"] if "businesses" in addresses else pd.Series(0.0, index=addresses.index)
    biz_sum = GroupSum(codes, n, biz.to_numpy(dtype="float64"))
    data = {"addresses": np.bincount(codes, minlength=n).astype("float64"), "households": hh_sum.total(),
            "businesses": biz_sum.total()}
    biz_cols = {}
    for g in groups:
        down = addresses[f"best_down_{g}"].to_numpy(dtype="float64")
        for t, column in households_at_least(hh_sum, down, thresholds).items():
            data[f"hh_ge_{threshold_tag(t)}_{g}"] = column
        for t, column in households_at_least(biz_sum, down, thresholds).items():
            biz_cols[f"biz_ge_{threshold_tag(t)}_{g}"] = column
    data.update(biz_cols)
    return pd.DataFrame(data, index=pd.Index(np.asarray(keys).astype(str), name="cell_id"))
