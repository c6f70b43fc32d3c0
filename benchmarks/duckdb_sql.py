"""The competitor a user fluent in SQL would write instead of bbcov: DuckDB + its spatial extension (issue 15).

Same numbers as ``benchmarks.run``'s other two paths: the Gemeinden as every path reads them (BKG bundle, land
areas, one Land if configured, reprojected by pyproj; handed to DuckDB as WKB), addresses located by
point-in-polygon (smallest AGS where a point lies on a shared border; the nearest Gemeinde within 500 m for
points outside every polygon, ties to the smaller AGS), provider records linked by ``address_id`` or to the
nearest located address within the match distance, current offers only, best download per address and
technology group, and households at every threshold per Gemeinde. No row validation and no quarantine (what
bbcov adds). The extension is loaded from the PyPI package ``duckdb-extension-spatial``
(``pip install -e '.[bench]'``): no download at run time.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from coverage.sources.bkg import read_bkg_bundle
from coverage.sources.vector import parquet_files
from coverage.technology import alias_table

#: DuckDB may use this much memory before it spills to disk (the issue's budget is 8 GB per process).
MEMORY_LIMIT = "6GB"


def connect():
    """A DuckDB connection with the spatial extension from its PyPI wheel."""
    import duckdb
    import duckdb_extension_spatial

    ext = next(Path(duckdb_extension_spatial.__file__).parent.glob("extensions/*/spatial.duckdb_extension"))
    con = duckdb.connect()
    con.execute(f"LOAD '{ext}'")
    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    con.execute("SET preserve_insertion_order = false")
    return con


def _files(path: Path) -> list[str]:
    return [str(f) for f in (parquet_files(path) if path.is_dir() else [path])]


def _epsg(crs: object) -> str:
    from pyproj import CRS

    return f"EPSG:{CRS.from_user_input(crs).to_epsg()}"


def run(cfg, thresholds, stage) -> object:
    """Run the pipeline in SQL; ``stage(name, rows, t0)`` records each step. Returns a DataFrame indexed by AGS."""
    con, crs = connect(), _epsg(cfg.analysis.working_crs)
    t0 = time.perf_counter()
    # The Gemeinden reprojected by pyproj, as bbcov and the naive path have them: DuckDB's own ST_Transform (its
    # embedded PROJ) picks another DHDN -> ETRS89 transformation, 0.6 m apart, and borders that move change the
    # Gemeinde of a few addresses (5 of 2,069 Gemeinden differed in Länder 01-03 with ST_Read + ST_Transform).
    gem = read_bkg_bundle(cfg.boundaries.path, cfg.analysis.working_crs, land=cfg.boundaries.land).gemeinde
    con.register("gem_wkb", pd.DataFrame({"ags": gem["ags"].to_numpy(), "wkb": gem.geometry.to_wkb().to_numpy()}))
    con.execute("CREATE TABLE gem AS SELECT ags, ST_GeomFromWKB(wkb) AS geom FROM gem_wkb")
    stage("read Gemeinden (BKG bundle, reprojected)", len(gem), t0)

    t0 = time.perf_counter()
    a = cfg.addresses
    if a.path.suffix == ".csv":
        xy = (f"ST_Transform(ST_Point(x, y), '{_epsg(a.crs)}', '{crs}', always_xy := true)" if _epsg(a.crs) != crs
              else "ST_Point(x, y)")
        con.execute(f"""CREATE TABLE addr AS SELECT address_id, households, {xy} AS pt
            FROM read_csv('{a.path}', types = {{'address_id': 'VARCHAR'}})""")
    else:  # GeoParquet in the working CRS (the Germany demo)
        con.execute(f"""CREATE TABLE addr AS SELECT address_id, households, geometry AS pt
            FROM read_parquet({_files(a.path)})""")
    n_addr = con.execute("SELECT count(*) FROM addr").fetchone()[0]
    stage("read addresses", n_addr, t0)

    t0 = time.perf_counter()
    con.execute("""CREATE TABLE located AS SELECT a.address_id, min(g.ags) AS ags
        FROM addr a JOIN gem g ON ST_Intersects(g.geom, a.pt) GROUP BY a.address_id""")
    con.execute("""INSERT INTO located SELECT address_id, arg_min(ags, (d, ags)) FROM (
        SELECT a.address_id, g.ags, ST_Distance(g.geom, a.pt) AS d
        FROM (SELECT * FROM addr ANTI JOIN located USING (address_id)) a
        JOIN gem g ON ST_DWithin(g.geom, a.pt, 500)) GROUP BY address_id""")
    con.execute("CREATE TABLE loc AS SELECT l.address_id, l.ags, a.households, a.pt FROM located l "
                "JOIN addr a USING (address_id)")
    stage("locate (spatial join ST_Intersects, ST_DWithin)", n_addr, t0)

    t0 = time.perf_counter()
    aliases = alias_table(cfg.technology_aliases)
    con.execute("CREATE TABLE alias (word VARCHAR, technology VARCHAR)")
    con.executemany("INSERT INTO alias VALUES (?, ?)", [(k, v.value) for k, v in aliases.items()])
    con.execute("CREATE TABLE offers (address_id VARCHAR, technology VARCHAR, down DOUBLE)")
    n_rec = 0
    for p in cfg.providers:
        if p.format not in ("address-csv", "address-table"):
            continue
        if p.path.suffix == ".csv":  # German export: ';' and decimal commas (cp1252 read as latin-1: the
            enc = "latin-1" if (p.table.encoding or "").lower() in ("cp1252", "latin-1") else "utf-8"  # words are ASCII
            src = (f"read_csv('{p.path}', delim = '{p.table.delimiter or ';'}', decimal_separator = "
                   f"'{p.table.decimal or ','}', encoding = '{enc}', all_varchar = false)")
        else:
            src = f"read_parquet({_files(p.path)})"
        cols = [c for (c,) in con.execute(f"SELECT column_name FROM (DESCRIBE SELECT * FROM {src})").fetchall()]
        status = "AND coalesce(nullif(status, ''), 'current') = 'current'" if "status" in cols else ""
        word = r"regexp_replace(lower(replace(replace(trim(r.technology), '_', ' '), '-', ' ')), '\s+', ' ', 'g')"
        if "address_id" in cols:
            body = (f"SELECT r.address_id::VARCHAR AS address_id, t.technology, r.down_mbps AS down FROM {src} r "
                    f"JOIN alias t ON t.word = {word} SEMI JOIN loc USING (address_id) WHERE true {status}")
        else:  # by coordinates: the nearest located address within the match distance
            xy = (f"ST_Transform(ST_Point(r.x, r.y), '{_epsg(p.crs)}', '{crs}', always_xy := true)"
                  if _epsg(p.crs) != crs else "ST_Point(r.x, r.y)")
            body = f"""SELECT arg_min(l.address_id, (ST_Distance(l.pt, o.pt), l.address_id)) AS address_id,
                any_value(o.technology) AS technology, any_value(o.down) AS down
                FROM (SELECT row_number() OVER () AS rid, t.technology, r.down_mbps AS down, {xy} AS pt
                      FROM {src} r JOIN alias t ON t.word = {word} WHERE true {status}) o
                JOIN loc l ON ST_DWithin(l.pt, o.pt, {cfg.analysis.match_distance_m}) GROUP BY o.rid"""
        con.execute(f"INSERT INTO offers {body}")
        n_rec += con.execute(f"SELECT count(*) FROM {src}").fetchone()[0]
    stage("read + link provider tables", n_rec, t0)

    t0 = time.perf_counter()
    con.execute("CREATE TABLE grp (grp VARCHAR, technology VARCHAR)")
    con.executemany("INSERT INTO grp VALUES (?, ?)", [(g, t.value) for g, ts in cfg.analysis.groups.items()
                                                      for t in ts])
    con.execute("""CREATE TABLE best AS SELECT o.address_id, g.grp, max(o.down) AS down
        FROM offers o JOIN grp g USING (technology) GROUP BY ALL""")
    stage("best download per address and group", con.execute("SELECT count(*) FROM offers").fetchone()[0], t0)

    t0 = time.perf_counter()
    sums = ", ".join(f"sum(CASE WHEN coalesce(b_{i}.down, 0) >= {t} THEN l.households ELSE 0 END) AS hh_ge_{t}_{g}"
                     for i, g in enumerate(cfg.analysis.groups) for t in thresholds)
    joins = " ".join(f"LEFT JOIN best b_{i} ON b_{i}.address_id = l.address_id AND b_{i}.grp = '{g}'"
                     for i, g in enumerate(cfg.analysis.groups))
    table = con.execute(f"SELECT l.ags, sum(l.households) AS households, {sums} FROM loc l {joins} "
                        "GROUP BY l.ags ORDER BY l.ags").df().set_index("ags")
    stage("households at thresholds per Gemeinde", n_addr, t0)
    return table
