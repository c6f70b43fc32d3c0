"""Zensus 2022 grid readers: parquet and the official CSV layout give the same frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from coverage.errors import DataSourceError, SchemaError
from coverage.sources.zensus import grid_bbox, households_1km, read_grid_1km, read_grid_100m, read_zensus_grid

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
GRID_1KM = DATA / "zensus2022" / "grid_1km.parquet"
GRID_100M = DATA / "zensus2022" / "grid_100m_buildings.parquet"


def _official_csvs(tmp_path: Path, frame: pd.DataFrame) -> list[Path]:
    """Write ``frame`` as the three official 1 km CSVs (cp1252, ';', decimal comma, '–' suppressed)."""

    def cell_id(x, y):
        return [f"CRS3035RES1000mN{int(b) - 500}E{int(a) - 500}" for a, b in zip(x, y, strict=True)]

    def fmt(values, decimals):
        out = []
        for v in values:
            if v < 0:  # suppressed: the official files show '–' or a negative code
                out.append("–" if v == -9 else str(int(v)))
            else:
                out.append(f"{v:.{decimals}f}".replace(".", ",") if decimals else str(int(v)))
        return out

    paths = []
    specs = [
        ("Einwohner", "einwohner", 0, "Zensus2022_Bevoelkerungszahl_1km-Gitter.csv"),
        ("Durchschnittliche Haushaltsgröße", "hh_groesse_d", 2, "Zensus2022_Durchschn_HHGroesse_1km.csv"),
        ("Leerstandsquote", "leerstandsquote", 2, "Zensus2022_Leerstandsquote_1km.csv"),
    ]
    for header, col, decimals, name in specs:
        text = pd.DataFrame(
            {
                "GITTER_ID_1km": cell_id(frame["x"], frame["y"]),
                "x_mp_1km": frame["x"],
                "y_mp_1km": frame["y"],
                header: fmt(frame[col], decimals),
                "werterlaeuternde_Zeichen": "",
            }
        )
        path = tmp_path / name
        text.to_csv(path, sep=";", index=False, encoding="cp1252")
        paths.append(path)
    return paths


def test_parquet_and_official_csv_agree(tmp_path):
    raw = pd.read_parquet(GRID_1KM).iloc[:400].copy()
    raw.loc[raw.index[3], "einwohner"] = -9  # suppressed, shown as '–'
    raw.loc[raw.index[4], "hh_groesse_d"] = -1.0
    parquet = tmp_path / "grid.parquet"
    raw.to_parquet(parquet)
    a = read_grid_1km(parquet)
    b = read_grid_1km(_official_csvs(tmp_path, raw))
    assert "Haushaltsgröße" in (tmp_path / "Zensus2022_Durchschn_HHGroesse_1km.csv").read_bytes().decode(
        "latin-1"
    )
    assert "–".encode("cp1252") in (tmp_path / "Zensus2022_Bevoelkerungszahl_1km-Gitter.csv").read_bytes()
    pd.testing.assert_frame_equal(a, b[a.columns], check_exact=False, atol=0.006)
    assert np.isnan(a.loc[(a["x"] == raw["x"].iloc[3]) & (a["y"] == raw["y"].iloc[3]), "einwohner"]).all()
    assert (a[["einwohner", "hh_groesse_d", "leerstandsquote"]].min() >= 0).all()  # no negative codes left
    assert np.isnan(a.loc[(a["x"] == raw["x"].iloc[4]) & (a["y"] == raw["y"].iloc[4]), "hh_groesse_d"]).all()


def test_negative_codes_become_nan_and_households():
    grid = read_grid_1km(GRID_1KM, bbox=(4.40e6, 3.40e6, 4.42e6, 3.42e6))
    raw = pd.read_parquet(GRID_1KM)
    raw = raw[raw["x"].between(4.40e6, 4.42e6) & raw["y"].between(3.40e6, 3.42e6)]
    assert len(grid) == len(raw) > 0
    assert grid["einwohner"].isna().sum() == (raw["einwohner"] < 0).sum()
    hh = households_1km(grid)
    ok = (raw["einwohner"] > 0) & (raw["hh_groesse_d"] > 0)
    assert hh.notna().sum() == ok.sum()
    expected = (raw["einwohner"] / raw["hh_groesse_d"])[ok].sort_values().to_numpy()
    np.testing.assert_allclose(np.sort(hh.dropna().to_numpy()), expected)


def test_bbox_filter_matches_filter_after_reading():
    bbox = grid_bbox((300_000, 5_990_000, 320_000, 6_000_000), "EPSG:25833", margin_m=0)
    assert 4.3e6 < bbox[0] < bbox[2] < 4.75e6 and 3.2e6 < bbox[1] < bbox[3] < 3.55e6
    grid = read_grid_100m(GRID_100M, bbox)
    raw = pd.read_parquet(GRID_100M)
    keep = raw["x"].between(bbox[0], bbox[2]) & raw["y"].between(bbox[1], bbox[3])
    assert len(grid) == keep.sum() > 1000
    assert set(grid.columns) == {"x", "y", "buildings", "dwellings"}


def test_errors_name_the_file(tmp_path):
    with pytest.raises(DataSourceError, match=r"missing\.parquet"):
        read_zensus_grid(tmp_path / "missing.parquet")
    bad = tmp_path / "bad.csv"
    bad.write_text("GITTER_ID_1km;Einwohner\nX;3\n", encoding="latin-1")
    with pytest.raises(SchemaError, match=r"bad\.csv"):
        read_zensus_grid(bad)
    only = tmp_path / "only.csv"
    only.write_text("GITTER_ID_1km;x_mp_1km;y_mp_1km;Einwohner\nX;4000500;3000500;3\n", encoding="latin-1")
    with pytest.raises(SchemaError, match="hh_groesse_d"):
        read_grid_1km(only)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet")
    with pytest.raises(DataSourceError, match=r"broken\.parquet"):
        read_zensus_grid(broken)
