"""fastrnn._engine.kernels: what the compiled-engine driver keeps between calls.

Issue 9, defect 9: the per-thread scratch pool once kept every buffer it ever grew, so one
large call (LSTM T=200, B=128, H=512) left 400 MiB held for the life of the process. The
policy now: buffers up to ``SCRATCH_KEEP_BYTES`` are kept for reuse, larger ones are freed
when the call returns; ``release_scratch()`` frees the calling thread's pool.
"""
import gc
import importlib.util
import threading
import tracemalloc

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("fastrnn._engine.kernels") is None,
                                reason="compiled kernels not built")


def _pool_bytes(E):
    pool = getattr(E._tls, "pool", None) or {}
    return sum(b.nbytes for b in pool.values())


def _run_lstm(T, B, I, H, training):
    from fastrnn import functional as F
    rng = np.random.default_rng(5)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    w_ih = rng.uniform(-.1, .1, (4 * H, I)).astype(np.float32)
    w_hh = rng.uniform(-.1, .1, (4 * H, H)).astype(np.float32)
    out = F.lstm_forward(x, None, None, w_ih, w_hh, training=training)
    if training:
        F.lstm_backward(out[-1], dy=np.ones((T, B, H), np.float32))


@pytest.mark.parametrize("training", [False, True])
def test_a_large_call_leaves_no_large_scratch_behind(training):
    from fastrnn._engine import kernels as E
    T, B, I, H = 40, 64, 4, 512            # gates: 40*64*2048*4 bytes = 20 MiB ... x2 below
    T *= 2                                  # 40 MiB per gate buffer: above the 32 MiB cap
    assert T * B * 4 * H * 4 > E.SCRATCH_KEEP_BYTES
    E.release_scratch()
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        _run_lstm(T, B, I, H, training)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert held < 4 << 20, f"{held / 2**20:.1f} MiB still held after the call"
    assert _pool_bytes(E) <= 4 * E.SCRATCH_KEEP_BYTES


def test_small_scratch_is_reused_and_release_frees_it():
    from fastrnn._engine import kernels as E
    E.release_scratch()
    _run_lstm(20, 16, 4, 64, False)          # 20*16*256*4 = 320 KiB of gates: kept
    first = dict(E._tls.pool)
    assert first and _pool_bytes(E) > 0
    _run_lstm(20, 16, 4, 64, False)
    assert all(E._tls.pool[k] is v for k, v in first.items())        # reused, not regrown
    E.release_scratch()
    assert _pool_bytes(E) == 0


def test_scratch_pools_are_per_thread():
    from fastrnn._engine import kernels as E
    E.release_scratch()
    seen = []

    def work():
        _run_lstm(20, 16, 4, 64, False)
        seen.append(_pool_bytes(E))

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen and seen[0] > 0
    assert _pool_bytes(E) == 0               # the other thread's buffers are not ours
