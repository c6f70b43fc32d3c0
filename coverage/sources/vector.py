"""Vector files: GeoPackage, GeoParquet, Shapefile (also zipped), GeoJSON."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import geopandas as gpd
import pyogrio
from pyogrio.errors import DataLayerError
from pyogrio.errors import DataSourceError as OgrDataSourceError

from coverage.errors import DataSourceError, InputDataError
from coverage.sources.geoparquet import read_geoparquet
from coverage.text import one_line

VECTOR_SUFFIXES = (".gpkg", ".parquet", ".geoparquet", ".shp", ".geojson", ".json", ".zip", ".fgb")


def parquet_files(path: Path) -> list[Path]:
    """The Parquet files of a dataset: the file itself, or every ``*.parquet`` below a folder
    (Hive-style partitions like ``land=01/part-000.parquet``), in a stable order."""
    if path.is_dir():
        return sorted(path.rglob("*.parquet"))
    return [path] if path.suffix.lower() in (".parquet", ".geoparquet") else []


def is_vector(path: Path) -> bool:
    return path.suffix.lower() in VECTOR_SUFFIXES or (path.is_dir() and bool(parquet_files(path)))


def read_vector(path: str | Path, layer: str | None = None, categorical: Sequence[str] = ()) -> gpd.GeoDataFrame:
    """Read a vector file into a GeoDataFrame in its own CRS; failures name the file.

    ``categorical``: few-valued text columns to read as categoricals (GeoParquet only).
    """
    path = Path(path)
    if not path.exists():
        raise DataSourceError(f"{path}: file not found")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".geoparquet") or path.is_dir():
            files = parquet_files(path)
            if not files:
                raise DataSourceError(f"{path}: folder holds no .parquet files")
            return read_geoparquet(files, categorical)
        source = str(path)
        if suffix == ".zip":
            source = _zip_source(path)
        return pyogrio.read_dataframe(source, layer=layer)
    except (OgrDataSourceError, DataLayerError, OSError) as exc:  # pyarrow I/O errors are OSErrors
        raise DataSourceError(f"{path}: cannot read as a vector file ({one_line(exc)})") from exc
    except ValueError as exc:  # e.g. parquet without geo metadata
        raise InputDataError(f"{path}: not a vector dataset ({one_line(exc)})") from exc


def _zip_source(path: Path) -> str:
    """GDAL path inside a zip, refusing members whose names escape the archive."""
    if not zipfile.is_zipfile(path):
        raise DataSourceError(f"{path}: not a zip archive")
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    bad = [n for n in names if n.startswith("/") or ".." in PurePosixPath(n).parts]
    if bad:
        raise DataSourceError(f"{path}: zip member {bad[0]!r} escapes the archive folder; refusing to read it")
    data = [n for n in names if n.lower().endswith((".shp", ".gpkg", ".geojson", ".json"))]
    if not data:
        raise DataSourceError(f"{path}: zip holds no .shp, .gpkg or .geojson file")
    return f"/vsizip/{path.resolve()}/{sorted(data)[0]}"
