"""Compact (categorical) text columns behave like plain text where users see them: in sort order,
in formula-safe CSVs, and in part files that read back as one dataset."""

import numpy as np
import pandas as pd

from coverage.columns import factorize_sorted, stripped_text
from pipelines.io import neutralise_formulas, write_csv, write_parquet_parts


def test_stripped_text_sorts_like_plain_text():
    raw = pd.Series(pd.Categorical([" Zeppelinweg", "Am Markt ", None, "Zeppelinweg"]))  # file order, not sorted
    got = stripped_text(raw)
    assert got.tolist() == ["Zeppelinweg", "Am Markt", "", "Zeppelinweg"]
    assert got.sort_values().tolist() == sorted(got.tolist())


def test_factorize_sorted_equals_pandas_for_categoricals_with_unused_categories():
    values = pd.Series(pd.Categorical(["b", None, "a", "b"], categories=["z", "b", "a"]))
    codes, names = factorize_sorted(values)
    ref_codes, ref_names = pd.factorize(values.astype(object), sort=True)
    assert codes.tolist() == ref_codes.tolist() and list(names) == list(ref_names)


def test_formulas_in_categorical_columns_are_neutralised(tmp_path):
    frame = pd.DataFrame({"site_name": pd.Categorical(["=HYPERLINK(1)", "Schule", "=HYPERLINK(1)"]),
                          "street": pd.Categorical(["-x", "'-x", "Weg"]),  # prefixing would collide
                          "n": [-1, 2, 3]})
    safe = neutralise_formulas(frame)
    assert safe["site_name"].tolist() == ["'=HYPERLINK(1)", "Schule", "'=HYPERLINK(1)"]
    assert safe["street"].tolist() == ["'-x", "'-x", "Weg"]
    assert safe["n"].tolist() == [-1, 2, 3]  # numbers are not formulas
    write_csv(tmp_path / "t.csv", frame)
    assert pd.read_csv(tmp_path / "t.csv")["site_name"].tolist() == ["'=HYPERLINK(1)", "Schule", "'=HYPERLINK(1)"]


def test_part_files_with_few_and_many_categories_read_as_one_dataset(tmp_path):
    # pandas stores up to 127 categories with int8 codes, more with int16: the parts must still agree.
    small = pd.DataFrame({"provider": pd.Categorical(["A", "B"]), "down": [1.0, 2.0]})
    large = pd.DataFrame({"provider": pd.Categorical([f"P{i:03d}" for i in range(300)]), "down": np.arange(300.0)})
    write_parquet_parts(tmp_path / "offers.parquet", "land=01", small)
    write_parquet_parts(tmp_path / "offers.parquet", "land=05", large)
    back = pd.read_parquet(tmp_path / "offers.parquet", filters=[("provider", "in", ["B", "P299"])])
    assert sorted(back["provider"].astype(str)) == ["B", "P299"]
