"""Report rendering: simplified geometry, choropleth SVG/PNG, offline HTML overview."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import shapely

from coverage.model import LEVEL_KEYS
from coverage.report import (
    SHARE_BREAKS,
    choropleth_png,
    choropleth_svg,
    classify,
    prepare_map_geometry,
    render_overview,
    share_classes,
)
from coverage.report.maps import NODATA_COLOUR, count_classes, format_int, format_percent
from coverage.sources.bkg import read_bkg_bundle

BKG = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bkg-vg5000-2021"
SVG = "{http://www.w3.org/2000/svg}"
THRESHOLDS = (2, 16, 30, 50, 100, 200, 400, 1000)
GROUPS = ("all", "wired", "dsl", "hfc", "fibre", "mobile")
EVIL = "<script>alert(1)</script>"
META = {
    "run_id": "test-run-1",
    "created": "2026-11-22T10:15:00+01:00",
    "data_date": "2021-06-30",
    "boundaries_date": "01.01.2021",
    "title": "Breitbandversorgung Mecklenburg-Vorpommern",
    "thresholds": list(THRESHOLDS),
    "groups": list(GROUPS),
    "attributions": ["© GeoBasis-DE / BKG 2021 (Daten verändert)",
                     "© Statistisches Bundesamt (Destatis), Zensus 2022 (Daten verändert)"],
}


def _with_shares(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    hh = out["households"].astype(float)
    for t in THRESHOLDS:
        for g in GROUPS:
            ge = out[f"hh_ge_{t:g}_{g}"]
            out[f"hh_lt_{t:g}_{g}"] = out["households"] - ge
            out[f"share_ge_{t:g}_{g}"] = np.where(hh > 0, 100.0 * ge / hh.where(hh > 0), np.nan)
    return out


def make_tables(boundaries, seed: int = 7) -> dict[str, pd.DataFrame]:
    """Random but consistent tables: counts monotone in t, higher levels are sums, shares = 100*hh/hh."""
    rng = np.random.default_rng(seed)
    gem = boundaries.gemeinde[["ags", "name", "vwg_ars", "krs_ags", "land"]].copy()
    n = len(gem)
    hh = np.round(rng.lognormal(6.3, 1.1, n)).astype(int)
    hh[rng.choice(n, 3, replace=False)] = 0  # a few areas without households -> NaN shares
    gem["households"] = hh
    gem["addresses"] = np.round(hh * 0.45).astype(int)
    gem["businesses"] = np.round(hh * 0.08).astype(int)
    gem["sites"] = gem["addresses"] + gem["businesses"]
    for g in GROUPS:
        frac = np.sort(rng.uniform(0, 1, (n, len(THRESHOLDS))), axis=1)[:, ::-1]  # falls with t
        frac[:, 0] = np.maximum(frac[:, 0], 0.6)
        frac = np.minimum.accumulate(frac, axis=1)
        for j, t in enumerate(THRESHOLDS):
            gem[f"hh_ge_{t:g}_{g}"] = np.floor(hh * frac[:, j]).astype(int)
    counts = [c for c in gem.columns if c.startswith("hh_ge_")]
    counts += ["households", "addresses", "businesses", "sites"]
    amt = gem.groupby(["vwg_ars", "krs_ags"], as_index=False)[counts].sum()
    amt = amt.merge(boundaries.amt[["vwg_ars", "name"]], on="vwg_ars", how="left")
    kreis = gem.groupby("krs_ags", as_index=False)[counts].sum().merge(
        boundaries.kreis[["krs_ags", "name"]], on="krs_ags", how="left")
    land = gem.groupby("land", as_index=False)[counts].sum().assign(name="Mecklenburg-Vorpommern")
    tables = {"gemeinde": gem, "amt": amt, "kreis": kreis, "land": land}
    for level, key in LEVEL_KEYS.items():  # as area_tables names them: the names that tell areas apart
        tables[level]["display_name"] = tables[level][key].astype(str).map(boundaries.display_names(level))
    return {level: _with_shares(t) for level, t in tables.items()}


@pytest.fixture(scope="module")
def boundaries():
    return read_bkg_bundle(BKG, "EPSG:25833", land="13")


@pytest.fixture(scope="module")
def geometry(boundaries):
    return prepare_map_geometry(boundaries, tolerance_m=150)


@pytest.fixture(scope="module")
def tables(boundaries):
    tables = make_tables(boundaries)
    gem = tables["gemeinde"]
    evil_idx = gem.index[gem["households"] > 0][0]
    gem.loc[evil_idx, "name"] = EVIL
    amt = tables["amt"]
    amt.loc[amt.index[0], "name"] = EVIL + " & Co"
    return tables


@pytest.fixture(scope="module")
def gemeinde_svg(geometry, tables):
    return choropleth_svg(
        geometry, tables["gemeinde"], "gemeinde", "share_ge_100_all",
        title="Anteil der Haushalte mit ≥ 100 Mbit/s", legend_title="Anteil der Haushalte ≥ 100 Mbit/s",
        link_template="gemeinde/{key}.html", attributions=META["attributions"], data_date=META["data_date"],
    )


def _areas(svg: str) -> list[ET.Element]:
    root = ET.fromstring(svg)
    return [el for el in root.iter() if el.get("class") == "area"]


# --------------------------------------------------------------------------- geometry

def test_geometry_simplified_once_and_neighbours_still_touch(boundaries):
    coarse = prepare_map_geometry(boundaries, tolerance_m=1500)
    before = shapely.get_num_coordinates(boundaries.gemeinde.geometry.values).sum()
    after = shapely.get_num_coordinates(coarse.gemeinde.geometry.values).sum()
    assert after < before
    assert len(coarse.gemeinde) == 726 and len(coarse.amt) == 116 and len(coarse.kreis) == 8
    assert len(coarse.land) == 1
    # shared borders stay shared: the simplified Gemeinden are still a clean coverage
    assert shapely.coverage_is_valid(coarse.gemeinde.geometry.values)
    src = boundaries.gemeinde.geometry.values
    simp = coarse.gemeinde.geometry.values
    i, j = shapely.STRtree(src).query(src, predicate="touches")
    pairs = [(a, b) for a, b in zip(i, j, strict=True) if a < b]
    assert len(pairs) > 1000
    touching = sum(bool(shapely.intersection(simp[a], simp[b]).length > 0) for a, b in pairs
                   if shapely.intersection(src[a], src[b]).length > 0)
    shared_src = sum(shapely.intersection(src[a], src[b]).length > 0 for a, b in pairs)
    assert touching == shared_src
    # higher levels are dissolved from the simplified Gemeinden: Kreis borders lie on Gemeinde borders
    gem_edges = shapely.union_all(shapely.boundary(simp))
    kreis_edges = shapely.union_all(shapely.boundary(coarse.kreis.geometry.values))
    assert shapely.difference(kreis_edges, gem_edges.buffer(0.01)).length < 1.0


# --------------------------------------------------------------------------- classes

def test_share_classes_cover_range_and_nan():
    classes = share_classes()
    values = [0, 24.99, 25, 50, 74.9, 75, 89.9, 90, 94.99, 95, 100, np.nan]
    assert list(classify(values, classes)) == [0, 0, 1, 2, 2, 3, 3, 4, 4, 5, 5, -1]
    assert classes.breaks == SHARE_BREAKS
    assert classes.labels[0] == "unter 25 %" and classes.labels[-1] == "95 bis 100 %"
    assert len(set(classes.colours)) == len(classes.colours)
    assert classes.nodata_colour not in classes.colours


def test_count_classes_cover_range():
    values = np.array([0, 1, 3, 10, 55, 200, 999, 5000, np.nan])
    classes = count_classes(values)
    cls = classify(values, classes)
    assert cls[-1] == -1
    assert (cls[:-1] >= 0).all() and (cls[:-1] < len(classes.breaks)).all()
    assert cls[0] == 0 and classes.labels[0] == "0"
    assert list(cls[:-1]) == sorted(cls[:-1])


def test_german_number_formatting():
    assert format_int(1234567.4) == "1.234.567"
    assert format_percent(56.73) == "56,7\u00a0%"
    assert format_percent(float("nan")) == "–"


# --------------------------------------------------------------------------- maps

def test_svg_one_area_per_gemeinde_with_key_title_and_link(gemeinde_svg, tables):
    areas = _areas(gemeinde_svg)
    assert len(areas) == 726
    keys = [a.get("data-key") for a in areas]
    assert sorted(keys) == sorted(tables["gemeinde"]["ags"])
    assert all(a.find(f"{SVG}title") is not None and a.find(f"{SVG}title").text for a in areas)
    hrefs = re.findall(r'<a href="([^"]*)"', gemeinde_svg)
    assert len(hrefs) == 726
    assert set(hrefs) == {f"gemeinde/{k}.html" for k in keys}
    # the area title holds name and figures, German formatted
    row = tables["gemeinde"].iloc[5]
    area = next(a for a in areas if a.get("data-key") == row["ags"])
    tip = area.find(f"{SVG}title").text
    assert tip.startswith(row["name"]) and format_int(row["households"]) in tip


def test_svg_escapes_names(gemeinde_svg):
    assert "<script" not in gemeinde_svg
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in gemeinde_svg


def test_nan_share_drawn_in_no_household_class(gemeinde_svg, tables):
    gem = tables["gemeinde"]
    empty = set(gem.loc[gem["households"] == 0, "ags"])
    assert empty
    for area in _areas(gemeinde_svg):
        if area.get("data-key") in empty:
            assert area.get("data-class") == "nodata"
            path = area.find(f"{SVG}path")
            assert NODATA_COLOUR in path.get("style")
        else:
            assert area.get("data-class") != "nodata"


def test_subset_map_and_png(geometry, tables):
    gem = tables["gemeinde"]
    one_kreis = gem[gem["krs_ags"] == "13075"]
    svg = choropleth_svg(geometry, one_kreis, "gemeinde", "hh_lt_30_all", title="Vorpommern-Greifswald",
                         legend_title="Haushalte unter 30 Mbit/s", highlight=[one_kreis["ags"].iloc[0]])
    assert len(_areas(svg)) == len(one_kreis)
    assert "<a " not in svg  # no link template, no links
    png = choropleth_png(geometry, tables["amt"], "amt", "share_ge_1000_fibre", title="Glasfaser",
                         legend_title="Anteil ≥ 1000 Mbit/s", dpi=72)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_map_rejects_unknown_keys(geometry, tables):
    bad = tables["gemeinde"].head(3).assign(ags=["99999999", "13003000", "13004000"])
    with pytest.raises(ValueError, match="no geometry"):
        choropleth_svg(geometry, bad, "gemeinde", "share_ge_100_all", title="x", legend_title="y")


# --------------------------------------------------------------------------- HTML

@pytest.fixture(scope="module")
def html(tables, gemeinde_svg):
    return render_overview(tables, {"Anteil ≥ 100 Mbit/s je Gemeinde": gemeinde_svg}, META)


def test_html_offline_and_escaped(html):
    assert "http://" not in html and "https://" not in html
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script>") == 2  # the inlined tables.js and search.js (plus the index: <script src>)
    assert html.count("<script") == 3 and '<script src="search/index.js">' in html
    # the only <link> is the empty inline favicon (so browsers do not request /favicon.ico)
    assert html.count("<link") == 1 and '<link rel="icon" href="data:,">' in html
    assert "@import" not in html and "src=" not in html.replace('<script src="search/index.js">', "")


def test_html_content(html, tables):
    assert html.startswith("<!DOCTYPE html>")
    for text in ("Breitbandversorgung Mecklenburg-Vorpommern", "Haushalte", "Anteil ≥ 100 Mbit/s",
                 "Unterversorgte Haushalte", "Anteil ≥ 1000 Mbit/s", "30.06.2021", "01.01.2021",
                 "© GeoBasis-DE / BKG 2021 (Daten verändert)", "tabelle-kreise", "tabelle-aemter"):
        assert text in html, text
    land = tables["land"].iloc[0]
    assert format_int(land["households"]) in html
    assert format_percent(land["share_ge_100_all"]).replace("\u00a0", "&nbsp;") in html or \
        format_percent(land["share_ge_100_all"]) in html
    assert html.count('class="area"') == 726
    shown = " ".join(re.sub(r"<[^>]+>", "", html).split())  # the text as the browser shows it
    assert "erstellt am 22.11.2026, 10:15 Uhr · Lauf" in shown
    assert not re.search(r"\S·", shown), "an optional part glued to the one before it"
    # tables: 8 Kreise, 116 Ämter, top 25 Gemeinden ranked by households below 30 Mbit/s
    body = {t: html.split(f'id="{t}"')[1].split("</tbody>")[0] for t in
            ("tabelle-kreise", "tabelle-aemter", "tabelle-unterversorgt")}
    assert body["tabelle-kreise"].count("<tr>") == 9  # header + 8
    assert body["tabelle-aemter"].count("<tr>") == 117
    assert body["tabelle-unterversorgt"].count("<tr>") == 26
    gem = tables["gemeinde"]
    worst = gem.sort_values("hh_lt_30_all", ascending=False).iloc[0]
    first_row = body["tabelle-unterversorgt"].split("<tbody>")[1].split("</tr>")[0]
    assert format_int(worst["hh_lt_30_all"]) in first_row
    # map ids are prefixed so several maps can share one page
    assert 'id="karte1-area-0"' in html


def test_html_missing_column_is_a_schema_error(tables):
    broken = dict(tables)
    broken["kreis"] = tables["kreis"].drop(columns=["hh_lt_30_all"])
    with pytest.raises(ValueError, match="kreis table: missing column"):
        render_overview(broken, {}, META)


# --------------------------------------------------------------------------- direct SVG page maps

def test_area_map_svg_subset_links_escapes_and_highlights(geometry, tables):
    from coverage.report.svgmap import area_map_svg, legend_entries

    gem = tables["gemeinde"]
    evil_row = gem[gem["name"] == EVIL].iloc[0]
    amt = gem[gem["vwg_ars"] == evil_row["vwg_ars"]]
    svg = area_map_svg(geometry, amt, "gemeinde", "share_ge_100_all", link_template="../gemeinde/{key}.html",
                       context_link_template="../gemeinde/{key}.html", highlight=evil_row["ags"],
                       standalone=True)
    root = ET.fromstring(svg)  # well-formed XML
    areas = [el for el in root.iter() if el.get("class") == "area"]
    assert sorted(a.get("data-key") for a in areas) == sorted(amt["ags"])
    assert all(a.find(f"{SVG}title").text for a in areas)
    links = [el.get("href") for el in root.iter(f"{SVG}a")]
    assert {f"../gemeinde/{k}.html" for k in amt["ags"]} <= set(links)
    assert len(links) > len(amt)  # neighbours in grey are linked too
    assert any(el.get("class") == "context-area" for el in root.iter())
    assert "<script" not in svg and "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    assert len([el for el in root.iter() if el.get("class") == "highlight"]) == 2
    inline = area_map_svg(geometry, amt, "gemeinde", "share_ge_100_all")
    assert "http" not in inline and inline.startswith("<svg")
    legend = legend_entries(amt, "share_ge_100_all")
    assert sum(e["count"] for e in legend) == len(amt)
