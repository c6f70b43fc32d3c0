"""The data model lives in coverage.model: the library imports it, never a reader, for a type."""

import ast
from pathlib import Path

import pytest

import coverage
from coverage.config import load_config
from coverage.errors import ConfigError
from coverage.model import GROUP_LABELS, LEVEL_KEYS, LEVELS, BoundaryFormat, OfferStatus, ProviderFormat
from coverage.technology import DEFAULT_GROUPS
from pipelines.fingerprint import params_hash

PACKAGE = Path(coverage.__file__).parent
#: Library modules that call a reader function (none today); anything else importing
#: coverage.sources does so for a type that belongs in coverage.model.
READER_USERS: set[str] = set()


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            if node.module == "coverage":
                names |= {f"coverage.{alias.name}" for alias in node.names}
    return names


def test_library_outside_sources_does_not_import_readers():
    modules = sorted([*PACKAGE.glob("*.py"), *(PACKAGE / "report").glob("*.py")])
    assert PACKAGE / "model.py" in modules and PACKAGE / "report" / "maps.py" in modules
    offenders = {str(p.relative_to(PACKAGE)): sorted(m for m in _imported_modules(p)
                                                     if m == "coverage.sources" or m.startswith("coverage.sources."))
                 for p in modules if str(p.relative_to(PACKAGE)) not in READER_USERS}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_import_walk_sees_reader_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from coverage.sources.bkg import read_bkg_bundle\nfrom coverage import sources\n"
                     "import coverage.sources.providers\n", encoding="utf-8")
    assert _imported_modules(probe) >= {"coverage.sources.bkg", "coverage.sources", "coverage.sources.providers"}


def test_vocabularies_compare_and_hash_as_their_strings():
    assert [f.value for f in ProviderFormat] == ["address-csv", "address-table", "polygons", "raster"]
    assert [f.value for f in BoundaryFormat] == ["bkg", "vector"]
    assert OfferStatus.PLANNED == "planned" and "current" in {OfferStatus.CURRENT}
    assert f"{ProviderFormat.RASTER}" == "raster"
    # config fingerprints stay what they were when these were plain strings
    assert params_hash([ProviderFormat.POLYGONS, OfferStatus.CURRENT]) == params_hash(["polygons", "current"])


def test_levels_and_group_labels():
    assert LEVELS == ("gemeinde", "amt", "kreis", "land") == tuple(LEVEL_KEYS)
    assert set(GROUP_LABELS) == set(DEFAULT_GROUPS)
    assert GROUP_LABELS["fibre"] == "Glasfaser (FTTH/B)"


def test_config_holds_vocabulary_members(tmp_path):
    (tmp_path / "run.toml").write_text("""
[boundaries]
path = "gemeinden.gpkg"
format = "vector"
[addresses]
path = "addresses.csv"
crs = "EPSG:25833"
[[providers]]
path = "dsl.csv"
format = "address-csv"
[[providers]]
path = "fibre.gpkg"
format = "polygons"
provider = "Netz eG"
technology = "ftth"
status = "planned"
""", encoding="utf-8")
    cfg = load_config(tmp_path / "run.toml")
    assert cfg.boundaries.format is BoundaryFormat.VECTOR
    assert [p.format for p in cfg.providers] == [ProviderFormat.ADDRESS_CSV, ProviderFormat.POLYGONS]
    assert [p.status for p in cfg.providers] == [OfferStatus.CURRENT, OfferStatus.PLANNED]
    assert all(type(p.status) is OfferStatus for p in cfg.providers)


@pytest.mark.parametrize(("extra", "message"), [
    ('[boundaries]\npath = "b"\nformat = "shape"\n', r"boundaries\.format: expected 'bkg' or 'vector', got 'shape'"),
    ('[boundaries]\npath = "b"\n[[providers]]\npath = "x.csv"\nformat = "address-csv"\nstatus = "soon"\n',
     r"providers\[0\]\.status: expected 'current' or 'planned', got 'soon'"),
])
def test_unknown_vocabulary_words_are_config_errors(tmp_path, extra, message):
    (tmp_path / "run.toml").write_text(extra + '[addresses]\npath = "a.csv"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "run.toml")
