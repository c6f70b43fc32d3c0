"""A transparent estimate (Schätzung) of what connecting the eligible addresses of an area costs.

Method (every step a number the user can check):

1. **Tree.** The eligible addresses of an area are joined by a Euclidean minimum spanning tree
   (straight lines between address points, not roads). The Euclidean MST is a subgraph of the
   Delaunay triangulation, so it is computed exactly on the triangulation's edges (O(n log n)).
2. **Trees, not one tree.** Tree edges longer than ``max_link_m`` are cut: each remaining connected
   component ("tree") is built on its own.
3. **Link.** Each tree is linked by one straight line from its nearest address to the nearest
   *network point*: an address that already has a qualifying fixed-network offer (not eligible
   under the rule), or the points of a ``network_points`` file when given.
4. **Price.** cost = metres × price per metre + addresses × price per house connection +
   households × price per household; every price is the user's (``[costs]``), none is built in.
5. **Split.** federal, Land and municipal shares of the cost (they sum to 1).

Isolated addresses (nearest eligible neighbour farther than ``isolated_m``) are listed with their own
cost: the cheaper of the line to that neighbour and the line to the nearest network point, plus one
house connection and its households.

Limits: straight lines underestimate a trench along roads (often by 20–40 %); no terrain, crossings,
existing ducts or in-house work; a tree per area does not share trenches with the neighbouring area.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from coverage.sections import CostConfig

if TYPE_CHECKING:  # scipy is imported where it is used: reading a config needs none of it
    from scipy.spatial import cKDTree

ESTIMATE_NOTE = "Schätzung: Luftlinien (minimaler Spannbaum), keine Trassenplanung"


def _candidate_edges(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges that contain the Euclidean MST of distinct points: Delaunay edges (plus each point Qhull
    set aside as coplanar to its nearest vertex), or the chain along the line for collinear points."""
    from scipy.spatial import Delaunay, QhullError

    n = len(xy)
    if n <= 3:
        i, j = np.triu_indices(n, k=1)
        return i, j
    try:
        tri = Delaunay(xy)
    except QhullError:  # all points on one line: the MST is the chain in order along it
        direction = xy[-1] - xy[0] if np.any(xy[-1] != xy[0]) else np.array([1.0, 0.0])
        order = np.argsort(xy @ direction, kind="stable")
        return order[:-1], order[1:]
    s = tri.simplices
    i = np.concatenate([s[:, 0], s[:, 1], s[:, 2]])
    j = np.concatenate([s[:, 1], s[:, 2], s[:, 0]])
    if len(tri.coplanar):
        i = np.concatenate([i, tri.coplanar[:, 0]])
        j = np.concatenate([j, tri.coplanar[:, 2]])
    return i, j


def euclidean_mst(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges (i, j, length in CRS units) of a Euclidean minimum spanning tree over the points ``xy``
    (n × 2): n − 1 edges for n ≥ 1 points; coincident points are joined by edges of length 0."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import minimum_spanning_tree

    xy = np.asarray(xy, dtype="float64").reshape(-1, 2)
    if len(xy) < 2:
        empty = np.zeros(0, dtype="int64")
        return empty, empty.copy(), np.zeros(0)
    unique, first, inverse = _unique_points(xy)
    i, j = _candidate_edges(unique)
    m = len(unique)
    pairs = np.unique(np.minimum(i, j).astype("int64") * m + np.maximum(i, j))  # each edge once, by (i, j)
    i, j = pairs // m, pairs % m
    length = np.hypot(*(unique[i] - unique[j]).T)
    graph = coo_matrix((length, (i, j)), shape=(m, m)).tocsr()
    tree = minimum_spanning_tree(graph).tocoo()
    ti, tj, tl = first[tree.row], first[tree.col], tree.data.astype("float64")
    dup = np.flatnonzero(first[inverse] != np.arange(len(xy)))  # later copies of a point: to its first copy
    ei = np.concatenate([ti, dup]).astype("int64")
    ej = np.concatenate([tj, first[inverse[dup]]]).astype("int64")
    return ei, ej, np.concatenate([tl, np.zeros(len(dup))])


def _unique_points(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(xy, axis=0, return_index=True, return_inverse=True)`` (rows sorted by x, then y; the
    first copy of each), through one stable lexsort: numpy's row-wise unique sorts rows as structured
    values, several times slower, and the cost estimate calls this for every area."""
    order = np.lexsort((xy[:, 1], xy[:, 0]))
    s = xy[order]
    new = np.r_[True, (s[1:, 0] != s[:-1, 0]) | (s[1:, 1] != s[:-1, 1])] if len(s) else np.zeros(0, bool)
    inverse = np.empty(len(xy), dtype="int64")
    inverse[order] = np.cumsum(new) - 1
    return s[new], order[new], inverse


@dataclass(frozen=True)
class Forest:
    """The trees of one area: kept edges, the component of each point, and each tree's link."""

    edge_i: np.ndarray
    edge_j: np.ndarray
    edge_m: np.ndarray
    component: np.ndarray  # per point: 0 … trees − 1
    link_from: np.ndarray  # per tree: the point the link starts at
    link_to: np.ndarray  # per tree: the network point (index into the targets), −1 without targets
    link_m: np.ndarray  # per tree: NaN without targets

    @property
    def trees(self) -> int:
        return len(self.link_m)


def spanning_forest(xy: np.ndarray, targets: cKDTree | None, max_link_m: float | None) -> Forest:
    """MST over ``xy``, cut at edges longer than ``max_link_m``, each tree linked to its nearest target."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    xy = np.asarray(xy, dtype="float64").reshape(-1, 2)
    n = len(xy)
    i, j, m = euclidean_mst(xy)
    if max_link_m is not None:
        keep = m <= max_link_m
        i, j, m = i[keep], j[keep], m[keep]
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    trees, component = connected_components(graph, directed=False) if n else (0, np.zeros(0, dtype="int32"))
    if targets is None or targets.n == 0 or n == 0:
        return Forest(i, j, m, component, np.full(trees, -1), np.full(trees, -1), np.full(trees, np.nan))
    dist, nearest = targets.query(xy)
    order = np.lexsort((dist, component))  # per tree, its point nearest to the network first
    starts = np.flatnonzero(np.r_[True, component[order][1:] != component[order][:-1]])
    best = order[starts]
    return Forest(i, j, m, component, best, nearest[best].astype("int64"), dist[best].astype("float64"))


def price(metres: np.ndarray | float, addresses: np.ndarray | float, households: np.ndarray | float,
          cfg: CostConfig) -> Any:
    """metres × price per metre + addresses × price per connection + households × price per household."""
    return (np.asarray(metres) * cfg.price_per_m + np.asarray(addresses) * cfg.price_per_connection
            + np.asarray(households) * cfg.price_per_household)


def split(cost: pd.Series, cfg: CostConfig) -> pd.DataFrame:
    """Federal, Land and municipal parts of each cost; the municipal part is the rest, so they sum to it."""
    federal = cost * cfg.share_federal
    land = cost * cfg.share_land
    return pd.DataFrame({"cost_federal": federal, "cost_land": land, "cost_municipal": cost - federal - land})


@dataclass(frozen=True)
class AreaCosts:
    table: pd.DataFrame  # one row per area
    edges: pd.DataFrame  # area, kind (tree/link), x0, y0, x1, y1, length_m
    isolated: pd.DataFrame  # one row per isolated address


#: Per area's rows (see :func:`area_costs`): its forest and its isolated addresses (None: none).
AreaWork = dict[bytes, tuple["Forest", dict[str, Any] | None]]


def area_costs(eligible: pd.DataFrame, area_key: str, targets_xy: np.ndarray, cfg: CostConfig,
               reuse: AreaWork | None = None) -> AreaCosts:
    """Per area (column ``area_key`` of ``eligible``: one row per eligible address with x, y,
    households, address_id): trees, links, metres, cost and its split; plus the edges and isolated
    addresses. ``targets_xy``: the network points (n × 2) the trees are linked to.

    ``reuse``: trees already built for an area with the same rows (index labels and points) of the same
    frame by a call with the same targets and prices (an Amt that is one Gemeinde, a city that is its
    own Kreis): a dict this call reads and adds to."""
    from scipy.spatial import cKDTree

    targets_xy = np.asarray(targets_xy, dtype="float64").reshape(-1, 2)
    targets = cKDTree(targets_xy) if len(targets_xy) else None
    # The areas as runs of positions (what groupby(area_key, sort=True) yields, rows in frame order),
    # with plain arrays per area: a DataFrame per area and per edge list cost more than the trees.
    codes, keys = pd.factorize(eligible[area_key], sort=True)
    order = np.argsort(codes, kind="stable")
    order = order[codes[order] >= 0]  # rows without an area are in none (groupby drops them)
    starts = np.searchsorted(codes[order], np.arange(len(keys) + 1))
    all_xy = eligible[["x", "y"]].to_numpy(dtype="float64")
    all_households = eligible["households"].to_numpy(dtype="float64")
    all_ids = eligible["address_id"].to_numpy()
    labels = eligible.index.to_numpy()
    rows: list[dict[str, Any]] = []
    isolated: list[tuple[Any, dict[str, Any]]] = []
    edges: dict[str, list[np.ndarray]] = {c: [] for c in ("area", "kind", "x0", "y0", "x1", "y1", "length_m")}
    for k, key in enumerate(keys):
        at = order[starts[k]:starts[k + 1]]
        xy, households = all_xy[at], all_households[at]
        rows_key = labels[at].tobytes() + xy.tobytes()
        if reuse is not None and rows_key in reuse:
            forest, lonely = reuse[rows_key]
        else:
            forest = spanning_forest(xy, targets, cfg.max_link_m)
            lonely = _isolated(xy, households, all_ids[at], targets, cfg) if cfg.isolated_m is not None else None
            if reuse is not None:
                reuse[rows_key] = forest, lonely
        tree_m, link_m = float(forest.edge_m.sum()), float(forest.link_m.sum())
        rows.append({area_key: key, "addresses": len(at), "households": float(np.nansum(households)),
                     "trees": forest.trees, "tree_m": tree_m, "link_m": link_m, "metres": tree_m + link_m})
        linked = forest.link_to >= 0
        for kind, a, b, m in (("tree", xy[forest.edge_i], xy[forest.edge_j], forest.edge_m),
                              ("link", xy[forest.link_from[linked]], targets_xy[forest.link_to[linked]],
                               forest.link_m[linked])):
            if kind == "link" and not linked.any():
                continue
            edges["area"].append(np.full(len(m), k))
            edges["kind"].append(np.full(len(m), kind, dtype=object))
            for c, v in (("x0", a[:, 0]), ("y0", a[:, 1]), ("x1", b[:, 0]), ("y1", b[:, 1]), ("length_m", m)):
                edges[c].append(v)
        if lonely is not None:
            isolated.append((key, lonely))
    columns = [area_key, "addresses", "households", "trees", "tree_m", "link_m", "metres"]
    table = pd.DataFrame(rows, columns=columns)
    table["cost_civil_works"] = table["metres"] * cfg.price_per_m
    table["cost_connections"] = table["addresses"] * cfg.price_per_connection
    table["cost_households"] = table["households"] * cfg.price_per_household
    table["cost"] = price(table["metres"], table["addresses"], table["households"], cfg)
    table["cost_per_household"] = table["cost"].where(table["households"] > 0) / table["households"].where(
        table["households"] > 0)
    table["cost_per_address"] = table["cost"] / table["addresses"]
    table = pd.concat([table, split(table["cost"], cfg)], axis=1)
    table["isolated_addresses"] = 0
    iso = _isolated_table(area_key, isolated)
    if len(iso):
        counts = iso.groupby(area_key, observed=True).size()
        table["isolated_addresses"] = table[area_key].map(counts).fillna(0).astype("int64")
    table["currency"] = cfg.currency
    table["note"] = ESTIMATE_NOTE + (f"; {cfg.label}" if cfg.label else "")
    edge_frame = pd.DataFrame(columns=[area_key, "kind", "x0", "y0", "x1", "y1", "length_m"])
    if edges["area"]:
        edge_frame = pd.DataFrame({area_key: np.asarray(keys, dtype=object)[np.concatenate(edges["area"])],
                                   **{c: np.concatenate(v) for c, v in edges.items() if c != "area"}})
    return AreaCosts(table, edge_frame, iso)


def _isolated_frame(area_key: str) -> pd.DataFrame:
    return pd.DataFrame(columns=[area_key, *_ISOLATED_COLUMNS])


_ISOLATED_COLUMNS = ("address_id", "x", "y", "households", "neighbour_m", "network_m", "metres", "cost")


def _isolated_table(area_key: str, parts: list[tuple[Any, dict[str, Any]]]) -> pd.DataFrame:
    """The isolated addresses of every area (``(area, columns of _isolated)`` in area order) as one frame,
    built once: a frame per area (about 700 for MV) cost more than finding them."""
    if not parts:
        return _isolated_frame(area_key)
    counts = [len(lonely["x"]) for _, lonely in parts]
    areas = np.repeat(np.asarray([key for key, _ in parts], dtype=object), counts)
    return pd.DataFrame({area_key: areas, **{c: np.concatenate([lonely[c] for _, lonely in parts])
                                             for c in _ISOLATED_COLUMNS}})


def _isolated(xy: np.ndarray, households: np.ndarray, address_ids: np.ndarray, targets: cKDTree | None,
              cfg: CostConfig) -> dict[str, Any] | None:
    """Addresses whose nearest eligible neighbour in the area is farther than ``isolated_m`` (or that
    have none), with their own cost: the cheaper straight line (to that neighbour or to the nearest
    network point) priced per metre, one house connection and its households. None when there are none."""
    from scipy.spatial import cKDTree

    assert cfg.isolated_m is not None
    neighbour = cKDTree(xy).query(xy, k=2)[0][:, 1] if len(xy) >= 2 else np.full(len(xy), np.inf)
    lonely = neighbour > cfg.isolated_m
    if not lonely.any():
        return None
    network = targets.query(xy[lonely])[0] if targets is not None and targets.n else np.full(int(lonely.sum()),
                                                                                            np.inf)
    metres = np.minimum(neighbour[lonely], network)
    metres = np.where(np.isfinite(metres), metres, np.nan)
    households = households[lonely]
    return {"address_id": address_ids[lonely],
            "x": xy[lonely, 0], "y": xy[lonely, 1], "households": households,
            "neighbour_m": np.where(np.isfinite(neighbour[lonely]), neighbour[lonely], np.nan),
            "network_m": np.where(np.isfinite(network), network, np.nan), "metres": metres,
            "cost": price(metres, 1, households, cfg)}
