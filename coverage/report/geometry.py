"""Map geometry: every administrative level simplified once, sharing borders.

The Gemeinden are simplified as one polygonal *coverage* (``shapely.coverage_simplify``):
a border shared by two neighbours is simplified once, so neighbours still touch
and no slivers or gaps appear. Ämter, Kreise and the Land are then dissolved from
the simplified Gemeinden, so their borders lie exactly on Gemeinde borders.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from coverage.crs import working_crs
from coverage.errors import InputDataError
from coverage.model import LEVEL_KEYS, LEVELS, Boundaries

#: Columns kept per level besides the key and the geometry.
_ATTRS = {"gemeinde": ["name", "bez", "vwg_ars", "krs_ags", "land"],
          "amt": ["name", "bez", "krs_ags", "land"],
          "kreis": ["name", "bez", "land"], "land": ["name"]}


@dataclass(frozen=True)
class AreaLookup:
    keys: np.ndarray  # key text per area
    geoms: np.ndarray  # shapely geometries
    bounds: np.ndarray  # (n, 4) xmin, ymin, xmax, ymax
    geom_by_key: dict
    name_by_key: dict


@dataclass(frozen=True)
class MapGeometry:
    """Simplified, display-ready geometries of all levels (one row per area, same CRS).

    ``gemeinde`` (ags, …), ``amt`` (vwg_ars, …), ``kreis`` (krs_ags, …), ``land`` (land, …):
    key column first, then name/bez and parent keys, then geometry. Polygons are oriented
    (exterior counter-clockwise, holes clockwise) so any fill rule draws holes as holes.
    """

    gemeinde: gpd.GeoDataFrame
    amt: gpd.GeoDataFrame
    kreis: gpd.GeoDataFrame
    land: gpd.GeoDataFrame
    tolerance_m: float
    _lookups: dict = field(default_factory=dict, compare=False, repr=False)

    def lookup(self, name: str) -> AreaLookup:
        """Keys, geometries, bounds and names of one level as arrays (computed once, then reused)."""
        if name not in self._lookups:
            geo = self.level(name)
            keys = geo[LEVEL_KEYS[name]].astype(str).to_numpy(dtype=object)
            geoms = np.asarray(geo.geometry.values, dtype=object)
            names = geo["name"].astype(str).to_numpy(dtype=object) if "name" in geo.columns else keys
            self._lookups[name] = AreaLookup(keys, geoms, shapely.bounds(geoms),
                                             dict(zip(keys.tolist(), geoms.tolist(), strict=True)),
                                             dict(zip(keys.tolist(), names.tolist(), strict=True)))
        return self._lookups[name]

    def level(self, name: str) -> gpd.GeoDataFrame:
        if name not in LEVELS:
            raise InputDataError(f"map level {name!r} is unknown; expected one of {list(LEVELS)}")
        return getattr(self, name)

    @property
    def crs(self) -> object:
        return self.gemeinde.crs


def _simplify_coverage(geoms: np.ndarray, tolerance: float) -> np.ndarray:
    """Topology-preserving simplification of a set of polygons that tile a region."""
    if tolerance <= 0:
        return geoms
    if shapely.coverage_is_valid(geoms):
        return shapely.coverage_simplify(geoms, tolerance, simplify_boundary=True)
    # Not a clean coverage (overlaps/gaps in the source): shared borders cannot be
    # recognised, so fall back to per-polygon topology-preserving simplification.
    return shapely.simplify(geoms, tolerance, preserve_topology=True)


def _dissolve(gem: gpd.GeoDataFrame, key: str, attrs: pd.DataFrame) -> gpd.GeoDataFrame:
    groups = gem.groupby(key, sort=True).geometry.agg(lambda s: shapely.coverage_union_all(s.values))
    out = attrs.drop(columns="geometry", errors="ignore").drop_duplicates(key).merge(
        pd.DataFrame({key: groups.index, "geometry": groups.values}), on=key, how="inner")
    return gpd.GeoDataFrame(out, geometry="geometry", crs=gem.crs)


def prepare_map_geometry(boundaries: Boundaries, tolerance_m: float = 150) -> MapGeometry:
    """Simplify the Gemeinden once (shared borders kept) and derive all higher levels from them.

    ``tolerance_m`` is in metres of the working CRS, which must be projected in metres.
    Areas of a higher level that contain no Gemeinde (should not happen with BKG data)
    keep their own geometry, simplified with the same tolerance.
    """
    gem_src = boundaries.gemeinde
    if gem_src.crs is None:
        raise InputDataError("boundaries.gemeinde has no CRS; cannot simplify in metres")
    working_crs(gem_src.crs)  # refuses geographic / non-metre CRSs
    if tolerance_m < 0:
        raise InputDataError(f"tolerance_m must be >= 0, got {tolerance_m}")

    geoms = shapely.make_valid(np.asarray(gem_src.geometry.values))
    simple = shapely.orient_polygons(_simplify_coverage(geoms, float(tolerance_m)))
    gem = gpd.GeoDataFrame(gem_src[["ags", *_ATTRS["gemeinde"]]].reset_index(drop=True),
                           geometry=simple, crs=gem_src.crs)

    frames: dict[str, gpd.GeoDataFrame] = {"gemeinde": gem}
    for level in ("amt", "kreis", "land"):
        key = LEVEL_KEYS[level]
        src = boundaries.level(level)
        cols = [key] + [c for c in _ATTRS[level] if c in src.columns]
        derived = _dissolve(gem, key, src[cols])
        missing = src[~src[key].isin(derived[key])]
        if len(missing):
            extra = gpd.GeoDataFrame(missing[cols].reset_index(drop=True), crs=src.crs,
                                     geometry=shapely.simplify(missing.geometry.values, tolerance_m,
                                                               preserve_topology=True))
            derived = pd.concat([derived, extra], ignore_index=True)
        derived["geometry"] = shapely.orient_polygons(derived.geometry.values)
        frames[level] = derived.sort_values(key).reset_index(drop=True)
    return MapGeometry(**frames, tolerance_m=float(tolerance_m))
