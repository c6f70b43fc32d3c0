"""The byte hash table behind id lookups answers exactly like pandas (first occurrence wins)."""

import numpy as np
import pandas as pd

from coverage.membership import StringLookup, member, same_strings


def test_positions_and_duplicates_equal_pandas():
    rng = np.random.default_rng(11)
    keys = pd.Series([f"DE-{k:07d}" for k in rng.integers(0, 60_000, 50_000)] + ["", None, "ä-ß"], dtype=object)
    probes = pd.Series([f"DE-{k:07d}" for k in rng.integers(0, 90_000, 20_000)] + ["", None, "ä-ß", "x"],
                       dtype=object)
    lookup = StringLookup(keys)
    first = ~keys.duplicated()
    expected = pd.Index(keys[first]).get_indexer(probes)  # position among the first occurrences …
    expected = np.where(expected >= 0, np.flatnonzero(first)[expected], -1)  # … as a position in keys
    assert (lookup.positions(probes) == expected).all()
    assert (lookup.duplicated == keys.duplicated().to_numpy()).all()
    assert lookup.n_duplicates == int(keys.duplicated().sum())


def test_member_and_same_strings_on_categoricals_and_empty_inputs():
    values = pd.Series(pd.Categorical(["b", "a", None, "c"]))
    assert member(values, pd.Series(["a", "c"])).tolist() == [False, True, False, True]
    assert member(values, pd.Series([], dtype=object)).tolist() == [False] * 4
    assert same_strings(pd.Series(["a", "b"]), pd.Series(pd.Categorical(["a", "b"])))
    assert not same_strings(pd.Series(["a", "b"]), pd.Series(["a", "c"]))


def test_all_distinct_hashes_tell_repeats_across_arrays():
    from coverage.membership import all_distinct, string_hashes

    a, b = pd.Series(["DE05-1", "DE05-2", ""]), pd.array(["DE09-1", "DE05-2x"], dtype="string[pyarrow]")
    assert all_distinct(np.concatenate([string_hashes(a), string_hashes(b)]))
    again = pd.Series(["DE09-1"], dtype="category")  # a repeat of b's first id, given as a categorical
    assert not all_distinct(np.concatenate([string_hashes(a), string_hashes(b), string_hashes(again)]))
    assert (string_hashes(pd.Series(["x", "x"]))[0] == string_hashes(pd.Series(["x", "x"]))[1])
