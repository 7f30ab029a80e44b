"""fastrnn._engine.kernels: what the compiled-engine driver keeps between calls.

Issue 9, defect 9: the per-thread scratch pool once kept every buffer it ever grew, so one
large call (LSTM T=200, B=128, H=512) left 400 MiB held for the life of the process. The
policy now: buffers up to ``SCRATCH_KEEP_BYTES`` are kept for reuse, larger ones are freed
when the call returns; the pool of buffers that outlive a call (training caches, outputs,
gradients) holds at most ``POOL_KEEP_BYTES`` per thread; ``release_scratch()`` frees both.
A pooled buffer must never be handed out while any array still uses it.
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
    return E.kept_bytes()


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
    kept = _pool_bytes(E)
    assert held < kept + (4 << 20), f"{held / 2**20:.1f} MiB still held after the call"
    assert kept <= E.POOL_KEEP_BYTES + 4 * E.SCRATCH_KEEP_BYTES
    assert all(b.nbytes <= E.SCRATCH_KEEP_BYTES for b in E._tls.bufs)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        _run_lstm(T, B, I, H, training)
        E.release_scratch()
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert held < 4 << 20, f"{held / 2**20:.1f} MiB still held after release_scratch()"


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


def _lstm_problem(seed, T=30, B=16, I=24, H=96):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((T, B, I)).astype(np.float32),
            rng.uniform(-.2, .2, (4 * H, I)).astype(np.float32),
            rng.uniform(-.2, .2, (4 * H, H)).astype(np.float32),
            rng.standard_normal((T, B, H)).astype(np.float32))


def test_pooled_buffers_are_reused_when_nothing_holds_them():
    from fastrnn import functional as F
    from fastrnn._engine import kernels as E
    E.release_scratch()
    x, w_ih, w_hh, dy = _lstm_problem(0)
    for i in range(3):
        out = F.lstm_forward(x, None, None, w_ih, w_hh, training=True)
        F.lstm_backward(out[-1], dy=dy)
        del out
        if i == 0:
            first = [id(b) for b in E._tls.bufs]
    assert first and [id(b) for b in E._tls.bufs] == first       # reused, not regrown


def test_a_held_cache_output_or_gradient_is_never_overwritten():
    """Results of call 1 kept alive while calls 2 and 3 run: none may share memory with
    theirs, and all must still equal a snapshot taken right after call 1."""
    from fastrnn import functional as F
    from fastrnn._engine import kernels as E
    E.release_scratch()
    x1, w_ih, w_hh, dy = _lstm_problem(1)
    x2 = _lstm_problem(2)[0]
    y1, h1, c1, cache1 = F.lstm_forward(x1, None, None, w_ih, w_hh, training=True)
    g1 = F.lstm_backward(cache1, dy=dy)
    inf1 = F.lstm_forward(x1, None, None, w_ih, w_hh)[0]
    keep = dict(y1=y1, inf1=inf1, gates=cache1.inner["gates"], hs=cache1.inner["hs"], cs=cache1.inner["cs"],
                dx=g1["x"], dw_ih=g1["weight_ih"], dw_hh=g1["weight_hh"])
    snap = {k: v.copy() for k, v in keep.items()}
    for _ in range(2):
        y2, _, _, cache2 = F.lstm_forward(x2, None, None, w_ih, w_hh, training=True)
        g2 = F.lstm_backward(cache2, dy=-dy)
        inf2 = F.lstm_forward(x2, None, None, w_ih, w_hh)[0]
        new = [y2, inf2, cache2.inner["gates"], cache2.inner["hs"], cache2.inner["cs"], g2["x"],
               g2["weight_ih"], g2["weight_hh"]]
        for k, v in keep.items():
            assert not any(np.shares_memory(v, n) for n in new), k
        del y2, cache2, g2, inf2, new
    for k, v in keep.items():
        np.testing.assert_array_equal(v, snap[k], err_msg=k)


def test_the_pool_stays_within_its_cap(monkeypatch):
    from fastrnn._engine import kernels as E
    E.release_scratch()
    monkeypatch.setattr(E, "POOL_KEEP_BYTES", 3 << 20)
    dt = np.dtype(np.float32)
    held = [E._pooled((256, 1024), dt) for _ in range(6)]       # 1 MiB each, all live
    assert _pool_bytes(E) <= 3 << 20
    for a in held:                                               # all distinct memory
        a[...] = 0
    for i, a in enumerate(held):
        a[0, 0] = i
    assert [a[0, 0] for a in held] == list(range(6))
    held = held[:1]
    b = E._pooled((128, 1024), dt)                               # evicts idle buffers
    assert not np.shares_memory(b, held[0])
    assert _pool_bytes(E) <= 3 << 20
    E.release_scratch()
