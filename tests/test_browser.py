"""The MV atlas as a planner uses it: opened in headless Chromium, clicked, sorted, filtered.

The atlas of one Kreis (Mecklenburgische Seenplatte: real boundaries, random consistent tables;
the full MV atlas is checked without a browser in test_atlas.py) is served from 127.0.0.1 by
``http.server``; every request the pages make is recorded and must stay on that server.
Screenshots go to ``test-artifacts/`` (the README's are kept in ``docs/img/``, not rewritten by tests).
Needs Chromium (``make browser-deps``) and the ``playwright`` package (``.[dev]``);
their absence is a test failure, never a silent skip.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest
import shapely

from coverage.report.search import fold, id_part
from pipelines.report import render_report
from tests.atlas_world import EVIL, FORMULA, build_mv_record

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
KREIS = "13071"  # Mecklenburgische Seenplatte: 148 Gemeinden, 20 Ämter (two named "Demmin…")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def _chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if path is None:
        pytest.fail("Chromium is not installed: run `make browser-deps` (installs Debian's chromium package)")
    return path


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


GUESTROW = "Güstrow"  # a Gemeinde of the test Kreis is renamed so (the real one is in Landkreis Rostock)


def _rename_guestrow(record) -> str:
    """Name a Gemeinde with addresses (not one of the hostile names) "Güstrow"; return its key."""
    gem = record.state.tables["gemeinde"]
    row = gem.index[(gem["addresses"] > 0) & ~gem["name"].isin([EVIL, FORMULA])][5]
    gem.loc[row, ["name", "display_name"]] = GUESTROW
    addresses = record.state.addresses
    addresses.loc[addresses["ags"] == gem.at[row, "ags"], "locality"] = GUESTROW
    return str(gem.at[row, "ags"])


@pytest.fixture(scope="module")
def atlas(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    record = build_mv_record(root / "in", kreis=KREIS, addresses=True)
    _rename_guestrow(record)
    out = root / "reports" / "run-browser"
    out.mkdir(parents=True)
    render_report(record, out)
    return out, record


@pytest.fixture(scope="module")
def server(atlas):
    out, _ = atlas
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(out)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - dev extras missing
        pytest.fail(f"the playwright package is missing: pip install -e '.[dev]' ({exc})")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Watched:
    """A page with its console errors, page errors, dialogs and requests recorded."""

    def __init__(self, browser, base: str, height: int = 1000) -> None:
        self.base = base
        self.context = browser.new_context(viewport={"width": 1280, "height": height}, locale="de-DE")
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

    def open(self, path: str) -> None:
        response = self.page.goto(self.base + path, wait_until="load")
        assert response is not None and response.ok, path

    def check_clean(self) -> None:
        assert self.errors == []
        assert self.dialogs == []
        foreign = [u for u in self.requests if not u.startswith(self.base) and not u.startswith("data:")]
        assert foreign == [], f"requests outside the local server: {foreign[:5]}"

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def watched(browser, server):
    w = Watched(browser, server)
    yield w
    w.close()


def _clickable_gemeinde(record, keys: set[str] | None = None) -> str:
    """A large Gemeinde whose bounding-box centre lies well inside it (where a click lands)."""
    gem = record.state.boundaries.gemeinde
    if keys is not None:
        gem = gem[gem["ags"].isin(keys)]
    best, best_area = None, -1.0
    for ags, geom in zip(gem["ags"], gem.geometry.values, strict=True):
        x0, y0, x1, y1 = geom.bounds
        centre = shapely.Point((x0 + x1) / 2, (y0 + y1) / 2)
        if geom.buffer(-1500).contains(centre) and geom.area > best_area:
            best, best_area = ags, geom.area
    assert best is not None
    return str(best)


def test_every_kind_of_page_loads_offline(watched, atlas):
    _out, record = atlas
    tables = record.state.tables
    pages = ["index.html", "provenance.html", f"kreis/{tables['kreis']['krs_ags'].iloc[0]}.html",
             f"amt/{tables['amt']['vwg_ars'].iloc[3]}.html", f"gemeinde/{tables['gemeinde']['ags'].iloc[7]}.html"]
    for path in pages:
        watched.open(path)
        assert watched.page.locator("h1").count() == 1
        assert watched.page.locator("footer").inner_text().count("GeoBasis-DE / BKG") >= 1
    watched.check_clean()
    assert any(u.endswith("provenance.html") for u in watched.requests)


def test_overview_map_has_one_area_per_gemeinde_and_screenshot(browser, server, atlas):
    n = len(atlas[1].state.tables["gemeinde"])
    w = Watched(browser, server, height=1500)
    try:
        w.open("index.html")
        maps = w.page.locator("#karten figure.map")
        assert maps.count() >= 4
        for i in range(maps.count()):
            assert maps.nth(i).locator("g.area").count() == n
            assert maps.nth(i).locator("a g.area").count() == n  # every area is a link
        # tooltips: each area carries a <title> with the name
        title = maps.first.locator("g.area title").first.text_content()
        assert title and "Haushalte" in title
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "overview.png"
        w.page.screenshot(path=str(shot))
        w.check_clean()
    finally:
        w.close()


def test_click_map_reaches_gemeinde_then_breadcrumbs(watched, atlas):
    _, record = atlas
    gem = record.state.tables["gemeinde"].set_index("ags")
    ags = _clickable_gemeinde(record)
    watched.open("index.html")
    area = watched.page.locator(f'#karten figure.map >> nth=0 >> g.area[data-key="{ags}"]')
    with watched.page.expect_navigation():
        area.click()
    assert watched.page.url == f"{watched.base}gemeinde/{ags}.html"
    assert watched.page.locator("h1").inner_text() == gem.at[ags, "name"]
    crumbs = watched.page.locator("nav.breadcrumbs li")
    assert crumbs.count() == 4
    with watched.page.expect_navigation():
        crumbs.nth(2).locator("a").click()  # the Amt
    assert watched.page.url == f"{watched.base}amt/{gem.at[ags, 'vwg_ars']}.html"
    with watched.page.expect_navigation():
        watched.page.locator("nav.breadcrumbs li").nth(1).locator("a").click()  # the Kreis
    assert watched.page.url == f"{watched.base}kreis/{gem.at[ags, 'krs_ags']}.html"
    watched.check_clean()


def test_amt_page_map_links_and_screenshot(browser, server, atlas):
    _, record = atlas
    gem = record.state.tables["gemeinde"]
    amt = gem.groupby("vwg_ars").size().sort_values(ascending=False).index[0]  # the Amt with most Gemeinden
    members = gem[gem["vwg_ars"] == amt]
    w = Watched(browser, server, height=1100)
    try:
        w.open(f"amt/{amt}.html")
        assert w.page.locator("#karte svg g.area").count() == len(members)
        assert w.page.locator("#tabelle-gemeinden tbody tr").count() == len(members)
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "amt.png"
        w.page.screenshot(path=str(shot))
        target = _clickable_gemeinde(record, set(members["ags"]))
        with w.page.expect_navigation():
            w.page.locator(f'#karte g.area[data-key="{target}"]').click()
        assert w.page.url == f"{w.base}gemeinde/{target}.html"
        w.check_clean()
    finally:
        w.close()


def _column_values(page, table: str, col: int) -> list[float]:
    return page.eval_on_selector_all(
        f"#{table} tbody tr", f"rows => rows.map(r => parseFloat(r.cells[{col}].getAttribute('data-value')))")


def test_table_header_sorts_and_filter_filters(watched, atlas):
    _, record = atlas
    watched.open("index.html")
    page = watched.page
    headers = page.locator("#tabelle-aemter thead th")
    col = next(i for i in range(headers.count()) if headers.nth(i).inner_text().strip().startswith("Haushalte"))
    before = _column_values(page, "tabelle-aemter", col)
    assert before != sorted(before, reverse=True)
    headers.nth(col).locator("button").click()
    assert headers.nth(col).get_attribute("aria-sort") == "descending"
    after = _column_values(page, "tabelle-aemter", col)
    assert after == sorted(before, reverse=True)
    headers.nth(col).locator("button").click()
    assert _column_values(page, "tabelle-aemter", col) == sorted(before)
    # text sort of the name column (German collation)
    headers.nth(0).locator("button").click()
    names = page.eval_on_selector_all("#tabelle-aemter tbody tr", "rows => rows.map(r => r.cells[0].innerText)")
    assert names[0].lower() <= names[-1].lower()
    # filter: type part of a name, only matching rows remain visible
    amt = record.state.tables["amt"]
    needle = "Demmin"
    page.fill('input[data-filter-for="tabelle-aemter"]', needle)
    visible = page.locator("#tabelle-aemter tbody tr:not([hidden])")
    expected = int(amt["name"].astype(str).str.contains(needle).sum())
    assert 0 < expected < len(amt)
    assert visible.count() == expected  # no Kreis name in MV contains "Demmin"
    assert "von" in page.locator('[data-count-for="tabelle-aemter"]').inner_text()
    watched.check_clean()


def test_hostile_names_are_inert_in_the_browser(watched, atlas):
    _, record = atlas
    gem = record.state.tables["gemeinde"]
    for name in (EVIL, FORMULA):
        ags = gem.loc[gem["name"] == name, "ags"].iloc[0]
        watched.open(f"gemeinde/{ags}.html")
        assert watched.page.locator("h1").inner_text() == name
        assert watched.page.locator("main script, header script").count() == 0
    watched.open("index.html")
    watched.page.fill('input[data-filter-for="tabelle-aemter"]', "<script>")
    watched.check_clean()  # no dialog opened, no request to http://x


# --------------------------------------------------------------------------- the interactive page map

def _wait_map(page) -> None:
    page.wait_for_selector("figure[data-map-layers][data-ready]", state="attached")


def _fill(page, ags: str) -> tuple[str, str]:
    g = page.locator(f'#karte g.area[data-key="{ags}"]')
    return g.locator("path").get_attribute("fill"), g.locator("title").text_content()


def test_layer_switch_changes_fills_to_the_expected_classes(watched, atlas):
    import numpy as np

    from coverage.report.maps import classify, share_classes
    from coverage.report.pagemap import spot_classes

    _, record = atlas
    gem = record.state.tables["gemeinde"]
    row = gem[gem["households"] > 0].iloc[5]
    ags = str(row["ags"])
    watched.open(f"amt/{row['vwg_ars']}.html")
    page = watched.page
    _wait_map(page)
    share = share_classes()
    before = _fill(page, ags)[0]
    assert before == share.colours[classify([row["share_ge_100_all"]], share)[0]]
    page.select_option('#karte [data-ctl="group"]', "fibre")
    page.select_option('#karte [data-ctl="t"]', "1000")
    fill, title = _fill(page, ags)
    assert fill == share.colours[classify([row["share_ge_1000_fibre"]], share)[0]]
    assert "1000 Mbit/s (Glasfaser" in title or "1000 Mbit/s (" in title
    assert "≥ 1000 Mbit/s" in page.locator("#karte .legend-title").first.inner_text()
    # every area of the page got the class of its own value
    members = gem[gem["vwg_ars"] == row["vwg_ars"]]
    got = page.eval_on_selector_all("#karte g.area", "gs => gs.map(g => [g.dataset.key, g.dataset.class])")
    want = {str(k): ("nodata" if c < 0 else str(c)) for k, c in
            zip(members["ags"], classify(members["share_ge_1000_fibre"], share), strict=True)}
    assert dict(got) == want
    # white/grey spots: the share of households in grey spots with planned supply, in the spot palette
    page.select_option('#karte [data-ctl="mode"]', "spot")
    page.select_option('#karte [data-ctl="spot"]', "grey_plan")
    spot = spot_classes()
    value = 100 * row["hh_fund_grey_plan"] / row["households"]
    fill, title = _fill(page, ags)
    assert fill == spot.colours[classify([value], spot)[0]]
    assert "Graue Flecken mit geplantem Ausbau" in title
    assert page.locator('#karte [data-ctl="group"]').is_hidden()
    assert np.isclose(float(title.split(": ")[1].split("\u00a0%")[0].replace(",", ".")), value, atol=0.051)
    watched.check_clean()


def test_grid_layer_draws_the_runs_cells(watched, atlas):
    _, record = atlas
    watched.open("index.html")
    page = watched.page
    _wait_map(page)
    page.select_option('#karte [data-ctl="mode"]', "grid")
    page.wait_for_function("() => window.BBCOV.grid && window.BBCOV.grid.x.length > 0")
    coloured = page.evaluate("""() => { const c = document.querySelector('#karte canvas.map-under');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let i = 3; i < d.length; i += 4) { if (d[i] > 0) n++; } return n; }""")
    assert coloured > 0
    assert page.locator("#karte g.area path[fill-opacity='0']").count() == page.locator("#karte g.area").count()
    cells = page.evaluate("() => window.BBCOV.grid.x.length")
    import pyogrio

    assert cells == len(pyogrio.read_dataframe(record.run_dir / "grid" / "grid_100m.gpkg", read_geometry=False))
    watched.check_clean()


def _pixel(page, x: float, y: float) -> str:
    return page.evaluate("""([x, y]) => { const p = window.BBCOV.map.screen(x, y);
        const c = document.querySelector('#karte canvas.map-over'); const r = window.devicePixelRatio || 1;
        const d = c.getContext('2d').getImageData(Math.round(p[0] * r), Math.round(p[1] * r), 1, 1).data;
        return '#' + [d[0], d[1], d[2]].map(v => v.toString(16).padStart(2, '0')).join(''); }""", [x, y])


def test_address_layer_shows_exactly_the_gemeindes_addresses_in_their_colours(watched, atlas):
    import numpy as np
    import shapely as sh

    from coverage.report.pagemap import ADDRESS_CLASSES, address_class
    from tests.atlas_world import STREET_EVIL

    _, record = atlas
    res = record.state.results
    first = res.iloc[0]  # its street is the hostile one
    ags = str(first["ags"])
    mine = res[res["ags"] == ags]
    watched.open(f"gemeinde/{ags}.html")
    page = watched.page
    _wait_map(page)
    page.check('#karte [data-ctl="addr"]')
    page.wait_for_selector("#karte[data-addresses], figure[data-addresses]", state="attached")
    assert page.locator("figure[data-map-layers]").get_attribute("data-addresses") == str(len(mine))
    xs = np.round(sh.get_x(mine.geometry.values)).astype(int)
    ys = np.round(sh.get_y(mine.geometry.values)).astype(int)
    got = page.evaluate(f"() => {{ const d = window.BBCOV.addr['{ags}']; return d.x.map((x, i) => [x, d.y[i]]); }}")
    assert sorted(map(tuple, got)) == sorted(zip(xs.tolist(), ys.tolist(), strict=True))
    classes = address_class(mine["best_down_all"].to_numpy())
    # the point's centre pixel has its class colour (the overlay canvas draws nothing else there)
    for x, y, c in zip(xs.tolist(), ys.tolist(), classes.tolist(), strict=True):
        assert _pixel(page, x, y) == ADDRESS_CLASSES[c][1], (x, y, c)
    legend = page.locator("#karte .legend-addresses").inner_text()
    assert "alle Technologien" in legend and "kein Angebot" in legend
    # the tooltip of the hostile street shows it as text
    page.locator("#karte svg.atlas-map").scroll_into_view_if_needed()
    p = page.evaluate(f"() => window.BBCOV.map.screen({xs[0]}, {ys[0]})")
    box = page.locator("#karte svg.atlas-map").bounding_box()
    page.mouse.move(box["x"] + p[0], box["y"] + p[1])
    tip = page.locator("#karte .map-tip")
    assert STREET_EVIL in tip.inner_text()
    assert "Förderfähig" in tip.inner_text()
    # the cost-estimate tree: the Gemeinde's lines (a chain through its eligible addresses and one link)
    page.check('#karte [data-ctl="tree"]')
    kinds = page.evaluate(f"() => window.BBCOV.addr['{ags}'].tree_kind")
    eligible = int(mine["fund_gigabit_2024"].sum())
    assert sorted(kinds) == [0] * (eligible - 1) + [1]
    watched.check_clean()


def test_amt_page_loads_the_addresses_of_all_its_gemeinden(watched, atlas):
    _, record = atlas
    res = record.state.results
    gem = record.state.tables["gemeinde"]
    amt = gem.groupby("vwg_ars").size().sort_values(ascending=False).index[0]
    watched.open(f"amt/{amt}.html")
    page = watched.page
    _wait_map(page)
    page.check('#karte [data-ctl="addr"]')
    page.wait_for_selector("figure[data-addresses]", state="attached")
    n = int((res["vwg_ars"] == amt).sum())
    assert page.locator("figure[data-map-layers]").get_attribute("data-addresses") == str(n)
    # zooming in keeps area links working
    page.locator('#karte button[data-zoom="in"]').click()
    assert page.locator("#karte svg.atlas-map").get_attribute("viewBox") != "0 0"
    watched.check_clean()
def _search(page, text: str) -> list[str]:
    """Type ``text`` into the header search and return the result labels once they settle."""
    page.fill("#atlas-suche", text)
    page.wait_for_function("() => !document.querySelector('form.atlas-search').hasAttribute('data-loading')")
    return page.eval_on_selector_all(".search-results li a", "links => links.map(a => a.textContent)")


def test_search_gustrow_enter_opens_guestrow(watched, atlas):
    _, record = atlas
    gem = record.state.tables["gemeinde"]
    ags = gem.loc[gem["name"] == GUESTROW, "ags"].iloc[0]
    amt = record.state.tables["amt"]["vwg_ars"].iloc[3]
    watched.open(f"amt/{amt}.html")  # a page one folder down: links start with ../
    assert _search(watched.page, "guestrow")[0] == GUESTROW
    watched.page.fill("#atlas-suche", "")
    watched.page.type("#atlas-suche", "Gustrow")
    with watched.page.expect_navigation():
        watched.page.press("#atlas-suche", "Enter")
    assert watched.page.url == f"{watched.base}gemeinde/{ags}.html"
    assert watched.page.locator("h1").inner_text() == GUESTROW
    # by key, from the overview: the Kreis key finds the Kreis first
    watched.open("index.html")
    labels = _search(watched.page, KREIS)
    assert labels[0] == record.state.tables["kreis"]["name"].iloc[0] or labels[0].endswith("Seenplatte")
    assert _search(watched.page, "xqzzy") == []
    assert watched.page.locator(".search-status").inner_text() == "Kein Treffer"
    watched.check_clean()


def test_search_fold_and_id_hash_agree_with_python(watched):
    watched.open("index.html")
    words = ["Güstrow", "STRAẞE 12a", "Sankt-Ägidien", "Łódź", "  Bad  Doberan ", "MV-0000001", "Amt_Neverin"]
    folded = watched.page.evaluate("words => words.map(w => window.bbcovSearch.fold(w))", words)
    assert folded == [fold(w) for w in words]
    parts = watched.page.evaluate("words => words.map(w => window.bbcovSearch.idPart(w, 53))", words)
    assert parts == [id_part(w, 53) for w in words]


def test_address_search_opens_the_gemeinde_with_the_address_in_the_fragment(watched, atlas):
    _out, record = atlas
    gem = record.state.tables["gemeinde"]
    ags = gem.loc[gem["name"] == GUESTROW, "ags"].iloc[0]
    watched.open("index.html")
    hits = _search(watched.page, "ueber der muehle 2")  # spelled-out umlauts, street and house number
    assert len(hits) == 10 and all(h.startswith("Über der Mühle 2, 17000 ") for h in hits)  # one per Gemeinde
    # with the place after the number: exactly the one address
    assert _search(watched.page, "Über der Mühle 2, Guestrow") == ["Über der Mühle 2, 17000 Güstrow"]
    address = f"AD-{ags}-1"
    assert _search(watched.page, address.lower()) == ["Über der Mühle 2, 17000 Güstrow"]  # the address id
    with watched.page.expect_navigation():
        watched.page.press("#atlas-suche", "Enter")
    assert watched.page.url == f"{watched.base}gemeinde/{ags}.html#adresse={address}"
    loaded = [u for u in watched.requests if "/search/" in u]
    # only the parts the queries need: one street-directory part, one address part, the id parts
    assert {u.split("/search/")[1].split("_")[0] for u in loaded} == {"index.js", "s", "a", "id"}
    assert sum("/search/s_" in u for u in loaded) == 1 and sum("/search/a_" in u for u in loaded) == 1
    watched.check_clean()


def test_address_in_the_fragment_is_marked_on_the_map(watched, atlas):
    """``#adresse=<id>`` (the search's hit) switches the addresses on, centres the map on the address,
    rings it and says so; on hashchange an unknown (hostile) id says "nicht gefunden", as text."""
    from urllib.parse import quote

    from coverage.report.pagemap import ADDRESS_CLASSES, address_class
    from tests.atlas_world import STREET_EVIL

    _, record = atlas
    res = record.state.results
    first = res.iloc[0]  # its street is the hostile one
    ags, address = str(first["ags"]), str(first["address_id"])
    x, y = shapely.get_x(first.geometry), shapely.get_y(first.geometry)
    watched.open(f"gemeinde/{ags}.html#adresse={quote(address)}")
    page = watched.page
    page.wait_for_selector("figure[data-marked]", state="attached")
    fig = page.locator("figure[data-map-layers]")
    assert fig.get_attribute("data-marked") == address
    assert page.locator('#karte [data-ctl="addr"]').is_checked()
    assert page.evaluate("() => window.BBCOV.map.state().addr") is True
    assert page.locator("#karte svg.atlas-map").get_attribute("viewBox") != "0 0 " + " ".join(
        page.evaluate("() => { const b = document.querySelector('#karte svg.atlas-map').viewBox.baseVal;"
                      " return [String(b.width), String(b.height)]; }"))
    p = page.evaluate(f"() => window.BBCOV.map.screen({x}, {y})")
    box = page.locator("#karte svg.atlas-map").bounding_box()
    assert 0 <= p[0] <= box["width"] and 0 <= p[1] <= box["height"], (p, box)
    assert abs(p[0] - box["width"] / 2) < 2 and abs(p[1] - box["height"] / 2) < 2  # centred on it
    view = page.viewport_size
    assert 0 <= box["x"] + p[0] <= view["width"] and 0 <= box["y"] + p[1] <= view["height"]  # scrolled to it
    klass = int(address_class(res["best_down_all"].to_numpy()[:1])[0])
    assert _pixel(page, x, y) == ADDRESS_CLASSES[klass][1]  # the point keeps its colour, the ring is around it
    ring = page.evaluate("""([x, y]) => { const p = window.BBCOV.map.screen(x, y);
        const c = document.querySelector('#karte canvas.map-over'); const r = window.devicePixelRatio || 1;
        const out = [];
        for (let dx = 13; dx <= 17; dx++) {
          const d = c.getContext('2d').getImageData(Math.round((p[0] + dx) * r), Math.round(p[1] * r), 1, 1).data;
          out.push(d[0] + d[1] + d[2] === 0 && d[3] === 255); }
        return out; }""", [x, y])
    # zoomed to 1/6 of the width the points have a radius of 5.9 px: the mark's black ring lies 9 px further
    # out (13.6-16.1 px from the centre), beyond the site ring (7.4-9.4 px) this school carries
    assert any(ring), ring
    status = page.locator("#karte .map-status").inner_text()
    assert f"Adress-ID {address}" in status and "markiert" in status and STREET_EVIL in status
    tip = page.locator("#karte .map-tip")
    assert tip.is_visible() and f"Adress-ID: {address}" in tip.inner_text()
    # the mouse over the map replaces the tooltip; an unknown id (hostile characters) is named as text
    page.mouse.move(box["x"] + 2, box["y"] + p[1])
    assert tip.is_hidden()
    evil = '<img src=x onerror="alert(1)">'
    page.evaluate("h => { window.location.hash = h; }", "adresse=" + quote(evil))
    page.wait_for_function("() => document.querySelector('figure[data-map-layers]').getAttribute('data-marked') === ''")
    assert page.locator("#karte .map-status").inner_text() == (
        f"Adresse „{evil}“ nicht gefunden: nicht unter den Adressen dieser Karte.")
    assert page.locator("#karte img").count() == 0
    watched.check_clean()


def test_search_works_from_file_urls(browser, atlas):
    """Opened from disk (file://), the index and the address parts load by <script>, no fetch."""
    out, _ = atlas
    with _german_page(browser, out / "index.html") as (page, errors):
        assert _search(page, "Gustrow")[0] == GUESTROW
        assert _search(page, "Lindenstr 1 Gustrow") == ["Lindenstraße 1, 17000 Güstrow"]
        assert errors == []


@contextlib.contextmanager
def _german_page(browser, path: Path):
    """A page of a new German-locale browser context opened at ``path`` (file://), with the list its
    script errors are collected into; the context is closed afterwards."""
    context = browser.new_context(locale="de-DE")
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.as_uri())
        yield page, errors
    finally:
        context.close()


@pytest.fixture(scope="module")
def search_world(tmp_path_factory):
    """The synthetic multi-Land addresses of tests/search_world.py in small parts (3,000 bytes), with a
    page that loads search/index.js and search.js only, opened from file://."""
    import pandas as pd

    from coverage.report.search import AddressSource, iter_search_files
    from tests.search_world import search_chunks, search_tables

    out = tmp_path_factory.mktemp("search-world")
    chunks = search_chunks()
    source = AddressSource(sum(len(c) for c in chunks), lambda: chunks)
    for path, text in iter_search_files(search_tables(), source, out, 3000):
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_text(text, encoding="utf-8")
    script = (REPO / "coverage" / "report" / "static" / "search.js").read_text(encoding="utf-8")
    form = ('<form class="atlas-search" data-root=""><input type="search" id="atlas-suche">'
            '<span class="search-status"></span><ul class="search-results" hidden></ul></form>')
    (out / "index.html").write_text('<!doctype html><meta charset="utf-8"><title>Suche</title>'
                                    f'{form}<script src="search/index.js"></script><script>{script}</script>',
                                    encoding="utf-8")
    return out, pd.concat(chunks, ignore_index=True)


def _address_query(page, text: str) -> tuple[list[dict], str, dict[str, int]]:
    """search.js's address search for ``text``: (hits, hint, parts of each kind it loaded)."""
    before = page.eval_on_selector_all("script[src]", "s => s.map(x => x.getAttribute('src'))")
    hits, hint = page.evaluate("""q => new Promise(done => window.bbcovSearch.addresses(window.BBCOV_SEARCH, "",
        window.bbcovSearch.fold(q), (hits, hint) => done([hits, hint])))""", text)
    after = page.eval_on_selector_all("script[src]", "s => s.map(x => x.getAttribute('src'))")
    new = [s.split("/")[-1].split("_")[0] for s in after if s not in before]
    return hits, hint, {kind: new.count(kind) for kind in ("s", "a", "id")}


def test_address_queries_find_exactly_the_matching_addresses(browser, search_world):
    """Multi-Land, small parts: a street with number and place finds exactly the addresses that
    match (computed from the rows), loading at most 3 directory and 8 address parts; a street in
    more parts than that (no place) offers its Gemeinden, and taking one finds its addresses; ids
    (one in a chunk of another Land, one without street) find their address."""
    from urllib.parse import unquote

    from coverage.report.search import fold
    from tests.search_world import expected_ids, search_tables

    out, frame = search_world
    names = dict(zip(search_tables()["gemeinde"]["ags"], search_tables()["gemeinde"]["name"], strict=True))
    with _german_page(browser, out / "index.html") as (page, errors):
        queries = [("Hauptstr 1, Güstrow", "hauptstr", "1", "gustrow"),
                   ("Hauptstraße 59 Dorf Da", "hauptstrasse", "59", "dorf da"),  # the 600-address street
                   ("hauptstrasse 2 neuenkirchen", "hauptstrasse", "2", "neuenkirchen"),  # two Gemeinden
                   ("Hauptstraße 4 Warnemünde", "hauptstrasse", "4", "warnemunde"),  # a locality, not a Gemeinde
                   ("Hauptstrasse 1 Gross Koris", "hauptstrasse", "1", "gross koris"),
                   ("ueber der muehle 4", "ueber der muehle", "4", ""),  # in few parts: no place needed
                   ("Weg C 2", "weg c", "2", ""), ("Lindenweg", "lindenweg", "", "")]
        for text, street, number, place in queries:
            hits, hint, loaded = _address_query(page, text)
            ids = {unquote(h["path"].split("#adresse=")[1]) for h in hits}
            want = expected_ids(frame, names, street, number, place)
            assert ids == want and want, text
            assert all(h["path"].startswith("gemeinde/") for h in hits) and hint == ""
            assert loaded["s"] <= 3 and loaded["a"] <= 8 and loaded["id"] <= 1, (text, loaded)
        # no place: the Hauptstraße is in every Gemeinde (24), in more than 8 parts: its Gemeinden are offered
        hits, hint, loaded = _address_query(page, "Hauptstraße 5")
        assert sorted(h["fill"] for h in hits) == sorted(f"Hauptstraße 5, {n}" for n in names.values())
        assert hint == "Straße in 24 Gemeinden: Ort dazuschreiben oder wählen" and loaded["a"] == 0
        hits, _, _ = _address_query(page, next(h["fill"] for h in hits if h["fill"].endswith("Neuenkirchen")))
        assert {unquote(h["path"].split("#adresse=")[1]) for h in hits} == expected_ids(
            frame, names, "hauptstrasse", "5", "neuenkirchen")
        # ids: the stray (a Land-02 address in the chunk of Land 01) and one without street
        stray = frame[frame["ags"].str.startswith("02")].iloc[-1]
        bare = frame[frame["street"] == ""].iloc[1]
        for row in (stray, bare):
            hits, _, _ = _address_query(page, str(row["address_id"]).lower())
            assert [h["path"] for h in hits] == [f"gemeinde/{row['ags']}.html#adresse={row['address_id']}"]
        assert _address_query(page, str(bare["address_id"]))[0][0]["label"] == f"{bare['house_number']}, " \
            f"{bare['locality']}"
        assert fold("Groß Köris") == "gross koris"
        # in the field: the offers are listed with the hint; Enter takes the first (writes its Gemeinde in)
        labels = _search(page, "Hauptstraße 5")
        assert labels[0] == "Hauptstraße 5, Dorf Ba" and len(labels) == 10
        assert page.locator(".search-status").inner_text() == (
            "die ersten 10 von 24 Treffern · Straße in 24 Gemeinden: Ort dazuschreiben oder wählen")
        page.press("#atlas-suche", "Enter")
        page.wait_for_function("() => document.querySelector('#atlas-suche').value === 'Hauptstraße 5, Dorf Ba'")
        page.wait_for_function("() => !document.querySelector('form.atlas-search').hasAttribute('data-loading')")
        labels = page.eval_on_selector_all(".search-results li a", "links => links.map(a => a.textContent)")
        assert labels[0] == "Hauptstraße 5, 01020 Dorf Ba"
        assert errors == []
