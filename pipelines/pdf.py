"""Prints the atlas's Steckbrief pages (``steckbrief/*.html``) to PDF files with headless Chromium.

One browser for all files, :data:`PARALLEL` pages printing at a time (the machine has few cores;
more pages only queue behind each other). Chromium is a system dependency (Debian's ``chromium``
package, ``make browser-deps``), driven through Playwright; without either, :func:`require_chromium`
raises a one-line :class:`~coverage.errors.CoverageError` that says how to install it. The pages are
self-contained (CSS and maps inlined) and opened as ``file:``; any other request is refused, so the
PDFs are made offline.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from coverage.errors import CoverageError
from pipelines import io

log = logging.getLogger(__name__)

#: pages printed at the same time in the one browser
PARALLEL = 2
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic", "--disable-extensions"]
INSTALL_HINT = "install it with `make browser-deps` (Debian: apt-get install chromium)"
#: (Steckbrief page, its PDF, the PNG of its map or None)
Job = tuple[Path, Path, Path | None]
#: the map figure (map and legend) of a Steckbrief page, screenshot as the Amt's print PNG
MAP_SELECTOR = "#karte figure"
#: page number line at the foot of every printed page (Chromium fills the spans)
FOOTER = ('<div style="font-size:7pt;width:100%;text-align:center;color:#555;font-family:sans-serif">'
          '<span class="title"></span> · Seite <span class="pageNumber"></span> von <span class="totalPages"></span>'
          '</div>')


def chromium_path() -> str | None:
    """The Chromium executable (``chromium`` on the PATH, else Debian's /usr/bin/chromium), or None."""
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def require_chromium() -> str:
    """The Chromium executable; a one-line error naming the installation if it or Playwright is missing."""
    path = chromium_path()
    if path is None:
        raise CoverageError(f"PDF Steckbriefe (--pdf, [report] pdf) need headless Chromium, which is not "
                            f"installed: {INSTALL_HINT}")
    try:
        import playwright.async_api  # noqa: F401 - only checks that it can be imported
    except ImportError as exc:
        raise CoverageError(f"PDF Steckbriefe (--pdf, [report] pdf) need the Python package playwright: "
                            f"pip install 'bbcov[pdf]' ({exc})") from exc
    return path


async def _refuse_network(route: Any) -> None:
    if route.request.url.startswith(("file:", "data:")):
        await route.continue_()
    else:
        await route.abort()


async def _print_all(executable: str, jobs: Sequence[Job], parallel: int) -> None:
    from playwright.async_api import async_playwright

    queue: asyncio.Queue[Job] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            # twice the CSS pixels: the map screenshots print sharp at about 150 dpi on A4
            context = await browser.new_context(offline=True, device_scale_factor=2,
                                                viewport={"width": 900, "height": 1200})
            await context.route("**/*", _refuse_network)

            async def worker() -> None:
                page = await context.new_page()  # one page per worker, reused for each of its files
                while not queue.empty():
                    html, pdf, png = queue.get_nowait()
                    await page.goto(html.resolve().as_uri(), wait_until="load")
                    if png is not None:  # the page's map with its legend, as the browser draws it
                        io.write_bytes(png, await page.locator(MAP_SELECTOR).first.screenshot(type="png"))
                    data = await page.pdf(format="A4", print_background=True, prefer_css_page_size=True,
                                          display_header_footer=True, header_template="<div></div>",
                                          footer_template=FOOTER)
                    io.write_bytes(pdf, data)
                await page.close()

            await asyncio.gather(*(worker() for _ in range(max(1, min(parallel, len(jobs))))))
        finally:
            await browser.close()


def print_pdfs(jobs: Sequence[tuple[Path, Path] | Job], parallel: int = PARALLEL) -> float:
    """Print each (HTML file, PDF file[, PNG file or None]) with one headless Chromium: the page as PDF and,
    where a PNG file is given, a screenshot of its map figure (:data:`MAP_SELECTOR`) as that PNG; return
    the seconds it took."""
    full: list[Job] = [(j[0], j[1], j[2] if len(j) > 2 else None) for j in jobs]
    if not full:
        return 0.0
    executable = require_chromium()
    t0 = time.perf_counter()
    asyncio.run(_print_all(executable, full, parallel))
    elapsed = time.perf_counter() - t0
    log.info("pdf: %d Steckbriefe printed in %.1f s (%d pages at a time)", len(jobs), elapsed, parallel)
    return elapsed


def steckbrief_jobs(atlas_dir: Path) -> list[Job]:
    """(page, PDF, PNG) for every Steckbrief page of an atlas folder: ``steckbrief/<x>.html`` ->
    ``pdf/<x>.pdf``; an Amt's page also -> its print map ``maps/<x>.png`` (a Kreis's is drawn with
    matplotlib by the report, with scale bar and north arrow)."""
    return [(html, atlas_dir / "pdf" / f"{html.stem}.pdf",
             atlas_dir / "maps" / f"{html.stem}.png" if html.stem.startswith("amt_") else None)
            for html in sorted((atlas_dir / "steckbrief").glob("*.html"))]
