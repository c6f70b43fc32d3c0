"""The class polish after the demo's union placement (demo/polish.py), on hand-made Gemeinden."""

from __future__ import annotations

import numpy as np

from demo.polish import polish_classes

THRESHOLDS = np.array([2.0, 16.0])


def _shares(codes, k, hh, ngem=1):
    tot = np.bincount(codes, hh, ngem)
    return np.stack([np.bincount(codes, hh * (k > j), ngem) for j in range(2)], axis=1) / tot[:, None] * 100


def test_a_kept_address_is_raised_instead_of_a_new_one_taken():
    # 10 households; published DSL >= 2: 50 %, >= 16: 30 %, wired the same (nothing else placed). Address 0
    # must keep >= 2; the fill took the new address 1 for >= 16, so >= 2 is 60 %. Raising address 0 and
    # giving >= 2 to address 2 meets both; address 4 has no households and keeps its class.
    codes = np.zeros(5, dtype=np.int64)
    hh = np.array([3.0, 3.0, 2.0, 2.0, 0.0])
    k = np.array([1, 2, 0, 0, 2])
    floor = np.array([1, 0, 0, 0, 0])
    pub = np.array([[50.0, 30.0]])
    out = polish_classes(codes, k, hh, floor, THRESHOLDS, pub, [(np.zeros(5), THRESHOLDS, pub)])
    np.testing.assert_allclose(_shares(codes, out, hh), pub)
    assert (out >= floor).all()
    assert out[4] == 2
    np.testing.assert_array_equal(k, [1, 2, 0, 0, 2])  # the input is not changed


def test_a_union_below_the_published_share_is_not_traded_for_the_own_shares():
    # published wired >= 2 is 80 %, DSL >= 2 50 %: nothing else reaches the gap; DSL stays as published
    codes = np.zeros(4, dtype=np.int64)
    hh = np.array([3.0, 2.0, 3.0, 2.0])
    k = np.array([2, 1, 0, 0])
    pub = np.array([[50.0, 30.0]])
    wired = np.array([[80.0, 30.0]])
    out = polish_classes(codes, k, hh, None, THRESHOLDS, pub, [(np.zeros(4), THRESHOLDS, wired)])
    np.testing.assert_array_equal(out, k)


def test_the_union_above_the_published_share_moves_the_technology_onto_what_is_placed():
    # cable (other) serves addresses 2 and 3 at 100 Mbit/s; wired is published as DSL ∪ cable = 50 % at
    # >= 2 and 30 % at >= 16, so DSL (30 % at >= 2 and >= 16) belongs under the cable, not at address 0
    # (3 households: 5 of 10 there would make wired 80 %); only Gemeinde 0 misses, Gemeinde 1 is left alone
    codes = np.array([0, 0, 0, 0, 1, 1])
    hh = np.array([3.0, 2.0, 3.0, 2.0, 5.0, 5.0])
    other = np.array([0.0, 0.0, 100.0, 100.0, 0.0, 0.0])
    k = np.array([2, 0, 0, 0, 2, 0])
    pub = np.array([[30.0, 30.0], [50.0, 50.0]])
    wired = np.array([[50.0, 50.0], [50.0, 50.0]])
    out = polish_classes(codes, k, hh, None, THRESHOLDS, pub, [(other, THRESHOLDS, wired)])
    np.testing.assert_allclose(_shares(codes, out, hh, 2), pub)
    assert out[0] == 0 and out[2] == 2
    np.testing.assert_array_equal(out[4:], k[4:])
