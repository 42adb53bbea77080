"""Clustering metrics (linking/metrics.py) against values computed by hand."""

import itertools

import numpy as np
import pytest

from linking.metrics import b_cubed, ceaf_e, clustering_scores, max_assignment, muc, pairwise

# Gold {a,b,c} {d,e}; system {a,b} {c,d,e}.
KEY = ["1", "1", "1", "2", "2"]
RESPONSE = ["x", "x", "y", "y", "y"]


def test_b_cubed_by_hand():
    # precision per mention: a 2/2, b 2/2, c 1/3, d 2/3, e 2/3 -> 4.666/5
    # recall per mention:    a 2/3, b 2/3, c 1/3, d 2/2, e 2/2 -> 3.666/5
    score = b_cubed(KEY, RESPONSE)
    assert score.precision == pytest.approx((2 + 1 / 3 + 4 / 3) / 5)
    assert score.recall == pytest.approx((4 / 3 + 1 / 3 + 2) / 5)


def test_muc_by_hand():
    # recall: key {a,b,c} is cut into 2 parts -> 3-2=1, {d,e} 1 part -> 1; over (2+1) = 2/3
    # precision: response {a,b} 1 part -> 1, {c,d,e} 2 parts -> 1; over (1+2) = 2/3
    score = muc(KEY, RESPONSE)
    assert score.recall == pytest.approx(2 / 3) and score.precision == pytest.approx(2 / 3)


def test_pairwise_by_hand():
    # gold pairs ab ac bc de (4); system pairs ab cd ce de (4); common ab de (2)
    score = pairwise(KEY, RESPONSE)
    assert score.precision == pytest.approx(0.5) and score.recall == pytest.approx(0.5)


def test_ceaf_e_by_hand():
    # phi4: (1,x)=2*2/(3+2)=0.8, (1,y)=2*1/6, (2,y)=2*2/(2+3)=0.8; best: 1-x + 2-y = 1.6
    score = ceaf_e(KEY, RESPONSE)
    assert score.precision == pytest.approx(1.6 / 2) and score.recall == pytest.approx(1.6 / 2)


def test_perfect_and_singleton_cases():
    perfect = clustering_scores(KEY, ["p", "p", "p", "q", "q"])
    assert all(perfect[m]["f1"] == 1.0 for m in ("b3", "ceafe", "muc", "pairwise"))
    singletons = ["s1", "s2", "s3", "s4", "s5"]
    assert b_cubed(KEY, singletons).precision == 1.0
    assert muc(KEY, singletons).recall == 0.0
    assert pairwise(KEY, singletons).precision == 0.0  # no system pairs at all


def test_lengths_must_agree():
    with pytest.raises(ValueError, match="same mentions"):
        b_cubed(["a"], [])


def test_max_assignment_equals_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n, m = (int(v) for v in rng.integers(1, 5, 2))
        weights = rng.random((n, m)) * (rng.random((n, m)) > 0.3)
        rows, cols = (n, m) if n <= m else (m, n)
        w = weights if n <= m else weights.T
        best = max(sum(w[i, p[i]] for i in range(rows)) for p in itertools.permutations(range(cols), rows))
        assert max_assignment(weights) == pytest.approx(best)
