"""Writes the planner-facing report of a run: maps (SVG + PNG) and ``index.html``.

Map geometry is simplified once per run and shared by every map.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from coverage.report import choropleth_png, choropleth_svg, prepare_map_geometry, render_overview
from coverage.schemas import threshold_tag
from pipelines import io
from pipelines.stages import Context

log = logging.getLogger(__name__)

GROUP_LABELS = {"all": "alle Technologien", "wired": "leitungsgebunden", "dsl": "DSL", "hfc": "Kabel (HFC)",
                "fibre": "Glasfaser (FTTH/B)", "mobile": "Mobilfunk"}
#: (threshold, group) of the overview maps, in display order; those not in the run are skipped.
OVERVIEW_MAPS = ((30, "all"), (100, "all"), (1000, "all"), (1000, "fibre"))


def bkg_attribution(valid_date: str | None) -> str:
    year = valid_date[-4:] if valid_date and valid_date[-4:].isdigit() else ""
    return f"© GeoBasis-DE / BKG {year} (Daten verändert)".replace("  ", " ")


def render_report(ctx: Context, out_dir: Path) -> list[str]:
    """Render maps and the overview page into ``out_dir``; return the written paths (relative)."""
    cfg = ctx.cfg
    tables = ctx.artefacts["tables"]
    boundaries = ctx.artefacts["boundaries"]
    t0 = time.perf_counter()
    geometry = prepare_map_geometry(boundaries)
    log.info("report: map geometry simplified once in %.1f s", time.perf_counter() - t0)
    attributions = [bkg_attribution(boundaries.valid_date), *cfg.report.attributions]
    data_date = cfg.report.data_date or ctx.reference_date.isoformat()
    written, svgs = [], {}
    gem = tables["gemeinde"]
    for t, group in OVERVIEW_MAPS:
        column = f"share_ge_{threshold_tag(t)}_{group}"
        if column not in gem.columns:
            continue
        caption = f"Anteil der Haushalte mit ≥ {threshold_tag(t)} Mbit/s ({GROUP_LABELS.get(group, group)})"
        opts = {"title": caption, "legend_title": "Anteil der Haushalte",
                "subtitle": f"je Gemeinde, Stand {data_date}", "attributions": attributions,
                "data_date": data_date}
        name = f"maps/gemeinde_{column}"
        svgs[caption] = choropleth_svg(geometry, gem, "gemeinde", column, **opts)
        io.write_text(out_dir / f"{name}.svg", svgs[caption])
        io.write_bytes(out_dir / f"{name}.png", choropleth_png(geometry, gem, "gemeinde", column, **opts))
        written += [f"{name}.svg", f"{name}.png"]
    meta = {"run_id": out_dir.name.removeprefix(".").removesuffix(".partial"),
            "created": ctx.artefacts.get("created", ""), "data_date": data_date,
            "boundaries_date": boundaries.valid_date, "title": cfg.report.title,
            "thresholds": list(cfg.analysis.thresholds_mbps), "groups": list(cfg.analysis.groups),
            "attributions": attributions}
    io.write_text(out_dir / "index.html", render_overview(tables, svgs, meta))
    written.append("index.html")
    log.info("report: %d files in %.1f s", len(written), time.perf_counter() - t0)
    return written
