"""The whole atlas for MV: real boundaries, random but consistent tables, every page written.

``build_mv_context`` is shared with the export and browser tests.
"""

from __future__ import annotations

import html
import re
import resource
import time
import tomllib
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from coverage.config import config_from_dict
from coverage.sources.bkg import read_bkg_bundle
from pipelines.report import render_report
from pipelines.runner import file_fingerprint
from pipelines.stages import Accounting, Context
from tests.test_report import BKG, EVIL, GROUPS, make_tables

FORMULA = '=HYPERLINK("http://x","y")'
RULES = ("white", "grey", "gigabit_2023", "gigabit_2024")
RULE_BASE = {"white": 30, "grey": 100, "gigabit_2023": 1000, "gigabit_2024": 1000}
KINDS = {"gemeinde_office": "Gemeindeverwaltung", "amt_office": "Amtsverwaltung",
         "kreis_office": "Kreisverwaltung", "school": "Schule"}
CONFIG = f"""
# MV atlas test run
[boundaries]
path = "{BKG}"
land = "13"
[addresses]
path = "addresses.csv"
[analysis]
thresholds_mbps = [2, 16, 30, 50, 100, 200, 400, 1000]
reference_date = "2021-06-30"
[report]
title = "Breitbandversorgung Mecklenburg-Vorpommern"
data_date = "2021-06-30"
attributions = ["Versorgungsdaten: synthetisch (Test)"]
"""


def _add_funding_and_plans(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Funding counts (households without a wired offer at the rule's level) and planned supply, summed up."""
    gem = tables["gemeinde"]
    hh = gem["households"].astype(float)
    new = {}
    for rule in RULES:
        t = RULE_BASE[rule]
        fund = hh - gem[f"hh_ge_{t}_wired"]
        new[f"hh_fund_{rule}"] = fund
        new[f"addr_fund_{rule}"] = np.round(fund * 0.45)
        new[f"hh_fund_{rule}_plan"] = np.floor(fund * 0.6)
        new[f"addr_fund_{rule}_plan"] = np.round(np.floor(fund * 0.6) * 0.45)
    for g in GROUPS:
        new[f"plan_hh_ge_1000_{g}"] = np.minimum(hh, gem[f"hh_ge_1000_{g}"]
                                                 + np.floor((hh - gem[f"hh_ge_1000_{g}"]) / 2))
    gem = pd.concat([gem, pd.DataFrame(new, index=gem.index)], axis=1)
    counts = list(new)
    out = {"gemeinde": gem}
    for level, key in (("amt", "vwg_ars"), ("kreis", "krs_ags"), ("land", "land")):
        sums = gem.groupby(key, as_index=False)[counts].sum()
        out[level] = tables[level].merge(sums, on=key, how="left", validate="1:1")
    for level, frame in out.items():
        h = frame["households"].astype(float)
        shares = {f"plan_share_ge_1000_{g}": np.where(h > 0, 100 * frame[f"plan_hh_ge_1000_{g}"] / h.where(h > 0),
                                                      np.nan) for g in GROUPS}
        out[level] = pd.concat([frame, pd.DataFrame(shares, index=frame.index)], axis=1)
    return out


def make_sites(gem: pd.DataFrame, amt: pd.DataFrame, kreis: pd.DataFrame, seed: int = 11) -> pd.DataFrame:
    """One town hall per Gemeinde and a school in every third, with random best service."""
    rng = np.random.default_rng(seed)
    amt_names = dict(zip(amt["vwg_ars"], amt["name"], strict=True))
    kreis_names = dict(zip(kreis["krs_ags"], kreis["name"], strict=True))
    rows = []
    for i, g in enumerate(gem.itertuples(index=False)):
        kinds = ["gemeinde_office"] + (["school"] if i % 3 == 0 else [])
        for kind in kinds:
            down = float(rng.choice([0, 16, 50, 100, 250, 1000]))
            rows.append({"address_id": f"S{len(rows):05d}", "site_kind": kind, "site_kind_label": KINDS[kind],
                         "site_name": f"{KINDS[kind]} {g.name}", "street": "Markt", "house_number": str(i % 20 + 1),
                         "postcode": "17000", "locality": str(g.name), "ags": g.ags, "vwg_ars": g.vwg_ars,
                         "krs_ags": g.krs_ags, "gemeinde_name": g.name, "amt_name": amt_names.get(g.vwg_ars),
                         "kreis_name": kreis_names.get(g.krs_ags), "best_down": down, "best_up": down / 10,
                         "best_tech": "ftth" if down >= 1000 else ("vdsl" if down else "none"),
                         "best_provider": "Küstennetz (fiktiv)" if down else "",
                         "plan_best_down": max(down, 1000.0) if i % 2 else down,
                         "service_class": "≥ 1000 Mbit/s" if down >= 1000 else "≥ 100 Mbit/s" if down >= 100
                         else "≥ 30 Mbit/s" if down >= 30 else "< 30 Mbit/s"})
    sites = pd.DataFrame(rows)
    sites.loc[0, "site_name"] = FORMULA
    return sites


def build_mv_context(root: Path, seed: int = 7) -> Context:
    """A Context as the runner hands it to the report: MV boundaries, consistent random tables."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "addresses.csv").write_text("address_id;x;y\n", encoding="utf-8")
    (root / "run.toml").write_text(CONFIG, encoding="utf-8")
    cfg = config_from_dict(tomllib.loads(CONFIG), root, root / "run.toml")
    boundaries = read_bkg_bundle(BKG, "EPSG:25833", land="13")
    tables = _add_funding_and_plans(make_tables(boundaries, seed))
    gem = tables["gemeinde"]
    with_hh = gem.index[gem["households"] > 0]
    gem.loc[with_hh[0], "name"] = EVIL
    gem.loc[with_hh[1], "name"] = FORMULA
    sites = make_sites(gem, tables["amt"], tables["kreis"])
    quarantine = pd.DataFrame({
        "source": ["addresses.csv", "addresses.csv", "dsl.csv"], "row": [6, 9, 5],
        "column": ["households", "households", "technology"], "value": ["drei", FORMULA, EVIL],
        "reason": ["bad_number", "bad_number", "unknown_technology"],
        "detail": ["a number cannot be parsed", "a number cannot be parsed",
                   "technology wording not in the alias table"],
    })
    ctx = Context(cfg=cfg, reference_date=date(2021, 6, 30))
    ctx.artefacts.update({"tables": tables, "boundaries": boundaries, "sites": sites, "quarantine": quarantine,
                          "created": "2026-11-22T10:15:00+01:00"})
    ctx.accounting += [Accounting("boundaries", 726, 726, note="116 Ämter, 8 Kreise"),
                       Accounting("read addresses.csv", 102, 100, {"bad_number": 2}),
                       Accounting("provider dsl.csv", 51, 50, {"unknown_technology": 1}, note="50 offers")]
    return ctx


@pytest.fixture(scope="session")
def mv_atlas(tmp_path_factory):
    """(report folder, context, written paths, timings) of one full MV atlas, rendered once per session.

    Timings: wall seconds, and CPU seconds of this process and of the map worker processes
    (the workers run in parallel with this process, so on 2 idle cores wall ≈ the larger CPU time;
    the CPU times do not grow when other jobs share the machine).
    """
    root = tmp_path_factory.mktemp("mv-atlas")
    ctx = build_mv_context(root / "in")
    out = root / "reports" / "run-test"
    out.mkdir(parents=True)
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0, c0 = time.perf_counter(), time.process_time()
    written = render_report(ctx, out)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    timing = {"wall": time.perf_counter() - t0, "cpu_main": time.process_time() - c0,
              "cpu_workers": (children.ru_utime + children.ru_stime) - (children0.ru_utime + children0.ru_stime)}
    return out, ctx, written, timing


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


def test_atlas_files_and_speed(mv_atlas):
    out, ctx, written, timing = mv_atlas
    assert len(list((out / "gemeinde").glob("*.html"))) == 726
    assert len(list((out / "amt").glob("*.html"))) == 116
    assert len(list((out / "kreis").glob("*.html"))) == 8
    for p in ("index.html", "provenance.html", "downloads/coverage.xlsx", "downloads/areas.gpkg",
              "downloads/coverage_gemeinde.csv", "downloads/coverage_gemeinde_de.csv"):
        assert (out / p).is_file(), p
    assert len(list((out / "maps").glob("kreis_*.png"))) == 8
    assert len(list((out / "maps").glob("amt_*.svg"))) == 116
    assert sorted(written) == sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    print(f"MV atlas: {len(written)} files; {timing}; {ctx.artefacts['report_timings']}")
    # the budget is 60 s wall on 2 cores; CPU time per process is its load-independent measure
    assert timing["cpu_main"] < 60 and timing["cpu_workers"] < 60


def test_every_link_resolves_and_nothing_is_online(mv_atlas):
    out, *_ = mv_atlas
    pages = [out / "index.html", out / "provenance.html", *sorted((out / "kreis").glob("*.html")),
             *sorted((out / "amt").glob("*.html"))[:20], *sorted((out / "gemeinde").glob("*.html"))[:60]]
    for page in pages:
        parsed = _refs(page)
        assert parsed.scripts == 1, page
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
    out, ctx, *_ = mv_atlas
    tables = ctx.artefacts["tables"]
    gem = tables["gemeinde"]
    row = gem[gem["households"] > 0].iloc[5]
    page = (out / "gemeinde" / f"{row['ags']}.html").read_text(encoding="utf-8")
    amt_name = tables["amt"].set_index("vwg_ars").at[row["vwg_ars"], "name"]
    kreis_name = tables["kreis"].set_index("krs_ags").at[row["krs_ags"], "name"]
    crumbs = page.split('class="breadcrumbs"')[1].split("</nav>")[0]
    items = [re.sub(r"<[^>]+>", "", li).strip() for li in re.findall(r"<li>(.*?)</li>", crumbs)]
    assert items == ["Mecklenburg-Vorpommern", str(kreis_name), html.escape(str(amt_name)),
                     html.escape(str(row["name"]))]
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
    below = int((ctx.artefacts["sites"]["best_down"] < 100).sum())
    assert format_int(below) in index


def test_provenance_page(mv_atlas):
    out, ctx, *_ = mv_atlas
    page = (out / "provenance.html").read_text(encoding="utf-8")
    addresses = Path(ctx.cfg.addresses.path)
    digest = file_fingerprint(addresses)["sha256"]  # the same fingerprint as the run manifest
    for text in ("bkg-vg5000-2021", str(addresses), digest, "SHA-256", "read addresses.csv", "bad_number",
                 "unknown_technology", "thresholds_mbps", "# MV atlas test run"):
        assert text in page, text
    q = page.split('id="tabelle-quarantaene"')[1].split("</tbody>")[0]
    assert q.count("<tr>") == 1 + 2  # header + (addresses.csv, bad_number) + (dsl.csv, unknown_technology)
    assert 'data-value="2.0"' in q


def test_data_is_escaped_everywhere(mv_atlas):
    out, ctx, *_ = mv_atlas
    gem = ctx.artefacts["tables"]["gemeinde"]
    evil_ags = gem.loc[gem["name"] == EVIL, "ags"].iloc[0]
    pages = [out / "index.html", out / "provenance.html", out / "gemeinde" / f"{evil_ags}.html",
             *(out / "amt").glob("*.html"), *(out / "kreis").glob("*.html"), *(out / "maps").glob("*.svg")]
    seen = 0
    for p in pages:
        text = p.read_text(encoding="utf-8")
        assert "<script>alert" not in text, p
        assert text.count("<script") <= 1, p
        seen += "&lt;script&gt;alert(1)&lt;/script&gt;" in text
        assert 'href="=' not in text and "href=\"http" not in text
    assert seen >= 3
