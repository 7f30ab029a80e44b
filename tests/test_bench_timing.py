"""fastrnn.bench.timing: sample counts and interleaving, peak memory. No timing assertions."""

import numpy as np

from fastrnn.bench import timing


def test_time_round_robin_counts():
    calls = {"a": 0, "b": 0}

    def make(name):
        def fn(n):
            calls[name] += n
        return fn

    res = timing.time_round_robin({"a": make("a"), "b": make("b")}, min_repeats=3,
                                  max_repeats=4, budget=0.0, sample_time=0.0001)
    for name in ("a", "b"):
        assert 3 <= len(res[name]["times"]) <= 4 and res[name]["n"] >= 1
        assert all(t >= 0 for t in res[name]["times"])
        assert calls[name] >= len(res[name]["times"]) * res[name]["n"]


def test_rounds_interleave_and_rotate():
    order = []

    def make(name):
        def fn(n):
            order.append(name)
        return fn

    fns = {"a": make("a"), "b": make("b"), "c": make("c")}
    # sample_time 0: one call per sample, so `order` shows the schedule after the warm-up
    timing.time_round_robin(fns, min_repeats=3, max_repeats=3, budget=0.0, sample_time=0.0,
                            warmup=1)
    rounds = order[-9:]
    assert rounds == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]


def test_slow_implementation_gets_fewer_samples():
    import time

    def slow(n):
        time.sleep(0.02 * n)

    def fast(n):
        pass

    res = timing.time_round_robin({"slow": slow, "fast": fast}, min_repeats=5,
                                  max_repeats=6, budget=0.05, sample_time=0.001,
                                  slow_repeats=2)
    assert len(res["slow"]["times"]) == 2
    assert len(res["fast"]["times"]) >= 5


def test_slow_first_call_does_not_set_the_calls_per_sample():
    import time
    calls = []

    def cold_then_fast(n):
        # one-time setup on the first call only (allocation, thread start, a plan)
        if not calls:
            time.sleep(0.05)
        calls.append(n)

    res = timing.time_round_robin({"a": cold_then_fast}, min_repeats=2, max_repeats=2,
                                  budget=0.0, sample_time=0.01)
    # from the first call alone the estimate was 0.05 s, one call per 0.01 s sample
    assert res["a"]["n"] > 10


def test_one_slow_estimate_call_does_not_set_the_calls_per_sample():
    import time
    seen = []

    def third_invocation_slow(n):
        # about 1 ms a call; the estimate over several calls (the third invocation) hits
        # one slow moment of 50 ms
        seen.append(n)
        time.sleep(0.001 * n + (0.05 if len(seen) == 3 else 0.0))

    res = timing.time_round_robin({"a": third_invocation_slow}, min_repeats=2,
                                  max_repeats=2, budget=0.0, sample_time=0.02)
    # from that estimate alone (~11 ms a call) a 20 ms sample held 2 calls
    assert res["a"]["n"] >= 10


def test_peak_memory_tracemalloc():
    def fn(n):
        for _ in range(n):
            a = np.ones(1 << 20)        # 8 MiB
            del a
    peak, method = timing.peak_memory(fn, "tracemalloc")
    assert method == "tracemalloc" and peak >= 8 << 20


def test_peak_memory_rss_is_a_lower_bound():
    def fn(n):
        for _ in range(n):
            a = np.ones(4 << 20)        # 32 MiB, touched
            a.sum()
    peak, method = timing.peak_memory(fn, "rss")
    assert method in ("rss", "maxrss") and peak >= 0


def _spinner(seconds):
    """A thread that burns CPU for `seconds` (what a spin-waiting worker pool does)."""
    import threading
    import time
    stop = time.perf_counter() + seconds

    def spin():
        while time.perf_counter() < stop:
            pass

    th = threading.Thread(target=spin)
    th.start()
    return th


def test_settle_waits_for_a_spinning_pool_and_not_for_an_idle_one():
    # idle process: the gap and one short probe
    assert timing.settle(0.0, max_settle=0.5) < 0.1
    # a worker burning CPU for 0.15 s keeps settle() waiting (most of that time)
    th = _spinner(0.15)
    try:
        waited = timing.settle(0.0, max_settle=1.0)
    finally:
        th.join()
    assert waited >= 0.05
    # never much longer than max_settle, whatever spins
    th = _spinner(0.5)
    try:
        assert timing.settle(0.0, max_settle=0.1) < 0.3
    finally:
        th.join()
