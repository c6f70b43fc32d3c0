"""The atlas's search index (coverage.report.search): folding, area entries, address parts bounded in
size and holding every address once, written chunk by chunk, and that the public atlas's index holds no
address (the browser side, which queries them, is in test_browser.py)."""

from __future__ import annotations

import json
import tempfile
from itertools import pairwise
from pathlib import Path

import pandas as pd
import pytest

from coverage.report.search import (
    ADDRESSES_PER_ID_PART,
    AddressSource,
    area_entries,
    fold,
    fold_many,
    fold_variants,
    id_part,
    id_parts,
    iter_search_files,
    parquet_source,
    search_files,
)
from tests.search_world import LAENDER, search_chunks, search_tables


@pytest.mark.parametrize(("text", "folded"), [
    ("Güstrow", "gustrow"), ("GÜSTROW", "gustrow"), ("Groß Köris", "gross koris"), ("STRAẞE", "strasse"),
    ("Barlach-Straße 12a", "barlach strasse 12a"), ("  Bad  Doberan ", "bad doberan"),
    ("Sankt-Ägidien", "sankt agidien"), ("Łódź", "łodz"), ("Amt_Neverin", "amt neverin"), ("", ""),
])
def test_fold_drops_case_accents_and_punctuation(text, folded):
    assert fold(text) == folded


def test_umlauts_are_found_plain_and_spelled_out():
    assert fold_variants("Güstrow") == ["gustrow", "guestrow"]
    assert fold_variants("Rostock") == ["rostock"]
    assert fold_variants("Groß Nemerow") == ["gross nemerow"]  # ß is ss in both
    assert fold_variants("Löcknitz-Penkun") == ["locknitz penkun", "loecknitz penkun"]


def test_id_part_is_stable_fnv1a_and_case_insensitive():
    # FNV-1a 32 of "a" is 0xE40C292C (the published test vector); the JS side computes the same
    assert id_part("a", 2**32 - 1) == 0xE40C292C % (2**32 - 1)
    assert id_part("MV-0000001", 53) == id_part("mv 0000001", 53)
    assert 0 <= id_part("X", 7) < 7


def _tables():
    kreis = pd.DataFrame({"krs_ags": ["13072"], "name": ["Landkreis Rostock"]})
    amt = pd.DataFrame({"vwg_ars": ["130725252", "130720060"], "krs_ags": ["13072", "13072"],
                        "name": ["Amt Güstrow-Land", "Güstrow"]})
    gem = pd.DataFrame({"ags": ["13072049", "13072001"], "vwg_ars": ["130720060", "130725252"],
                        "krs_ags": ["13072", "13072"], "name": ["Güstrow", "Gülzow-Prüzen"]})
    return {"kreis": kreis, "amt": amt, "gemeinde": gem, "land": pd.DataFrame({"land": ["13"], "name": ["MV"]})}


def test_area_entries_name_level_page_context_and_keys():
    entries = {(e[1], e[2]): e for e in area_entries(_tables())}
    assert entries[("Gemeinde", "13072049")] == ["Güstrow", "Gemeinde", "13072049", "gemeinde/13072049.html",
                                                 "Landkreis Rostock", "gustrow|guestrow"]  # its Amt has its name
    assert entries[("Gemeinde", "13072001")][4] == "Amt Güstrow-Land, Landkreis Rostock"
    assert entries[("Kreis", "13072")][3] == "kreis/13072.html"
    assert len(entries) == 5


def _assigned(text: str) -> object:
    """The value a part file assigns (``window.X=window.X||{};window.X["key"]=…;``)."""
    return json.loads(text.split("]=", 1)[1].removesuffix(";\n"))


def _index(files: dict[str, str]) -> dict:
    return json.loads(files["search/index.js"].removeprefix("window.BBCOV_SEARCH=").removesuffix(";\n"))


def _world_files(part_bytes: int, chunks: list[pd.DataFrame] | None = None) -> dict[str, str]:
    chunks = search_chunks() if chunks is None else chunks
    source = AddressSource(sum(len(c) for c in chunks), lambda: chunks)
    with tempfile.TemporaryDirectory() as scratch:
        files = dict(iter_search_files(search_tables(), source, Path(scratch), part_bytes))
        assert list(Path(scratch).iterdir()) == []  # the id lines' scratch files are gone
    return files


def _id_lines(files: dict[str, str], parts: int) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in range(parts):
        if f"search/id_{p}.js" in files:
            for line in str(_assigned(files[f"search/id_{p}.js"])).split("\n"):
                assert id_part(line.split("\t")[0], parts) == p  # each id is in the part its hash names
                out.setdefault(line.split("\t")[0], []).append(line)
    return out


PART = 3000  # small parts, so the world's 1,418 addresses need many


def test_parts_are_bounded_and_hold_every_address_once():
    files = _world_files(PART)
    frame = pd.concat(search_chunks(), ignore_index=True)
    info = _index(files)["addresses"]
    addr = {k: v for k, v in files.items() if k.startswith("search/a_")}
    streets = {k: v for k, v in files.items() if k.startswith("search/s_")}
    assert info["count"] == len(frame) and info["parts"] == len(addr) >= 8 and len(info["streets"]) == len(streets) > 1
    assert max(len(t.encode("utf-8")) for t in [*addr.values(), *streets.values()]) <= PART
    # every address with a street is in exactly one entry of one part, with its street, place and Gemeinde
    held: dict[str, tuple] = {}
    for p in range(info["parts"]):
        entries = _assigned(addr[f"search/a_{p}.js"])
        assert len({e[2][:5] for e in entries}) == 1  # a part never spans two Kreise
        for street, place, ags, numbers in entries:
            for number, address in zip(numbers[::2], numbers[1::2], strict=True):
                assert address not in held
                held[address] = (street, number, place, ags, p)
    with_street = frame[frame["street"] != ""]
    assert set(held) == set(with_street["address_id"])
    for row in with_street.itertuples(index=False):
        assert held[row.address_id][:4] == (row.street, row.house_number, f"{row.postcode} {row.locality}", row.ags)
    # id lines: each address once; the line names its part, or (no street) its Gemeinde and label
    lines = _id_lines(files, info["id_parts"])
    assert sorted(lines) == sorted(frame["address_id"]) and all(len(v) == 1 for v in lines.values())
    for row in frame.itertuples(index=False):
        fields = lines[row.address_id][0].split("\t")
        if row.street:
            assert fields == [row.address_id, str(held[row.address_id][4])]
        else:
            assert fields == [row.address_id, "", row.ags, ", ".join(x for x in (row.house_number, row.locality) if x)]
    # the street directory: ranges in order; each (street, Gemeinde, place) once, naming the parts that hold it
    ranges = info["streets"]
    assert all(a[0] <= a[1] <= b[0] for a, b in pairwise(ranges))
    refs = {}
    for n, (first, last) in enumerate(ranges):
        for street, keys, where in _assigned(streets[f"search/s_{n}.js"]):
            assert keys == "|".join(fold_variants(street)) and first <= keys.split("|")[0] <= last
            for ags, place, a, b in zip(where[::4], where[1::4], where[2::4], where[3::4], strict=True):
                refs.setdefault((street, ags, place), []).append((a, b))
    groups = with_street.groupby(["street", "ags", (with_street["postcode"] + " " + with_street["locality"])])
    assert set(refs) == set(groups.groups)
    for key, ids in groups["address_id"]:
        found = {i for a, b in refs[key] for i, h in held.items() if a <= h[4] <= b and h[:4:2] == (key[0], key[2])
                 and h[3] == key[1]}
        assert found == set(ids), key
    assert any(b > a for r in refs.values() for a, b in r)  # the 600-address street goes on in the next part
    assert len(refs[("Hauptstraße", "02001001", "02010 Dorf Ia")]) == 2  # the stray: a part in each chunk


def test_chunks_from_part_files_and_scratch_files_give_the_same_index(tmp_path, monkeypatch):
    """A partition's part files are read as one chunk (land=01-000, land=01-001); id lines that went
    to scratch files in between are read back into the same parts."""
    from coverage.report import search

    chunks = search_chunks()
    for n, piece in enumerate((chunks[0].iloc[:400], chunks[0].iloc[400:])):
        piece.to_parquet(tmp_path / f"land=01-00{n}.parquet")
    for land, chunk in zip(LAENDER[1:], chunks[1:], strict=True):
        chunk.to_parquet(tmp_path / f"land={land}-000.parquet")
    expected = _world_files(PART)
    source = parquet_source(sorted(tmp_path.glob("*.parquet")))
    assert source.count == sum(len(c) for c in chunks)
    monkeypatch.setattr(search, "ID_LINES_IN_MEMORY", 100)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    assert dict(iter_search_files(search_tables(), source, scratch, PART)) == expected


def test_one_mv_like_gemeinde_default_bound():
    n = 2 * ADDRESSES_PER_ID_PART + 17
    addresses = pd.DataFrame({"address_id": [f"MV-{i:07d}" for i in range(n)],
                              "street": ["Über der Mühle" if i % 2 else "Lindenstraße" for i in range(n)],
                              "house_number": [str(i % 50 + 1) for i in range(n)], "postcode": "18273",
                              "locality": "Güstrow", "ags": "13072049"})
    files = search_files(_tables(), addresses)
    info = _index(files)["addresses"]
    assert info == {"count": n, "id_parts": 3, "parts": 1, "streets": [["lindenstrasse", "uber der muhle"]]}
    entries = _assigned(files["search/a_0.js"])
    assert [e[:3] for e in entries] == [["Lindenstraße", "18273 Güstrow", "13072049"],
                                        ["Über der Mühle", "18273 Güstrow", "13072049"]]
    assert entries[1][3][:4] == ["2", "MV-0000001", "4", "MV-0000003"]
    assert _assigned(files["search/s_0.js"]) == [
        ["Lindenstraße", "lindenstrasse", ["13072049", "18273 Güstrow", 0, 0]],
        ["Über der Mühle", "uber der muhle|ueber der muehle", ["13072049", "18273 Güstrow", 0, 0]]]


def test_without_addresses_the_index_has_none():
    files = search_files(_tables(), None)
    assert list(files) == ["search/index.js"]
    assert '"addresses":null' in files["search/index.js"]


def test_hostile_texts_stay_data():
    """Quotes, backslashes, line breaks and U+2028 in streets and ids are escaped JSON; a tab or line
    break in an id becomes a space (its id line is one line of tab-separated fields)."""
    evil = 'Weg "1"\\ </script>\u2028'
    addresses = pd.DataFrame({"address_id": ["A\t1", 'B"2'], "street": [evil, evil], "house_number": ["1", '2"'],
                              "postcode": "", "locality": "X", "ags": "13072049"})
    files = search_files(_tables(), addresses)
    assert "\u2028" not in "".join(files.values())
    assert _assigned(files["search/a_0.js"]) == [[evil, "X", "13072049", ["1", "A 1", '2"', 'B"2']]]
    lines = _id_lines(files, 1)
    assert lines == {"A 1": ["A 1\t0"], 'B"2': ['B"2\t0']}


def test_id_parts_equal_id_part_one_by_one():
    ids = ["MV-0000001", "a", "", "Ägidienstraße-7", "x" * 40, "ẞ", "日本", "__a__b--", "A_B c", "  Z9 ", "-",
           "DE01-00000001"]
    assert id_parts(ids, 53).tolist() == [id_part(i, 53) for i in ids]


def test_fold_many_equals_fold():
    values = pd.Series(["Güstrow", "MV-0000001", "  Bad_Doberan ", "STRAẞE 1", "", "Łódź"])
    assert fold_many(values) == [fold(v) for v in values]


def test_a_partitioned_run_is_read_partition_by_partition(tmp_path):
    """pipelines.report.search_addresses over a run folder whose addresses.parquet is a folder of
    part files: a source counted from the files, one chunk per partition, same index as from frames."""
    from types import SimpleNamespace

    from pipelines.report import search_addresses

    chunks = search_chunks()
    (tmp_path / "addresses.parquet").mkdir()
    for land, chunk in zip(LAENDER, chunks, strict=True):
        chunk.assign(x=1.0).to_parquet(tmp_path / "addresses.parquet" / f"land={land}-000.parquet")
    record = SimpleNamespace(state=SimpleNamespace(results=None, addresses=None), run_dir=tmp_path)
    source = search_addresses(record)
    assert source is not None and source.count == sum(len(c) for c in chunks)
    assert [len(c) for c in source.chunks()] == [len(c) for c in chunks]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    assert dict(iter_search_files(search_tables(), source, scratch, PART)) == _world_files(PART)
