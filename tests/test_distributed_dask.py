"""fastrnn.distributed.dask: lazy batch inference on Dask equals single-process predict exactly
(dtype, order, uneven last chunk); the model travels as safetensors bytes, never pickled.
Skipped when dask (or dask.distributed) is missing."""

import pickle

import numpy as np
import pytest

import fastrnn as fr

da = pytest.importorskip("dask.array")
db = pytest.importorskip("dask.bag")

from fastrnn.distributed import dask as ddask   # noqa: E402


def _gru_model():
    return fr.Sequential([fr.GRU(7, input_size=3), fr.Dense(2)], seed=11)        # float32


def _masked_model():        # token ids in, a float64 sequence out, padding masked
    f64 = dict(dtype="float64")
    return fr.Sequential([fr.Embedding(13, 5, mask_zero=True, **f64),
                          fr.LSTM(6, return_sequences=True, **f64),
                          fr.Dense(3, activation="softmax", **f64)], seed=12)


def _ids(n, T=9, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 13, (n, T))
    x[np.arange(T)[None, :] >= rng.integers(1, T + 1, n)[:, None]] = 0
    return x


@pytest.fixture
def no_pickled_models(monkeypatch):
    """Any attempt to pickle a live model fails the test."""
    def refuse(self, protocol):
        raise AssertionError("a live model was pickled")
    monkeypatch.setattr(fr.Sequential, "__reduce_ex__", refuse, raising=False)


@pytest.fixture(scope="module")
def thread_client():
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        yield client


def test_model_bytes_round_trip(no_pickled_models):
    m = _masked_model()
    with pytest.raises(AssertionError, match="pickled"):     # the guard itself works
        pickle.dumps(m)
    x = _ids(5)
    data = ddask.model_to_bytes(m)
    assert isinstance(data, bytes) and data[8:9] == b"{"        # a safetensors header
    np.testing.assert_array_equal(ddask.model_from_bytes(data).predict(x), m.predict(x))
    with pytest.raises(TypeError, match="data must be bytes"):
        ddask.model_from_bytes("not bytes")


def test_aligned_chunks():
    assert ddask._aligned_chunks((10, 10, 10, 10, 10, 3), 4) == (8, 12, 12, 8, 8, 5)
    assert ddask._aligned_chunks((64, 64, 7), 32) == (64, 64, 7)          # already aligned
    assert ddask._aligned_chunks((5, 5, 5), 32) == (15,)                   # one batch
    assert ddask._aligned_chunks((np.nan, np.nan), 8) == (np.nan, np.nan)


def test_local_scheduler_without_a_client(no_pickled_models):
    m = _gru_model()
    x = np.random.default_rng(1).standard_normal((53, 6, 3)).astype(np.float32)
    y = fr.distributed.predict(m, da.from_array(x, chunks=(10, 6, 3)), batch_size=4,
                               client=False)
    assert isinstance(y, da.Array) and y.shape == (53, 2) and y.dtype == np.float32
    out = y.compute(scheduler="sync")
    ref = m.predict(x, batch_size=4)
    assert out.dtype == ref.dtype
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("kind", ["gru", "masked"])
def test_local_cluster_equals_single_process(thread_client, no_pickled_models, kind):
    if kind == "gru":
        m = _gru_model()
        x = np.random.default_rng(2).standard_normal((103, 5, 3)).astype(np.float32)
        dx = da.from_array(x, chunks=(20, 5, 3))             # 5 x 20 + a last chunk of 3
    else:
        m = _masked_model()
        x = _ids(61)
        dx = da.from_array(x, chunks=(16, 3))                # time axis split: merged first
    ref = m.predict(x)
    y = m.predict(dx)                                        # dispatches on a dask array
    assert isinstance(y, da.Array)
    assert y.shape == ref.shape and y.dtype == ref.dtype
    # chunk boundaries moved to multiples of the batch size (32): the same batches as predict
    assert all(c % 32 == 0 for c in y.chunks[0][:-1]) and sum(y.chunks[0]) == len(x)
    out = y.compute()
    assert out.dtype == ref.dtype
    np.testing.assert_array_equal(out, ref)
    # each worker built its model from the scattered bytes (one copy per worker)
    keys = {k for k, _ in ddask._CACHE}
    assert keys


def test_process_workers_equal_single_process(no_pickled_models):
    distributed = pytest.importorskip("dask.distributed")
    m = _gru_model()
    x = np.random.default_rng(3).standard_normal((45, 4, 3)).astype(np.float32)
    ref = m.predict(x)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        y = fr.distributed.predict(m, da.from_array(x, chunks=(8, 4, 3)), client=client)
        out = y.compute()
        nthreads = client.run(lambda: fr.get_num_threads())
    np.testing.assert_array_equal(out, ref)
    assert out.dtype == np.float32
    assert set(nthreads.values()) == {1}      # each worker's engine uses its own core


def test_pad_token_lists_bag_then_predict(thread_client):
    seqs = [[3, 4, 5], [7], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [], [12, 11]]
    b = db.from_sequence(seqs, npartitions=2)
    post = fr.distributed.pad_token_lists(b, 4).compute()
    np.testing.assert_array_equal(post, [[3, 4, 5, 0], [7, 0, 0, 0], [1, 2, 3, 4], [0, 0, 0, 0],
                                         [12, 11, 0, 0]])
    assert post.dtype == np.int32
    pre = fr.distributed.pad_token_lists(b, 4, padding="pre", truncating="pre").compute()
    np.testing.assert_array_equal(pre[:3], [[0, 3, 4, 5], [0, 0, 0, 7], [7, 8, 9, 10]])
    # padded rows predict like the unpadded sequences (padding is masked)
    f64 = dict(dtype="float64")
    m = fr.Sequential([fr.Embedding(13, 5, mask_zero=True, **f64), fr.GRU(4, **f64),
                       fr.Dense(2, **f64)], seed=5)
    ids = fr.distributed.pad_token_lists(db.from_sequence(seqs[:3] + seqs[4:], npartitions=2),
                                         10)
    out = m.predict(ids).compute()
    for row, s in zip(out, seqs[:3] + seqs[4:]):
        np.testing.assert_allclose(row, m.predict(np.array([s]))[0], rtol=1e-12, atol=1e-14)


def test_bad_arguments_name_themselves():
    m = _gru_model()
    with pytest.raises(TypeError, match="x must be a dask.array"):
        fr.distributed.predict(m, np.zeros((2, 3, 3)))
    dx = da.zeros((4, 3, 3), chunks=2)
    with pytest.raises(ValueError, match="batch_size"):
        fr.distributed.predict(m, dx, batch_size=0)
    with pytest.raises(TypeError, match="client must be"):
        fr.distributed.predict(m, dx, client="tcp://nowhere")
    with pytest.raises(ValueError, match="threads"):
        fr.distributed.predict(m, dx, threads=0)
    with pytest.raises(ValueError, match="maxlen"):
        fr.distributed.pad_token_lists(db.from_sequence([[1]]), 0)
    with pytest.raises(TypeError, match="sequences must be"):
        fr.distributed.pad_token_lists([[1, 2]], 3)


def test_example_distributed_predict_quick(capsys):
    pytest.importorskip("dask.distributed")
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples",
                        "distributed_predict.py")
    if not os.path.exists(path):
        pytest.skip("examples/ not present (tests run outside the source tree)")
    spec = importlib.util.spec_from_file_location("example_distributed_predict", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main(["--quick", "-n", "3000", "--chunk", "1000"])
    out = capsys.readouterr().out
    assert "identical predictions" in out
    assert set(res) == {"1 process, 2 threads", "LocalCluster 1 x 1 thread",
                        "LocalCluster 2 x 1 thread"}
