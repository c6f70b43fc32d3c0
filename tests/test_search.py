"""The atlas's search index (coverage.report.search): folding, area entries, address parts, and
that the public atlas's index holds no address (the browser side is in test_browser.py)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from coverage.report.search import (
    ADDRESSES_PER_ID_PART,
    area_entries,
    fold,
    fold_many,
    fold_variants,
    id_part,
    id_parts,
    search_files,
    street_part,
)


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


def _addresses(n: int) -> pd.DataFrame:
    return pd.DataFrame({"address_id": [f"MV-{i:07d}" for i in range(n)],
                         "street": ["Über der Mühle" if i % 2 else "Lindenstraße" for i in range(n)],
                         "house_number": [str(i % 50 + 1) for i in range(n)], "postcode": "18273",
                         "locality": "Güstrow", "ags": "13072049"})


def _assigned(text: str) -> object:
    """The value a part file assigns (``window.X=window.X||{};window.X["key"]=…;``)."""
    return json.loads(text.split("]=", 1)[1].removesuffix(";\n"))


def test_address_parts_hold_every_address_once_per_kind():
    n = 2 * ADDRESSES_PER_ID_PART + 17
    files = search_files(_tables(), _addresses(n))
    index = json.loads(files["search/index.js"].removeprefix("window.BBCOV_SEARCH=").removesuffix(";\n"))
    assert index["addresses"] == {"streets": ["li", "ub"], "id_parts": 3, "count": n}
    assert street_part("Über der Mühle") == "ub" and street_part("") == "_"
    streets = [s for key in ("li", "ub") for s in _assigned(files[f"search/str_{key}.js"])]
    assert sum(len(s[4]) // 2 for s in streets) == n
    assert {s[3] for s in streets} == {"lindenstrasse", "uber der muhle|ueber der muehle"}
    lines = [line for p in range(3) for line in _assigned(files[f"search/id_{p}.js"]).split("\n")]
    assert len(lines) == n and len({line.split("\t")[0] for line in lines}) == n
    for p in range(3):  # each id is in the part its hash names
        for line in _assigned(files[f"search/id_{p}.js"]).split("\n"):
            assert id_part(line.split("\t")[0], 3) == p
    # an id line says where its address is: street part, street, number
    line = next(x for x in lines if x.startswith("MV-0000003\t")).split("\t")
    street = _assigned(files[f"search/str_{line[1]}.js"])[int(line[2])]
    assert street[:3] == ["Über der Mühle", "18273 Güstrow", "13072049"]
    assert street[4][2 * int(line[3]):2 * int(line[3]) + 2] == ["4", "MV-0000003"]


def test_without_addresses_the_index_has_none():
    files = search_files(_tables(), None)
    assert list(files) == ["search/index.js"]
    assert '"addresses":null' in files["search/index.js"]


def test_id_parts_equal_id_part_one_by_one():
    ids = ["MV-0000001", "a", "", "Ägidienstraße-7", "x" * 40, "ẞ", "日本"]
    assert id_parts(ids, 53).tolist() == [id_part(i, 53) for i in ids]


def test_fold_many_equals_fold():
    values = pd.Series(["Güstrow", "MV-0000001", "  Bad_Doberan ", "STRAẞE 1", "", "Łódź"])
    assert fold_many(values) == [fold(v) for v in values]
