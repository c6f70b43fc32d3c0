"""The whole atlas for MV: real boundaries, random but consistent tables, every page written.

The atlas is rendered once per test run (``mv_atlas`` in conftest.py); its speed is measured by
``make bench``, not here.
"""

from __future__ import annotations

import html
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

from pipelines.runner import file_fingerprint
from tests.atlas_world import EVIL


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.scripts += 1
        for name, value in attrs:
            if name in ("href", "src", "xlink:href") and value:
                self.refs.append(value)


def _refs(path: Path) -> _Links:
    p = _Links()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def test_atlas_files(mv_atlas):
    out, _record, written = mv_atlas
    assert len(list((out / "gemeinde").glob("*.html"))) == 726
    assert len(list((out / "amt").glob("*.html"))) == 116
    assert len(list((out / "kreis").glob("*.html"))) == 8
    for p in ("index.html", "provenance.html", "downloads/coverage.xlsx", "downloads/areas.gpkg",
              "downloads/coverage_gemeinde.csv", "downloads/coverage_gemeinde_de.csv"):
        assert (out / p).is_file(), p
    assert len(list((out / "maps").glob("kreis_*.png"))) == 8
    assert len(list((out / "maps").glob("amt_*.svg"))) == 116
    assert sorted(written) == sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def test_every_link_resolves_and_nothing_is_online(mv_atlas):
    out, *_ = mv_atlas
    pages = [out / "index.html", out / "provenance.html", *sorted((out / "kreis").glob("*.html")),
             *sorted((out / "amt").glob("*.html"))[:20], *sorted((out / "gemeinde").glob("*.html"))[:60]]
    for page in pages:
        parsed = _refs(page)
        assert parsed.scripts == 3, page  # tables.js and search.js inline, the search index as a file
        for ref in parsed.refs:
            if ref == "data:,":  # the empty inline favicon
                continue
            assert not re.match(r"^[a-z][a-z0-9+.-]*:", ref, re.I), f"{page.name}: external reference {ref}"
            target = ref.split("#")[0]
            if target:
                assert (page.parent / target).resolve().is_file(), f"{page.relative_to(out)} -> {ref}"
        text = page.read_text(encoding="utf-8")
        assert text.count("<link") == 1 and "@import" not in text and "url(http" not in text


def test_pages_content_and_breadcrumbs(mv_atlas):
    out, record, _ = mv_atlas
    tables = record.state.tables
    gem = tables["gemeinde"]
    row = gem[gem["households"] > 0].iloc[5]
    page = (out / "gemeinde" / f"{row['ags']}.html").read_text(encoding="utf-8")
    amt_name = tables["amt"].set_index("vwg_ars").at[row["vwg_ars"], "display_name"]
    kreis_name = tables["kreis"].set_index("krs_ags").at[row["krs_ags"], "display_name"]
    crumbs = page.split('class="breadcrumbs"')[1].split("</nav>")[0]
    items = [re.sub(r"<[^>]+>", "", li).strip() for li in re.findall(r"<li>(.*?)</li>", crumbs)]
    assert items == ["Mecklenburg-Vorpommern", str(kreis_name), html.escape(str(amt_name)),
                     html.escape(str(row["display_name"]))]
    assert f'href="../kreis/{row["krs_ags"]}.html"' in crumbs and f'href="../amt/{row["vwg_ars"]}.html"' in crumbs
    from coverage.report.maps import format_int
    for text in ("Förderfähigkeit", "Weißer Fleck (&lt; 30 Mbit/s)", format_int(row["hh_fund_white"]),
                 format_int(row["hh_fund_white_plan"]), "Gemeindeverwaltung", "Standorte unter 100 Mbit/s"):
        assert text in page, text
    assert 'class="highlight"' in page  # locator map
    # the Amt page lists exactly its Gemeinden, linked, and maps them
    amt_page = (out / "amt" / f"{row['vwg_ars']}.html").read_text(encoding="utf-8")
    members = gem[gem["vwg_ars"] == row["vwg_ars"]]
    body = amt_page.split('id="tabelle-gemeinden"')[1].split("</tbody>")[0]
    assert body.count("<tr>") == len(members) + 1
    assert amt_page.count('class="area"') == len(members)
    for ags in members["ags"]:
        assert f'href="../gemeinde/{ags}.html"' in body
    # the overview links to every Kreis and Amt page and lists the headline funding figures
    index = (out / "index.html").read_text(encoding="utf-8")
    assert all(f'href="kreis/{k}.html"' in index for k in tables["kreis"]["krs_ags"])
    assert all(f'href="amt/{k}.html"' in index for k in tables["amt"]["vwg_ars"])
    assert "Weiße Flecken" in index and "Graue Flecken" in index and "Standorte unter 100 Mbit/s" in index
    assert format_int(tables["land"]["hh_fund_white"].sum()) in index
    below = int((record.state.sites["best_down"] < 100).sum())
    assert format_int(below) in index


def test_no_two_areas_of_a_level_read_the_same(mv_atlas):
    out, record, _ = mv_atlas
    for level in ("kreis", "amt", "gemeinde"):
        titles = [re.sub(r"<[^>]+>", "", re.search(r"<h1[^>]*>(.*?)</h1>", p.read_text(encoding="utf-8"), re.S)
                         .group(1)).strip() for p in sorted((out / level).glob("*.html"))]
        assert len(titles) == len(record.state.tables[level]) and len(set(titles)) == len(titles), level
    kreis = (out / "kreis" / "13072.html").read_text(encoding="utf-8")
    assert "<title>Landkreis Rostock" in kreis or "Landkreis Rostock" in kreis.split("</h1>")[0]
    assert "Kreisfreie Stadt Rostock" in (out / "kreis" / "13003.html").read_text(encoding="utf-8").split("</h1>")[0]
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "Landkreis Rostock" in index and "Kreisfreie Stadt Rostock" in index
    # a Gemeinde whose name occurs four times in MV is named with its Amt, on its page and in its Amt's table
    gem = record.state.tables["gemeinde"].set_index("ags")
    neu = gem[gem["name"] == "Neuenkirchen"]
    assert len(neu) == 4 and neu["display_name"].is_unique
    assert all(d.startswith("Neuenkirchen (Amt ") for d in neu["display_name"])
    page = (out / "gemeinde" / f"{neu.index[0]}.html").read_text(encoding="utf-8")
    assert html.escape(neu["display_name"].iloc[0]) in page.split("</h1>")[0]


def test_provenance_page(mv_atlas):
    out, record, _ = mv_atlas
    page = (out / "provenance.html").read_text(encoding="utf-8")
    addresses = Path(record.cfg.addresses.path)
    digest = file_fingerprint(addresses)["sha256"]  # the same fingerprint as the run manifest
    assert os.path.relpath(addresses, record.cfg.source.parent) == "addresses.csv"
    assert str(addresses.parent) not in page  # input paths relative to the configuration file, never absolute
    for text in ("bkg-vg5000-2021", ">addresses.csv<", digest, "SHA-256", "Einlesen addresses.csv", "keine Zahl",
                 "unbekannte Technologie", "Eine Zahl lässt sich nicht lesen.", "50 Angebote", "thresholds_mbps",
                 "# MV atlas test run"):
        assert text in page, text
    q = page.split('id="tabelle-quarantaene"')[1].split("</tbody>")[0]
    assert q.count("<tr>") == 1 + 2  # header + (addresses.csv, bad_number) + (dsl.csv, unknown_technology)
    assert 'data-value="2.0"' in q


def test_data_is_escaped_everywhere(mv_atlas):
    out, record, _ = mv_atlas
    gem = record.state.tables["gemeinde"]
    evil_ags = gem.loc[gem["name"] == EVIL, "ags"].iloc[0]
    pages = [out / "index.html", out / "provenance.html", out / "gemeinde" / f"{evil_ags}.html",
             *(out / "amt").glob("*.html"), *(out / "kreis").glob("*.html"), *(out / "maps").glob("*.svg")]
    seen = 0
    for p in pages:
        text = p.read_text(encoding="utf-8")
        assert "<script>alert" not in text, p
        assert text.count("<script") <= 3, p
        seen += "&lt;script&gt;alert(1)&lt;/script&gt;" in text
        assert 'href="=' not in text and "href=\"http" not in text
    assert seen >= 3


def test_gewerbe_sections(mv_atlas):
    from coverage.report.maps import format_int, format_percent

    out, record, _ = mv_atlas
    tables = record.state.tables
    for level, key in (("kreis", "krs_ags"), ("amt", "vwg_ars"), ("gemeinde", "ags")):
        t = tables[level]
        row = t[t["businesses"] > 0].iloc[0]
        page = (out / level / f"{row[key]}.html").read_text(encoding="utf-8")
        section = page.split('<section id="gewerbe">')[1].split("</section>")[0]
        assert f"{format_int(row['businesses'])} Unternehmen" in section, level
        for col in ("biz_share_ge_100_all", "biz_share_ge_1000_fibre", "plan_biz_share_ge_1000_fibre"):
            assert f'data-value="{round(float(row[col]), 6)!r}"' in section, (level, col)
        assert format_int(row["biz_fund_white"]) in section
    land = tables["land"].iloc[0]
    index = (out / "index.html").read_text(encoding="utf-8")
    section = index.split('<section id="gewerbe">')[1].split("</section>")[0]
    assert f"{format_int(land['businesses'])} Unternehmen" in section
    assert format_percent(land["biz_share_ge_100_all"]) in section


def _js_json(path: Path, prefix: str) -> dict:
    import json

    text = path.read_text(encoding="utf-8")
    return json.loads(text.split(prefix, 1)[1].rstrip(";\n"))


def test_page_maps_share_one_layer_file_with_the_tables_values(mv_atlas):
    from coverage.report.pagemap import layer_values

    out, record, written = mv_atlas
    gem = record.state.tables["gemeinde"]
    layers = _js_json(out / "maps" / "layers.js", "window.BBCOV.layers=")
    assert "maps/layers.js" in written and "<" not in (out / "maps" / "layers.js").read_text(encoding="utf-8")
    ids = [x["id"] for x in layers["layers"]]
    assert len([i for i in ids if i.startswith("share_ge_")]) == 8 * 6 and ids[-4:] == [
        "fund_white", "fund_white_plan", "fund_grey", "fund_grey_plan"]
    assert set(layers["areas"]) == set(gem["ags"].astype(str))
    row = gem[gem["households"] > 0].iloc[3]
    want = layer_values(gem[gem["ags"] == row["ags"]], layers["layers"])[0]
    got = layers["areas"][str(row["ags"])]["v"]
    assert np.allclose(np.array(got, dtype=float), want, atol=0.051, equal_nan=True)
    assert layers["areas"][str(gem.loc[gem["name"] == EVIL, "ags"].iloc[0])]["n"] == EVIL  # escaped, intact
    # no run folder: neither grid nor addresses in this atlas; every page map points at the layer file
    assert not (out / "addr").exists() and not (out / "maps" / "grid.js").exists()
    for page in [out / "index.html", out / "kreis" / "13003.html", *sorted((out / "amt").glob("*.html"))[:3]]:
        text = page.read_text(encoding="utf-8")
        m = re.search(r'data-map-layers="([^"]+)"', text)
        assert m and (page.parent / m.group(1)).resolve() == (out / "maps" / "layers.js").resolve(), page
        assert "data-map-addr=" not in text


def test_page_maps_label_the_largest_gemeinden_without_overlap(mv_atlas):
    out, record, _ = mv_atlas
    gem = record.state.tables["gemeinde"]
    page = (out / "kreis" / "13071.html").read_text(encoding="utf-8")
    labels = re.findall(r'<text x="([\d.]+)" y="([\d.]+)" text-anchor="middle">([^<]*)</text>',
                        page.split('class="labels"')[1].split("</g>")[0])
    assert 5 <= len(labels) <= 40
    members = gem[gem["krs_ags"] == "13071"].sort_values("households", ascending=False)
    assert html.escape(str(members["name"].iloc[0])) in [t for *_xy, t in labels]  # the largest is named
    boxes = [(float(x) - len(html.unescape(t)) * 3 - 2, float(y) - 11, float(x) + len(html.unescape(t)) * 3 + 2,
              float(y) + 3) for x, y, t in labels]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)
    index = (out / "index.html").read_text(encoding="utf-8")
    assert index.split('id="karte"')[1].count("<text ") <= 30
_RAW_WORDS = re.compile(r"(?<![\w/.-])(ftth|fttb|vdsl|hfc|dsl|lte|fwa|none|satellite|fibre|wired|mobile|offers|"
                        r"bad_number|unknown_technology|read|provider|locate|aggregate)(?![\w/.-])")


def _visible_text(page: str) -> str:
    """The words a reader sees: without scripts, styles, the configuration file shown verbatim and tags."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    page = re.sub(r'<pre class="config">.*?</pre>', " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def test_no_raw_keys_or_english_codes_are_shown(mv_atlas):
    out, *_ = mv_atlas
    pages = [out / "index.html", out / "provenance.html", out / "changes.html", *(out / "kreis").glob("*.html"),
             *sorted((out / "amt").glob("*.html"))[:30], *sorted((out / "gemeinde").glob("*.html"))[:150]]
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert ">ftth<" not in text and ">fttb<" not in text and ">dsl<" not in text, page.name
        found = _RAW_WORDS.findall(_visible_text(text))
        assert found == [], (page.relative_to(out), sorted(set(found)))
    sites = (out / "gemeinde").glob("*.html")
    assert any(">Glasfaser (FTTH)<" in p.read_text(encoding="utf-8") for p in sites)  # the sites' technology
    assert "Mobilfunk (LTE/5G)" in (out / "index.html").read_text(encoding="utf-8")


def test_first_run_has_a_changes_page_saying_why_it_is_empty(mv_atlas):
    out, *_ = mv_atlas
    page = (out / "changes.html").read_text(encoding="utf-8")
    assert "Noch nichts zu vergleichen" in page and "erste Lauf" in page
    assert 'href="changes.html"' in (out / "index.html").read_text(encoding="utf-8")


def test_gemeinden_without_addresses_are_flagged(mv_atlas):
    out, record, _ = mv_atlas
    gem = record.state.tables["gemeinde"]
    empty = gem[gem["addresses"] == 0]
    assert 0 < len(empty) < len(gem)
    index = (out / "index.html").read_text(encoding="utf-8")
    warning = index.split('id="ohne-adressen"')[1].split("</div>")[0]
    assert f"{len(empty)} Gemeinden ohne Adressen" in warning
    for row in empty.itertuples():
        assert f'href="gemeinde/{row.ags}.html"' in warning
        page = (out / "gemeinde" / f"{row.ags}.html").read_text(encoding="utf-8")
        assert "Achtung: keine Adressen." in page
        amt = (out / "amt" / f"{row.vwg_ars}.html").read_text(encoding="utf-8")
        assert f'href="../gemeinde/{row.ags}.html"' in amt.split('id="ohne-adressen"')[1].split("</div>")[0]
        kreis = (out / "kreis" / f"{row.krs_ags}.html").read_text(encoding="utf-8")
        assert 'id="ohne-adressen"' in kreis
    served = gem[gem["addresses"] > 0].iloc[0]
    assert "ohne-adressen" not in (out / "gemeinde" / f"{served.ags}.html").read_text(encoding="utf-8")


def test_search_index_finds_the_real_guestrow(mv_atlas):
    import json

    out, record, _ = mv_atlas
    text = (out / "search" / "index.js").read_text(encoding="utf-8")
    index = json.loads(text.removeprefix("window.BBCOV_SEARCH=").removesuffix(";\n"))
    gem = record.state.tables["gemeinde"]
    assert len(index["areas"]) == len(gem) + len(record.state.tables["amt"]) + len(record.state.tables["kreis"])
    hits = [a for a in index["areas"] if "gustrow" in a[5].split("|") and a[1] == "Gemeinde"]
    assert [h[0] for h in hits] == ["Güstrow"] and "guestrow" in hits[0][5].split("|")
    assert (out / hits[0][3]).is_file()
    assert index["addresses"]["count"] == len(record.state.addresses)


def test_a_one_amt_run_is_headed_with_its_amt(tmp_path):
    from coverage.report import render_overview
    from coverage.report.html import scope_name, scope_title
    from pipelines.report import shown_names
    from tests.atlas_world import build_mv_record

    record = build_mv_record(tmp_path, kreis="130715159")  # boundaries.areas: the one Amt Röbel-Müritz
    bez = record.state.boundaries.amt.set_index("vwg_ars")["bez"]  # the run's tables carry BKG's bez
    tables = shown_names({**record.state.tables, "amt": record.state.tables["amt"].assign(
        bez=record.state.tables["amt"]["vwg_ars"].map(bez))})
    assert scope_name(tables) == "Amt Röbel-Müritz"
    assert scope_title("Breitbandversorgung", tables) == "Breitbandversorgung Amt Röbel-Müritz"
    assert scope_title("Mein Atlas", tables) == "Mein Atlas"  # a configured title is kept
    page = render_overview(tables, {}, {"title": scope_title("Breitbandversorgung", tables)}, links=True)
    assert "<h1>Breitbandversorgung Amt Röbel-Müritz</h1>" in page
    assert "<h2>Kennzahlen Amt Röbel-Müritz</h2>" in page and "Mecklenburg-Vorpommern" not in page.split("</h2>")[0]
    one_kreis = shown_names(build_mv_record(tmp_path / "k", kreis="13071").state.tables)
    assert scope_name(one_kreis) == "Landkreis Mecklenburgische Seenplatte"
