"""The atlas's search index: Kreise, Ämter, Gemeinden (and, in the internal atlas, addresses) as
JavaScript files that assign data, so the pages find places offline, also when opened from ``file://``
(where a page may not ``fetch`` a JSON file, but may load a ``<script>``).

``search/index.js`` holds every area, loaded by every page. Addresses (internal profile only) are
split into parts loaded on demand by ``static/search.js``: by the first two characters of the
folded street name (``search/str_<xy>.js``) and, for address ids, by a hash of the folded id
(``search/id_<n>.js``). The folding (:func:`fold`, :func:`fold_variants`) is the same in
``static/search.js``: lower case, ``ß`` -> ``ss``, accents and umlauts dropped, and in a second
key umlauts written out (``ü`` -> ``ue``), so "Gustrow" and "guestrow" both find "Güstrow".
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Mapping

import pandas as pd

from coverage.model import LEVEL_KEYS

#: Roughly this many addresses per id part (a part is a few hundred kB at most).
ADDRESSES_PER_ID_PART = 5000
_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue"})
_NON_WORD = re.compile(r"[\W_]+")
LEVEL_WORDS = {"kreis": "Kreis", "amt": "Amt", "gemeinde": "Gemeinde"}


def fold(text: object) -> str:
    """``"Güstrow, Barlach-Straße"`` -> ``"gustrow barlach strasse"``: the form queries and names are
    compared in (lower case, ß as ss, diacritics dropped, every run of non-letters one space)."""
    s = str(text).lower().replace("ß", "ss")
    s = "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))
    return _NON_WORD.sub(" ", s).strip()


def fold_variants(text: object) -> list[str]:
    """The keys a name is found by: :func:`fold` and, if different, the form with umlauts written
    out (``"gustrow"``, ``"guestrow"``)."""
    plain = fold(text)
    spelled = fold(str(text).lower().translate(_UMLAUTS))
    return [plain] if spelled == plain else [plain, spelled]


def id_part(address_id: object, parts: int) -> int:
    """The id part an address id is in: 32-bit FNV-1a over the code points of its :func:`fold`
    (``search.js`` computes the same)."""
    h = 0x811C9DC5
    for ch in fold(address_id):
        h = ((h ^ ord(ch)) * 0x01000193) & 0xFFFFFFFF
    return h % parts


def street_part(street: object) -> str:
    """The street part a street is in: the first two characters of its folded name (``"ne"``);
    ``"_"`` for a street whose folded name is empty."""
    key = fold(street).replace(" ", "")[:2]
    return key or "_"


def _js(variable: str, value: object, key: str | None = None) -> str:
    """``window.<variable> = …;`` (or ``window.<variable>[key] = …;``) as compact JSON."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    if key is None:
        return f"window.{variable}={text};\n"
    return f"window.{variable}=window.{variable}||{{}};window.{variable}[{json.dumps(key)}]={text};\n"


def area_entries(tables: Mapping[str, pd.DataFrame]) -> list[list[str]]:
    """One entry per Kreis, Amt and Gemeinde: [name, level word, key, page path, context, search keys]
    (keys: the name's folded variants, space separated by ``|``)."""
    kreis = tables["kreis"]
    kreis_names = dict(zip(kreis["krs_ags"].astype(str), kreis["name"].astype(str), strict=False))
    amt = tables["amt"]
    amt_names = dict(zip(amt["vwg_ars"].astype(str), amt["name"].astype(str), strict=False))
    out = []
    for level in ("kreis", "amt", "gemeinde"):
        frame = tables[level]
        key_col = LEVEL_KEYS[level]
        keys = frame[key_col].astype(str).tolist()
        names = frame["name"].astype(str).tolist()
        kreise = frame["krs_ags"].astype(str).tolist() if level != "kreis" else [""] * len(frame)
        aemter = frame["vwg_ars"].astype(str).tolist() if level == "gemeinde" else [""] * len(frame)
        for key, name, k, a in zip(keys, names, kreise, aemter, strict=True):
            context = ", ".join(p for p in (amt_names.get(a, "") if a and amt_names.get(a, "") != name else "",
                                            kreis_names.get(k, "")) if p)
            out.append([name, LEVEL_WORDS[level], key, f"{level}/{key}.html", context, "|".join(fold_variants(name))])
    return out


def address_parts(addresses: pd.DataFrame) -> tuple[dict[str, list], dict[int, str], int]:
    """The address index: per street part the streets ([street, postcode + locality, ags, search keys,
    [house number, address id, …]]), per id part the lines ``address_id<TAB>ags<TAB>label``, and the
    number of id parts. ``addresses``: address_id, street, house_number, postcode, locality, ags."""
    a = addresses[["address_id", "street", "house_number", "postcode", "locality", "ags"]].astype("string").fillna("")
    a = a.assign(place=(a["postcode"] + " " + a["locality"]).str.strip())
    by_street: dict[str, list] = {}
    for (street, place, ags), group in a.groupby(["street", "place", "ags"], sort=True):
        flat = [v for pair in zip(group["house_number"].tolist(), group["address_id"].tolist(), strict=True)
                for v in pair]
        by_street.setdefault(street_part(street), []).append(
            [street, place, ags, "|".join(fold_variants(street)), flat])
    parts = max(1, math.ceil(len(a) / ADDRESSES_PER_ID_PART))
    label = (a["street"] + " " + a["house_number"]).str.strip() + ", " + a["place"]
    lines = a["address_id"] + "\t" + a["ags"] + "\t" + label.str.strip(", ").str.replace("\t", " ")
    part_of = [id_part(i, parts) for i in a["address_id"].tolist()]
    by_id: dict[int, list[str]] = {}
    for part, line in zip(part_of, lines.tolist(), strict=True):
        by_id.setdefault(part, []).append(line)
    return by_street, {p: "\n".join(v) for p, v in by_id.items()}, parts


def search_files(tables: Mapping[str, pd.DataFrame], addresses: pd.DataFrame | None) -> dict[str, str]:
    """Path (below the atlas folder) -> JavaScript text of every search index file. Without
    ``addresses`` (the public atlas) the index holds no address and no address part is written."""
    files: dict[str, str] = {}
    addr = None
    if addresses is not None and len(addresses):
        by_street, by_id, parts = address_parts(addresses)
        for key, streets in by_street.items():
            files[f"search/str_{key}.js"] = _js("BBCOV_STREETS", streets, key)
        for part, text in by_id.items():
            files[f"search/id_{part}.js"] = _js("BBCOV_IDS", text, str(part))
        addr = {"streets": sorted(by_street), "id_parts": parts, "count": len(addresses)}
    index = {"version": 1, "areas": area_entries(tables), "addresses": addr}
    files["search/index.js"] = _js("BBCOV_SEARCH", index)
    return files
