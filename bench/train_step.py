"""Time one training step of two typical Keras-shaped models (not part of the grid).

    python bench/train_step.py lm      # Embedding(5000,128) -> LSTM(256, seq) -> TD(Dense(5000))
    python bench/train_step.py imdb    # Embedding(20000,128) -> LSTM(128) -> Dense(1, sigmoid)
    OPENBLAS_NUM_THREADS=1 python bench/train_step.py lm     # OpenBLAS's own pool off

Prints one line: the model, the median (and the quartiles) in ms of ``train_on_batch`` over
``--repeats`` steps after ``--warmup`` steps, the process's CPU time per step (every thread:
spinning BLAS workers show up here), the engine's thread count and the OpenBLAS setting of
this process. The dense layers around the recurrent kernels run their products on
the engine's thread pool; this script shows how much a second (OpenBLAS) pool would cost, so
compare runs started back to back with the same machine load.
"""
import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import fastrnn as fr   # noqa: E402


def build(kind, seed=0):
    """(model, x, y) for one batch of the named model."""
    rng = np.random.default_rng(seed)
    if kind == "lm":
        B, T, V = 32, 40, 5000
        model = fr.Sequential([fr.Input(shape=(T,), dtype="int32"), fr.Embedding(V, 128),
                               fr.LSTM(256, return_sequences=True),
                               fr.TimeDistributed(fr.Dense(V, activation="softmax"))])
        x = rng.integers(0, V, (B, T)).astype(np.int32)
        y = rng.integers(0, V, (B, T)).astype(np.int32)
    elif kind == "imdb":
        B, T, V = 32, 40, 20000
        model = fr.Sequential([fr.Input(shape=(T,), dtype="int32"), fr.Embedding(V, 128),
                               fr.LSTM(128), fr.Dense(1, activation="sigmoid")])
        x = rng.integers(1, V, (B, T)).astype(np.int32)
        y = rng.integers(0, 2, (B, 1)).astype(np.float32)
    else:
        raise SystemExit(f"model: expected lm or imdb, got {kind!r}")
    loss = "sparse_categorical_crossentropy" if kind == "lm" else "binary_crossentropy"
    model.compile(optimizer="adam", loss=loss)
    return model, x, y


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", choices=("lm", "imdb"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    args = p.parse_args(argv)
    fr.set_num_threads(args.threads)
    model, x, y = build(args.model)
    for _ in range(args.warmup):
        model.train_on_batch(x, y)
    times = []
    c0 = time.process_time()
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(1e3 * (time.perf_counter() - t0))
    cpu = 1e3 * (time.process_time() - c0) / args.repeats
    q1, med, q3 = np.percentile(times, [25, 50, 75])
    print(f"{args.model}: median {med:.1f} ms (q1 {q1:.1f}, q3 {q3:.1f}), CPU {cpu:.0f} ms "
          f"per step (all threads), threads "
          f"{args.threads}, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '-')}, "
          f"load {os.getloadavg()[0]:.1f}")
    return med


if __name__ == "__main__":
    main()
