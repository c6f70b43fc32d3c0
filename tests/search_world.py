"""A small synthetic multi-Land address set for the search index (tests/test_search.py, and the
browser's side in tests/test_browser.py), with what a query should find computed from the rows.

Three Länder with two Kreise of four Gemeinden each; every Gemeinde has a "Hauptstraße" (one of them
600 addresses long, more than a small part holds), half have "Über der Mühle", some "Lindenweg" or
"Am Anger", and one street of its own ("Weg A"); "Neuenkirchen" twice (two Kreise); one Gemeinde
with two localities; house numbers with suffixes ("3a"); a few addresses without street or number;
and one stray address, in the chunk of a Land it is not in (as a partitioned run may hold one near a
border).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from coverage.report.search import fold, fold_variants

LAENDER = ("01", "02", "13")
NAMES = {"01001001": "Güstrow", "02001002": "Neuenkirchen", "13002003": "Neuenkirchen", "13001001": "Groß Köris"}


def _ags_list() -> list[str]:
    return [f"{land}{k:03d}{g:03d}" for land in LAENDER for k in (1, 2) for g in (1, 2, 3, 4)]


def search_tables() -> dict[str, pd.DataFrame]:
    ags = _ags_list()
    names = [NAMES.get(a, f"Dorf {chr(65 + i % 26)}{chr(97 + i // 26)}") for i, a in enumerate(ags)]
    gem = pd.DataFrame({"ags": ags, "vwg_ars": [a[:5] + "0" + a[5:] for a in ags], "krs_ags": [a[:5] for a in ags],
                        "name": names})
    kreise = sorted({a[:5] for a in ags})
    kreis = pd.DataFrame({"krs_ags": kreise, "name": [f"Kreis {k}" for k in kreise]})
    amt = pd.DataFrame({"vwg_ars": gem["vwg_ars"], "krs_ags": gem["krs_ags"], "name": "Amt " + gem["name"]})
    return {"kreis": kreis, "amt": amt, "gemeinde": gem}


def search_chunks(seed: int = 5) -> list[pd.DataFrame]:
    """The addresses, one frame per Land (the last row of the first Land's frame is the stray)."""
    rng = np.random.default_rng(seed)
    names = search_tables()["gemeinde"].set_index("ags")["name"]
    rows = []
    for i, ags in enumerate(_ags_list()):
        streets = [("Hauptstraße", 600 if i == 3 else int(rng.integers(5, 40)))]
        if i % 2 == 0:
            streets.append(("Über der Mühle", int(rng.integers(3, 20))))
        if i % 3 == 0:
            streets.append(("Lindenweg", int(rng.integers(3, 20))))
        if i % 5 == 1:
            streets.append(("Am Anger", int(rng.integers(3, 10))))
        streets.append((f"Weg {chr(65 + i)}", 3))  # a street in one Gemeinde only
        for street, n in streets:
            for j in range(n):
                locality = "Warnemünde" if ags == "13001002" and j % 2 else names[ags]
                number = f"{j + 1}a" if j % 7 == 6 else str(j + 1)
                rows.append((street, number, f"{ags[:2]}{ags[-2:]}0", locality, ags))
        for j in range(2 if i % 4 == 0 else 0):  # no street (one with a number)
            rows.append(("", str(j) if j else "", "", names[ags], ags))
    frame = pd.DataFrame(rows, columns=["street", "house_number", "postcode", "locality", "ags"])
    frame.insert(0, "address_id", [f"DE-{k:06d}" for k in range(len(frame))])
    chunks = [frame[frame["ags"].str[:2] == land].reset_index(drop=True) for land in LAENDER]
    stray = chunks[1].iloc[[0]]
    chunks[0] = pd.concat([chunks[0], stray], ignore_index=True)
    chunks[1] = chunks[1].iloc[1:].reset_index(drop=True)
    return chunks


def collapsed(q: str) -> str:
    """As search.js's ``collapsed``: "ueber" is also looked for as "uber"."""
    return q.replace("ae", "a").replace("oe", "o").replace("ue", "u")


def _match(keys: list[str], q: str) -> bool:
    return any(k == q or k.startswith(q) or f" {q}" in f" {k}" for k in keys)


def expected_ids(frame: pd.DataFrame, gemeinde_names: dict[str, str], street: str, number: str = "",
                 place: str = "") -> set[str]:
    """The ids a query (street, number, place; folded as typed) should find: street names starting
    with it (plain or with umlauts written out), house numbers starting with the number, the place a
    word prefix of "postcode locality" or of the Gemeinde's name."""
    wanted = {w for w in (street, collapsed(street)) if len(w) >= 2}
    places = {place, collapsed(place)} if place else set()
    out = set()
    for row in frame.itertuples(index=False):
        if not row.street or not any(k.startswith(w) for k in fold_variants(row.street) for w in wanted):
            continue
        if number and not fold(row.house_number).replace(" ", "").startswith(number):
            continue
        where = [fold(f"{row.postcode} {row.locality}".strip()), fold(gemeinde_names.get(row.ags, ""))]
        if places and not any(_match(where, p) for p in places):
            continue
        out.add(row.address_id)
    return out
