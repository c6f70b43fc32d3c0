"""Control characters in text from the input data, and how each output shows them.

Names, streets, provider names and the raw values of quarantined rows come from files people
deliver; they may hold NUL, BEL, terminal escape sequences (ESC ``[31m`` recolours a terminal,
ESC ``]0;…`` BEL retitles it), vertical tabs or U+0085 (NEL). The rule, one for every output:

- **Terminal** (``bbcov explain``, ``bbcov validate``, error and log lines on stderr): every C0
  control (tab, line feed and carriage return included), DEL and every C1 control (U+0080–U+009F)
  is shown as its Python escape (``\\x1b``, ``\\n``, ``\\x85``): nothing reaches the terminal as a
  command and a line stays one line. :func:`terminal_text`.
- **XLSX and HTML**: the same, except tab, line feed and carriage return, which stay (a line break in
  a cell, white space in a page). openpyxl rejects ``\\x00``–``\\x08``, ``\\x0b``, ``\\x0c``,
  ``\\x0e``–``\\x1f`` and XML 1.0 forbids them; C1 controls are never text either. :func:`document_text`,
  :func:`document_series`.
- **CSV**: values unchanged (the CSV is the exact data, e.g. the value a row was quarantined for);
  the writers quote every field that holds a line break, so a value stays one field.

An escape reads like the same text typed with a backslash; that is the price of showing the
character at all.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

_CONTROLS = [*range(0x20), 0x7F, *range(0x80, 0xA0)]  # C0, DEL, C1
_NAMED = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
_TERMINAL = {c: _NAMED.get(c, f"\\x{c:02x}") for c in _CONTROLS}
_DOCUMENT = {c: e for c, e in _TERMINAL.items() if c not in _NAMED}
#: The characters :func:`document_text` escapes, as a regex (Python ``re`` and Arrow's RE2 read it alike).
DOCUMENT_CONTROLS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
_TERMINAL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_DOCUMENT_RE = re.compile(DOCUMENT_CONTROLS)


def terminal_text(value: object) -> str:
    """``str(value)`` with every control character escaped (see the module docstring)."""
    text = str(value)
    return text.translate(_TERMINAL) if _TERMINAL_RE.search(text) else text


def document_text(value: str) -> str:
    """``value`` with control characters escaped except tab, line feed and carriage return."""
    return value.translate(_DOCUMENT) if _DOCUMENT_RE.search(value) else value


def one_line(value: object) -> str:
    """A message on one line: its lines (split at every line break ``str.splitlines`` knows, e.g. the
    newlines in a pandas tokenizer or GDAL error) stripped and joined with `` | ``; blank lines dropped."""
    return " | ".join(part.strip() for part in str(value).splitlines() if part.strip())


def terminal_line(value: object) -> str:
    """A message for the terminal: :func:`one_line`, then :func:`terminal_text`."""
    return terminal_text(one_line(value))


def document_series(s: pd.Series) -> pd.Series | None:
    """The column with control characters escaped as :func:`document_text` does, or None when no
    value holds one (or the column holds no text). Only the affected values are rewritten."""
    if isinstance(s.dtype, pd.CategoricalDtype):  # only the categories are text; renaming them is enough
        escaped = document_series(pd.Series(s.cat.categories))
        if escaped is None:
            return None
        if not escaped.duplicated().any():
            return s.cat.rename_categories(escaped.to_numpy())
        s = s.astype(object)  # a raw control and its typed escape both present: they become equal
    if pd.api.types.is_object_dtype(s):  # any objects: only the str values are text
        hit = np.fromiter((isinstance(v, str) and _DOCUMENT_RE.search(v) is not None for v in s), bool, len(s))
    elif pd.api.types.is_string_dtype(s):
        hit = s.str.contains(DOCUMENT_CONTROLS, regex=True, na=False).to_numpy(dtype=bool)
    else:
        return None  # numbers, booleans, dates hold no text
    rows = np.flatnonzero(hit)
    if not len(rows):
        return None
    out = s.copy()
    out.iloc[rows] = [v.translate(_DOCUMENT) for v in s.iloc[rows]]
    return out
