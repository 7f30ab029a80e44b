"""Data-parallel training over MPI: every rank trains on its own shard, one Allreduce per step.

Run with one process per core (or per node on a cluster):

    mpiexec -n 2 python examples/distributed_fit.py            # ~20 s on 2 cores
    mpiexec -n 2 python examples/distributed_fit.py --quick    # a few seconds
    python examples/distributed_fit.py                         # 1 rank, for comparison

The task: a GRU reads 40 steps of a noisy sum of sines and predicts the next value. Each rank
generates its own shard (on a cluster it would read its own files), trains with
``fit(..., distributed="mpi")``; rank 0 alone prints, stops early and writes the checkpoint.
At the end rank 0 prints the measured steps/s, the Allreduce time and bytes per step, and an
analytic projection to 8 and 64 nodes (see "Beyond one machine" in the README).
"""

import argparse
import math
import os
import tempfile
import time

import numpy as np

import fastrnn as fr


def make_shard(n, rank, T=40, seed=0):
    """n windows of a noisy sum of sines; rank r's windows come from its own stream."""
    rng = np.random.default_rng([seed, rank])
    t0 = rng.uniform(0, 1000, n)[:, None]
    t = t0 + np.arange(T + 1)[None, :] * 0.3
    s = np.sin(t) + 0.5 * np.sin(0.31 * t + 1.0) + 0.05 * rng.standard_normal(t.shape)
    s = s.astype(np.float32)
    return s[:, :T, None], s[:, T:]


def ring_allreduce_seconds(nbytes, nodes, gbit_per_s, latency_s=5e-6):
    """Time of a bandwidth-optimal ring Allreduce of nbytes over ``nodes`` nodes: each node
    sends and receives 2 (p-1)/p of the buffer, in 2 (p-1) latency-bound rounds."""
    if nodes <= 1:
        return 0.0
    bw = gbit_per_s * 1e9 / 8
    return 2 * (nodes - 1) / nodes * nbytes / bw + 2 * (nodes - 1) * latency_s


def projection(compute_s, nbytes, samples_per_step):
    """Rows (nodes, Gbit/s, allreduce ms, efficiency, samples/s) of the analytic model:
    communication does not overlap the backward pass, so step = compute + allreduce."""
    rows = []
    for nodes in (8, 64):
        for gbit in (10, 100):
            ar = ring_allreduce_seconds(nbytes, nodes, gbit)
            step = compute_s + ar
            rows.append((nodes, gbit, ar * 1e3, compute_s / step,
                         nodes * samples_per_step / step))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small data, 1 epoch")
    p.add_argument("--samples", type=int, default=8192, help="training windows per rank")
    p.add_argument("--batch-size", type=int, default=64, help="per-rank batch size")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--units", type=int, default=64)
    p.add_argument("--threads", type=int, default=1, help="engine threads per rank")
    p.add_argument("--checkpoint", default=None, help="path of rank 0's best checkpoint")
    args = p.parse_args(argv)
    if args.quick:
        args.samples, args.epochs = 1024, 1

    from mpi4py import MPI
    ctx = fr.distributed.get_context("mpi")
    rank, size = ctx.rank, ctx.size
    fr.set_num_threads(args.threads)

    x, y = make_shard(args.samples, rank)
    xv, yv = make_shard(max(256, args.samples // 8), rank, seed=1)
    model = fr.Sequential([fr.GRU(args.units, input_size=1), fr.Dense(1)], seed=7)
    model.compile(fr.optimizers.Adam(3e-3, global_clipnorm=1.0), "mse")
    ckpt = args.checkpoint or os.path.join(tempfile.gettempdir(), "distributed_fit.safetensors")
    callbacks = [fr.callbacks.EarlyStopping(patience=2, restore_best_weights=True),
                 fr.callbacks.ModelCheckpoint(ckpt, save_best_only=True)]

    history = model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs,
                        validation_data=(xv, yv), shuffle=True, callbacks=callbacks,
                        verbose=2 if rank == 0 else 0, distributed=ctx)

    # timing: plain distributed steps (no validation, no callbacks) on this rank's batches
    nb = args.samples // args.batch_size
    n_steps = 20 if args.quick else 100
    batches = [(x[i * args.batch_size:(i + 1) * args.batch_size],
                y[i * args.batch_size:(i + 1) * args.batch_size]) for i in range(nb)]
    model.train_on_batch(*batches[0], distributed=ctx)          # warm-up
    ctx.reset_stats()
    MPI.COMM_WORLD.Barrier()
    t0 = time.perf_counter()
    for i in range(n_steps):
        model.train_on_batch(*batches[i % nb], distributed=ctx)
    elapsed = time.perf_counter() - t0
    st = dict(ctx.stats)
    # the transfer alone: the step's Allreduce repeated back to back (no compute to wait for)
    buf = np.zeros(model.count_params() + 2, dtype=np.float32)
    MPI.COMM_WORLD.Barrier()
    t1 = time.perf_counter()
    for _ in range(200):
        ctx.allreduce_(buf)
    pure = (time.perf_counter() - t1) / 200
    if rank == 0:
        nbytes = st["allreduce_bytes"] / n_steps
        ar_ms = 1e3 * st["allreduce_seconds"] / n_steps
        ctl_ms = 1e3 * st["control_seconds"] / n_steps
        step_ms = 1e3 * elapsed / n_steps
        print(f"\nfinal val_loss {history.history['val_loss'][-1]:.4f} (best checkpoint: {ckpt})")
        print(f"ranks {size}, engine threads {args.threads}, per-rank batch {args.batch_size}, "
              f"GRU({args.units}) {model.count_params()} parameters")
        print(f"steps/s {n_steps / elapsed:.1f}  samples/s "
              f"{n_steps * size * args.batch_size / elapsed:.0f}  (step {step_ms:.2f} ms)")
        print(f"allreduce per step: {nbytes / 1024:.1f} KiB in "
              f"{st['allreduce_calls'] / n_steps:.0f} call(s), {ar_ms:.3f} ms; learning-rate "
              f"broadcast {ctl_ms:.3f} ms")
        print(f"the same Allreduce alone (no compute, 200 in a row): {1e3 * pure:.3f} ms")
        # on one machine the allreduce time includes waiting for the slower rank; the
        # compute per rank is what is left of the step
        compute_s = max(step_ms - ar_ms - ctl_ms, 1e-3) / 1e3
        print("\nanalytic scaling (ring allreduce, 5 us per hop, no overlap with backward):")
        print(f"{'nodes':>5} {'Gbit/s':>6} {'allreduce ms':>12} {'efficiency':>10} "
              f"{'samples/s':>10}")
        for nodes, gbit, ar, eff, sps in projection(compute_s, nbytes, args.batch_size):
            print(f"{nodes:>5} {gbit:>6} {ar:>12.3f} {eff:>10.1%} {sps:>10.0f}")
    return {"rank": rank, "size": size, "steps_per_s": n_steps / elapsed,
            "val_loss": history.history["val_loss"][-1]}


if __name__ == "__main__":
    main()
