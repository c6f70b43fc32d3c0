"""The atlas on paper: A4 printing in Chromium, the Steckbrief PDFs of a Kreis and an Amt, print PNG links.

Uses the MV test atlas rendered once per test run (``mv_atlas`` in conftest.py) and prints only three
documents (a Gemeinde page, one Kreis and one Amt Steckbrief) with one Chromium. Needs Chromium and
poppler-utils (pdfinfo, pdftotext), both installed by ``make browser-deps``; their absence is a test
failure, never a silent skip.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pipelines import pdf
from pipelines.cli import main


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `make browser-deps` (installs Debian's poppler-utils)")
    return path


def _pdf_text(path: Path) -> str:
    """The text in the order Chromium wrote it (document order: a wrapped header cell stays together)."""
    return subprocess.run([_tool("pdftotext"), "-raw", str(path), "-"], check=True, capture_output=True,
                          text=True).stdout


def _words_outside_pages(path: Path) -> list[str]:
    """Words whose box reaches beyond the right or bottom edge of their page (clipped when printed)."""
    out = subprocess.run([_tool("pdftotext"), "-bbox", str(path), "-"], check=True, capture_output=True,
                         text=True).stdout
    outside, width, height = [], 0.0, 0.0
    for tag in re.finditer(r'<page width="([\d.]+)" height="([\d.]+)"|<word xMin="([\d.-]+)" yMin="([\d.-]+)" '
                           r'xMax="([\d.-]+)" yMax="([\d.-]+)">([^<]*)</word>', out):
        if tag.group(1):
            width, height = float(tag.group(1)), float(tag.group(2))
        elif float(tag.group(5)) > width + 0.5 or float(tag.group(6)) > height + 0.5 or float(tag.group(3)) < 0:
            outside.append(html.unescape(tag.group(7)))
    return outside


def _pdf_info(path: Path) -> dict[str, str]:
    out = subprocess.run([_tool("pdfinfo"), str(path)], check=True, capture_output=True, text=True).stdout
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


def _words(text: str) -> str:
    """Text with every run of white space as one blank (names wrap inside their table cells)."""
    return re.sub(r"\s+", " ", text)


def _squeezed(text: str) -> str:
    """Text without white space (a header wraps where the column is narrow: "≥ 1000" / "Mbit/s")."""
    return re.sub(r"\s+", "", text)


class _Page(HTMLParser):
    """Column headers of every table and the (href, text) of every link."""

    def __init__(self) -> None:
        super().__init__()
        self.headers: list[str] = []
        self.links: list[tuple[str, str]] = []
        self._th: list[str] | None = None
        self._a: tuple[str, list[str]] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "th":
            self._th = []
        elif tag == "a":
            self._a = (dict(attrs).get("href") or "", [])

    def handle_endtag(self, tag):
        if tag == "th" and self._th is not None:
            self.headers.append(" ".join("".join(self._th).split()))
            self._th = None
        elif tag == "a" and self._a is not None:
            self.links.append((self._a[0], "".join(self._a[1])))
            self._a = None

    def handle_data(self, data):
        if self._th is not None:
            self._th.append(data)
        if self._a is not None:
            self._a[1].append(data)


def _parse(path: Path) -> _Page:
    p = _Page()
    p.feed(path.read_text(encoding="utf-8"))
    return p


@pytest.fixture(scope="module")
def printed(mv_atlas, tmp_path_factory):
    """A Gemeinde page with the most table columns, one Kreis and one Amt Steckbrief, printed by one Chromium."""
    out, record, _ = mv_atlas
    if pdf.chromium_path() is None:
        pytest.fail("Chromium is not installed: run `make browser-deps` (installs Debian's chromium package)")
    gem = record.state.tables["gemeinde"]
    # a Gemeinde with sites: its page has every table (technologies, businesses, funding, sites)
    key = str(gem.loc[gem["ags"].astype(str).isin(record.state.sites["ags"].astype(str)), "ags"].iloc[0])
    amt = str(gem.loc[gem["ags"].astype(str) == key, "vwg_ars"].iloc[0])
    kreis = str(gem.loc[gem["ags"].astype(str) == key, "krs_ags"].iloc[0])
    dest = tmp_path_factory.mktemp("pdf")
    jobs = {"gemeinde": (out / "gemeinde" / f"{key}.html", dest / "gemeinde.pdf", None),
            "kreis": (out / "steckbrief" / f"kreis_{kreis}.html", dest / "kreis.pdf", None),
            "amt": (out / "steckbrief" / f"amt_{amt}.html", dest / "amt.pdf", dest / "amt.png")}
    pdf.print_pdfs(list(jobs.values()))
    return jobs, {"gemeinde": key, "amt": amt, "kreis": kreis}, record


def test_gemeinde_page_prints_on_a4_with_every_column(printed):
    jobs, _, _ = printed
    page, printed_pdf, _ = jobs["gemeinde"]
    info = _pdf_info(printed_pdf)
    assert "(A4)" in info["Page size"] and int(info["Pages"]) >= 2
    text = _pdf_text(printed_pdf)
    headers = _parse(page).headers
    assert "≥ 1000 Mbit/s mit Planung" in headers and "Mit Planung (Mbit/s)" in headers  # the once clipped ones
    missing = [h for h in dict.fromkeys(headers) if _squeezed(h) not in _squeezed(text)]
    assert not missing, f"column headers not in the printed PDF: {missing}"
    assert _words_outside_pages(printed_pdf) == []  # nothing runs off the paper
    assert "Filter" not in text  # the screen tools are not printed


def test_steckbrief_pdfs_of_a_kreis_and_an_amt(printed):
    jobs, keys, record = printed
    tables = record.state.tables
    for level, key_col in (("kreis", "krs_ags"), ("amt", "vwg_ars")):
        page, printed_pdf, _ = jobs[level]
        row = tables[level][tables[level][key_col].astype(str) == keys[level]].iloc[0]
        name = str(row["display_name"] if "display_name" in row.index else row["name"])
        info = _pdf_info(printed_pdf)
        assert "(A4)" in info["Page size"]
        assert _words_outside_pages(printed_pdf) == []
        text = _words(_pdf_text(printed_pdf))
        assert name in text and name in info["Title"]
        assert "Datenstand 30.06.2021" in text and "GeoBasis-DE / BKG" in text
        assert "Datenlizenz Deutschland" in text
        # the table of its Gemeinden: every Gemeinde of the area is named
        gem = tables["gemeinde"][tables["gemeinde"][key_col].astype(str) == keys[level]]
        absent = [n for n in gem["display_name"].astype(str) if n not in text]
        assert not absent, f"{level} {keys[level]}: Gemeinden missing from the Steckbrief: {absent[:5]}"
        for heading in ("Förderfähigkeit", "Standorte", "Karte", "Kennzahlen"):
            assert heading in text, heading
        assert "<svg" in page.read_text(encoding="utf-8")  # the map is in the page, not fetched


def test_amt_print_map_is_its_steckbrief_map(printed, mv_atlas):
    """With the PDFs, an Amt's print PNG is the browser's picture of its own map and legend."""
    from PIL import Image

    jobs, keys, _ = printed
    png = jobs["amt"][2]
    with Image.open(png) as im:
        assert im.format == "PNG" and im.width >= 800  # device scale 2: sharp on A4
    out, _, _ = mv_atlas
    assert (out / "steckbrief" / f"amt_{keys['amt']}.html", out / "pdf" / f"amt_{keys['amt']}.pdf",
            out / "maps" / f"amt_{keys['amt']}.png") in pdf.steckbrief_jobs(out)


def test_every_area_has_a_steckbrief_and_it_is_offline(mv_atlas):
    out, record, written = mv_atlas
    tables = record.state.tables
    expected = {f"steckbrief/kreis_{k}.html" for k in tables["kreis"]["krs_ags"].astype(str)}
    expected |= {f"steckbrief/amt_{k}.html" for k in tables["amt"]["vwg_ars"].astype(str)}
    assert {p for p in written if p.startswith("steckbrief/")} == expected and len(expected) == 8 + 116
    for page in sorted((out / "steckbrief").glob("*.html"))[:10]:
        text = page.read_text(encoding="utf-8")  # (data text may hold URLs: the test's formula cell does)
        assert "<script" not in text and "url(http" not in text and "@import" not in text
        for href, _ in _parse(page).links:
            assert not re.match(r"^[a-z][a-z0-9+.-]*:", href) or href.startswith("https://www.govdata.de/"), href


def test_png_links_show_the_map_they_name(mv_atlas):
    """Each "Karte als PNG" link opens an existing file of the page's own area; pages without a print map
    of their own link none: Gemeinden, and Ämter in an atlas without PDFs (their PNG comes with them)."""
    out, record, _ = mv_atlas
    tables = record.state.tables
    checked = 0
    for level, key_col in (("kreis", "krs_ags"), ("amt", "vwg_ars"), ("gemeinde", "ags")):
        keys = tables[level][key_col].astype(str)
        for key in keys.iloc[::10] if level == "gemeinde" else keys:  # every 10th Gemeinde keeps it short
            page = out / level / f"{key}.html"
            pngs = [href for href, text in _parse(page).links if href.endswith(".png") or "PNG" in text]
            if level != "kreis":
                assert pngs == [], f"{page.name}: links a map that is not its own: {pngs}"
                continue
            assert pngs == [f"../maps/{level}_{key}.png"], f"{level} {key}: {pngs}"
            target = (page.parent / html.unescape(pngs[0])).resolve()
            assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            checked += 1
    assert checked == 8


def test_report_command_prints_the_pdfs_of_an_atlas(mv_atlas, tmp_path, capsys):
    """`bbcov report ATLAS --pdf` on a finished atlas (two of its Steckbriefe, to keep the test short)."""
    out, _, _ = mv_atlas
    atlas = tmp_path / "reports" / "run-x"
    (atlas / "steckbrief").mkdir(parents=True)
    shutil.copy(out / "index.html", atlas / "index.html")
    pages = sorted((out / "steckbrief").glob("*.html"))[:2]
    for p in pages:
        shutil.copy(p, atlas / "steckbrief" / p.name)
    assert main(["report", str(atlas), "--pdf"]) == 0
    made = sorted(p.name for p in (atlas / "pdf").glob("*.pdf"))
    assert made == sorted(f"{p.stem}.pdf" for p in pages)
    assert all(_pdf_info(atlas / "pdf" / m)["Pages"] for m in made)
    assert "2 Steckbriefe" in capsys.readouterr().out


def test_pdf_without_chromium_is_a_one_line_error(mv_atlas, monkeypatch, capsys):
    out, _, _ = mv_atlas
    monkeypatch.setattr(pdf, "chromium_path", lambda: None)
    assert main(["report", str(out), "--pdf"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Chromium" in err and "make browser-deps" in err
    assert "Traceback" not in err
    assert not (out / "pdf").exists()
