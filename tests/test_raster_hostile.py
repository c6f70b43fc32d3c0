"""Hostile rasters: absurd and negative cells, several bands, huge and sparse files, corrupt blocks.

Each case has its exact outcome: which addresses are quarantined with which reason, or which one-line
error; and rasters are sampled block by block, never read whole (the result equals indexing the whole
array, and memory stays far below the raster's size)."""

from __future__ import annotations

import dataclasses
import resource
import time
import tracemalloc
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window
from shapely.geometry import Point

from coverage.config import ProviderConfig, load_config
from coverage.errors import ConfigError, InputDataError
from coverage.match import sample_raster
from coverage.model import ArrayCells, OfferStatus, ProviderFormat, RasterDelivery, WindowReader
from coverage.sources.providers import read_provider_raster
from coverage.technology import Technology, alias_table
from pipelines.cli import main
from pipelines.runner import validate_inputs
from tests.conftest import CRS, X0, Y0
from tests.world import write_world

# A1 lies in cell (row 19, col 1) of the world's 20 x 20 raster of 100 m cells, A2 in (15, 5), A3 in (15, 15).
ADDR = ("address_id;x;y;households\n"
        f"A1;{X0 + 100:.0f};{Y0 + 100:.0f};3\n"
        f"A2;{X0 + 500:.0f};{Y0 + 500:.0f};2\n"
        f"A3;{X0 + 1500:.0f};{Y0 + 500:.0f};5\n")
CELLS = {"A1": (19, 1), "A2": (15, 5), "A3": (15, 15)}
TRANSFORM = from_origin(X0, Y0 + 2000, 100, 100)


@pytest.fixture
def world(tmp_path: Path) -> Path:
    write_world(tmp_path)
    (tmp_path / "addresses.csv").write_text(ADDR, encoding="utf-8")
    return tmp_path


def write_tif(path: Path, bands: np.ndarray, nodata: float | None = None, **profile: object) -> None:
    """A GeoTIFF of the world's grid with ``bands`` (count, rows, cols)."""
    count, height, width = bands.shape
    with rasterio.open(path, "w", driver="GTiff", height=height, width=width, count=count, dtype=bands.dtype,
                       crs=CRS, transform=TRANSFORM, nodata=nodata, **profile) as dst:
        dst.write(bands)


def edit_config(root: Path, old: str, new: str) -> None:
    cfg = root / "run.toml"
    text = cfg.read_text(encoding="utf-8")
    assert old in text
    cfg.write_text(text.replace(old, new, 1), encoding="utf-8")


def fails(root: Path, capsys: pytest.CaptureFixture[str], message: str) -> None:
    assert main(["validate", "--config", str(root / "run.toml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    assert err[-1].startswith("bbcov: error: ") and message in err[-1], err[-1]


def mobile(root: Path) -> tuple[dict[str, float], pd.DataFrame, dict]:
    """(down_mbps per address, quarantine rows, accounting entry) of the raster delivery."""
    state, ledger = validate_inputs(load_config(root / "run.toml"))
    offers = state.all_offers()
    offers = offers[offers["source"] == "mobile.tif"]
    rows = ledger.all_quarantine()
    entry = next(e for e in ledger.accounting if e.stage == "provider mobile.tif")
    assert entry.balanced, entry
    return (dict(zip(offers["address_id"], offers["down_mbps"], strict=True)),
            rows[rows["source"] == "mobile.tif"].reset_index(drop=True), entry.as_dict())


def cells(values: dict[str, float], dtype: str, fill: float) -> np.ndarray:
    band = np.full((1, 20, 20), fill, dtype=dtype)
    for address, value in values.items():
        band[(0, *CELLS[address])] = value
    return band


# --- checks: absurd and negative cells are quarantined per address -----------------------------------

def test_absurd_and_negative_cells_are_quarantined_per_address_and_counted(world):
    write_tif(world / "mobile.tif", cells({"A1": 150_000, "A2": -5, "A3": 40}, "float32", -9999), nodata=-9999)
    offers, rows, entry = mobile(world)
    assert offers == {"A3": 40.0}
    assert rows[["row", "column", "value", "reason", "key"]].values.tolist() == [
        [2, "band 1", "150000 at cell row 19, col 1", "absurd_speed", "A1"],
        [3, "band 1", "-5 at cell row 15, col 5", "negative_value", "A2"]]
    assert rows["detail"].tolist() == [
        "a cell value above the plausible maximum of 100,000 Mbit/s (a unit mistake?)",
        "a negative cell value that is not the raster's nodata (-9999)"]
    assert (entry["rows_in"], entry["rows_out"], entry["quarantined"], entry["linked"]) == (
        3, 1, {"absurd_speed": 1, "negative_value": 1}, 1)
    assert entry["note"] == ("1 addresses in served cells, 0 outside the raster, 2 quarantined (1 absurd_speed, "
                             "1 negative_value); 1 block(s) read (rows = addresses sampled)")  # one strip of 20 rows


def test_the_maximum_itself_nodata_zero_and_nan_are_not_quarantined(world):
    write_tif(world / "mobile.tif", cells({"A1": 100_000, "A2": np.nan, "A3": 0}, "float32", -9999), nodata=-9999)
    offers, rows, entry = mobile(world)
    assert offers == {"A1": 100_000.0} and rows.empty
    assert (entry["rows_in"], entry["rows_out"], entry["quarantined"]) == (3, 3, {})


def delivery(values: np.ndarray, nodata: float | None, block: tuple[int, int] = (16, 16)) -> RasterDelivery:
    return RasterDelivery(cells=ArrayCells(values), shape=values.shape, block_shape=block, band=1,
                          transform=TRANSFORM, crs=CRS, nodata=nodata, provider="Hansefunk", technology=Technology.LTE,
                          up_mbps=np.nan, status=OfferStatus.CURRENT, planned_date="", source="mobile.tif")


def world_addresses(ids: list[str] | None = None) -> gpd.GeoDataFrame:
    ids = ids or list(CELLS)
    points = [Point(X0 + 100 * c + 50, Y0 + 2000 - 100 * r - 50) for r, c in (CELLS[i] for i in ids)]
    return gpd.GeoDataFrame({"address_id": ids, "source_row": np.arange(len(ids)) + 2}, geometry=points, crs=CRS)


def test_infinities_are_quarantined_and_float32_nodata_is_no_offer_not_a_negative_speed():
    """+inf is absurd, -inf negative; a float32 band's cells hold nodata -3.4e38 rounded to float32,
    which still means nodata (as GDAL's mask has it), not a negative speed."""
    values = cells({"A1": np.inf, "A2": -np.inf, "A3": -3.4e38}, "float32", 0)[0]
    sample = sample_raster(delivery(values, nodata=-3.4e38), world_addresses())
    assert sample.offers.empty
    assert sample.quarantine[["row", "value", "reason", "key"]].values.tolist() == [
        [2, "inf at cell row 19, col 1", "absurd_speed", "A1"],
        [3, "-inf at cell row 15, col 5", "negative_value", "A2"]]


# --- bands ---------------------------------------------------------------------------------------------

def test_a_multi_band_raster_needs_band_and_band_is_checked(world, capsys):
    bands = np.stack([cells({"A1": k, "A2": 10 + k, "A3": 20 + k}, "uint16", 0)[0] for k in (1, 2, 3)])
    write_tif(world / "mobile.tif", bands, nodata=0)
    fails(world, capsys, "mobile.tif: raster has 3 bands; set band = N (1 to 3) in this delivery's [[providers]] "
                         "table for the band of download speed in Mbit/s")
    edit_config(world, 'technology = "LTE"', 'technology = "LTE"\nband = 4')
    fails(world, capsys, "mobile.tif: band = 4 is out of range: the raster has 3 band(s) (expected 1 to 3)")
    edit_config(world, "band = 4", "band = 2")
    offers, rows, _entry = mobile(world)
    assert offers == {"A1": 2.0, "A2": 12.0, "A3": 22.0} and rows.empty


@pytest.mark.parametrize("value", ["0", "-1", "1.5", '"2"', "true"])
def test_band_must_be_an_integer_from_1_at_config_load(world, value):
    edit_config(world, 'technology = "LTE"', f'technology = "LTE"\nband = {value}')
    with pytest.raises(ConfigError, match=r"providers\[3\]\.band: expected a band number \(an integer ≥ 1\), got "):
        load_config(world / "run.toml")


def test_band_applies_to_rasters_only(world):
    edit_config(world, 'technology = "DOCSIS 3.1"', 'technology = "DOCSIS 3.1"\nband = 1')
    with pytest.raises(ConfigError, match=r"providers\[2\]\.band: applies to format = \"raster\" only, not 'polygons'"):
        load_config(world / "run.toml")


def test_band_one_of_a_single_band_raster_is_the_default(world):
    edit_config(world, 'technology = "LTE"', 'technology = "LTE"\nband = 1')
    offers, _rows, _entry = mobile(world)
    assert offers == {"A1": 40.0, "A2": 40.0}  # the world's raster: its lower-left quarter at 40 Mbit/s


# --- block by block == the whole array ----------------------------------------------------------------

class SpyCells:
    """In-memory cells that record every window read."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values
        self.windows: list[tuple[int, int, int, int]] = []

    def open(self) -> AbstractContextManager[WindowReader]:
        return nullcontext(self.read)

    def read(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        self.windows.append((row, col, height, width))
        return self.values[row:row + height, col:col + width].copy()


def full_array_sample(values: np.ndarray, nodata: float | None, addresses: gpd.GeoDataFrame) -> pd.Series:
    """The sampling before block-wise reading: index the whole band at once (the reference)."""
    a, b, c, d, e, f = (~TRANSFORM)[:6]
    x, y = addresses.geometry.x.to_numpy(), addresses.geometry.y.to_numpy()
    col = np.floor(a * x + b * y + c).astype(np.int64)
    row = np.floor(d * x + e * y + f).astype(np.int64)
    inside = (row >= 0) & (row < values.shape[0]) & (col >= 0) & (col < values.shape[1])
    out = np.full(len(addresses), np.nan)
    out[inside] = values[row[inside], col[inside]]
    if nodata is not None:
        out[out == nodata] = np.nan
    served = np.isfinite(out) & (out > 0)
    return pd.Series(out[served], index=addresses["address_id"][served].to_numpy())


def random_addresses(rng: np.random.Generator, n: int, height: int, width: int) -> gpd.GeoDataFrame:
    """Points over the raster and a margin around it (some outside), several in the same cell."""
    x = X0 + rng.uniform(-300, 100 * width + 300, n)
    y = Y0 + 2000 - rng.uniform(-300, 100 * height + 300, n)
    x[: n // 10] = x[n // 10: 2 * (n // 10)]  # shared cells
    y[: n // 10] = y[n // 10: 2 * (n // 10)]
    return gpd.GeoDataFrame({"address_id": [f"R{i}" for i in range(n)]}, geometry=gpd.points_from_xy(x, y), crs=CRS)


@pytest.mark.parametrize("block", [(16, 16), (7, 5), (1, 90), (64, 90), (3, 200)])
def test_block_wise_sampling_equals_the_whole_array_and_reads_only_blocks_with_addresses(block):
    rng = np.random.default_rng(sum(block))
    values = rng.integers(0, 300, size=(64, 90)).astype("float32")
    values[rng.random(values.shape) < 0.2] = 255  # nodata
    addresses = random_addresses(rng, 400, *values.shape)
    spy = SpyCells(values)
    sample = sample_raster(dataclasses.replace(delivery(values, nodata=255, block=block), cells=spy), addresses)
    got = pd.Series(sample.offers["down_mbps"].to_numpy(), index=sample.offers["address_id"].to_numpy())
    expected = full_array_sample(values, 255, addresses)
    assert len(expected) > 100 and got.equals(expected)
    # every window lies inside one block; blocks holding an address are each read once, no other block is
    pos = addresses.geometry
    col = np.floor((pos.x.to_numpy() - X0) / 100).astype(int)
    row = np.floor((Y0 + 2000 - pos.y.to_numpy()) / 100).astype(int)
    inside = (row >= 0) & (row < 64) & (col >= 0) & (col < 90)
    wanted = set(zip(row[inside] // block[0], col[inside] // block[1], strict=True))
    read = [(r // block[0], c // block[1]) for r, c, h, w in spy.windows]
    assert all((r + h - 1) // block[0] == r // block[0] and (c + w - 1) // block[1] == c // block[1]
               for r, c, h, w in spy.windows)
    assert len(read) == len(set(read)) == sample.blocks_read and set(read) == wanted
    assert sample.outside == int((~inside).sum()) > 0


@pytest.mark.parametrize("layout", [{"tiled": True, "blockxsize": 16, "blockysize": 16, "compress": "deflate"},
                                    {"blockysize": 3}])
def test_block_wise_sampling_of_a_file_equals_the_whole_array(tmp_path, layout):
    rng = np.random.default_rng(7)
    values = rng.uniform(0, 2000, size=(70, 90)).astype("float32")
    values[rng.random(values.shape) < 0.1] = 0
    write_tif(tmp_path / "r.tif", values[None], nodata=0, **layout)
    cfg = ProviderConfig(path=tmp_path / "r.tif", format=ProviderFormat.RASTER, provider="Hansefunk", technology="LTE")
    raster = read_provider_raster(cfg, alias_table({}))
    assert raster.block_shape == ((16, 16) if "tiled" in layout else (3, 90))
    addresses = random_addresses(rng, 500, *values.shape)
    sample = sample_raster(raster, addresses)
    with rasterio.open(tmp_path / "r.tif") as src:
        whole = src.read(1)
    got = pd.Series(sample.offers["down_mbps"].to_numpy(), index=sample.offers["address_id"].to_numpy())
    assert got.equals(full_array_sample(whole, 0, addresses)) and len(got) > 200


# --- huge rasters: never loaded whole ---------------------------------------------------------------

def sparse_tif(path: Path, size: int, tile: int, dtype: str, written: Mapping[tuple[int, int], float]) -> None:
    """A size x size GeoTIFF of 10 m cells whose tiles are absent (SPARSE_OK: read as nodata) except those
    holding the ``written`` cells."""
    with rasterio.open(path, "w", driver="GTiff", height=size, width=size, count=1, dtype=dtype, crs=CRS,
                       transform=from_origin(X0, Y0 + 10 * size, 10, 10), nodata=0, tiled=True, blockxsize=tile,
                       blockysize=tile, compress="deflate", sparse_ok=True) as dst:
        for (r, c), value in written.items():
            dst.write(np.full((1, 1), value, dtype=dtype), 1, window=Window(c, r, 1, 1))


def sample_huge(path: Path, size: int, at: dict[str, tuple[int, int]]) -> tuple[dict[str, float], int, int, float]:
    """(down_mbps per address, tracemalloc peak, growth of the peak RSS in bytes, seconds) of reading and
    sampling the raster at the cells ``at``."""
    ids = list(at)
    points = [Point(X0 + 10 * c + 5, Y0 + 10 * size - 10 * r - 5) for r, c in at.values()]
    addresses = gpd.GeoDataFrame({"address_id": ids, "source_row": np.arange(len(ids)) + 2}, geometry=points,
                                 crs=CRS)
    cfg = ProviderConfig(path=path, format=ProviderFormat.RASTER, provider="Hansefunk", technology="LTE")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    start = time.perf_counter()
    tracemalloc.start()
    try:
        sample = sample_raster(read_provider_raster(cfg, alias_table({})), addresses)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    seconds = time.perf_counter() - start
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    assert sample.quarantine.empty
    return dict(zip(sample.offers["address_id"], sample.offers["down_mbps"], strict=True)), peak, growth, seconds


def test_a_60000_x_60000_raster_is_sampled_without_loading_it(tmp_path):
    size = 60_000  # 3.6e9 cells: 7.2 GB as uint16
    written = {(100, 100): 50, (100, 2000): 75, (30_000, 45_000): 300}  # tiles (0, 0) and (14, 21)
    sparse_tif(tmp_path / "big.tif", size, 2048, "uint16", written)
    assert (tmp_path / "big.tif").stat().st_size < 32_000
    at = {"A": (100, 100), "B": (100, 2000), "C": (30_000, 45_000), "D": (59_999, 59_999), "E": (100, 101)}
    offers, peak, growth, seconds = sample_huge(tmp_path / "big.tif", size, at)
    assert offers == {"A": 50.0, "B": 75.0, "C": 300.0}  # D: an absent tile (nodata), E: a 0 cell
    assert peak < 8_000_000 and growth < 256_000_000, (peak, growth)  # the raster: 7.2 GB
    assert seconds < 20


def test_a_sparse_decompression_bomb_is_sampled_without_loading_it(tmp_path):
    """200,000 x 200,000 float32 cells (160 GB) in a file of < 100 kB: read() would need 160 GB."""
    size = 200_000
    sparse_tif(tmp_path / "bomb.tif", size, 2048, "float32", {(123_456, 7_890): 16.5})
    assert (tmp_path / "bomb.tif").stat().st_size < 100_000
    at = {"A": (123_456, 7_890), "B": (0, 0), "C": (199_999, 199_999), "D": (123_456, 7_891)}
    offers, peak, growth, seconds = sample_huge(tmp_path / "bomb.tif", size, at)
    assert offers == {"A": 16.5}
    assert peak < 8_000_000 and growth < 256_000_000, (peak, growth)
    assert seconds < 20


def test_a_raster_stored_as_one_huge_block_is_refused(tmp_path):
    """A compressed single strip: reading any cell would decode all 10^10 cells."""
    size = 100_000
    with rasterio.open(tmp_path / "strip.tif", "w", driver="GTiff", height=size, width=size, count=1, dtype="uint16",
                       crs=CRS, transform=from_origin(X0, Y0 + 10 * size, 10, 10), nodata=0, compress="deflate",
                       blockysize=size, sparse_ok=True):
        pass
    cfg = ProviderConfig(path=tmp_path / "strip.tif", format=ProviderFormat.RASTER, provider="Hansefunk",
                         technology="LTE")
    with pytest.raises(InputDataError) as err:
        read_provider_raster(cfg, alias_table({}))
    assert str(err.value) == (
        f"{tmp_path / 'strip.tif'}: band 1 is stored in blocks of 100000 × 100000 cells; expected at most 16,777,216 "
        "cells per block (reading a cell decodes its whole block); re-tile it, e.g. gdal_translate -co TILED=YES "
        "-co COMPRESS=DEFLATE")


def test_a_corrupt_block_is_a_one_line_error_naming_file_and_band(world, capsys):
    values = cells({"A1": 40, "A2": 41, "A3": 42}, "uint16", 0)
    write_tif(world / "mobile.tif", values, nodata=0, tiled=True, blockxsize=16, blockysize=16, compress="deflate")
    with rasterio.open(world / "mobile.tif") as src:  # tile (0, 0): rows 0-15, cols 0-15, holding A2 and A3
        offset = int(src.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1))
        length = int(src.get_tag_item("BLOCK_SIZE_0_0", "TIFF", bidx=1))
    with (world / "mobile.tif").open("r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xff" * length)
    fails(world, capsys, "mobile.tif: band 1: cannot read the cells from row 15, col 5 (ZIPDecode:Decoding error")
