"""The TOML run configuration: defaults, path resolution, and one clear error per mistake."""

from pathlib import Path

import pytest

from coverage.config import load_config
from coverage.errors import ConfigError, DataSourceError
from coverage.technology import Technology

MINIMAL = """
[boundaries]
path = "bkg"
land = "13"
[addresses]
path = "addresses.csv"
crs = "EPSG:25833"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_minimal_config_gets_documented_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.boundaries.path == tmp_path / "bkg"  # relative to the config file
    assert cfg.analysis.thresholds_mbps == (2, 16, 30, 50, 100, 200, 400, 1000)
    assert cfg.analysis.working_crs.to_epsg() == 25833
    assert cfg.analysis.locate_tolerance_m == 500
    assert set(cfg.analysis.groups) == {"all", "wired", "dsl", "hfc", "fibre", "mobile"}
    assert Technology.SATELLITE not in cfg.analysis.groups["all"]
    assert cfg.output.dir == tmp_path / "data" / "processed"


def test_providers_groups_and_aliases(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL + """
[[providers]]
path = "dsl.csv"
format = "address-csv"
encoding = "cp1252"
delimiter = ";"
columns = { address_id = "Adress-ID", down_mbps = "Download" }
[analysis]
thresholds_mbps = [1000, 30, 0.5]
groups = { fibre = ["ftth", "fttb"], cable = ["hfc"] }
[technology_aliases]
"Glasfaser Plus" = "ftth"
"""))
    p = cfg.providers[0]
    assert (p.table.encoding, p.table.delimiter, p.columns["down_mbps"]) == ("cp1252", ";", "Download")
    assert cfg.analysis.thresholds_mbps == (0.5, 30, 1000)
    assert cfg.analysis.groups["cable"] == (Technology.HFC,)
    assert cfg.aliases["glasfaser plus"] is Technology.FTTH


@pytest.mark.parametrize(("extra", "message"), [
    ("[analysis]\nthreshold = [1]\n", r"unknown key\(s\) \['threshold'\] in \[analysis\]"),
    ("[analysis]\ncrs = \"EPSG:4326\"\n", "geographic"),
    ("[analysis]\nthresholds_mbps = [30, -1]\n", "not a positive number"),
    ("[analysis]\ngroups = { fast = [\"warp\"] }\n", "members must be among"),
    ("[analysis]\ngroups = { fast = 5 }\n", "expected a list of technologies, got 5"),
    ("[[providers]]\npath = \"x.tif\"\nformat = \"raster\"\n", "needs 'provider' and 'technology'"),
    ("[[providers]]\npath = \"x.csv\"\nformat = \"excel\"\n", "format: expected one of"),
    ("[technology_aliases]\nfoo = \"warp\"\n", "target must be one of"),
    ("[bogus]\n", r"unknown key\(s\) \['bogus'\] in top level"),
    # values that would give silent nonsense: not-a-number, infinities, zero or negative distances and ratios
    ("[analysis]\nthresholds_mbps = [30, nan]\n", "nan is not a positive number"),
    ("[analysis]\nthresholds_mbps = [30, inf]\n", "inf is not a positive number"),
    ("[analysis]\nmatch_distance_m = nan\n", "match_distance_m: expected a finite number, got nan"),
    ("[analysis]\nmatch_distance_m = 0\n", "match_distance_m: must be a positive distance"),
    ("[analysis]\nlocate_tolerance_m = -5\n", "locate_tolerance_m: must not be negative"),
    ("[analysis]\nplanned_horizon_years = 500\n", "planned_horizon_years: expected 0 to 30 years"),
    ("[analysis]\nchange_tolerance_pp = -inf\n", "change_tolerance_pp: expected a finite number"),
    ("[[providers]]\npath = \"x.csv\"\nformat = \"address-csv\"\nmax_upload_ratio = 0\n",
     r"providers\[0\].max_upload_ratio: must be positive"),
    # dates in any other form than ISO
    ("[analysis]\nreference_date = \"01.07.2021\"\n", "'01.07.2021' is not a date in the form YYYY-MM-DD"),
    ("[report]\ndata_date = \"2021/06/30\"\n", "report.data_date: '2021/06/30' is not a date"),
    ("[[providers]]\npath = \"x.csv\"\nformat = \"address-csv\"\nplanned_date = \"2025\"\n",
     r"providers\[0\].planned_date: '2025' is not a date"),
    ("[output]\ndir = \"out\"\nreports_dir = \"out\"\n", "reports_dir: must differ from output.dir"),
])
def test_mistakes_are_config_errors_naming_the_key(tmp_path, extra, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, MINIMAL + extra))


def test_missing_section_and_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match=r"missing section \[addresses\]"):
        load_config(write(tmp_path, "[boundaries]\npath = 'x'\n"))
    with pytest.raises(DataSourceError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[boundaries\n"))


def test_an_output_dir_that_is_a_file_is_a_config_error(tmp_path):
    (tmp_path / "out").write_text("not a folder", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"output.dir: .*out is a file, not a folder"):
        load_config(write(tmp_path, MINIMAL + "[output]\ndir = \"out\"\n"))


def test_threshold_tags_are_exact_so_close_thresholds_keep_their_own_columns():
    from coverage.model import threshold_tag

    assert [threshold_tag(t) for t in (1234567, 1234568, 0.5, 100, 2.5, 1000.0)] == [
        "1234567", "1234568", "0.5", "100", "2.5", "1000"]
