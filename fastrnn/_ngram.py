"""A count-based bigram character model: the yardstick for "is this network undertrained?".

A character network that has trained long enough beats a model that only counts which
character follows which (on English prose: about 3.3 bits/char for the counts, 2 or less for a
trained LSTM). When the network's held-out bits per character are no better than the counts',
it has not learned what the data allows, and more training time is the fix.
"""

from __future__ import annotations

import math

import numpy as np


def bigram_bpc(train_ids: np.ndarray, eval_ids: np.ndarray, vocab_size: int,
               prior_weight: float = 10.0) -> float:
    """Bits per character of a smoothed bigram count model on ``eval_ids``.

    ``P(b | a) = (count(a, b) + w * P(b)) / (count(a) + w)`` with ``w = prior_weight`` and the
    unigram ``P(b) = (count(b) + 0.5) / (N + 0.5 * V)``, counted on ``train_ids``.

    Parameters
    ----------
    train_ids : ndarray of int, shape (N,)
        Character ids the counts are taken from, each in ``[0, vocab_size)``.
    eval_ids : ndarray of int, shape (M,)
        Character ids to score (M >= 2; the first one is only context).
    vocab_size : int
        Number of distinct ids V.
    prior_weight : float, optional
        Pseudo-count ``w`` of the unigram prior in each context.

    Returns
    -------
    float
        Mean ``-log2 P(b | a)`` over the M - 1 transitions of ``eval_ids``.

    Examples
    --------
    >>> import numpy as np
    >>> ids = np.array([0, 1] * 50)
    >>> round(bigram_bpc(ids, ids, 2), 2)       # 0 is always followed by 1 and back
    0.13
    """
    train = np.asarray(train_ids, dtype=np.int64).ravel()
    ev = np.asarray(eval_ids, dtype=np.int64).ravel()
    V = int(vocab_size)
    if V < 1:
        raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
    if len(train) < 2 or len(ev) < 2:
        raise ValueError(f"need at least 2 ids to count and to score, got {len(train)} and "
                         f"{len(ev)}")
    uni = (np.bincount(train, minlength=V)[:V] + 0.5) / (len(train) + 0.5 * V)
    ctx = np.bincount(train[:-1], minlength=V)[:V].astype(np.float64)
    # sparse pair counts: sorted unique keys a*V+b, looked up with searchsorted (memory O(N)
    # whatever the vocabulary size)
    keys, counts = np.unique(train[:-1] * V + train[1:], return_counts=True)
    q = ev[:-1] * V + ev[1:]
    pos = np.clip(np.searchsorted(keys, q), 0, len(keys) - 1)
    pair = np.where(keys[pos] == q, counts[pos], 0).astype(np.float64)
    p = (pair + prior_weight * uni[ev[1:]]) / (ctx[ev[:-1]] + prior_weight)
    return float(-np.mean(np.log2(p)))


def undertrained(network_bpc: float, train_bpc: float, counts_bpc: float) -> bool:
    """True when the network is no better than the bigram counts on held-out text AND on its
    own training text (so it is not overfitting: more training is what helps)."""
    vals = [v for v in (network_bpc, train_bpc) if v is not None and math.isfinite(v)]
    return bool(vals) and math.isfinite(counts_bpc) and min(vals) >= counts_bpc
