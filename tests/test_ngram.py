"""The bigram count model behind train-text's "undertrained" warning."""

import math

import numpy as np
import pytest

from fastrnn import _ngram


def _by_hand(train, ev, V, w):
    n = len(train)
    uni = [(sum(1 for c in train if c == b) + 0.5) / (n + 0.5 * V) for b in range(V)]
    total = 0.0
    for a, b in zip(ev[:-1], ev[1:]):
        pair = sum(1 for x, y in zip(train[:-1], train[1:]) if (x, y) == (a, b))
        ctx = sum(1 for x in train[:-1] if x == a)
        total -= math.log2((pair + w * uni[b]) / (ctx + w))
    return total / (len(ev) - 1)


@pytest.mark.parametrize("w", [1.0, 10.0])
def test_matches_the_formula_by_hand(w):
    rng = np.random.default_rng(7)
    train = rng.integers(0, 5, 60)
    ev = np.concatenate([rng.integers(0, 5, 20), [5, 0]])     # id 5 never seen in training
    got = _ngram.bigram_bpc(train, ev, 6, prior_weight=w)
    assert got == pytest.approx(_by_hand(list(train), list(ev), 6, w), rel=1e-12)


def test_predictable_text_costs_few_bits_and_noise_costs_log2_v():
    periodic = np.tile(np.arange(4), 500)
    assert _ngram.bigram_bpc(periodic, periodic, 4) < 0.05
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 8, 20000)
    assert _ngram.bigram_bpc(noise[:10000], noise[10000:], 8) == pytest.approx(3.0, abs=0.05)


def test_bad_arguments():
    with pytest.raises(ValueError, match="vocab_size"):
        _ngram.bigram_bpc([0, 1], [0, 1], 0)
    with pytest.raises(ValueError, match="at least 2"):
        _ngram.bigram_bpc([0], [0, 1], 2)


def test_undertrained_rule():
    assert _ngram.undertrained(3.5, 3.4, 3.3)            # worse than counts everywhere
    assert not _ngram.undertrained(2.0, 1.9, 3.3)        # learned
    assert not _ngram.undertrained(3.5, 1.0, 3.3)        # overfits: more time would not help
    assert _ngram.undertrained(float("nan"), 3.5, 3.3)   # no validation text: train loss decides
    assert not _ngram.undertrained(float("nan"), float("nan"), 3.3)
