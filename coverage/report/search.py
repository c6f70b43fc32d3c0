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

import numpy as np
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
    s = str(text).lower()
    if not s.isascii():  # (the fast path: most ids and many names are ASCII)
        s = s.replace("ß", "ss")
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


def fold_many(values: pd.Series) -> list[str]:
    """:func:`fold` of many values: vectorised for ASCII text, :func:`fold` itself for the rest."""
    text = values.astype(str)
    ascii_ = text.map(str.isascii).to_numpy(dtype=bool)
    out = text.str.lower().str.replace(r"[\W_]+", " ", regex=True).str.strip().tolist()
    for i in np.flatnonzero(~ascii_).tolist():
        out[i] = fold(text.iat[i])
    return out


def id_parts(address_ids: list[str], parts: int) -> np.ndarray:
    """:func:`id_part` of many ids at once (numpy over the code points, one step per character)."""
    folded = np.array(fold_many(pd.Series(address_ids, dtype=object)) or [""], dtype=str)
    width = max(1, folded.dtype.itemsize // 4)
    codes = folded.astype(f"<U{width}").view(np.uint32).reshape(len(folded), width).astype(np.uint64)
    lengths = np.char.str_len(folded)
    h = np.full(len(folded), 0x811C9DC5, dtype=np.uint64)
    for j in range(width):
        step = ((h ^ codes[:, j]) * np.uint64(0x01000193)) & np.uint64(0xFFFFFFFF)
        h = np.where(j < lengths, step, h)
    return (h % np.uint64(parts)).astype(np.int64)[:len(address_ids)]


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
    """The address index: per street part its streets ([street, postcode + locality, ags, search keys,
    [house number, address id, …]]), per id part the lines ``address_id<TAB>street part<TAB>street
    index<TAB>number index`` (where the address is in its street part), and the number of id parts.
    ``addresses``: address_id, street, house_number, postcode, locality, ags."""
    a = addresses[["address_id", "street", "house_number", "postcode", "locality", "ags"]].astype("string").fillna("")
    frame = pd.DataFrame({"id": a["address_id"].str.replace("\n", " "), "street": a["street"],
                          "hn": a["house_number"], "place": (a["postcode"] + " " + a["locality"]).str.strip(),
                          "ags": a["ags"]})
    frame = frame.sort_values(["street", "place", "ags"], kind="stable").reset_index(drop=True)
    n = len(frame)
    code = frame.groupby(["street", "place", "ags"], sort=False).ngroup().to_numpy()
    starts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]]) if n else np.array([], dtype=int)
    ends = np.r_[starts[1:], n]
    ids, numbers = frame["id"].tolist(), frame["hn"].tolist()
    first = frame.iloc[starts]
    g_street, g_place, g_ags = first["street"].tolist(), first["place"].tolist(), first["ags"].tolist()
    g_part = [street_part(x) for x in g_street]
    g_index = pd.Series(g_part, dtype=object).groupby(g_part, sort=False).cumcount().to_numpy()
    by_street: dict[str, list] = {}
    for k in range(len(starts)):
        flat = [v for pair in zip(numbers[starts[k]:ends[k]], ids[starts[k]:ends[k]], strict=True) for v in pair]
        by_street.setdefault(g_part[k], []).append(
            [g_street[k], g_place[k], g_ags[k], "|".join(fold_variants(g_street[k])), flat])
    group = np.repeat(np.arange(len(starts)), ends - starts)
    position = np.arange(n) - starts[group] if n else np.array([], dtype=int)
    part_of_row = np.asarray(g_part, dtype=object)[group] if n else np.array([], dtype=object)
    lines = (frame["id"].astype(object) + "\t" + part_of_row + "\t" + g_index[group].astype(str).astype(object)
             + "\t" + position.astype(str).astype(object)).tolist()
    parts = max(1, math.ceil(n / ADDRESSES_PER_ID_PART))
    by_id: dict[int, list[str]] = {}
    for line, p in zip(lines, id_parts(ids, parts).tolist(), strict=True):
        by_id.setdefault(p, []).append(line)
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
