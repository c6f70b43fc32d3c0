"""The class polish after the demo's union placement (demo/polish.py), on hand-made Gemeinden."""

from __future__ import annotations

import numpy as np

from demo.polish import polish_classes
from demo.providers import fibre_room

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


def test_a_wired_gap_no_later_technology_can_close_is_narrowed_to_the_bound():
    # 20 single households; published DSL >= 2: 50 %, wired >= 2: 80 % and nothing placed later can add
    # anything (room 0), as in 13075083 whose published wired exceeds DSL + cable + fibre. DSL gives up
    # its own share until wired is within 10 pp; with room for 30 pp (fibre placed later fills the gap)
    # nothing moves
    codes = np.zeros(20, dtype=np.int64)
    hh = np.ones(20)
    k = np.r_[np.full(6, 2), np.full(4, 1), np.zeros(10, dtype=np.int64)]
    pub = np.array([[50.0, 30.0]])
    wired = np.array([[80.0, 30.0]])
    out = polish_classes(codes, k, hh, None, THRESHOLDS, pub, [(np.zeros(20), THRESHOLDS, wired, np.zeros((1, 2)))])
    got = _shares(codes, out, hh)
    assert 70.0 <= got[0, 0] <= 75.0, got  # wired = DSL here: within 10 pp of 80 %, not more than needed
    assert got[0, 1] == 30.0
    room = np.array([[30.0, 0.0]])
    same = polish_classes(codes, k, hh, None, THRESHOLDS, pub, [(np.zeros(20), THRESHOLDS, wired, room)])
    np.testing.assert_array_equal(same, k)


def test_fibre_room_is_bounded_by_the_wired_excess_at_the_fibre_thresholds():
    # Gemeinde 0 like 13075083: wired >= 100 equals DSL >= 100, so fibre lies inside DSL and adds nothing
    # below 100 Mbit/s; Gemeinde 1 like 13071060: wired >= 200 is fibre's 17.91 % over DSL and cable 0.5 %,
    # and at >= 1000 only 0.99 pp of fibre can be outside cable
    t_w = np.array([2.0, 16.0, 100.0, 200.0, 1000.0])
    shares = {
        "wired": (t_w, np.array([[99.0, 87.79, 2.2, 1.31, 1.31], [95.0, 90.0, 58.88, 17.91, 1.49]])),
        "dsl": (t_w[:4], np.array([[98.94, 71.0, 2.2, 1.31], [90.0, 85.0, 51.93, 0.5]])),
        "hfc": (t_w, np.array([[0.38] * 5, [0.5] * 5])),
        "fibre": (np.array([100.0, 200.0, 1000.0]), np.array([[1.31] * 3, [17.91, 17.91, 1.49]])),
    }
    np.testing.assert_allclose(fibre_room(shares), [[0.0, 0.0, 0.0, 0.0, 0.93], [6.95, 6.95, 6.95, 17.41, 0.99]],
                               atol=1e-9)
