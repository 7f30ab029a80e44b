"""fastrnn.distributed.mpi: data-parallel training under ``mpiexec -n 2`` equals single-process
training on the concatenated batches; a failing rank brings every rank down.

The MPI runs are subprocesses (``mpiexec -n 2 python worker.py``); the worker script below is
also imported here to build the single-process reference from the same code and data.
Skipped when mpi4py or mpiexec is missing.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastrnn as fr
from fastrnn.distributed import mpi as dmpi

MPI_TIMEOUT = 180      # seconds; a hang fails the test instead of blocking the suite

WORKER = textwrap.dedent('''
    """Worker for tests/test_distributed_mpi.py (also imported by it for the reference)."""
    import sys
    import numpy as np
    import fastrnn as fr

    STEPS = 20
    KINDS = ("gru", "masked", "multi")
    # split -> per-rank (samples, batch_size); every rank runs STEPS steps
    SPLITS = {"even": [(80, 4), (80, 4)],
              "uneven": [(98, 5), (59, 3)]}      # last batches: 3 and 2 samples

    def build(kind):
        f64 = dict(dtype="float64")
        if kind == "gru":
            m = fr.Sequential([fr.GRU(6, input_size=3, **f64), fr.Dense(2, **f64)], seed=3)
            m.compile(fr.optimizers.Adam(0.01, global_clipnorm=0.5), "mse", metrics=["mae"])
        elif kind == "multi":   # two outputs with different position counts (masked + not)
            inp = fr.Input((None,), dtype="int64")
            seq = fr.GRU(5, return_sequences=True, **f64)(
                fr.Embedding(11, 4, mask_zero=True, **f64)(inp))
            tags = fr.Dense(11, activation="softmax", **f64, name="tags")(seq)
            score = fr.Dense(1, **f64, name="score")(fr.GRU(3, **f64)(seq))
            m = fr.Model(inp, [tags, score], seed=5)
            m.compile(fr.optimizers.RMSprop(0.01), ["sparse_categorical_crossentropy", "mse"],
                      loss_weights=[1.0, 0.5], metrics=[["accuracy"], []])
        else:   # padded token ids, masked sequence output, fused softmax + cross-entropy
            m = fr.Sequential([fr.Embedding(11, 4, mask_zero=True, **f64),
                               fr.LSTM(5, return_sequences=True, **f64),
                               fr.Dense(11, activation="softmax", **f64)], seed=4)
            m.compile(fr.optimizers.SGD(0.3, momentum=0.9), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return m

    def shard(kind, split, rank):
        n, _ = SPLITS[split][rank]
        rng = np.random.default_rng(100 + 10 * rank + (kind == "masked"))
        if kind == "gru":
            return rng.standard_normal((n, 7, 3)), rng.standard_normal((n, 2))
        T = 6
        lengths = rng.integers(1, T + 1, n)
        x = rng.integers(1, 11, (n, T))
        x[np.arange(T)[None, :] >= lengths[:, None]] = 0          # post-padding
        y = rng.integers(0, 11, (n, T))
        if kind == "multi":
            return x, [y, rng.standard_normal((n, 1))]
        return x, y

    def batch(kind, split, rank, i):
        x, y = shard(kind, split, rank)
        b = SPLITS[split][rank][1]
        take = lambda a: a[i * b:(i + 1) * b]
        return take(x), [take(a) for a in y] if isinstance(y, list) else take(y)

    def control(out, rank):
        """Rank 0's callbacks: early stopping and learning-rate changes reach every rank;
        Dropout draws differently per rank; only rank 0 runs callbacks."""
        m = fr.Sequential([fr.GRU(4, input_size=3, recurrent_dropout=0.2), fr.Dropout(0.5),
                           fr.Dense(2)], seed=1)
        m.compile(fr.optimizers.SGD(0.05), "mse")
        x, y = shard("gru", "even", rank)
        marker = lambda epoch, logs: open(f"{out}.callback-ran-on-rank{rank}", "w").close()
        halve = lambda batch, logs: setattr(m.optimizer, "learning_rate",
                                            m.optimizer.learning_rate * 0.5)
        cbs = [fr.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10.0),
               fr.callbacks.LambdaCallback(on_epoch_end=marker, on_train_batch_begin=halve)]
        ctx = fr.distributed.get_context("mpi")
        pre = {}
        end_fit = ctx.end_fit
        def spy(model):      # the weights before the final broadcast: in step on every rank?
            pre.update({f"pre{j}": w for j, w in enumerate(model.get_weights())})
            end_fit(model)
        ctx.end_fit = spy
        h = m.fit(x[:16], y[:16], batch_size=4, epochs=50, verbose=0, callbacks=cbs,
                  distributed="mpi")
        np.savez(f"{out}.control.rank{rank}.npz", epochs=len(h.history["loss"]),
                 lr=m.optimizer.learning_rate, mask=m.layers[1]._scale_mask,
                 recurrent_draw=m.layers[0]._drop_gen.random(), **pre)

    def main(split, mode, out):
        from mpi4py import MPI
        rank = MPI.COMM_WORLD.Get_rank()
        if mode == "control":
            return control(out, rank)
        res = {}
        for kind in KINDS:
            x, y = shard(kind, split, rank)
            b = SPLITS[split][rank][1]
            if mode == "fail-callback":      # rank 0 raises inside a callback at batch 5
                m = build(kind)
                def boom(batch, logs):
                    if batch == 5:
                        raise RuntimeError("callback failure on purpose")
                m.fit(x, y, batch_size=b, shuffle=False, verbose=0, distributed="mpi",
                      callbacks=[fr.callbacks.LambdaCallback(on_train_batch_end=boom)])
            if mode == "fail-rank1":         # rank 1 raises in its 6th forward pass
                m = build(kind)
                layer = m.layers[0]
                calls = [0]
                orig = layer.forward
                def forward(*a, **k):
                    calls[0] += 1
                    if rank == 1 and calls[0] == 6:
                        raise RuntimeError("rank 1 failure on purpose")
                    return orig(*a, **k)
                layer.forward = forward
                m.fit(x, y, batch_size=b, shuffle=False, verbose=0, distributed="mpi")
            m = build(kind)
            h = m.fit(x, y, batch_size=b, epochs=1, shuffle=False, verbose=0,
                      distributed="mpi")
            for j, w in enumerate(m.get_weights()):
                res[f"{kind}.fit.w{j}"] = w
            for k, v in h.history.items():
                res[f"{kind}.fit.{k}"] = np.array(v)
            m = build(kind)
            losses = [m.train_on_batch(*batch(kind, split, rank, i), distributed="mpi")
                      for i in range(STEPS)]
            for j, w in enumerate(m.get_weights()):
                res[f"{kind}.tob.w{j}"] = w
            res[f"{kind}.tob.loss"] = np.array(losses)
        np.savez(f"{out}.rank{rank}.npz", **res)

    if __name__ == "__main__":
        main(*sys.argv[1:4])
''')


def _mpiexec():
    pytest.importorskip("mpi4py")
    exe = shutil.which("mpiexec")
    if exe is None:
        pytest.skip("mpiexec not found (pip install mpich)")
    return exe


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    path = tmp_path_factory.mktemp("mpi") / "mpi_worker.py"
    path.write_text(WORKER)
    spec = importlib.util.spec_from_file_location("mpi_worker", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return path, mod


def _run(worker_path, *args, timeout=MPI_TIMEOUT):
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(fr.__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([_mpiexec(), "-n", "2", sys.executable, str(worker_path), *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


def _reference(mod, kind, split):
    """Single process: step i trains on the concatenation of the ranks' batches i."""
    m = mod.build(kind)
    losses, sizes = [], []
    for i in range(mod.STEPS):
        parts = [mod.batch(kind, split, r, i) for r in range(2)]
        x = np.concatenate([p[0] for p in parts])
        if isinstance(parts[0][1], list):
            y = [np.concatenate([p[1][k] for p in parts]) for k in range(len(parts[0][1]))]
        else:
            y = np.concatenate([p[1] for p in parts])
        losses.append(m.train_on_batch(x, y))
        sizes.append(len(x))
    return m.get_weights(), np.array(losses), np.array(sizes)


@pytest.mark.parametrize("split", ["even", "uneven"])
def test_two_ranks_equal_single_process_on_concatenated_batches(worker, tmp_path, split):
    path, mod = worker
    out = tmp_path / "res"
    proc = _run(path, split, "train", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = np.load(f"{out}.rank0.npz")
    r1 = np.load(f"{out}.rank1.npz")
    for kind in mod.KINDS:
        ref_w, ref_loss, sizes = _reference(mod, kind, split)
        assert not np.allclose(ref_w[0], mod.build(kind).get_weights()[0])   # it trained
        for mode in ("fit", "tob"):
            for j, w in enumerate(ref_w):
                got = r0[f"{kind}.{mode}.w{j}"]
                assert got.dtype == np.float64
                np.testing.assert_allclose(got, w, rtol=1e-10, atol=1e-13,
                                           err_msg=f"{kind} {mode} weight {j}")
                # the ranks stay identical bit for bit (same reduced gradient, same step)
                np.testing.assert_array_equal(r1[f"{kind}.{mode}.w{j}"], got)
        np.testing.assert_allclose(r0[f"{kind}.tob.loss"], ref_loss, rtol=1e-10)
        np.testing.assert_array_equal(r1[f"{kind}.tob.loss"], r0[f"{kind}.tob.loss"])
        if kind == "gru":      # epoch loss: the sample-weighted mean of the global step losses
            want = float(np.sum(ref_loss * sizes) / np.sum(sizes))
            np.testing.assert_allclose(r0["gru.fit.loss"], [want], rtol=1e-10)
            np.testing.assert_array_equal(r1["gru.fit.loss"], r0["gru.fit.loss"])
            np.testing.assert_array_equal(r1["gru.fit.mae"], r0["gru.fit.mae"])
        if kind == "multi":    # per-output losses are logged as their global values too
            want = float(np.sum(ref_loss * sizes) / np.sum(sizes))
            np.testing.assert_allclose(r0["multi.fit.loss"], [want], rtol=1e-10)
            assert "multi.fit.tags_loss" in r0 and "multi.fit.tags_accuracy" in r0


def test_rank0_callbacks_steer_every_rank(worker, tmp_path):
    path, _ = worker
    out = tmp_path / "res"
    proc = _run(path, "even", "control", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = np.load(f"{out}.control.rank0.npz")
    r1 = np.load(f"{out}.control.rank1.npz")
    assert int(r0["epochs"]) == int(r1["epochs"]) == 2      # stopped together, on rank 0's word
    assert float(r0["lr"]) == float(r1["lr"]) == 0.05 * 0.5 ** 8   # halved before every step
    for k in r0.files:       # the same learning rate at every step: the same weights
        if k.startswith("pre"):
            np.testing.assert_array_equal(r0[k], r1[k])
    assert not np.array_equal(r0["mask"], r1["mask"])       # own dropout stream per rank
    assert r0["recurrent_draw"] != r1["recurrent_draw"]     # also for recurrent dropout
    assert os.path.exists(f"{out}.callback-ran-on-rank0")
    assert not os.path.exists(f"{out}.callback-ran-on-rank1")


@pytest.mark.parametrize("mode", ["fail-callback", "fail-rank1"])
def test_a_failing_rank_stops_every_rank(worker, tmp_path, mode):
    path, _ = worker
    proc = _run(path, "even", mode, str(tmp_path / "res"), timeout=120)
    assert proc.returncode != 0
    assert "aborting all ranks" in proc.stderr
    assert "on purpose" in proc.stderr
    assert not list(tmp_path.glob("res.*"))         # nobody went on to finish


# ---- single-process pieces (need mpi4py, not mpiexec) ----------------------------------------

def test_loss_weight_counts_the_positions_the_loss_averages():
    assert dmpi.loss_weight(np.zeros((5, 3))) == 5
    assert dmpi.loss_weight(np.zeros((5, 4, 3))) == 20
    mask = np.zeros((5, 4), bool)
    mask[:2, :3] = True
    assert dmpi.loss_weight(np.zeros((5, 4, 3)), mask) == 6
    assert dmpi.loss_weight(np.zeros((5, 3)), np.ones((5, 4), bool)) == 5  # mask on a vector


def _tiny(seed=1):
    m = fr.Sequential([fr.GRU(4, input_size=3, dtype="float64"), fr.Dense(2, dtype="float64")],
                      seed=seed)
    m.compile(fr.optimizers.Adam(0.01), "mse", metrics=["mae"])
    return m


def test_one_rank_mpi_fit_equals_plain_fit():
    pytest.importorskip("mpi4py")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((24, 5, 3)), rng.standard_normal((24, 2))
    a, b = _tiny(), _tiny()
    ha = a.fit(x, y, batch_size=7, epochs=2, shuffle=False, verbose=0, validation_split=0.25)
    hb = b.fit(x, y, batch_size=7, epochs=2, shuffle=False, verbose=0, validation_split=0.25,
               distributed="mpi")
    for k in ha.history:
        np.testing.assert_allclose(hb.history[k], ha.history[k], rtol=1e-12)
    for p, q in zip(a.get_weights(), b.get_weights()):    # w * g / w: equal up to rounding
        np.testing.assert_allclose(q, p, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(b.train_on_batch(x[:5], y[:5], distributed="mpi"),
                               a.train_on_batch(x[:5], y[:5]), rtol=1e-12)


def test_bad_distributed_argument_names_it():
    m = _tiny()
    x, y = np.zeros((4, 5, 3)), np.zeros((4, 2))
    with pytest.raises(ValueError, match="distributed must be 'mpi'"):
        m.fit(x, y, verbose=0, distributed="horovod")
    with pytest.raises(TypeError, match="distributed must be"):
        m.train_on_batch(x, y, distributed=3)


def test_gradient_buffer_is_bucketed(monkeypatch):
    pytest.importorskip("mpi4py")
    ctx = fr.distributed.get_context("mpi")
    old = ctx.bucket_bytes
    try:
        ctx.bucket_bytes = 64                  # 8 float64 per Allreduce
        ctx.reset_stats()
        m = _tiny()
        m.train_on_batch(np.ones((3, 5, 3)), np.ones((3, 2)), distributed=ctx)
        n = m.count_params() + 2               # gradients + weighted loss + weight
        assert ctx.stats["allreduce_calls"] == -(-n // 8)
        assert ctx.stats["allreduce_bytes"] == 8 * n
    finally:
        ctx.bucket_bytes = old


def test_example_distributed_fit_quick(tmp_path):
    example = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples",
                           "distributed_fit.py")
    if not os.path.exists(example):
        pytest.skip("examples/ not present (tests run outside the source tree)")
    proc = _run(example, "--quick", "--checkpoint", str(tmp_path / "best.safetensors"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert out.count("steps/s") == 1                     # only rank 0 prints
    assert "efficiency" in out and (tmp_path / "best.safetensors").exists()
    fr.load_model(tmp_path / "best.safetensors")
