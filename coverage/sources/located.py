"""Tables of records that sit at an address: business locations ([businesses]) and sites ([sites]).

Read like provider tables (CSV/XLSX/Parquet, sniffed or with table options, a column map) with the
same locators: ``address_id``, or ``x, y`` (+ ``crs``), or ``street, house_number`` (optional
``postcode``, ``locality``, ``ags``); each row uses the first it has filled. The section's own value
columns are parsed by a callback that rejects bad rows into the same :class:`RowFilter`, so every row
read is returned either as a record or as one quarantine row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd

from coverage.columns import constant
from coverage.config import LocatedListConfig
from coverage.errors import SchemaError
from coverage.quarantine import RowFilter
from coverage.sources.providers import locate_records
from coverage.sources.tables import apply_column_map, read_text_table, reject_unreadable

log = logging.getLogger(__name__)

#: parses the section's value columns of (frame, decimal) into columns indexed like the frame,
#: rejecting bad rows into the RowFilter
ValueParser = Callable[[pd.DataFrame, str | None, RowFilter], dict[str, pd.Series]]


def read_located_table(cfg: LocatedListConfig, section: str, working_crs: object, values: ValueParser,
                       required: tuple[str, ...] = ()) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Returns (records, quarantine, rows read). Records: the parsed value columns, ``address_id``,
    ``x, y`` (working CRS, NaN unless located by them), ``street … ags``, ``locator``, ``source``,
    ``source_row`` — what :func:`coverage.match.link_table_records` links. ``required``: value
    columns the file must have."""
    path = cfg.path
    table = read_text_table(path, cfg.table)
    frame = apply_column_map(table.frame, dict(cfg.columns), path).reset_index(drop=True)
    has_id = "address_id" in frame
    has_xy = {"x", "y"} <= set(frame.columns)
    if not (has_id or has_xy or {"street", "house_number"} <= set(frame.columns)):
        raise SchemaError(f"{path}: no locator column: need 'address_id', or 'x' and 'y', or 'street' and "
                          f"'house_number'; found {', '.join(map(repr, table.frame.columns))} (name the file's "
                          f'columns in [{section}], e.g. columns = {{ address_id = "…" }})')
    missing = [c for c in required if c not in frame]
    if missing:
        raise SchemaError(f"{path}: missing column(s) {', '.join(map(repr, missing))}; found "
                          f"{', '.join(map(repr, table.frame.columns))} (name the file's columns in [{section}], "
                          f'e.g. columns = {{ {missing[0]} = "…" }})')
    rows = pd.Series(np.arange(len(frame)) + table.first_data_row, index=frame.index)
    checks = RowFilter(frame, cfg.name, rows)
    reject_unreadable(table, checks)
    parsed = values(frame, table.decimal, checks)

    def text(col: str) -> pd.Series:
        if col not in frame:
            return pd.Series("", index=frame.index, dtype=object)
        return frame[col].astype("string").str.strip().fillna("").astype(object)

    out = pd.DataFrame(parsed, index=frame.index)
    locate_records(out, text, set(frame.columns), table.decimal, cfg.crs, working_crs, path, checks,
                   f'set [{section}] crs = "EPSG:…"')
    out["source"] = constant(cfg.name, frame.index)
    out["source_row"] = rows
    records = out[checks.ok.to_numpy()].reset_index(drop=True)
    log.info("%s %s: %d rows read, %d accepted, %d quarantined", section, cfg.name, len(frame), len(records),
             len(checks.quarantine))
    return records, checks.quarantine, len(frame)
