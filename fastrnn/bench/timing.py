"""Timing and memory measurement: warm-up, sample sizing, interleaved rounds, peak memory.

Nothing here knows about RNNs: it times ``fn(n)`` callables (n calls per sample).
"""

import gc
import time
import tracemalloc

__all__ = ["time_round_robin", "settle", "peak_memory"]


def settle(gap, max_settle=0.5, step=0.005):
    """Sleep ``gap`` seconds, then keep sleeping in ``step`` slices while this process still
    burns CPU (> 20% of a core) during the sleep, at most ``max_settle`` seconds in all.
    Returns the seconds waited.

    Why: worker pools spin-wait after their work before they sleep, for very different times.
    Measured here: OpenBLAS (NumPy's BLAS) keeps a worker busy for about 0.1 s after every
    threaded call (its thread timeout is 2^28 cycles), the engine's OpenMP team, PyTorch's and
    ONNX Runtime's pools for well under a millisecond. A fixed 20 ms gap therefore left
    OpenBLAS spinning on one of the two cores while the next implementation was timed, which
    cost a multi-threaded implementation with a static split (one thread per core, the slower
    thread sets the time) up to 2x on the short rows. The sleeping main thread uses no CPU,
    so whatever CPU time the process uses during the sleep is a spinning pool.
    """
    t0 = time.perf_counter()
    if gap > 0:
        time.sleep(gap)
    while time.perf_counter() - t0 < max_settle:
        c0 = time.process_time()
        time.sleep(step)
        if time.process_time() - c0 < 0.2 * step:
            break
    return time.perf_counter() - t0


def time_round_robin(fns, min_repeats, max_repeats, budget, sample_time, warmup=1,
                     slow_repeats=3, gap=0.0, max_settle=0.5):
    """Time several ``fn(n)`` callables interleaved.

    Each fn is warmed up (``warmup`` calls, at least one, plus one more when a call is
    shorter than ten samples), after the others' pools went idle, its per-call time estimated
    (the fastest warm-up call) and an inner count ``n`` chosen so that one sample lasts about
    ``sample_time`` seconds. Then rounds
    of one sample per implementation run, the starting implementation rotating, until every
    implementation has ``min_repeats`` samples and the round loop has used ``budget`` seconds,
    or ``max_repeats`` rounds ran. An implementation whose single call is so slow that
    ``min_repeats`` samples of it alone would exceed the budget takes part in only
    ``slow_repeats`` rounds (never fewer than 1). Before each sample the loop waits until the
    previous implementation's thread pool has gone idle (:func:`settle`: at least ``gap``
    seconds, then until this process stops using CPU while it sleeps, at most ``max_settle``
    seconds), so that spinning workers do not steal the cores of the next one. Returns
    name -> dict(times (per call), n).
    """
    names = list(fns)
    est, inner = {}, {}
    for name in names:
        fn = fns[name]
        # the estimate, too, starts after the previous implementation's pool went idle
        if len(names) > 1 and (gap > 0 or max_settle > 0):
            settle(gap, max_settle)
        t0 = time.perf_counter()
        fn(1)
        t = time.perf_counter() - t0
        for _ in range(max(0, warmup - 1)):
            t0 = time.perf_counter()
            fn(1)
            t = min(t, time.perf_counter() - t0)
        if t < 10 * sample_time:
            # Why a second call: the first one carries one-time costs (buffers, thread
            # start, plans) and wakes the pool from sleep. Estimated from it alone, a
            # 0.4 ms call once got 2 calls per sample where its peer got 15, and every
            # sample of it then paid the wake-up after the settle gap again.
            t0 = time.perf_counter()
            fn(1)
            t = min(t, time.perf_counter() - t0)
        if t < sample_time / 4:
            # cheap call: a second estimate over several calls (warms caches further)
            k = max(1, int(sample_time / 4 / max(t, 1e-7)))
            t0 = time.perf_counter()
            fn(k)
            # the fastest estimate: one slow call here (a descheduled thread) had set 4
            # calls per sample for a 2.9 ms call whose peer got 9
            t = min(t, (time.perf_counter() - t0) / k)
        est[name] = t
        inner[name] = max(1, int(round(sample_time / max(t, 1e-9)))) if t < sample_time else 1
    limit = {}
    for name in names:
        if est[name] * min_repeats > budget and len(names) > 1:
            limit[name] = max(1, min(slow_repeats, min_repeats))
        else:
            limit[name] = max_repeats
    times = {name: [] for name in names}
    gc_was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        waited = 0.0
        r = 0
        while r < max_repeats:
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                if len(times[name]) >= limit[name]:
                    continue
                n = inner[name]
                if len(names) > 1 and (gap > 0 or max_settle > 0):
                    waited += settle(gap, max_settle)
                t0 = time.perf_counter()
                fns[name](n)
                times[name].append((time.perf_counter() - t0) / n)
            r += 1
            done_min = all(len(times[nm]) >= min(min_repeats, limit[nm]) for nm in names)
            used = time.perf_counter() - start - waited
            if done_min and used >= budget:
                break
    finally:
        if gc_was:
            gc.enable()
    return {name: {"times": times[name], "n": inner[name]} for name in names}


def _rss_kib(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_memory(fn, method):
    """Peak extra memory (bytes) of one ``fn(1)`` call, and the method actually used.

    tracemalloc: numpy (and anything registered with tracemalloc) allocations, exact.
    rss: peak resident set size (VmHWM, reset through /proc/self/clear_refs) minus the RSS
    before the call; memory the allocator already holds is reused and not counted, so this is
    a lower bound. Falls back to a ru_maxrss delta (only counts growth of the process peak)."""
    gc.collect()
    if method == "tracemalloc":
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            fn(1)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        return max(0, peak - base), "tracemalloc"
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _rss_kib("VmRSS")
        fn(1)
        peak = _rss_kib("VmHWM")
        if base is not None and peak is not None:
            return max(0, peak - base) * 1024, "rss"
    except OSError:
        pass
    import resource
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn(1)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return max(0, after - before) * 1024, "maxrss"
