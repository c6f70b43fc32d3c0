"""The atlas's search index: Kreise, Ämter, Gemeinden (and, in the internal atlas, addresses) as
JavaScript files that assign data, so the pages find places offline, also when opened from ``file://``
(where a page may not ``fetch`` a JSON file, but may load a ``<script>``).

``search/index.js`` holds every area, loaded by every page. Addresses (internal profile only) are in
parts of at most :data:`PART_BYTES` each, whatever the scope, loaded on demand by ``static/search.js``:

- ``search/a_<n>.js``, address parts: the addresses of one Kreis sorted by Gemeinde key, street and
  place, cut where a part is full (a part never spans two Kreise; a long street goes on in the next
  part): ``[street, place, ags, [house number, address id, …]]``.
- ``search/s_<n>.js``, the street directory: each street name with where it is, sorted by folded name
  and cut where a part is full; ``index.js`` holds each part's first and last folded name, so a typed
  street loads only the parts its prefix falls in: ``[street, keys, [ags, place, first a_, last a_, …]]``.
- ``search/id_<n>.js``, address ids by a hash of the folded id (FNV-1a): lines ``id<TAB>a_ part`` or,
  for an address without a street (in no address part), ``id<TAB><TAB>ags<TAB>label``.

The files are made one at a time from chunks of addresses (:class:`AddressSource`: a Land's part
files of a partitioned run), so memory holds one chunk, the street directory's entries and one part:
the id lines wait in scratch files until every chunk is read. The folding (:func:`fold`,
:func:`fold_variants`) is the same in ``static/search.js``: lower case, ``ß`` -> ``ss``, accents and
umlauts dropped, and in a second key umlauts written out (``ü`` -> ``ue``), so "Gustrow" and
"guestrow" both find "Güstrow".
"""

from __future__ import annotations

import json
import logging
import math
import re
import tempfile
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd

from coverage.model import LEVEL_KEYS

log = logging.getLogger(__name__)

#: Roughly this many addresses per id part (a part is a few hundred kB at most).
ADDRESSES_PER_ID_PART = 5000
#: No address part or street-directory part is larger (bytes, UTF-8) unless one address alone is.
PART_BYTES = 256_000
#: Id lines held in memory before they go to a scratch file (about 100 MB of text).
ID_LINES_IN_MEMORY = 2_000_000
SEARCH_COLUMNS = ["address_id", "street", "house_number", "postcode", "locality", "ags"]
_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue"})
_NON_WORD = re.compile(r"[\W_]+")
_ESCAPED = re.compile(r'["\\\x00-\x1f\u2028\u2029]')  # what JSON (and a JS file) must escape
_ID_BREAKS = re.compile(r"[\t\n\r]")
LEVEL_WORDS = {"kreis": "Kreis", "amt": "Amt", "gemeinde": "Gemeinde"}
_FNV_OFFSET, _FNV_PRIME, _MASK = 0x811C9DC5, 0x01000193, 0xFFFFFFFF


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
    h = _FNV_OFFSET
    for ch in fold(address_id):
        h = ((h ^ ord(ch)) * _FNV_PRIME) & _MASK
    return h % parts


def fold_many(values: pd.Series) -> list[str]:
    """:func:`fold` of many values: vectorised for ASCII text, :func:`fold` itself for the rest."""
    text = values.astype(str)
    ascii_ = text.map(str.isascii).to_numpy(dtype=bool)
    out = text.str.lower().str.replace(r"[\W_]+", " ", regex=True).str.strip().tolist()
    for i in np.flatnonzero(~ascii_).tolist():
        out[i] = fold(text.iat[i])
    return out


def id_parts(address_ids: Sequence[str], parts: int) -> np.ndarray:
    """:func:`id_part` of many ids at once. ASCII ids are folded and hashed in one pass over their
    code points (numpy, one step per character: a letter or digit after a run of other characters
    hashes a space first, as :func:`fold` writes one); other ids one by one."""
    ids = [str(i) for i in address_ids]
    out = np.zeros(len(ids), dtype=np.int64)
    ascii_ = np.fromiter(map(str.isascii, ids), dtype=bool, count=len(ids))
    rows = np.flatnonzero(ascii_)
    if len(rows):
        text = np.array(ids if len(rows) == len(ids) else [ids[i] for i in rows.tolist()], dtype=str)
        width = text.dtype.itemsize // 4
        codes = text.view(np.uint32).reshape(len(text), width) if width else np.zeros((len(text), 0), np.uint32)
        h = np.full(len(text), _FNV_OFFSET, dtype=np.uint64)
        seen = np.zeros(len(text), dtype=bool)  # a letter or digit was hashed
        gap = np.zeros(len(text), dtype=bool)  # other characters since the last one
        for j in range(width):
            c = codes[:, j].astype(np.uint64)
            c = np.where((c >= 65) & (c <= 90), c + 32, c)
            word = ((c >= 48) & (c <= 57)) | ((c >= 97) & (c <= 122))
            space = word & gap & seen
            h = np.where(space, ((h ^ np.uint64(32)) * np.uint64(_FNV_PRIME)) & np.uint64(_MASK), h)
            h = np.where(word, ((h ^ c) * np.uint64(_FNV_PRIME)) & np.uint64(_MASK), h)
            seen |= word
            gap = ~word & (gap | seen)
        out[rows] = (h % np.uint64(parts)).astype(np.int64)
    for i in np.flatnonzero(~ascii_).tolist():
        out[i] = id_part(ids[i], parts)
    return out


def _json_text(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _js(variable: str, value: object, key: str | None = None) -> str:
    """``window.<variable> = …;`` (or ``window.<variable>[key] = …;``) as compact JSON."""
    return _js_open(variable, key) + _json_text(value) + ";\n"


def _js_open(variable: str, key: str | None) -> str:
    if key is None:
        return f"window.{variable}="
    return f"window.{variable}=window.{variable}||{{}};window.{variable}[{json.dumps(key)}]="


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


@dataclass(frozen=True)
class AddressSource:
    """The addresses of the search index: their number (known before any is read: it sets the number
    of id parts) and a function giving them chunk by chunk (frames with :data:`SEARCH_COLUMNS`; any
    rows, best whole Länder or Kreise: a Kreis split over chunks gets parts in each)."""

    count: int
    chunks: Callable[[], Iterable[pd.DataFrame]]


def frame_source(frame: pd.DataFrame) -> AddressSource:
    """Addresses already in memory, as one chunk."""
    return AddressSource(len(frame), lambda: [frame])


def parquet_source(files: Sequence[Path]) -> AddressSource:
    """Addresses in Parquet files, one chunk per partition (``land=05-000.parquet``, ``land=05-001…``
    together: the files of a partitioned run), counted from the files' metadata."""
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    groups: dict[str, list[str]] = {}
    for f in sorted(files, key=str):
        groups.setdefault(Path(f).name.rsplit("-", 1)[0], []).append(str(f))
    count = sum(pq.ParquetFile(f).metadata.num_rows for f in files)

    def chunks() -> Iterator[pd.DataFrame]:
        for group in groups.values():
            yield ds.dataset(group, format="parquet").to_table(columns=SEARCH_COLUMNS).to_pandas()

    return AddressSource(count, chunks)


def _coded(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(code per row, text per code): a column as categories, a missing value as ``""``."""
    cat = values if isinstance(values.dtype, pd.CategoricalDtype) else values.astype("category")
    texts = np.append(np.asarray([str(v) for v in cat.cat.categories], dtype=object), "")
    codes = cat.cat.codes.to_numpy().astype(np.int64)
    codes[codes < 0] = len(texts) - 1
    return codes, texts


def _rank(values: Sequence, key: Callable | None = None) -> np.ndarray:
    """The position of each value in sorted order (by ``key``)."""
    order = sorted(range(len(values)), key=(lambda i: values[i]) if key is None else (lambda i: key(values[i])))
    rank = np.empty(len(values), dtype=np.int64)
    rank[order] = np.arange(len(values))
    return rank


def _utf16(text: str) -> bytes:
    """Sort key that orders as JavaScript compares strings (UTF-16 code units)."""
    return text.encode("utf-16-be")


def _utf8_lengths(texts: list[str]) -> np.ndarray:
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    wide = np.flatnonzero(~np.fromiter(map(str.isascii, texts), dtype=bool, count=len(texts)))
    for i in wide.tolist():
        lengths[i] = len(texts[i].encode("utf-8"))
    return lengths


def _json_strings(texts: np.ndarray) -> np.ndarray:
    """Each text as a JSON string (quoted; escaped where it needs it)."""
    if not _ESCAPED.search("\x7f".join(texts.tolist())):
        return "\"" + texts.astype(object) + "\""
    return np.asarray([_json_text(t) for t in texts.tolist()], dtype=object)


def _pack(header_bytes: list[int], starts: list[int], ends: list[int], row_bytes: np.ndarray,
          budget: int) -> list[list[tuple[int, int, int]]]:
    """Entries (a header, then rows) into parts of at most ``budget`` bytes, in order; an entry that
    does not fit in what is left of a part goes on in the next. A part is a list of (entry, first row,
    end row). Sizes: entry = header + rows with a comma after each + ``]`` (the header opens ``[…,[``,
    the last comma is the closing ``]``); entries are separated by a comma."""
    cum = np.concatenate([[0], np.cumsum(row_bytes + 1)]).tolist()
    parts: list[list[tuple[int, int, int]]] = []
    current: list[tuple[int, int, int]] = []
    used = 0
    for g, (a, end) in enumerate(zip(starts, ends, strict=True)):
        while a < end:
            fixed = (1 if current else 0) + header_bytes[g] + 1
            if used + fixed + cum[end] - cum[a] <= budget:
                b = end
            else:
                b = min(end, bisect_right(cum, budget - used - fixed + cum[a]) - 1)
                if b <= a:
                    if current:
                        parts.append(current)
                        current, used = [], 0
                        continue
                    b = a + 1  # one row alone larger than a part: it gets a part of its own
                    log.warning("search index: one entry is larger than a part (%d bytes)",
                                fixed + cum[b] - cum[a])
            current.append((g, a, b))
            used += fixed + cum[b] - cum[a]
            a = b
            if a < end:
                parts.append(current)
                current, used = [], 0
    if current:
        parts.append(current)
    return parts


def _part_text(variable: str, key: str, headers: list[str], rows: list[str], part: list[tuple[int, int, int]]
               ) -> str:
    entries = ",".join(headers[g] + ",".join(rows[a:b]) + "]]" for g, a, b in part)
    return _js_open(variable, key) + "[" + entries + "];\n"


def _overhead(variable: str) -> int:
    """Bytes of a part file besides its entries (with a ten-digit key)."""
    return len(_js_open(variable, "0" * 10).encode()) + len("[];\n")


class _IdLines:
    """The id lines of every address, hashed into ``parts`` id parts: held until
    :data:`ID_LINES_IN_MEMORY`, then written to a scratch file sorted by part (with each part's
    offsets), and read back part by part at the end."""

    def __init__(self, scratch: Path, parts: int) -> None:
        self.scratch, self.parts = scratch, parts
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []
        self.held = 0
        self.spills: list[tuple[Path, np.ndarray]] = []

    def add(self, ids: list[str], lines: np.ndarray) -> None:
        self.pending.append((id_parts(ids, self.parts), lines))
        self.held += len(lines)
        if self.held >= ID_LINES_IN_MEMORY:
            self._spill()

    def _spill(self) -> None:
        if not self.pending:
            return
        h = np.concatenate([p for p, _ in self.pending])
        lines = np.concatenate([t for _, t in self.pending])
        self.pending, self.held = [], 0
        order = np.argsort(h, kind="stable")
        h, text = h[order], lines[order].tolist()
        bounds = np.searchsorted(h, np.arange(self.parts + 1)).tolist()
        offsets = np.zeros(self.parts + 1, dtype=np.int64)
        path = self.scratch / f"ids_{len(self.spills)}.txt"
        with path.open("wb") as f:
            for p in range(self.parts):
                if bounds[p + 1] > bounds[p]:
                    f.write(("\n".join(text[bounds[p]:bounds[p + 1]]) + "\n").encode("utf-8"))
                offsets[p + 1] = f.tell()
        self.spills.append((path, offsets))

    def files(self) -> Iterator[tuple[str, str]]:
        self._spill()
        handles = [path.open("rb") for path, _ in self.spills]
        try:
            for p in range(self.parts):
                pieces = []
                for f, (_, offsets) in zip(handles, self.spills, strict=True):
                    if offsets[p + 1] > offsets[p]:
                        f.seek(int(offsets[p]))
                        pieces.append(f.read(int(offsets[p + 1] - offsets[p])))
                if pieces:
                    yield f"search/id_{p}.js", _js("BBCOV_IDS", b"".join(pieces).decode("utf-8")[:-1], str(p))
        finally:
            for f in handles:
                f.close()


class _Chunk:
    """One chunk of addresses, coded and sorted by Kreis, Gemeinde, folded street, street, place."""

    def __init__(self, frame: pd.DataFrame) -> None:
        ids = frame["address_id"].astype(str).to_numpy(dtype=object)
        joined = "\x7f".join(ids.tolist())
        if _ID_BREAKS.search(joined):  # an id line is one line of tab-separated fields
            ids = np.asarray([_ID_BREAKS.sub(" ", i) for i in ids.tolist()], dtype=object)
        self.ids = ids
        self.ags, self.ags_text = _coded(frame["ags"])
        self.street, self.street_text = _coded(frame["street"])
        self.number, self.number_text = _coded(frame["house_number"])
        postcode, postcodes = _coded(frame["postcode"])
        locality, localities = _coded(frame["locality"])
        pair, self.place = np.unique(postcode * len(localities) + locality, return_inverse=True)
        self.place_text = np.asarray([f"{postcodes[p // len(localities)]} {localities[p % len(localities)]}".strip()
                                      for p in pair.tolist()], dtype=object)
        self.street_key = np.asarray(fold_many(pd.Series(self.street_text, dtype=object)), dtype=object)
        keys, names = self.street_key.tolist(), self.street_text.tolist()
        street_rank = _rank(range(len(keys)), key=lambda i: (_utf16(keys[i]), names[i]))
        self.order = np.lexsort((np.arange(len(frame)), _rank(self.place_text.tolist())[self.place],
                                 street_rank[self.street], _rank(self.ags_text.tolist())[self.ags]))
        kreis = np.asarray([a[:5] for a in self.ags_text.tolist()], dtype=object)
        _, kreis_code = np.unique(kreis, return_inverse=True)
        k = kreis_code[self.ags[self.order]]
        self.kreis_bounds = np.flatnonzero(np.r_[True, k[1:] != k[:-1], True]) if len(k) else np.array([0])


def _kreis_parts(chunk: _Chunk, rows: np.ndarray, first_part: int, budget: int, ids: _IdLines,
                 directory: dict[tuple[str, str], list[str]]) -> Iterator[str]:
    """The address parts of one Kreis's rows (sorted), numbered from ``first_part``; their id lines go
    to ``ids``, their streets to ``directory`` ((folded street, street) -> refs)."""
    sc = chunk.street[rows]
    has_street = chunk.street_key[sc] != ""
    bare = rows[~has_street]
    if len(bare):
        number, place = chunk.number_text[chunk.number[bare]], chunk.place_text[chunk.place[bare]]
        label = np.where(number == "", place, np.where(place == "", number, number + ", " + place))
        ids.add(chunk.ids[bare].tolist(), chunk.ids[bare] + "\t\t" + chunk.ags_text[chunk.ags[bare]] + "\t" + label)
    rows = rows[has_street]
    if not len(rows):
        return
    ac, sc, pc = chunk.ags[rows], chunk.street[rows], chunk.place[rows]
    new = np.r_[True, (ac[1:] != ac[:-1]) | (sc[1:] != sc[:-1]) | (pc[1:] != pc[:-1])]
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], len(rows)]
    g_ags, g_street, g_place = ac[starts], sc[starts], pc[starts]
    headers = [_json_text([s, p, a])[:-1] + ",[" for s, p, a in zip(
        chunk.street_text[g_street].tolist(), chunk.place_text[g_place].tolist(), chunk.ags_text[g_ags].tolist(),
        strict=True)]
    numbers = _json_strings(chunk.number_text)
    id_json = _json_strings(chunk.ids[rows])
    texts = (numbers[chunk.number[rows]] + "," + id_json).tolist()
    number_bytes = _utf8_lengths(numbers.tolist())
    row_bytes = number_bytes[chunk.number[rows]] + 1 + _utf8_lengths(id_json.tolist())
    parts = _pack(_utf8_lengths(headers).tolist(), starts.tolist(), ends.tolist(), row_bytes, budget)
    row_part = np.empty(len(rows), dtype=np.int64)
    for i, part in enumerate(parts):
        row_part[part[0][1]:part[-1][2]] = first_part + i
        yield _part_text("BBCOV_ADDR", str(first_part + i), headers, texts, part)
    numbered = np.asarray([str(first_part + i) for i in range(len(parts))], dtype=object)
    local = row_part - first_part
    ids.add(chunk.ids[rows].tolist(), chunk.ids[rows] + "\t" + numbered[local])
    refs = (_json_strings(chunk.ags_text)[g_ags] + "," + _json_strings(chunk.place_text)[g_place] + ","
            + numbered[local[starts]] + "," + numbered[local[ends - 1]])
    for key, street, ref in zip(chunk.street_key[g_street].tolist(), chunk.street_text[g_street].tolist(),
                                refs.tolist(), strict=True):
        directory.setdefault((key, street), []).append(ref)


def _directory_parts(directory: dict[tuple[str, str], list[str]], budget: int
                     ) -> Iterator[tuple[str, str, str, str]]:
    """The street directory's parts in folded-name order: (path, text, first key, last key)."""
    entries = sorted(directory, key=lambda e: (_utf16(e[0]), e[1]))
    headers = [_json_text([street, "|".join(fold_variants(street))])[:-1] + ",[" for _, street in entries]
    rows: list[str] = []
    starts, ends = [], []
    for entry in entries:
        starts.append(len(rows))
        rows += directory[entry]
        ends.append(len(rows))
    for i, part in enumerate(_pack(_utf8_lengths(headers).tolist(), starts, ends, _utf8_lengths(rows), budget)):
        yield (f"search/s_{i}.js", _part_text("BBCOV_STREETS", str(i), headers, rows, part),
               entries[part[0][0]][0], entries[part[-1][0]][0])


def iter_search_files(tables: Mapping[str, pd.DataFrame], addresses: AddressSource | None, scratch: Path,
                      part_bytes: int = PART_BYTES) -> Iterator[tuple[str, str]]:
    """(path below the atlas folder, JavaScript text) of every search index file, one at a time,
    ``search/index.js`` last. Without ``addresses`` (the public atlas) the index holds no address.
    ``scratch``: a folder for the id lines meanwhile (a few hundred MB for Germany; emptied after)."""
    addr = None
    if addresses is not None and addresses.count:
        id_count = max(1, math.ceil(addresses.count / ADDRESSES_PER_ID_PART))
        directory: dict[tuple[str, str], list[str]] = {}
        n_parts = n_rows = 0
        with tempfile.TemporaryDirectory(dir=scratch, prefix=".search-") as tmp:
            ids = _IdLines(Path(tmp), id_count)
            for frame in addresses.chunks():
                chunk = _Chunk(frame)
                n_rows += len(frame)
                bounds = chunk.kreis_bounds.tolist()
                for a, b in pairwise(bounds):
                    for text in _kreis_parts(chunk, chunk.order[a:b], n_parts, part_bytes - _overhead("BBCOV_ADDR"),
                                             ids, directory):
                        yield f"search/a_{n_parts}.js", text
                        n_parts += 1
                del chunk, frame
            streets = []
            for path, text, first, last in _directory_parts(directory, part_bytes - _overhead("BBCOV_STREETS")):
                streets.append([first, last])
                yield path, text
            directory.clear()
            yield from ids.files()
        if n_rows != addresses.count:
            log.warning("search index: %d addresses read, %d announced (id parts sized for those)",
                        n_rows, addresses.count)
        addr = {"count": n_rows, "id_parts": id_count, "parts": n_parts, "streets": streets}
    index = {"version": 2, "areas": area_entries(tables), "addresses": addr}
    yield "search/index.js", _js("BBCOV_SEARCH", index)


def search_files(tables: Mapping[str, pd.DataFrame], addresses: pd.DataFrame | None,
                 part_bytes: int = PART_BYTES) -> dict[str, str]:
    """Path -> text of every search index file, all in memory (small scopes and tests; the atlas
    writes :func:`iter_search_files` one file at a time)."""
    with tempfile.TemporaryDirectory() as scratch:
        source = frame_source(addresses) if addresses is not None else None
        return dict(iter_search_files(tables, source, Path(scratch), part_bytes))
