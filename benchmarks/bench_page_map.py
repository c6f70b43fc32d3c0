"""Time the interactive page map in headless Chromium (Debian's, via Playwright) on one atlas page.

    python -m benchmarks.bench_page_map [REPORT_DIR] [AGS] [SCREENSHOT_DIR]

Default: the demo's latest atlas and the Hansestadt Rostock (13003000, the Gemeinde with the most
addresses). Opens the page from file://, then measures (median of 5, performance.now in the page):
loading and drawing the address layer, redrawing it (a zoom step), switching the Gemeinde layer,
and the grid layer's first draw. Needs an internal atlas of a run with addresses (not partitioned).
With SCREENSHOT_DIR also writes the README's screenshots of that atlas: ``overview.png`` (the top of the
overview page), ``map-layers.png`` (its map, white spots with planned supply), ``amt.png`` (the top of the
page of AGS's Amt), ``amt-addresses.png`` (that Amt's map with its addresses, zoomed in twice) and
``steckbrief-amt.png`` (page 1 of that Amt's Steckbrief printed to PDF the way ``bbcov report --pdf`` prints
it, rasterised by poppler's ``pdftoppm``; the PDF is written to SCREENSHOT_DIR's temporary folder only).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def main(argv: list[str]) -> None:
    from playwright.sync_api import sync_playwright

    report = Path(argv[0]) if argv else Path("reports/latest")
    ags = argv[1] if len(argv) > 1 else "13003000"
    page_path = (report / "gemeinde" / f"{ags}.html").resolve()
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(page_path.as_uri(), wait_until="load")
        page.wait_for_selector("figure[data-map-layers][data-ready]", state="attached")
        first = page.evaluate("""() => new Promise(done => { const t = performance.now();
            window.BBCOV.map.set({addr: true}, () => done(performance.now() - t)); })""")
        n = page.get_attribute("figure[data-map-layers]", "data-addresses")
        amt_href = page.locator("nav.breadcrumbs li").nth(2).locator("a").get_attribute("href") or ""

        def timed(js: str) -> float:
            return statistics.median(page.evaluate(js) for _ in range(5))

        redraw = timed("""() => { const t = performance.now();
            document.querySelector('button[data-zoom="in"]').click(); return performance.now() - t; }""")
        page.click('button[data-zoom="reset"]')
        switch = timed("""() => new Promise(done => { const t = performance.now();
            const g = window.BBCOV.map.state().group === 'fibre' ? 'all' : 'fibre';
            window.BBCOV.map.set({mode: 'share', group: g, t: '1000'}, () => done(performance.now() - t)); })""")
        grid = page.evaluate("""() => new Promise(done => { const t = performance.now();
            window.BBCOV.map.set({mode: 'grid'}, () => {
              const wait = () => window.BBCOV.grid ? done(performance.now() - t) : setTimeout(wait, 5);
              wait(); }); })""")
        if len(argv) > 2:
            shots = Path(argv[2])
            shots.mkdir(parents=True, exist_ok=True)
            page.goto((report / "index.html").resolve().as_uri(), wait_until="load")
            page.wait_for_selector("figure[data-map-layers][data-ready]", state="attached")
            page.screenshot(path=str(shots / "overview.png"))
            page.evaluate("() => new Promise(d => window.BBCOV.map.set({mode: 'spot', spot: 'white_plan'}, d))")
            page.locator("#karte").screenshot(path=str(shots / "map-layers.png"))
            page.goto((page_path.parent / amt_href).resolve().as_uri(), wait_until="load")  # the Gemeinde's Amt
            page.wait_for_selector("figure[data-map-layers][data-ready]", state="attached")
            page.screenshot(path=str(shots / "amt.png"))
            page.evaluate("() => new Promise(d => window.BBCOV.map.set({addr: true}, d))")
            page.click('button[data-zoom="in"]')
            page.click('button[data-zoom="in"]')
            page.locator("#karte").screenshot(path=str(shots / "amt-addresses.png"))
        browser.close()
    if len(argv) > 2:
        _steckbrief_page(report, (page_path.parent / amt_href).resolve(), Path(argv[2]) / "steckbrief-amt.png")
    print(f"{page_path.name}: {n} addresses; first address draw (load + draw) {first:.0f} ms; "
          f"redraw on zoom {redraw:.0f} ms; layer switch {switch:.0f} ms; grid layer (load + draw) {grid:.0f} ms")


def _steckbrief_page(report: Path, amt_page: Path, png: Path) -> None:
    """Page 1 of the Amt's Steckbrief PDF as a PNG (printed as ``bbcov report --pdf`` prints it)."""
    from pipelines.pdf import print_pdfs

    html = report / "steckbrief" / f"amt_{amt_page.stem}.html"
    with tempfile.TemporaryDirectory(dir=png.parent) as tmp:
        pdf = Path(tmp) / "steckbrief.pdf"
        print_pdfs([(html, pdf)])
        subprocess.run(["pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile", str(pdf),
                        str(Path(tmp) / "page")], check=True)
        shutil.move(Path(tmp) / "page.png", png)


if __name__ == "__main__":
    main(sys.argv[1:])
