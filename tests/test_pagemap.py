"""The data of the interactive page map: layer values, address columns, grid classes, safe JSON."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from coverage.report.maps import classify, share_classes
from coverage.report.pagemap import CODE_CHARS, address_class, address_data, grid_data, js_assign, layer_data


def test_js_assign_cannot_close_the_script_and_round_trips():
    value = {"name": "</script><script>alert(1)</script> & \u2028"}
    js = js_assign("layers", None, value)
    assert "<" not in js and ">" not in js and "&" not in js.split("=", 2)[2]
    assert json.loads(js.split("window.BBCOV.layers=", 1)[1].rstrip(";\n")) == value
    keyed = js_assign("addr", '13"x', [1])
    assert 'window.BBCOV.addr["13\\"x"]=[1];' in keyed


def test_address_classes_by_best_download_over_all_technologies():
    got = address_class(np.array([1000, 999.9, 100, 99, 30, 29.9, 0.5, 0, np.nan]))
    assert got.tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_layer_data_values_and_spot_shares():
    gem = pd.DataFrame({"ags": ["1", "2"], "name": ["A", "B"], "households": [200.0, 0.0],
                        "share_ge_100_all": [55.54, np.nan], "share_ge_30_fibre": [10.0, np.nan],
                        "hh_fund_white": [50.0, 0.0], "hh_fund_white_plan": [20.0, 0.0]})
    data = layer_data(gem, ["all", "fibre"], [30, 100], "share_ge_100_all", grid=False)
    ids = [layer["id"] for layer in data["layers"]]
    assert ids == ["share_ge_100_all", "share_ge_30_fibre", "fund_white", "fund_white_plan"]
    assert data["areas"]["1"]["v"] == [55.5, 10.0, 25.0, 10.0]
    assert data["areas"]["1"]["f"] == [50.0, 20.0]
    assert data["areas"]["2"]["v"] == [None, None, None, None]  # no households: no share
    assert data["classes"]["share"]["breaks"] == list(share_classes().breaks)
    assert data["thresholds"] == ["30", "100"] and data["default"] == "share_ge_100_all"


def _decode(rec: dict) -> dict:
    """What static/map.js does with a Gemeinde's address record."""
    out = {"x": [v + rec["ox"] for v in rec["x"]], "y": [v + rec["oy"] for v in rec["y"]], "a": rec["a"]}
    for name, col in rec["cols"].items():
        k, text = col["k"], col["s"]
        codes = [CODE_CHARS.index(text[i * k + j].encode()) for i in range(rec["n"]) for j in range(k)]
        vals = []
        for i in range(rec["n"]):
            code = 0
            for j in range(k):
                code = code * len(CODE_CHARS) + codes[i * k + j]
            vals.append(col["v"][code])
        out[name] = vals
    if "tree" in rec:
        out["tree"] = [v + (rec["ox"] if i % 2 == 0 else rec["oy"]) for i, v in enumerate(rec["tree"])]
    return out


def test_address_data_per_gemeinde_with_encoded_columns_and_tree():
    res = pd.DataFrame({
        "x": [10.4, 20.0, 30.0], "y": [1.0, 2.0, 3.6], "ags": ["2", "1", "2"],
        "street": ["Weg", "Markt", None], "house_number": ["1", "2", None], "households": [1.0, 2.0, 0.0],
        "site_kind": [None, "school", None], "best_down_all": [1000.0, np.nan, 50.0],
        "best_tech_all": ["ftth", None, "vdsl"], "best_up_all": [200.0, np.nan, 10.0],
        "best_provider_all": ["P1", None, "P2"], "plan_best_down_all": [1000.0, 100.0, 50.0],
        "fund_white": [False, True, False], "fund_white_plan": [False, False, False],
        "fund_grey": [False, True, True], "fund_grey_plan": [False, True, False],
        "contested": [False, False, True]})
    tree = pd.DataFrame({"area": ["2", "2"], "kind": ["tree", "link"], "x0": [10.0, 30.0], "y0": [1.0, 3.6],
                         "x1": [30.0, 99.0], "y1": [3.6, 9.0]})
    out = address_data(res, ["all"], [("white", "Weiß"), ("grey", "Grau")], tree)
    assert sorted(out) == ["1", "2"]
    assert "<" not in js_assign("addr", "2", out["2"])
    two = _decode(out["2"])
    assert two["x"] == [10, 30] and two["y"] == [1, 4] and two["c"] == [0, 2] and two["k"] == [0, 1]
    assert two["a"] == ["Weg 1", ""] and two["p"] == ["P1", "P2"] and two["t_all"] == ["Glasfaser (FTTH)", "DSL (VDSL)"]
    assert two["d_all"] == [1000.0, 50.0] and two["u"] == [200.0, 10.0]
    assert two["f"] == [0, 2] and two["fp"] == [0, 0] and out["2"]["rules"] == ["Weiß", "Grau"]
    assert two["tree"] == [10, 1, 30, 4, 30, 4, 99, 9] and out["2"]["tree_kind"] == [0, 1]
    one = _decode(out["1"])
    assert one["c"] == [4] and one["s"] == [1] and one["d_all"] == [None] and one["p"] == [None]
    assert one["f"] == [3] and one["fp"] == [2] and "tree" not in out["1"]


def test_address_ids_as_common_prefix_and_rest_escaped_as_data():
    evil = '</script><img src=x onerror="alert(1)">'
    res = pd.DataFrame({
        "address_id": ["MV-0001203", "MV-0001217", evil, "MV-0001299"], "x": [1.0, 2.0, 3.0, 4.0],
        "y": [1.0, 2.0, 3.0, 4.0], "ags": ["1", "1", "2", "1"], "street": ["A", "B", "C", "D"],
        "house_number": ["1", "2", "3", "4"], "households": [1.0, 1.0, 1.0, 1.0], "best_down_all": [50.0] * 4,
        "best_tech_all": ["vdsl"] * 4})
    out = address_data(res, ["all"], [])
    assert out["1"]["ip"] == "MV-00012" and out["1"]["i"] == ["03", "17", "99"]  # in row order, as x and y
    assert [out["1"]["ip"] + rest for rest in out["1"]["i"]] == ["MV-0001203", "MV-0001217", "MV-0001299"]
    assert out["2"]["ip"] + "".join(out["2"]["i"]) == evil  # one address: its whole id is the prefix
    js = js_assign("addr", "2", out["2"])
    assert "<" not in js and ">" not in js
    assert json.loads(js.split('window.BBCOV.addr["2"]=', 1)[1].rstrip(";\n"))["ip"] == evil
    assert "i" not in address_data(res.drop(columns="address_id"), ["all"], [])["1"]  # no ids, no column


def test_codes_wider_than_one_character():
    from coverage.report.pagemap import _encode

    values = pd.Series(np.arange(500, dtype=float))
    data, k, table = _encode(values)
    assert k == 2 and len(data) == 1000 and table[0] is None and table[1:] == values.tolist()


def test_grid_data_classes_per_cell():
    cells = pd.DataFrame({"households": [10.0, 0.0, 4.0], "hh_ge_100_all": [10.0, 0.0, 1.0]})
    data = grid_data(cells, np.array([1.4, 2.0, 3.0]), np.array([5.0, 6.0, 7.6]), ["all", "fibre"], [100], 100)
    want = classify([100.0, np.nan, 25.0], share_classes())
    assert data["classes"] == {"share_ge_100_all": "".join("-" if c < 0 else str(c) for c in want)}
    assert data["x"] == [1, 2, 3] and data["y"] == [5, 6, 8] and data["size"] == 100.0


def test_labels_do_not_overlap_and_prefer_large_areas():
    from types import SimpleNamespace

    from coverage.report.svgmap import _Frame, _place_labels

    look = SimpleNamespace(name_by_key={"a": "Großstadt", "b": "Dorf", "c": "Weiler"})

    fr = _Frame(0.0, 100.0, 1.0, 100.0, 100.0)
    anchors = {"a": (50.0, 50.0), "b": (52.0, 52.0), "c": (50.0, 10.0)}
    out = _place_labels(look, ["a", "b", "c"], np.array([1000.0, 10.0, 5.0]), fr, 10, anchors)  # type: ignore[arg-type]
    assert len(out) == 2 and "Großstadt" in out[0] and "Weiler" in out[1]  # "Dorf" would overlap


def test_tree_lines_read_back_from_the_geopackage(tmp_path):
    import geopandas as gpd
    import shapely

    from pipelines.map_data import read_tree_lines

    lines = [shapely.LineString([(1.5, 2.0), (3.0, 4.25)]), shapely.LineString([(5.0, 6.0), (7.0, 8.0)])]
    frame = gpd.GeoDataFrame({"level": ["gemeinde", "amt"], "area": ["1", "9"], "kind": ["tree", "link"]},
                             geometry=lines, crs="EPSG:25833")
    frame.to_file(tmp_path / "t.gpkg", layer="costs_tree", driver="GPKG", engine="pyogrio")
    got = read_tree_lines(tmp_path / "t.gpkg")
    assert got[["x0", "y0", "x1", "y1"]].to_numpy().tolist() == [[1.5, 2.0, 3.0, 4.25]]
    assert got["area"].tolist() == ["1"]
    # lines of other shapes (here three points) take the general path: first and last point
    frame.geometry = [shapely.LineString([(0, 0), (1, 1), (2, 5)]), lines[1]]
    frame.to_file(tmp_path / "u.gpkg", layer="costs_tree", driver="GPKG", engine="pyogrio")
    assert read_tree_lines(tmp_path / "u.gpkg")[["x0", "y0", "x1", "y1"]].to_numpy().tolist() == [[0, 0, 2, 5]]
