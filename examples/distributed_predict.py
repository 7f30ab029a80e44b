"""Batch scoring on Dask: a trained GRU scores many sequences on a LocalCluster.

    python examples/distributed_predict.py              # 1 M sequences (a few minutes on 2 cores)
    python examples/distributed_predict.py --quick      # 20 k sequences, seconds
    python examples/distributed_predict.py --scheduler tcp://host:8786   # a real cluster

The model is trained first (a few seconds: is a noisy sequence's mean positive?), then the
same lazy dask array of sequences is scored three ways and the throughput printed:

* one process, the engine on 2 threads (dask's synchronous scheduler, one chunk at a time);
* a LocalCluster of 1 worker and of 2 workers, 1 thread each (``--workers`` changes the
  largest), or the cluster at ``--scheduler``.

The sequences are generated on the workers chunk by chunk (``dask.array.random``), the way a
real job reads its own files, so the client never holds the whole input. The predictions of
every run are checked to be identical.
"""

import argparse
import time

import numpy as np

import fastrnn as fr

T, F = 30, 8


def train_model(seed=0, quick=False):
    rng = np.random.default_rng(seed)
    n = 2000 if quick else 6000
    x = (rng.standard_normal((n, T, F)) + rng.normal(0, 0.2, (n, 1, F))).astype(np.float32)
    y = (x.mean(axis=(1, 2)) > 0).astype(np.float32)[:, None]
    model = fr.Sequential([fr.GRU(32, input_size=F), fr.Dense(1, activation="sigmoid")], seed=1)
    model.compile(fr.optimizers.Adam(3e-3), "binary_crossentropy", metrics=["binary_accuracy"])
    model.fit(x, y, batch_size=64, epochs=2 if quick else 4, verbose=0, validation_split=0.2)
    return model, model.history.history["val_binary_accuracy"][-1]


def sequences(n, chunk, seed=42):
    """A lazy (n, T, F) float32 dask array, generated where it is computed."""
    import dask.array as da
    rs = da.random.RandomState(seed)
    return rs.standard_normal((n, T, F), chunks=(chunk, T, F)).astype(np.float32)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="20 k sequences")
    p.add_argument("-n", type=int, default=None, help="sequences to score (default 1 M)")
    p.add_argument("--chunk", type=int, default=None,
                   help="sequences per dask chunk (default 20480; a multiple of --batch-size "
                        "avoids a rechunk: predict moves chunk boundaries to batch multiples)")
    p.add_argument("--batch-size", type=int, default=256, help="model.predict batch size")
    p.add_argument("--workers", type=int, default=2, help="largest LocalCluster to try")
    p.add_argument("--scheduler", default=None, help="address of an existing dask scheduler")
    args = p.parse_args(argv)
    args.n = args.n or (20_000 if args.quick else 1_000_000)
    args.chunk = args.chunk or (5_120 if args.quick else 20_480)
    from dask.distributed import Client, LocalCluster

    old_threads = fr.get_num_threads()
    model, acc = train_model(quick=args.quick)
    print(f"trained GRU(32) on (T={T}, F={F}) sequences: validation accuracy {acc:.3f}")
    x = sequences(args.n, args.chunk)
    print(f"scoring {args.n} sequences in {x.numblocks[0]} chunks of {args.chunk}")
    results = {}

    fr.set_num_threads(2)
    y = fr.distributed.predict(model, x, batch_size=args.batch_size, threads=2, client=False)
    ref, dt = timed(lambda: y.compute(scheduler="sync"))
    results["1 process, 2 threads"] = args.n / dt
    print(f"{'1 process, 2 threads':<28} {args.n / dt:>10.0f} sequences/s")

    setups = ([("scheduler " + args.scheduler, dict(address=args.scheduler))] if args.scheduler
              else [(f"LocalCluster {w} x 1 thread", dict(n_workers=w)) for w in
                    sorted({1, args.workers})])
    for label, kw in setups:
        if "address" in kw:
            client = Client(kw["address"])
            cluster = None
        else:
            cluster = LocalCluster(threads_per_worker=1, dashboard_address=":0", **kw)
            client = Client(cluster)
        try:
            y = model.predict(x, batch_size=args.batch_size)     # lazy, dispatches to dask
            client.run(lambda: None)                              # workers are up
            out, dt = timed(y.compute)
            if not np.array_equal(out, ref):
                raise AssertionError(f"{label}: predictions differ from the single process")
            results[label] = args.n / dt
            print(f"{label:<28} {args.n / dt:>10.0f} sequences/s  (identical predictions)")
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    fr.set_num_threads(old_threads)
    print(f"share of positive scores: {(ref > 0.5).mean():.3f}")
    return results


if __name__ == "__main__":
    main()
