"""Provider wording -> technologies and speeds, as deliveries write them."""

import numpy as np
import pandas as pd
import pytest

from coverage.errors import UnknownCodeError
from coverage.numbers import parse_numbers, parse_speeds
from coverage.technology import Technology, alias_table, parse_technology

TABLE = alias_table()


@pytest.mark.parametrize(("word", "tech"), [
    ("FTTH", Technology.FTTH), ("Glasfaser", Technology.FTTH), ("FTTB", Technology.FTTB),
    ("HFC", Technology.HFC), ("Kabel", Technology.HFC), ("DOCSIS 3.1", Technology.HFC), ("CATV", Technology.HFC),
    ("VDSL", Technology.DSL), ("VDSL2-Vectoring", Technology.DSL), ("SVDSL", Technology.DSL),
    ("ADSL", Technology.DSL), ("ADSL2+", Technology.DSL), ("LTE", Technology.LTE), ("5G", Technology.NR5G),
    ("FWA", Technology.FWA), ("Richtfunk", Technology.FWA), ("Satellit", Technology.SATELLITE),
    ("  docsis_3.1 ", Technology.HFC),
])
def test_aliases(word, tech):
    assert parse_technology(word, TABLE) is tech


def test_unknown_technology_is_an_error_not_other():
    with pytest.raises(UnknownCodeError, match="unknown technology 'Brieftaube'"):
        parse_technology("Brieftaube", TABLE)
    assert parse_technology("Brieftaube", alias_table({"Brieftaube": "fwa"})) is Technology.FWA


def test_speeds_with_units_and_german_decimals():
    text = pd.Series(["100", "100,0", "100 Mbit/s", "1 Gbit/s", "16.000 kbit/s", "1.000,5", "zehn", "", "12 furlongs"])
    got = parse_speeds(text, decimal=",").values.tolist()
    assert got[:6] == [100, 100, 100, 1000, 16, 1000.5]
    assert all(np.isnan(v) for v in got[6:])


def test_numbers_with_point_decimal_and_thousands_commas():
    assert parse_numbers(pd.Series(["1,234.5", "7", "-3.25", "inf"]), ".").values.tolist()[:3] == [1234.5, 7, -3.25]
    assert np.isnan(parse_numbers(pd.Series(["inf"]), ".").values.iloc[0])
