"""Writes the planner-facing atlas of a run into ``out_dir`` (later ``reports/<run>/``).

::

    index.html                 Land overview (maps, Kreis/Amt tables, ranked Gemeinden, downloads)
    provenance.html            inputs with SHA-256, row accounting, quarantine summary, configuration
    kreis/<krs_ags>.html       one page per Kreis, with its map
    amt/<vwg_ars>.html         one page per Amt, with its map
    gemeinde/<ags>.html        one page per Gemeinde, with a locator map (its Amt, highlighted)
    changes.html               changes since the previous run (on a first run: that there is nothing to compare)
    search/index.js            the search index of every page (areas); internal profile also address parts
                               search/a_<n>.js, the street directory search/s_<n>.js and search/id_<n>.js
    steckbrief/<level>_<key>.html  the print page ("Steckbrief") of each Kreis and Amt
    pdf/<level>_<key>.pdf      those printed by headless Chromium (``[report] pdf``, :mod:`pipelines.pdf`)
    maps/*.svg, maps/*.png     the maps as files (PNG for print: overview and Kreis maps; Amt maps with the PDFs)
    downloads/                 coverage.xlsx, CSV (plain and German), areas.gpkg; the plain CSVs that
                               the run folder holds too are hard links of the run's files (one inode,
                               not a second copy; a copy only across file systems)

Map geometry is simplified once per run and shared by every map. The overview and Kreis
print maps are drawn with matplotlib (an Amt's print map is Chromium's screenshot of its
Steckbrief map, made with the PDFs); the many page maps are written as SVG directly
from the simplified geometry (milliseconds each), see :mod:`coverage.report.svgmap`.
The matplotlib maps, the workbook and the GeoPackage are made in up to two worker processes
(from a fork server; scripts calling :func:`render_report` need the usual ``if __name__ ==
"__main__":`` guard; the ``bbcov`` command has it). The page maps and pages are written by this
process and a forked one, each a share of the Kreise and Ämter, while a third forked process
writes the CSV downloads and the page maps' data files (:func:`pipelines.processes.run_shared`:
forked, they read the tables and the geometry without a copy).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from coverage.config import ReportConfig, RunConfig
from coverage.disclosure import report_rows
from coverage.errors import CoverageError
from coverage.model import GROUP_LABELS, LEVEL_KEYS, Boundaries, threshold_tag
from coverage.report import choropleth_png, choropleth_svg, prepare_map_geometry, render_overview
from coverage.report.atlas import (
    STECKBRIEF_LEVELS,
    AtlasData,
    MapBlock,
    area_page_context,
    atlas_data,
    render_area_page,
    render_provenance,
    render_steckbrief,
    steckbrief_path,
)
from coverage.report.changes_page import render_changes, render_no_changes
from coverage.report.geometry import MapGeometry
from coverage.report.html import scope_name, scope_title
from coverage.report.maps import column_label, format_date
from coverage.report.search import SEARCH_COLUMNS, AddressSource, frame_source, iter_search_files, parquet_source
from coverage.report.svgmap import draw_area_map, legend_entries
from coverage.sections import DisclosureRules
from pipelines import export, io, map_data
from pipelines.cache import ADDRESSES_FILE
from pipelines.pdf import print_pdfs, require_chromium, steckbrief_jobs
from pipelines.processes import run_shared, worker_pool
from pipelines.runner import RunRecord

log = logging.getLogger(__name__)

#: (threshold, group) of the overview maps, in display order; those not in the run are skipped.
OVERVIEW_MAPS = ((30, "all"), (100, "all"), (1000, "all"), (1000, "fibre"), (100, "mobile"))
#: The figure mapped on the Kreis, Amt and Gemeinde pages (falls back to the first share column).
PAGE_MAP_COLUMN = "share_ge_100_all"
SITE_COLUMNS = ["address_id", "site_kind", "site_kind_label", "site_name", "street", "house_number", "postcode",
                "locality", "ags", "vwg_ars", "krs_ags", "gemeinde_name", "amt_name", "kreis_name", "best_down",
                "best_up", "best_tech", "best_provider", "plan_best_down", "service_class"]


def bkg_attribution(valid_date: str | None) -> str:
    year = valid_date[-4:] if valid_date and valid_date[-4:].isdigit() else ""
    return f"© GeoBasis-DE / BKG {year} (Daten verändert)".replace("  ", " ")


def _size(path: Path) -> str:
    n = path.stat().st_size
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f} MB".replace(".", ",")
    return f"{max(n / 1000, 0.1):.0f} kB"


def _draw(kind: str, geometry: MapGeometry, table: pd.DataFrame, column: str, opts: dict) -> str | bytes:
    """One matplotlib map (runs in a worker process): ``kind`` is "svg" or "png"."""
    if kind == "svg":
        return choropleth_svg(geometry, table, "gemeinde", column, **opts)
    return choropleth_png(geometry, table, "gemeinde", column, **opts)


def _map_columns(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """The columns a map needs (keeps what is sent to the worker processes small)."""
    keep = ["ags", "name", column, "households", column.replace("share_ge_", "hh_lt_")]
    return table[[c for c in dict.fromkeys(keep) if c in table.columns]]


def _run_csvs(run_tables_dir: Path, tables: Mapping[str, pd.DataFrame], *, with_sites: bool) -> dict[str, Path]:
    """Download stem -> the run folder's CSV with the same bytes, written from the same frames by
    :func:`pipelines.outputs.write_outputs`: ``tables/coverage_<level>.csv`` and ``sites.csv`` next to
    ``tables/``. The plain CSV downloads become hard links of these instead of second copies."""
    files = {f"coverage_{level}": run_tables_dir / f"coverage_{level}.csv" for level in tables}
    if with_sites:
        files["sites"] = run_tables_dir.parent / "sites.csv"
    return files


def _submit_overview_maps(pool: ProcessPoolExecutor, geometry: MapGeometry, gem: pd.DataFrame,
                          attributions: list[str], data_date: str
                          ) -> tuple[dict[str, Future], dict[str, str], dict[str, dict[str, str]]]:
    """Start the overview maps (SVG and PNG) in the workers: (file -> future, caption -> SVG file,
    caption -> the map's file links)."""
    pending: dict[str, Future] = {}
    captions, map_files = {}, {}
    for t, group in OVERVIEW_MAPS:
        column = f"share_ge_{threshold_tag(t)}_{group}"
        if column not in gem.columns:
            continue
        caption = f"Anteil der Haushalte mit ≥ {threshold_tag(t)} Mbit/s ({GROUP_LABELS.get(group, group)})"
        opts = {"title": caption, "legend_title": "Anteil der Haushalte",
                "subtitle": f"je Gemeinde, Datenstand {format_date(data_date)}", "attributions": attributions,
                "data_date": data_date}
        name = f"maps/gemeinde_{column}"
        table = _map_columns(gem, column)
        pending[f"{name}.svg"] = pool.submit(_draw, "svg", geometry, table, column,
                                             {**opts, "link_template": "gemeinde/{key}.html"})
        pending[f"{name}.png"] = pool.submit(_draw, "png", geometry, table, column, opts)
        captions[caption] = f"{name}.svg"
        map_files[caption] = {"png": f"{name}.png", "svg_file": f"{name}.svg"}
    return pending, captions, map_files


_DOWNLOAD_LABELS = {
    "downloads/coverage.xlsx": "Arbeitsmappe (XLSX): alle Ebenen, Standorte, Förderregeln, Quarantäne",
    "downloads/areas.gpkg": "GeoPackage für QGIS: Gemeinden, Ämter, Kreise, Land mit allen Zahlen"}


def _download_links(out_dir: Path, downloads: list[str]) -> list[dict[str, str]]:
    """Label, link and size of every download, as the overview lists them."""
    links = [{"label": label, "href": p, "size": _size(out_dir / p)} for p, label in _DOWNLOAD_LABELS.items()
             if p in downloads]
    links += [{"label": f"CSV{' (deutsches Excel)' if p.endswith('_de.csv') else ''}: "
                        f"{Path(p).stem.removesuffix('_de')}", "href": p, "size": _size(out_dir / p)}
              for p in downloads if p.endswith(".csv")]
    return links


def _page_map_column(gem: pd.DataFrame) -> str:
    return PAGE_MAP_COLUMN if PAGE_MAP_COLUMN in gem.columns else \
        next(c for c in gem.columns if c.startswith("share_ge_"))


_PAGE_LINK = "../gemeinde/{key}.html"  # from kreis/, amt/ and gemeinde/ pages alike
#: At most this many place names per page map (largest Gemeinden first, none overlapping).
MAX_LABELS = 40
OVERVIEW_LABELS = 30


def _map_data(out_dir: Path, gem: pd.DataFrame, column: str, cfg: RunConfig, results: pd.DataFrame | None,
              run_dir: Path | None, map_crs: object, public: bool
              ) -> tuple[list[str], list[Callable[[], object]], dict[tuple[str, str], Mapping[str, str]],
                         dict[str, str]]:
    """The page maps' data files (layers; grid and addresses in the internal atlas only): their paths, the
    jobs that write the layers and addresses (run alongside the pages; the grid is written here), the
    ``data-map-*`` attributes of every page map (by level and key) and the overview's."""
    groups, thresholds = list(cfg.analysis.groups), list(cfg.analysis.thresholds_mbps)
    written = [] if public else map_data.write_grid(out_dir, run_dir, map_crs, thresholds, groups)
    grid = bool(written)
    jobs: list[Callable[[], object]] = [
        functools.partial(map_data.write_layers, out_dir, gem, groups, thresholds, column, grid)]
    written.append("maps/layers.js")
    with_addr: set[str] = set()
    with_tree: set[str] = set()
    if not public and results is not None:
        per, with_tree = map_data.address_layer(results, run_dir, groups,
                                                [(r.name, r.label) for r in cfg.funding_rules])
        jobs.append(functools.partial(map_data.write_address_files, out_dir, per))
        written += [f"addr/{key}.js" for key in per]
        with_addr = set(per)
    members = {k: sorted(set(part["ags"].astype(str)) & with_addr)
               for k, part in gem.groupby(gem["vwg_ars"].astype(str), sort=False)}
    figures: dict[tuple[str, str], Mapping[str, str]] = {}
    for level, keys in (("kreis", gem["krs_ags"].astype(str).unique()), ("amt", members),
                        ("gemeinde", gem["ags"].astype(str))):
        for key in keys:
            addr = ([key] if key in with_addr else []) if level == "gemeinde" else members.get(key, []) \
                if level == "amt" else []
            figures[(level, key)] = map_data.figure_data("../", grid, addr, bool(set(addr) & with_tree), column)
    return written, jobs, figures, dict(map_data.figure_data("", grid, [], False, column))


def _overview_svg(geometry: MapGeometry, gem: pd.DataFrame, column: str) -> str:
    """The overview's interactive map (every Gemeinde, linked)."""
    return draw_area_map(geometry, gem, "gemeinde", column, link_template="gemeinde/{key}.html",
                         label=f"Karte: {column_label(column)}", max_labels=OVERVIEW_LABELS).svg()


def _draw_batch(geometry: MapGeometry, maps: list[tuple[pd.DataFrame, str, dict]]) -> list[bytes]:
    """Several matplotlib PNG maps in one worker task: the geometry is sent to the worker once for all."""
    return [choropleth_png(geometry, table, "gemeinde", column, **opts) for table, column, opts in maps]


#: Kreis print maps per worker task (about 0.3 s each): few enough pickles of the map geometry, enough
#: tasks for both workers.
PNG_BATCH = 25


def _submit_kreis_pngs(pool: ProcessPoolExecutor, geometry: MapGeometry, by_kreis: Mapping[str, pd.DataFrame],
                       names: Mapping[tuple[str, str], str], column: str, attributions: list[str], data_date: str
                       ) -> list[tuple[list[str], Future]]:
    """Start the print PNG of every Kreis (matplotlib: scale bar, north arrow) in the worker processes,
    in batches; returns (files, future of their bytes) per batch, in Kreis order."""
    label = column_label(column)
    maps, files = [], []
    for key, subset in by_kreis.items():
        opts = {"title": names.get(("kreis", key), key), "legend_title": f"{label}, je Gemeinde",
                "subtitle": f"{label} je Gemeinde, Datenstand {format_date(data_date)}",
                "attributions": attributions, "data_date": data_date, "dpi": 150}
        maps.append((_map_columns(subset, column), column, opts))
        files.append(f"maps/kreis_{key}.png")
    return [(files[i:i + PNG_BATCH], pool.submit(_draw_batch, geometry, maps[i:i + PNG_BATCH]))
            for i in range(0, len(maps), PNG_BATCH)]


_PAGE_WORDS = {"kreis": "Kreis", "amt": "Amt", "gemeinde": "Gemeinde"}


@dataclass(frozen=True)
class _Pages:
    """What every share of the page maps and pages reads (a forked process inherits it: never pickled)."""

    out_dir: Path
    data: AtlasData
    tables: Mapping[str, pd.DataFrame]
    geometry: MapGeometry
    column: str
    #: the Gemeinden of each Kreis and Amt (table rows in table order), keys sorted
    members: Mapping[str, Mapping[str, pd.DataFrame]]
    figures: Mapping[tuple[str, str], Mapping[str, str]]  # data-map-* attributes by (level, key)
    pdf: bool
    paged: Mapping[str, set[str]] = dataclasses.field(default_factory=dict)  # level -> keys with a page


def _area_block(job: _Pages, level: str, key: str, subset: pd.DataFrame) -> MapBlock:
    """Map of a Kreis or Amt: inline SVG and the map file ``maps/<level>_<key>.svg`` from one drawing. The
    page's "Karte als PNG" is this area's own map: a Kreis's drawn with matplotlib (scale bar, north arrow;
    see :func:`_submit_kreis_pngs`), an Amt's the browser's screenshot of its Steckbrief map when PDFs are
    printed (116 more matplotlib maps cost ~0.3 s CPU each, more than all pages); else no PNG link."""
    label = column_label(job.column)
    name = f"maps/{level}_{key}"
    # One drawing, two forms: linked inline on the page, unlinked as the map file.
    drawn = draw_area_map(job.geometry, subset, "gemeinde", job.column, link_template=_PAGE_LINK,
                          context_link_template=_PAGE_LINK, label=f"Karte: {label}", max_labels=MAX_LABELS)
    io.write_text(job.out_dir / f"{name}.svg", drawn.svg(standalone=True, links=False))
    png = f"../{name}.png" if level == "kreis" or job.pdf else ""
    return MapBlock(svg=drawn.svg(), legend=legend_entries(subset, job.column), legend_title=f"{label}, je Gemeinde",
                    caption=f"{label} je Gemeinde", png=png, svg_file=f"../{name}.svg",
                    hint="Ein Klick auf eine Gemeinde öffnet ihre Seite; grau: Nachbargemeinden außerhalb des "
                         "Gebiets.", data=job.figures[(level, key)])


def _locator_blocks(job: _Pages, subset: pd.DataFrame) -> dict[str, MapBlock]:
    """Per Gemeinde of one Amt (``subset``) its Amt with the Gemeinde outlined. A Gemeinde has no print map
    of its own, so its page links none (a link must show the map it names, not the Amt's or Kreis's). The
    Amt is drawn once and each of its Gemeinden adds only its outline (the maps differ in nothing else)."""
    label = column_label(job.column)
    look = job.geometry.lookup("gemeinde")
    drawn = draw_area_map(job.geometry, subset, "gemeinde", job.column, link_template=_PAGE_LINK,
                          context_link_template=_PAGE_LINK, max_width=520, max_height=420,
                          label=f"Lagekarte: {label}", max_labels=MAX_LABELS)
    legend = legend_entries(subset, job.column)
    return {key: MapBlock(svg=drawn.with_highlight([look.geom_by_key[key]]).svg(), legend=legend,
                          legend_title=f"{label}, je Gemeinde",
                          caption=f"Lage im Amt (schwarz umrandet), {label} je Gemeinde", svg_file="", png="",
                          hint="Ein Klick auf eine Nachbargemeinde öffnet deren Seite.",
                          data=job.figures[("gemeinde", key)])
            for key in subset["ags"].astype(str)}


def _write_page(job: _Pages, level: str, key: str, block: MapBlock | None) -> None:
    """The page of one Kreis, Amt or Gemeinde, and the print Steckbrief of a Kreis or Amt (linked from its
    page, with its PDF when ``pdf``)."""
    links = None
    context = area_page_context(job.data, level, key, block)  # one for the page and its Steckbrief
    if level in STECKBRIEF_LEVELS:
        page = steckbrief_path(level, key)
        io.write_text(job.out_dir / page, render_steckbrief(job.data, level, key, block, context))
        links = {"html": f"../{page}", "pdf": f"../pdf/{Path(page).stem}.pdf" if job.pdf else ""}
    io.write_text(job.out_dir / level / f"{key}.html", render_area_page(job.data, level, key, block, links, context))


def _write_share(job: _Pages, share: Mapping[str, set[str]]) -> dict[str, float]:
    """One process' share of the page maps and pages: the Kreise and Ämter in ``share`` (level -> keys)
    and the Gemeinden of those Ämter. Returns its seconds drawing maps and writing pages."""
    seconds = {"page maps": 0.0, "pages": 0.0}
    for level in ("kreis", "amt"):
        members = job.members[level]
        paged = job.tables[level][LEVEL_KEYS[level]].astype(str).tolist()
        for key in [*paged, *sorted(set(members) - set(paged))]:  # a map's key with no row: its map, no page
            if key not in share[level]:
                continue
            t0 = time.perf_counter()
            block = _area_block(job, level, key, members[key]) if key in members else None
            t1 = time.perf_counter()
            if key in job.paged[level]:
                _write_page(job, level, key, block)
            seconds["page maps"] += t1 - t0
            seconds["pages"] += time.perf_counter() - t1
    for amt, subset in job.members["amt"].items():
        if amt not in share["amt"]:
            continue
        t0 = time.perf_counter()
        blocks = _locator_blocks(job, subset)
        t1 = time.perf_counter()
        for key, block in blocks.items():
            _write_page(job, "gemeinde", key, block)
        seconds["page maps"] += t1 - t0
        seconds["pages"] += time.perf_counter() - t1
    return seconds


def _shares(tables: Mapping[str, pd.DataFrame], members: Mapping[str, Mapping[str, pd.DataFrame]], n: int
            ) -> list[dict[str, set[str]]]:
    """Kreise and Ämter dealt to ``n`` processes by their expected work (largest first, to the least loaded;
    an Amt carries its Gemeinden's pages): about equal time each."""
    units = []
    for level, work in (("kreis", (40, 2)), ("amt", (10, 8))):  # (page, per Gemeinde), about as measured
        keys = dict.fromkeys([*tables[level][LEVEL_KEYS[level]].astype(str), *members[level]])
        units += [(level, k, work[0] + work[1] * len(members[level].get(k, ()))) for k in keys]
    shares: list[dict[str, set[str]]] = [{"kreis": set(), "amt": set()} for _ in range(n)]
    load = [0] * n
    for level, key, cost in sorted(units, key=lambda u: -u[2]):  # stable: ties in table order
        i = load.index(min(load))
        shares[i][level].add(key)
        load[i] += cost
    return shares


def _written_pages(tables: Mapping[str, pd.DataFrame], members: Mapping[str, Mapping[str, pd.DataFrame]]
                   ) -> tuple[list[str], list[str]]:
    """The map files and pages the shares write, in the order the atlas lists them."""
    svgs = [f"maps/{level}_{key}.svg" for level in ("kreis", "amt") for key in members[level]]
    pages = []
    for level in ("kreis", "amt", "gemeinde"):
        for key in tables[level][LEVEL_KEYS[level]].astype(str):
            if level in STECKBRIEF_LEVELS:
                pages.append(steckbrief_path(level, key))
            pages.append(f"{level}/{key}.html")
    return svgs, pages


def _side_work(csv_jobs: Sequence[Callable[[], object]], file_jobs: Sequence[Callable[[], object]],
               overview: Callable[[], str]) -> dict[str, Any]:
    """What a third process does while two write the pages: the CSV downloads, the layer and address files
    of the page maps, the overview's map; returns its seconds per part and the overview map."""
    t0 = time.perf_counter()
    for job in csv_jobs:
        job()
    t1 = time.perf_counter()
    for job in file_jobs:
        job()
    svg = overview()
    return {"downloads": t1 - t0, "map data": time.perf_counter() - t1, "overview": svg}


def _write_pages(job: _Pages, processes: int, side: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Every page map and page, in ``processes`` processes at once (this one and forked ones), and
    ``side`` (see :func:`_side_work`) in one more forked process; returns the seconds each part took,
    summed over the processes, and the side work's overview map."""
    shares = _shares(job.tables, job.members, processes)
    jobs: list[Callable[[], Mapping[str, Any]]] = [functools.partial(_write_share, job, share) for share in shares]
    done = run_shared([*jobs, side])
    parts: dict[str, Any] = {part: sum(d.get(part, 0.0) for d in done)
                             for part in ("page maps", "pages", "downloads", "map data")}
    parts["overview"] = done[-1]["overview"]
    return parts


def search_addresses(record: RunRecord) -> AddressSource | None:
    """The run's addresses for the search index (address_id, street, house number, postcode, locality,
    ags): from memory, else the run folder's addresses.parquet (a partitioned run's part files one
    partition at a time); None when neither has them."""
    for frame in (record.state.results, record.state.addresses):
        if frame is not None and all(c in frame.columns for c in SEARCH_COLUMNS):
            return frame_source(pd.DataFrame(frame[SEARCH_COLUMNS]))
    path = record.run_dir / ADDRESSES_FILE if record.run_dir is not None else None
    if path is not None and path.is_dir():
        return parquet_source(sorted(path.glob("*.parquet")))
    if path is not None and path.exists():
        return parquet_source([path])
    return None


def write_search_index(out_dir: Path, tables: Mapping[str, pd.DataFrame], addresses: AddressSource | None
                       ) -> list[str]:
    """Write the search index files (see :mod:`coverage.report.search`) one at a time as they are made,
    and log their number and size."""
    t0 = time.perf_counter()
    written, sizes = [], []
    out_dir.mkdir(parents=True, exist_ok=True)  # the id lines' scratch folder goes there meanwhile
    for path, text in iter_search_files(tables, addresses, out_dir):
        io.write_text(out_dir / path, text)
        written.append(path)
        if path != "search/index.js":
            sizes.append((out_dir / path).stat().st_size)
    addressed = ", no addresses"
    if sizes and addresses is not None:
        kinds = {k: sum(1 for p in written if p.startswith(f"search/{k}_")) for k in ("a", "s", "id")}
        addressed = (f", {addresses.count} addresses in {len(sizes)} parts ({kinds['a']} address, {kinds['s']} street, "
                     f"{kinds['id']} id) of {sum(sizes) / 1e6:.1f} MB (largest {max(sizes) / 1e3:.0f} kB)")
    log.info("report: search index of %d areas written (%s)%s (%.1f s)",
             sum(len(tables[lvl]) for lvl in ("kreis", "amt", "gemeinde")), _size(out_dir / "search/index.js"),
             addressed, time.perf_counter() - t0)
    return written


def _write_finished_maps(out_dir: Path, pending: Mapping[str, Future],
                         batches: Sequence[tuple[list[str], Future]] = ()) -> list[str]:
    """Wait for the worker processes' maps and downloads; write the maps in the order they were started
    (a download's worker wrote its file itself: its result is None), then the batches' maps."""
    maps = []
    for path, future in pending.items():
        result = future.result()
        if result is None:
            continue
        if isinstance(result, bytes):
            io.write_bytes(out_dir / path, result)
        else:
            io.write_text(out_dir / path, result)
        maps.append(path)
    for paths, future in batches:
        for path, png in zip(paths, future.result(), strict=True):
            io.write_bytes(out_dir / path, png)
            maps.append(path)
    return maps


def shown_names(tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The tables as the atlas shows them: ``name`` is the ``display_name`` that tells areas apart
    ("Landkreis Rostock", "Kreisfreie Stadt Rostock"); the downloads keep both columns."""
    return {level: t.assign(name=t["display_name"]) if "display_name" in t.columns else t
            for level, t in tables.items()}


def shown_boundaries(boundaries: Boundaries) -> Boundaries:
    """The boundaries with display names (map titles and tooltips read ``name``)."""
    return dataclasses.replace(boundaries, **{
        level: boundaries.level(level).assign(name=boundaries.level(level)[LEVEL_KEYS[level]].astype(str).map(
            boundaries.display_names(level)).to_numpy()) for level in LEVEL_KEYS})


def relative_inputs(inputs: list[dict], config: Path | None) -> list[dict]:
    """The inputs with paths relative to the folder of the configuration file (as it names them); the
    atlas never shows absolute paths."""
    base = Path(config).resolve().parent if config is not None else Path.cwd()
    return [{**i, "path": os.path.relpath(Path(str(i.get("path", ""))).resolve(), base)} if i.get("path") else i
            for i in inputs]


def disclosure_note(rules: DisclosureRules) -> str:
    """The footnote of the public atlas: what "–" means and how the counts are rounded."""
    return (f"„–“: aus Geheimhaltungsgründen unterdrückt – Gebiete mit weniger als {rules.min_addresses} "
            f"Adressen; Werte einer Technologiegruppe, in der ein Anbieter mehr als "
            f"{rules.dominance_share:.0%} der versorgten Haushalte (Unternehmen) stellt; ergänzend Werte, die sich "
            f"sonst aus Summen zurückrechnen ließen. Anzahlen sind auf Vielfache von {rules.round_to} gerundet, "
            "Anteile aus den gerundeten Anzahlen berechnet.")


def public_tables(run_dir: Path, cfg: RunConfig) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """The level tables as ``bbcov publish`` publishes them (rules of ``[publish]``, see
    :func:`pipelines.publish.protect_run`), as floats (suppressed: NaN), with ``hh_lt_*`` derived from the
    published counts; and per level and reason the number of areas with suppressed figures."""
    from pipelines.publish import check_no_provider_names, protect_run, published_area_tables

    protected = protect_run(run_dir, cfg.publish, cfg)
    out = {}
    for level, frame in published_area_tables(protected).items():
        numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
        t = frame.astype(dict.fromkeys(numeric, "float64"))
        below = {c.replace("hh_ge_", "hh_lt_"): t["households"] - t[c] for c in t.columns if c.startswith("hh_ge_")}
        out[level] = pd.concat([t, pd.DataFrame(below, index=t.index)], axis=1).copy()  # one block per dtype
    check_no_provider_names(out, pd.DataFrame(), protected.offers)
    rows = [r for level in LEVEL_KEYS for r in report_rows(level, protected.suppression.reason[level])]
    summary = (pd.DataFrame(rows, columns=["level", "id", "name", "reason", "figures"])
               .groupby(["level", "reason"], sort=False).size().rename("areas").reset_index())
    return out, summary


def _public_downloads(out_dir: Path, tables: Mapping[str, pd.DataFrame], csv_jobs: list[Callable[[], object]]
                      ) -> list[str]:
    """The public atlas's downloads: the published area tables as CSV (plain and German Excel), as jobs
    added to ``csv_jobs``."""
    written = []
    for level, frame in tables.items():
        stem = f"coverage_{level}"
        csv_jobs.append(functools.partial(io.write_csv, out_dir / "downloads" / f"{stem}.csv", frame))
        csv_jobs.append(functools.partial(io.write_csv, out_dir / "downloads" / f"{stem}_de.csv", frame, german=True))
        written += [f"downloads/{stem}.csv", f"downloads/{stem}_de.csv"]
    return written


def funding_downloads(run_dir: Path | None, out_dir: Path) -> dict[str, str]:
    """The run's eligible-address lists (``eligible/<vwg_ars>.csv``) and ``objections.csv`` under
    ``downloads/`` as hard links (a copy across file systems), so the Amt pages' links work when the
    report folder is opened alone. Returns ``{vwg_ars or "objections": path relative to out_dir}``."""
    if run_dir is None:
        return {}
    found = {f.stem: (f, f"downloads/eligible/{f.name}") for f in sorted((run_dir / "eligible").glob("*.csv"))}
    if (run_dir / "objections.csv").is_file():
        found["objections"] = (run_dir / "objections.csv", "downloads/objections.csv")
    for source, rel in found.values():
        if not export.link_file(out_dir / rel, source):
            io.write_bytes(out_dir / rel, source.read_bytes())
    return {key: rel for key, (_, rel) in found.items()}


def render_report(record: RunRecord, out_dir: Path) -> list[str]:
    """Render the atlas of a run (as the runner hands it over, in memory) into ``out_dir``;
    return the written paths (relative to ``out_dir``)."""
    t_all = time.perf_counter()
    if record.cfg.report.pdf:
        require_chromium()  # before any work: a missing Chromium is the user's to fix
    # Everything the report takes from the run is read here; the functions below get plain values.
    cfg, state = record.cfg, record.state
    tables, boundaries, sites = state.tables, state.boundaries, state.sites
    results = None if record.partitioned else state.results  # the address layer needs them in memory
    assert tables is not None and boundaries is not None
    quarantine, changes, created = record.quarantine, record.changes, record.created
    inputs = record.inputs
    accounting = [a.as_dict() for a in record.ledger.accounting]
    data_date = cfg.report.data_date or record.reference_date.isoformat()
    config_text = cfg.source_text
    run_id = record.run_id

    public = cfg.report.profile == "public"
    suppressed = None
    if public:
        if record.run_dir is None:
            raise CoverageError("[report] profile = \"public\" needs the run's files (tables, addresses, offers)")
        tables, suppressed = public_tables(record.run_dir, cfg)
        sites, quarantine, changes = None, None, None
    else:
        inputs = relative_inputs(inputs, cfg.source)
    same_files = (_run_csvs(record.run_dir / "tables", tables, with_sites=sites is not None)
                  if record.run_dir is not None and not public else {})
    # Downloads keep the data's names (name, bez, display_name); pages and maps show the display names.
    downloads_tables, data_boundaries = tables, boundaries
    tables, boundaries = shown_names(tables), shown_boundaries(boundaries)
    if sites is None:
        sites = pd.DataFrame({c: pd.Series(dtype="object") for c in SITE_COLUMNS})
    timings: dict[str, float] = {"inputs": time.perf_counter() - t_all}
    t0 = time.perf_counter()
    geometry = prepare_map_geometry(boundaries)
    for level in LEVEL_KEYS:  # fill the lookup cache now: the worker pool pickles `geometry` in a feeder
        geometry.lookup(level)  # thread, and a cache filled meanwhile fails it ("dictionary changed size")
    timings["geometry"] = time.perf_counter() - t0
    attributions = [bkg_attribution(boundaries.valid_date), *cfg.report.attributions]
    record.wait_for("eligible")  # the run's worker may still be writing the lists (pipelines.runner)
    funding_files = {} if public else funding_downloads(record.run_dir, out_dir)
    scope = scope_name(tables)
    title = scope_title(cfg.report.title, tables, ReportConfig.title)  # the default title names the scope
    search_addr = None if public else search_addresses(record)
    log.info("report: writing the atlas of %s (%d Kreise, %d Ämter, %d Gemeinden) into %s", scope,
             len(tables["kreis"]), len(tables["amt"]), len(tables["gemeinde"]), out_dir)
    meta = {"funding_files": funding_files,
            "run_id": run_id, "created": created, "data_date": data_date,
            "boundaries_date": boundaries.valid_date, "title": title, "scope": scope,
            "search_addresses": search_addr is not None and search_addr.count > 0,
            "thresholds": list(cfg.analysis.thresholds_mbps), "groups": list(cfg.analysis.groups),
            "attributions": attributions, "public": public,
            "disclosure_note": disclosure_note(cfg.publish.rules) if public else ""}
    gem = tables["gemeinde"]
    written: list[str] = []
    # Matplotlib maps (full layout with legend, scale bar, north arrow) are drawn in worker
    # processes while this process writes the downloads, the page maps and the pages.
    workers = max(1, min(2, os.cpu_count() or 1))
    with worker_pool(workers) as pool:  # their log records reach this process' handlers (run.log)
        # First what needs no worker, while the workers start (their fork server imports the map modules).
        t0 = time.perf_counter()
        early = write_search_index(out_dir, tables, search_addr)  # listed after the downloads, as before
        timings["search index"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        data = atlas_data(tables, sites, cfg.funding_rules, meta)
        io.write_text(out_dir / "provenance.html", render_provenance(
            data, inputs, config_text, cfg.source.name if cfg.source else "", accounting, quarantine,
            suppressed))
        early.append("provenance.html")
        timings["provenance page"] = time.perf_counter() - t0

        pending, captions, map_files = _submit_overview_maps(pool, geometry, gem, attributions, data_date)

        # The downloads' frames now, their files while the pages are written (the overview lists their sizes).
        t0 = time.perf_counter()
        csv_jobs: list[Callable[[], object]] = []
        if public:
            downloads = _public_downloads(out_dir, downloads_tables, csv_jobs)
        else:
            # the workbook and GeoPackage are written by the workers (waited for with the maps)
            downloads = export.write_downloads(out_dir, downloads_tables, sites, cfg.funding_rules, quarantine,
                                               data_boundaries, same_files, pool=pool, pending=pending,
                                               csv_jobs=csv_jobs)
        if "objections" in funding_files:
            downloads.append(funding_files["objections"])  # listed on the overview; the Amt lists on their pages
        written += downloads + [rel for key, rel in funding_files.items() if key != "objections"] + early
        timings["downloads"] = time.perf_counter() - t0
        log.info("report: %d downloads started (%.1f s; the %d CSV files are written alongside the pages)",
                 len(downloads), timings["downloads"], len(csv_jobs))

        t0 = time.perf_counter()
        column = _page_map_column(gem)
        record.wait_for("costs")  # the address layer draws the cost trees from costs_tree.gpkg
        files, file_jobs, figures, overview_data = _map_data(out_dir, gem, column, cfg, results, record.run_dir,
                                                             geometry.crs, public)
        timings["map data"] = time.perf_counter() - t0
        log.info("report: map data of %d page maps (%d files, layers and addresses written alongside the pages) "
                 "(%.1f s)", len(figures), len(files), timings["map data"])

        t0 = time.perf_counter()
        members = {level: dict(iter(gem.groupby(gem[key_col].astype(str), sort=True)))
                   for level, key_col in (("kreis", "krs_ags"), ("amt", "vwg_ars"))}
        names = {(level, str(k)): str(n) for level in ("kreis", "amt")
                 for k, n in zip(tables[level][LEVEL_KEYS[level]], tables[level]["name"], strict=True)}
        batches = _submit_kreis_pngs(pool, geometry, members["kreis"], names, column, attributions, data_date)
        map_svgs, pages = _written_pages(tables, members)
        job = _Pages(out_dir, data, tables, geometry, column, members, figures, cfg.report.pdf,
                     {level: set(tables[level][LEVEL_KEYS[level]].astype(str)) for level in ("kreis", "amt")})
        parts = _write_pages(job, workers, functools.partial(
            _side_work, csv_jobs, file_jobs, functools.partial(_overview_svg, geometry, gem, column)))
        written += map_svgs + files + pages
        label = column_label(column)
        interactive = {"svg": parts["overview"], "legend": legend_entries(gem, column),
                       "legend_title": f"{label}, je Gemeinde", "data": overview_data,
                       "caption": "Interaktive Karte: Ebene, Technologie und Schwelle oben wählen",
                       "hint": "Mausrad oder +/− vergrößert, Ziehen verschiebt; ein Klick auf eine Gemeinde öffnet "
                               "ihre Seite."}
        timings["page maps and area pages"] = time.perf_counter() - t0
        log.info("report: %d page maps drawn, %d map files and %d pages written by %d processes; %d CSV downloads, "
                 "%d map data files and the overview map by one more (%.1f s; summed over the processes: page maps "
                 "%.1f s, pages %.1f s, CSV downloads %.1f s, map data files and overview map %.1f s)", len(figures),
                 len(map_svgs), len(pages), workers, len(csv_jobs), len(files), timings["page maps and area pages"],
                 parts["page maps"], parts["pages"], parts["downloads"], parts["map data"])

        t0 = time.perf_counter()
        log.info("report: waiting for %d print maps (overview and Kreis maps, matplotlib)",
                 len(pending) + sum(len(paths) for paths, _ in batches))
        written += _write_finished_maps(out_dir, pending, batches)
        timings["waiting for the workers (maps, workbook, GeoPackage)"] = time.perf_counter() - t0
        log.info("report: %d print maps, workbook and GeoPackage written (%.1f s)",
                 len(pending) + sum(len(paths) for paths, _ in batches),
                 timings["waiting for the workers (maps, workbook, GeoPackage)"])
    t0 = time.perf_counter()
    svgs = {caption: pending[path].result() for caption, path in captions.items()}
    if changes:
        io.write_text(out_dir / "changes.html", render_changes(data, changes["areas"], changes["providers"],
                                                              changes["summary"], changes["tolerance_pp"]))
    else:  # a first run (or the public atlas) says why there is nothing to compare
        io.write_text(out_dir / "changes.html", render_no_changes(data, "public" if public else "first_run"))
    written.append("changes.html")
    io.write_text(out_dir / "index.html", render_overview(
        tables, svgs, meta, sites=None if public else sites, links=True, map_files=map_files,
        downloads=_download_links(out_dir, downloads), provenance="provenance.html",
        changes="changes.html", interactive=interactive))
    written.append("index.html")
    timings["overview and changes pages"] = time.perf_counter() - t0
    log.info("report: overview and changes pages written (%.1f s)", timings["overview and changes pages"])
    if cfg.report.pdf:
        jobs = steckbrief_jobs(out_dir)
        timings["pdf"] = print_pdfs(jobs)
        written += [str(p.relative_to(out_dir)) for job in jobs for p in job[1:] if p is not None]
    timings["total"] = time.perf_counter() - t_all
    log.info("report: %d files in %.1f s (%s)", len(written), timings["total"],
             ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    return written
