"""GeoParquet read through Arrow, with a fast path for WKB points.

``geopandas.read_parquet`` parses every WKB value through GEOS; for address points
(21 bytes each: byte order, type 1, x, y) the coordinates can be read straight out
of the Arrow buffer, which is ~10x faster at millions of rows. Anything else (other
geometry types, big-endian or 3D points, nulls, geoarrow-native encodings) takes the
general path. Few-valued text columns can be read as categoricals.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import shapely
from pyproj import CRS

_POINT_WKB_SIZE = 21  # 1 byte order + uint32 type + 2 float64


def wkb_point_xy(values: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
    """(x, y) when every value is a little-endian 2D WKB point, else None."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.null_count or not len(values):
        return None
    if pa.types.is_large_binary(values.type):
        off_type: type[np.signedinteger] = np.int64
    elif pa.types.is_binary(values.type):
        off_type = np.int32
    else:
        return None
    _, off_buf, data_buf = values.buffers()
    n = len(values)
    offsets = np.frombuffer(off_buf, dtype=off_type)[values.offset:values.offset + n + 1]
    if not (np.diff(offsets) == _POINT_WKB_SIZE).all():
        return None
    raw = np.frombuffer(data_buf, dtype=np.uint8)[offsets[0]:offsets[-1]].reshape(n, _POINT_WKB_SIZE)
    header_ok = (raw[:, 0] == 1).all() and (raw[:, 1:5].copy().view("<u4").ravel() == 1).all()
    if not header_ok:
        return None
    xy = raw[:, 5:].copy().view("<f8")
    return xy[:, 0].copy(), xy[:, 1].copy()


def _geo_metadata(schema: pa.Schema) -> dict | None:
    raw = (schema.metadata or {}).get(b"geo")
    return json.loads(raw) if raw else None


def read_geoparquet(files: Sequence[Path], categorical: Sequence[str] = ()) -> gpd.GeoDataFrame:
    """The files of one GeoParquet dataset as one GeoDataFrame (same schema expected).

    Raises ValueError when the files carry no GeoParquet metadata.
    """
    schema = pq.read_schema(files[0])
    meta = _geo_metadata(schema)
    if meta is None:
        raise ValueError("missing GeoParquet 'geo' metadata")
    column = meta["primary_column"]
    info = meta["columns"][column]
    if str(info.get("encoding", "WKB")).upper() != "WKB":
        frames = [gpd.read_parquet(f) for f in files]
        return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry=column, crs=frames[0].crs)
    crs = info.get("crs", "OGC:CRS84")  # absent means OGC:CRS84 in the GeoParquet spec; null means unknown
    crs = CRS.from_user_input(crs) if crs is not None else None
    tables = [pq.read_table(f, read_dictionary=[c for c in categorical if c in schema.names]) for f in files]
    table = pa.concat_tables(tables, promote_options="permissive").unify_dictionaries()
    wkb = table.column(column)
    frame = table.drop_columns([column]).to_pandas()
    xy = wkb_point_xy(wkb)
    if xy is None:
        geometry = shapely.from_wkb(wkb.to_numpy(zero_copy_only=False))
    else:
        geometry = shapely.points(*xy)
        assert isinstance(geometry, np.ndarray)  # arrays in, array out; the stubs also allow a single Point
        empty = np.isnan(xy[0]) | np.isnan(xy[1])  # WKB writes POINT EMPTY as NaN coordinates
        if empty.any():
            geometry[empty] = shapely.from_wkt("POINT EMPTY")
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geometry, crs=crs).values, crs=crs)
