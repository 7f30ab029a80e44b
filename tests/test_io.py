"""Tests for fastrnn.io: the safetensors-layout format, safe loading, atomic saving."""

import json
import os
import pickle
import struct
import subprocess
import sys
import tracemalloc
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastrnn as fr
from fastrnn import io as fio
from fastrnn.io import ModelFileError

warnings.filterwarnings("ignore", message=".*compiled kernels are not built.*")


# ==========================================================================================
# helpers
# ==========================================================================================

def _raw_file(header, data=b"", n=None):
    """Bytes of a file with the given header object (or raw header bytes) and data."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(raw) if n is None else n
    return struct.pack("<Q", n) + raw + data


def _write(tmp_path, content, name="f.safetensors"):
    p = tmp_path / name
    p.write_bytes(content)
    return p


def _parse_independently(content):
    """A minimal independent safetensors reader used to check the writer's layout."""
    (n,) = struct.unpack("<Q", content[:8])
    header = json.loads(content[8:8 + n].decode("utf-8"))
    data = content[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        dt = {"F32": "<f4", "F64": "<f8", "I64": "<i8", "I32": "<i4", "F16": "<f2",
              "U8": "u1", "I8": "i1", "U16": "<u2", "I16": "<i2", "U32": "<u4",
              "U64": "<u8"}[info["dtype"]]
        out[name] = np.frombuffer(data[b:e], dtype=dt).reshape(info["shape"])
    return n, header, out


def _small_model(dtype="float64", optimizer=None, seed=0):
    m = fr.Sequential([fr.LSTM(3, input_size=2, dtype=dtype, seed=seed + 1),
                       fr.Dense(2, dtype=dtype, seed=seed + 2)])
    m.build((None, None, 2))
    if optimizer is not None:
        m.compile(optimizer=optimizer, loss="mse", metrics=["mae"])
    return m


def _data(dtype="float64", seed=0, n=4, t=5):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, t, 2)).astype(dtype),
            rng.standard_normal((n, 2)).astype(dtype))


def _state(model):
    """Everything a load must restore, as comparable bytes."""
    out = {name: (a.dtype.str, a.shape, a.tobytes()) for name, a in model.params()}
    out["__config__"] = json.dumps(model.get_config(), sort_keys=True)
    opt = getattr(model, "optimizer", None)
    if opt is not None:
        cfg, slots = opt.get_state()
        out["__opt__"] = json.dumps(cfg, sort_keys=True)
        for k, v in slots.items():
            out["opt:" + k] = (v.dtype.str, v.shape, v.tobytes())
    return out


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    """Bytes of a small saved model (with Adam state) and the model's state."""
    m = _small_model(optimizer=fr.optimizers.Adam(0.01))
    x, y = _data()
    for _ in range(2):
        m.train_on_batch(x, y)
    p = tmp_path_factory.mktemp("small") / "m.safetensors"
    fio.save_model(m, p)
    return p.read_bytes(), _state(m)


# ==========================================================================================
# format layer
# ==========================================================================================

def test_tensor_roundtrip_and_layout(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {
        "a": rng.standard_normal((3, 4)).astype(np.float32),
        "b": np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324]),   # bit patterns kept
        "scalar": np.array(7, dtype=np.int64),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "f16": rng.standard_normal(5).astype(np.float16),
        "u8": np.arange(7, dtype=np.uint8),
        "i32": np.arange(-3, 3, dtype=np.int32).reshape(2, 3),
        "fortran": np.asfortranarray(rng.standard_normal((3, 2))),
        "strided": rng.standard_normal((4, 6))[::2, ::3],
        "bigendian": rng.standard_normal(4).astype(">f8"),
    }
    meta = {"hello": "wörld", "x": "1"}
    p = tmp_path / "t.safetensors"
    fio.write_tensors(p, tensors, meta)
    got, gmeta = fio.read_tensors(p)
    assert list(got) == list(tensors) or set(got) == set(tensors)
    for k, v in tensors.items():
        assert got[k].shape == v.shape
        assert got[k].dtype == v.dtype.newbyteorder("=")
        np.testing.assert_array_equal(got[k], v)
        assert got[k].tobytes() == np.ascontiguousarray(v, dtype=got[k].dtype).tobytes()
        assert got[k].flags.writeable
    assert np.signbit(got["b"][1]) and np.isnan(got["b"][4])
    assert gmeta["hello"] == "wörld" and gmeta["x"] == "1"
    assert gmeta["checksum"].startswith("sha256:")
    # the layout is plain safetensors: an independent reader agrees
    content = p.read_bytes()
    n, header, indep = _parse_independently(content)
    assert n % 8 == 0                      # data section aligned to 8 bytes
    assert header["__metadata__"]["hello"] == "wörld"
    for k, v in tensors.items():
        np.testing.assert_array_equal(indep[k], v)
    info, meta2 = fio.read_header(p)
    assert info["a"] == {"dtype": "F32", "shape": (3, 4)}
    assert meta2 == gmeta


def test_write_rejects_bad_input(tmp_path):
    p = tmp_path / "t.safetensors"
    with pytest.raises(TypeError, match="strings"):
        fio.write_tensors(p, {"a": np.zeros(2)}, {"k": 1})
    with pytest.raises(TypeError, match="cannot be stored"):
        fio.write_tensors(p, {"a": np.zeros(2, dtype=complex)})
    with pytest.raises(TypeError, match="cannot be stored"):
        fio.write_tensors(p, {"a": np.array(["x"], dtype=object)})
    with pytest.raises(TypeError, match="ndarray"):
        fio.write_tensors(p, {"a": [1.0, 2.0]})
    with pytest.raises(ValueError, match="__metadata__"):
        fio.write_tensors(p, {"__metadata__": np.zeros(2)})
    assert not p.exists()
    assert os.listdir(tmp_path) == []


def _good_header():
    return {"__metadata__": {"k": "v"},
            "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
            "b": {"dtype": "I64", "shape": [], "data_offsets": [16, 24]}}


def test_handmade_file_without_checksum_reads(tmp_path):
    data = np.arange(4, dtype="<f4").tobytes() + np.array(9, "<i8").tobytes()
    p = _write(tmp_path, _raw_file(_good_header(), data))
    t, meta = fio.read_tensors(p)
    np.testing.assert_array_equal(t["a"], [[0, 1], [2, 3]])
    assert int(t["b"]) == 9 and meta == {"k": "v"}


def _bad_headers():
    def edit(fn):
        h = _good_header()
        fn(h)
        return h
    data = bytes(24)
    cases = {
        "not an object": (b"[1, 2]", data, "JSON object"),
        "not json": (b"{'a': 1}", data, "not valid JSON"),
        "not utf8": (b'{"\xff\xfe": 1}', data, "UTF-8"),
        "nan constant": (b'{"a": NaN}', data, "constant"),
        "duplicate key": (b'{"a": {"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                          b'"a": {"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
                          bytes(4), "duplicate"),
        "unknown dtype": (edit(lambda h: h["a"].update(dtype="F128")), data, "unknown dtype"),
        "bf16 dtype": (edit(lambda h: h["a"].update(dtype="BF16")), data, "unknown dtype"),
        "dtype not str": (edit(lambda h: h["a"].update(dtype=4)), data, "unknown dtype"),
        "negative dim": (edit(lambda h: h["a"].update(shape=[-2, -2])), data, "non-negative"),
        "float dim": (edit(lambda h: h["a"].update(shape=[2.0, 2])), data, "non-negative"),
        "bool dim": (edit(lambda h: h["a"].update(shape=[True, 4])), data, "non-negative"),
        "shape not list": (edit(lambda h: h["a"].update(shape="2,2")), data, "non-negative"),
        "absurd shape": (edit(lambda h: h["a"].update(shape=[2**40, 2**40])), data, "needs"),
        "huge int": (edit(lambda h: h["a"].update(shape=[10**30])), data, "needs"),
        "shape/offset mismatch": (edit(lambda h: h["a"].update(shape=[2, 3])), data, "needs"),
        "offsets reversed": (edit(lambda h: h["a"].update(data_offsets=[16, 0])), data,
                             "begin <= end"),
        "offsets negative": (edit(lambda h: h["a"].update(data_offsets=[-16, 0])), data,
                             "begin <= end"),
        "offsets length": (edit(lambda h: h["a"].update(data_offsets=[0])), data,
                           "begin <= end"),
        "offsets float": (edit(lambda h: h["a"].update(data_offsets=[0.0, 16.0])), data,
                          "begin <= end"),
        "overlap": (edit(lambda h: h["b"].update(data_offsets=[8, 16], dtype="I64")), data,
                    "overlap|cover"),
        "gap": (edit(lambda h: h["b"].update(data_offsets=[20, 28])), bytes(28), "gap"),
        "beyond end": (edit(lambda h: h["b"].update(data_offsets=[16, 24])), bytes(20),
                       "beyond"),
        "trailing bytes": (_good_header(), bytes(30), "cover"),
        "extra key": (edit(lambda h: h["a"].update(extra=1)), data, "exactly"),
        "missing key": (edit(lambda h: h["a"].pop("shape")), data, "exactly"),
        "entry not object": (edit(lambda h: h.update(a=[1, 2])), data, "exactly"),
        "metadata not str": (edit(lambda h: h["__metadata__"].update(k=1)), data, "string"),
        "metadata list": (edit(lambda h: h.update(__metadata__=["a"])), data, "string"),
        "bad checksum": (edit(lambda h: h["__metadata__"].update(checksum="sha256:" + "0" * 64)),
                         data, "checksum mismatch"),
        "malformed checksum": (edit(lambda h: h["__metadata__"].update(checksum="md5:1")), data,
                               "malformed checksum"),
        "deep nesting": (b'{"a":' + b"[" * 100000 + b"]" * 100000 + b"}", b"", "JSON"),
        "tiny header": (b"{", b"", "too small"),
    }
    return cases


@pytest.mark.parametrize("case", sorted(_bad_headers()))
def test_bad_header_rejected(tmp_path, case):
    header, data, match = _bad_headers()[case]
    p = _write(tmp_path, _raw_file(header, data))
    with pytest.raises(ModelFileError, match=match):
        fio.read_tensors(p)
    if case != "bad checksum":      # read_header reads no data, so cannot verify it
        with pytest.raises(ModelFileError, match=match):
            fio.read_header(p)


@pytest.mark.parametrize("n", [0, 1, 7])
def test_file_shorter_than_prefix(tmp_path, n):
    p = _write(tmp_path, b"\x10" * n)
    with pytest.raises(ModelFileError, match="too short"):
        fio.read_tensors(p)


@pytest.mark.parametrize("n", [2**64 - 1, 2**63, 100 * 1024 * 1024 + 1, 1000])
def test_header_length_larger_than_file_or_cap(tmp_path, n):
    p = _write(tmp_path, _raw_file(_good_header(), bytes(24), n=n))
    with pytest.raises(ModelFileError, match="header length"):
        fio.read_tensors(p)


def test_absurd_shapes_rejected_before_allocating(tmp_path):
    h = {"a": {"dtype": "F64", "shape": [2**40, 2**40], "data_offsets": [0, 2**83]}}
    p = _write(tmp_path, _raw_file(h, bytes(64)))
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError):
            fio.read_tensors(p)
        with pytest.raises(ModelFileError):
            fio.load_model(p)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


# ==========================================================================================
# atomic, durable saving
# ==========================================================================================

def test_failed_replace_leaves_old_file(tmp_path, monkeypatch):
    p = tmp_path / "m.safetensors"
    fio.write_tensors(p, {"a": np.arange(3.0)}, {"v": "old"})
    old = p.read_bytes()

    def boom(*a, **k):
        raise OSError("disk on fire")
    monkeypatch.setattr(fio.os, "replace", boom)
    with pytest.raises(OSError, match="disk on fire"):
        fio.write_tensors(p, {"a": np.arange(5.0)}, {"v": "new"})
    assert p.read_bytes() == old
    assert os.listdir(tmp_path) == ["m.safetensors"]   # no temp file left


def test_failed_fsync_leaves_old_file(tmp_path, monkeypatch):
    p = tmp_path / "m.safetensors"
    fio.write_tensors(p, {"a": np.arange(3.0)})
    old = p.read_bytes()

    def boom(fd):
        raise OSError("fsync failed")
    monkeypatch.setattr(fio.os, "fsync", boom)
    with pytest.raises(OSError, match="fsync failed"):
        fio.write_tensors(p, {"a": np.arange(5.0)})
    assert p.read_bytes() == old
    assert os.listdir(tmp_path) == ["m.safetensors"]


@pytest.mark.parametrize("exc", [OSError("no space left on device"), KeyboardInterrupt()])
def test_failed_write_midway_leaves_old_model_file(tmp_path, monkeypatch, exc):
    m = _small_model(optimizer=fr.optimizers.SGD(0.1, momentum=0.9))
    x, y = _data()
    m.train_on_batch(x, y)
    p = tmp_path / "m.safetensors"
    m.save(p)
    old = p.read_bytes()
    m.train_on_batch(x, y)   # the model changes; the next save fails half-way
    real_fdopen = os.fdopen

    class Failing:
        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, b):
            if self.written > 50:
                raise exc
            self.written += len(b)
            return self.f.write(b[:10_000_000])

        def __getattr__(self, k):
            return getattr(self.f, k)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return self.f.__exit__(*a)

    monkeypatch.setattr(fio.os, "fdopen", lambda *a, **k: Failing(real_fdopen(*a, **k)))
    with pytest.raises(type(exc)):
        fio.save_model(m, p)
    assert p.read_bytes() == old
    assert os.listdir(tmp_path) == ["m.safetensors"]
    monkeypatch.undo()
    assert _state(fio.load_model(p)) != _state(m)   # still the old, loadable model


def test_save_preserves_existing_permissions(tmp_path):
    p = tmp_path / "m.safetensors"
    fio.write_tensors(p, {"a": np.zeros(1)})
    os.chmod(p, 0o640)
    fio.write_tensors(p, {"a": np.ones(1)})
    assert (os.stat(p).st_mode & 0o777) == 0o640


def test_unwritable_folder_simulated(tmp_path, monkeypatch):
    # root ignores permissions, so simulate the folder refusing new files
    p = tmp_path / "m.safetensors"
    fio.write_tensors(p, {"a": np.zeros(1)})
    old = p.read_bytes()

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(fio.tempfile, "mkstemp", refuse)
    with pytest.raises(PermissionError):
        fio.write_tensors(p, {"a": np.ones(1)})
    assert p.read_bytes() == old
    assert os.listdir(tmp_path) == ["m.safetensors"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root ignores directory permissions")
def test_read_only_directory(tmp_path):
    p = tmp_path / "m.safetensors"
    fio.write_tensors(p, {"a": np.zeros(1)})
    old = p.read_bytes()
    os.chmod(tmp_path, 0o500)
    try:
        with pytest.raises(PermissionError):
            fio.write_tensors(p, {"a": np.ones(1)})
    finally:
        os.chmod(tmp_path, 0o700)
    assert p.read_bytes() == old


# ==========================================================================================
# models
# ==========================================================================================

def _models():
    return {
        "lstm-dense-f64": lambda: fr.Sequential([
            fr.LSTM(4, input_size=3, return_sequences=True, dtype="float64", seed=1),
            fr.GRU(3, dtype="float64", seed=2), fr.Dense(2, dtype="float64", seed=3)]),
        "rnn-f32": lambda: fr.Sequential([
            fr.SimpleRNN(5, input_size=3, activation="relu", seed=4), fr.Dropout(0.2),
            fr.Dense(1, activation="sigmoid", seed=5)]),
        "masking": lambda: fr.Sequential([
            fr.Masking(7.0), fr.LSTM(4, input_size=3, seed=11), fr.Dense(2, seed=12)]),
        "bidirectional": lambda: fr.Sequential([
            fr.Bidirectional(fr.LSTM(3, input_size=3, seed=6)), fr.Dense(2, seed=7)]),
        "embedding": lambda: fr.Sequential([
            fr.Embedding(11, 3, seed=8), fr.GRU(4, return_sequences=True, seed=9),
            fr.Dense(11, activation="softmax", seed=10)]),
    }


@pytest.mark.parametrize("kind", sorted(_models()))
def test_model_roundtrip_identical_predictions(tmp_path, kind):
    m = _models()[kind]()
    rng = np.random.default_rng(0)
    if kind == "embedding":
        x = rng.integers(0, 11, size=(3, 6))
    else:
        x = rng.standard_normal((3, 6, 3))
    before = m.predict(x)
    p = tmp_path / "m.safetensors"
    m.save(p)
    m2 = fr.load_model(p)
    assert type(m2) is fr.Sequential
    assert m2.get_config() == m.get_config()
    assert _state(m2) == _state(m)          # bit-exact weights
    np.testing.assert_array_equal(m2.predict(x), before)
    assert m2.optimizer is None              # never compiled -> nothing to restore
    # weights-only files load into a fresh model of the same architecture
    w = tmp_path / "w.safetensors"
    fio.save_weights(m, w)
    fresh = fr.Sequential.from_config(m.get_config())
    if not fresh.built:
        fresh.build(m2.get_config()["build_input_shape"])
    fio.load_weights(fresh, w)
    np.testing.assert_array_equal(fresh.predict(x), before)


def test_signed_zero_and_exact_bits_survive(tmp_path):
    m = _small_model()
    for _, a in m.params():
        a.flat[0] = -0.0
    p = tmp_path / "m.safetensors"
    m.save(p)
    m2 = fr.load_model(p)
    for (_, a), (_, b) in zip(m.params(), m2.params()):
        assert a.tobytes() == b.tobytes()
        assert np.signbit(b.flat[0])


def test_file_is_documented_layout(tmp_path):
    m = _small_model(optimizer=fr.optimizers.Adam())
    x, y = _data()
    m.train_on_batch(x, y)
    p = tmp_path / "m.safetensors"
    m.save(p)
    n, header, tensors = _parse_independently(p.read_bytes())
    meta = header["__metadata__"]
    assert meta["format"] == "fastrnn" and meta["format_version"] == "1"
    assert meta["fastrnn_version"] == fr.__version__
    assert json.loads(meta["architecture"]) == m.get_config()
    assert json.loads(meta["optimizer"])["class_name"] == "Adam"
    assert all(isinstance(v, str) for v in meta.values())
    names = dict(m.params())
    for k, v in names.items():
        np.testing.assert_array_equal(tensors[k], v)
    assert "optimizer.exp_avg.layers.0.weight_ih" in tensors
    assert "optimizer.step.layers.1.bias" in tensors or "optimizer.step.layers.1.weight" in tensors
    assert header["optimizer.iterations"]["dtype"] == "I64"
    assert {k.split(".")[0] for k in tensors} == {"layers", "optimizer"}


@pytest.mark.parametrize("make_opt", [
    lambda: fr.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    lambda: fr.optimizers.Adam(0.01, amsgrad=True),
    lambda: fr.optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    lambda: fr.optimizers.Adagrad(0.1),
])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_resumed_training_matches_uninterrupted(tmp_path, make_opt, dtype):
    batches = [_data(dtype, seed=s) for s in range(6)]
    full = _small_model(dtype, make_opt())
    losses_full = [full.train_on_batch(x, y) for x, y in batches]

    part = _small_model(dtype, make_opt())
    for x, y in batches[:3]:
        part.train_on_batch(x, y)
    p = tmp_path / "m.safetensors"
    part.save(p)
    del part
    resumed = fr.load_model(p)
    assert type(resumed.optimizer) is type(full.optimizer)
    losses_resumed = [resumed.train_on_batch(x, y) for x, y in batches[3:]]
    assert losses_resumed == losses_full[3:]          # exactly the same
    assert _state(resumed) == _state(full)


def test_compile_settings_restored(tmp_path):
    m = fr.Sequential([fr.GRU(4, input_size=3, seed=1),
                       fr.Dense(5, activation="softmax", seed=2)])
    m.compile(optimizer=fr.optimizers.RMSprop(0.01),
              loss=fr.losses.SparseCategoricalCrossentropy(),
              metrics=["accuracy", fr.metrics.SparseCategoricalAccuracy(name="acc2")])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4, 3)).astype(np.float32)
    y = rng.integers(0, 5, size=6)
    m.train_on_batch(x, y)
    p = tmp_path / "m.safetensors"
    m.save(p)
    m2 = fr.load_model(p)
    assert type(m2.loss) is fr.losses.SparseCategoricalCrossentropy
    assert [mm.name for mm in m2.compiled_metrics] == [mm.name for mm in m.compiled_metrics]
    assert m2.train_on_batch(x, y, return_dict=True) == m.train_on_batch(x, y, return_dict=True)


def test_include_optimizer_false(tmp_path):
    m = _small_model(optimizer=fr.optimizers.Adam())
    x, y = _data()
    m.train_on_batch(x, y)
    p = tmp_path / "m.safetensors"
    fio.save_model(m, p, include_optimizer=False)
    info, meta = fio.read_header(p)
    assert not any(k.startswith("optimizer.") for k in info)
    assert "optimizer" not in meta
    m2 = fr.load_model(p)
    assert m2.optimizer is None
    np.testing.assert_array_equal(m2.predict(x), m.predict(x))


def test_load_compile_false(tmp_path):
    m = _small_model(optimizer=fr.optimizers.Adam())
    p = tmp_path / "m.safetensors"
    m.save(p)
    m2 = fr.load_model(p, compile=False)
    assert m2.loss is None and m2.optimizer is None
    m3 = fr.load_model(p)
    assert type(m3.optimizer) is fr.optimizers.Adam and m3.loss is not None


def test_truncation_at_every_byte(small_file, tmp_path):
    content, _ = small_file
    p = tmp_path / "t.safetensors"
    p.write_bytes(content)
    for cut in range(len(content) - 1, -1, -1):
        os.truncate(p, cut)
        with pytest.raises(ModelFileError):
            fio.load_model(p)


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=400), n=st.one_of(st.none(), st.integers(0, 2**64 - 1)))
def test_random_bytes_only_model_file_error(tmp_path, blob, n):
    content = blob if n is None else n.to_bytes(8, "little") + blob
    p = tmp_path / "r.safetensors"
    p.write_bytes(content)
    with pytest.raises(ModelFileError):
        fio.load_model(p)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12)


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.dictionaries(
    st.sampled_from(["a", "b", "__metadata__"]),
    st.one_of(_json_values, st.fixed_dictionaries({
        "dtype": st.sampled_from(["F32", "F64", "I64", "X", 3]),
        "shape": st.lists(st.integers(-3, 2**62), max_size=3),
        "data_offsets": st.lists(st.integers(-8, 2**62), max_size=3)})),
    max_size=3),
    data=st.binary(max_size=64))
def test_random_headers_only_model_file_error(tmp_path, header, data):
    p = tmp_path / "h.safetensors"
    p.write_bytes(_raw_file(header, data))
    try:
        fio.read_tensors(p)
    except ModelFileError:
        pass
    with pytest.raises(ModelFileError):
        fio.load_model(p)      # never a fastrnn model: no format metadata


def test_byte_flips_error_or_identical(small_file, tmp_path):
    content, state = small_file
    p = tmp_path / "t.safetensors"
    rng = np.random.default_rng(0)
    loaded = 0
    masks = rng.integers(1, 256, size=len(content))
    data_start = 8 + int.from_bytes(content[:8], "little")
    # the prefix and every other header byte; every 5th byte of the data (all data flips
    # take the same checksum path)
    positions = (list(range(8)) + list(range(8 + int(rng.integers(2)), data_start, 2))
                 + list(range(data_start, len(content), 5)))
    for pos in positions:
        for mask in (int(masks[pos]),):
            b = bytearray(content)
            b[pos] ^= mask
            p.write_bytes(bytes(b))
            try:
                m = fio.load_model(p)
            except ModelFileError:
                continue
            # a flip that still loads may only touch JSON whitespace: nothing differs
            assert _state(m) == state, pos
            loaded += 1
    assert loaded < len(content) // 4


def test_appended_bytes_rejected(small_file, tmp_path):
    content, _ = small_file
    p = _write(tmp_path, content + b"\0")
    with pytest.raises(ModelFileError, match="cover"):
        fio.load_model(p)


def _rewrite(tmp_path, content, edit_tensors=None, edit_meta=None):
    """Re-save a valid model file after editing it (checksum recomputed), to reach the
    checks behind the format layer."""
    src = _write(tmp_path, content, "src.safetensors")
    tensors, meta = fio.read_tensors(src)
    meta.pop("checksum")
    if edit_tensors:
        edit_tensors(tensors)
    if edit_meta:
        edit_meta(meta)
    dst = tmp_path / "edited.safetensors"
    fio.write_tensors(dst, tensors, meta)
    return dst


def _arch_edit(fn):
    def edit(meta):
        arch = json.loads(meta["architecture"])
        fn(arch)
        meta["architecture"] = json.dumps(arch)
    return edit


@pytest.mark.parametrize("case,kw,match", [
    ("unknown layer", dict(edit_meta=_arch_edit(
        lambda a: a["layers"][0].update(class_name="os.system"))), "unknown layer class"),
    ("unknown nested", dict(edit_meta=_arch_edit(
        lambda a: a["layers"][0]["config"].update(x={"class_name": "builtins.eval"}))),
     "unknown layer class"),
    ("bad layer config", dict(edit_meta=_arch_edit(
        lambda a: a["layers"][0]["config"].update(units=-3))), "could not be rebuilt"),
    ("unknown layer kwarg", dict(edit_meta=_arch_edit(
        lambda a: a["layers"][0]["config"].update(evil="__import__('os')"))),
     "could not be rebuilt"),
    ("architecture not json", dict(edit_meta=lambda m: m.update(architecture="{oops")),
     "architecture"),
    ("architecture list", dict(edit_meta=lambda m: m.update(architecture="[]")),
     "JSON object"),
    ("no architecture", dict(edit_meta=lambda m: m.pop("architecture")), "architecture"),
    ("not fastrnn", dict(edit_meta=lambda m: m.pop("format")), "not a fastrnn file"),
    ("future version", dict(edit_meta=lambda m: m.update(format_version="99")),
     "unsupported format_version"),
    ("bad kind", dict(edit_meta=lambda m: m.update(kind="pickle")), "kind"),
    ("huge units", dict(edit_meta=_arch_edit(
        lambda a: a["layers"][0]["config"].update(units=10**9))), "larger than any|architecture needs shape"),
    ("huge input size", dict(edit_meta=_arch_edit(
        lambda a: a["layers"][1]["config"].update(input_size=2**40))), "larger than any|architecture needs shape"),
    ("huge build shape", dict(edit_meta=_arch_edit(
        lambda a: a.update(build_input_shape=[None, 5, 10**8]))),
     "build_input_shape|input features"),
    ("wider units", dict(edit_meta=_arch_edit(
        lambda a: a["layers"][0]["config"].update(units=4))), "shape"),
    ("missing weight", dict(edit_tensors=lambda t: t.pop("layers.1.weight")), "missing"),
    ("extra weight", dict(edit_tensors=lambda t: t.update({"layers.9.w": np.zeros(2)})),
     "unexpected"),
    ("weight shape", dict(edit_tensors=lambda t: t.update(
        {"layers.1.weight": np.zeros((3, 2))})), "shape"),
    ("weight dtype", dict(edit_tensors=lambda t: t.update(
        {"layers.1.weight": t["layers.1.weight"].astype(np.float32)})), "F32"),
    ("unknown optimizer", dict(edit_meta=lambda m: m.update(
        optimizer='{"class_name": "subprocess.Popen", "config": {}}')), "optimizer"),
    ("optimizer bad arg", dict(edit_meta=lambda m: m.update(
        optimizer='{"class_name": "Adam", "config": {"learning_rate": -1}}')), "optimizer"),
    ("optimizer slot for unknown param", dict(edit_tensors=lambda t: t.update(
        {"optimizer.exp_avg.layers.7.x": np.zeros(2)})), "unexpected optimizer tensor"),
    ("optimizer slot shape", dict(edit_tensors=lambda t: t.update(
        {"optimizer.exp_avg.layers.1.weight": np.zeros((2, 2))})), "optimizer tensor"),
    ("optimizer missing slot", dict(edit_tensors=lambda t: t.pop(
        "optimizer.exp_avg_sq.layers.1.weight")), "optimizer state"),
    ("optimizer nan slot", dict(edit_tensors=lambda t: t.update(
        {"optimizer.exp_avg.layers.1.weight":
         np.full_like(t["optimizer.exp_avg.layers.1.weight"], np.nan)})), "NaN"),
    ("optimizer tensors without config", dict(edit_meta=lambda m: m.pop("optimizer")),
     "no optimizer config"),
    ("bad compile", dict(edit_meta=lambda m: m.update(
        compile='{"loss": {"class_name": "os.system"}}')), "compile"),
])
def test_semantic_errors(small_file, tmp_path, case, kw, match):
    content, _ = small_file
    p = _rewrite(tmp_path, content, **kw)
    with pytest.raises(ModelFileError, match=match):
        fio.load_model(p)


def test_absurd_architecture_rejected_before_allocating(small_file, tmp_path):
    content, _ = small_file
    p = _rewrite(tmp_path, content, edit_meta=_arch_edit(lambda a: a["layers"].append(
        {"class_name": "Embedding", "config": {"input_dim": 10**6, "output_dim": 10**6}})))
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match="larger than any|do not match the arch"):
            fio.load_model(p)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 22


def test_pickle_renamed_is_rejected_and_never_run(tmp_path):
    sentinel = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(sentinel), "w"))

    p = tmp_path / "model.safetensors"
    p.write_bytes(pickle.dumps({"weights": Evil()}, protocol=2))
    with pytest.raises(ModelFileError):
        fio.load_model(p)
    for proto in range(0, pickle.HIGHEST_PROTOCOL + 1):
        p.write_bytes(pickle.dumps(Evil(), protocol=proto))
        with pytest.raises(ModelFileError):
            fio.load_model(p)
        with pytest.raises(ModelFileError):
            fio.read_tensors(p)
    assert not sentinel.exists()
    # a .npy file renamed is rejected too
    q = tmp_path / "x.npy"
    np.save(q, np.arange(10.0))
    with pytest.raises(ModelFileError):
        fio.load_model(q)


def test_safetensors_file_without_fastrnn_metadata(tmp_path):
    p = tmp_path / "foreign.safetensors"
    fio.write_tensors(p, {"layers.0.weight_ih": np.zeros((12, 2))}, {"format": "pt"})
    with pytest.raises(ModelFileError, match="not a fastrnn file"):
        fio.load_model(p)


def test_load_weights_mismatch_leaves_model_unchanged(tmp_path):
    src = _small_model()
    p = tmp_path / "w.safetensors"
    fio.save_weights(src, p)
    other = fr.Sequential([fr.LSTM(4, input_size=2, dtype="float64", seed=9),
                           fr.Dense(2, dtype="float64", seed=9)])
    before = _state(other)
    with pytest.raises(ModelFileError, match="shape"):
        fio.load_weights(other, p)
    assert _state(other) == before
    target = _small_model(seed=5)
    weights = lambda m: {k: v.tobytes() for k, v in m.params()}
    assert weights(target) != weights(src)
    fio.load_weights(target, p)
    assert weights(target) == weights(src)


def test_corrupt_data_detected_by_checksum(small_file, tmp_path):
    content, _ = small_file
    b = bytearray(content)
    b[-3] ^= 0x01            # inside the last tensor's bytes
    p = _write(tmp_path, bytes(b))
    with pytest.raises(ModelFileError, match="checksum"):
        fio.load_model(p)


def test_errors_are_value_errors():
    assert issubclass(ModelFileError, ValueError)
    assert fr.ModelFileError is ModelFileError
    assert fio.FormatError is ModelFileError


def test_no_unsafe_deserialization_in_source():
    src = open(fio.__file__, encoding="utf-8").read()
    for bad in ("import pickle", "allow_pickle=True", "eval(", "exec(", "importlib",
                "__import__", "np.load("):
        assert bad not in src, bad


def test_missing_file_is_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        fio.load_model(tmp_path / "nope.safetensors")


def test_interop_with_safetensors_package(tmp_path):
    """Optional: the reference safetensors reader/writer agrees with ours."""
    st_numpy = pytest.importorskip("safetensors.numpy")
    m = _small_model(optimizer=fr.optimizers.Adam())
    x, y = _data()
    m.train_on_batch(x, y)
    p = tmp_path / "m.safetensors"
    m.save(p)
    theirs = st_numpy.load_file(str(p))
    for k, v in m.params():
        np.testing.assert_array_equal(theirs[k], v)
    q = tmp_path / "theirs.safetensors"
    st_numpy.save_file({"a": np.arange(6, dtype=np.float32).reshape(2, 3),
                        "b": np.array([1, 2], dtype=np.int64)}, str(q), metadata={"k": "v"})
    got, meta = fio.read_tensors(q)
    np.testing.assert_array_equal(got["a"], np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(got["b"], [1, 2])
    assert meta == {"k": "v"}


def test_wrong_kind_of_file_says_so(tmp_path):
    import zipfile
    with zipfile.ZipFile(tmp_path / "model.pt", "w") as z:         # torch.save writes a zip
        z.writestr("archive/data.pkl", pickle.dumps({"w": [1.0, 2.0]}))
    (tmp_path / "notes.txt").write_bytes(b"just some text, not a model\n")
    (tmp_path / "model.pkl").write_bytes(pickle.dumps({"w": list(range(100))}))
    for name in ("model.pt", "notes.txt", "model.pkl"):
        p = tmp_path / name
        with pytest.raises(fr.ModelFileError, match="not a fastrnn/safetensors model file"):
            fr.load_model(str(p))


# ==========================================================================================
# issue 9, defect 2: loading any file allocates at most a small multiple of its size
# ==========================================================================================

HOSTILE_SCRIPT = r"""
import json, os, resource, sys, tracemalloc
import numpy as np
import fastrnn as fr
from fastrnn import io as fio

path = sys.argv[1]
size = os.path.getsize(path)
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
tracemalloc.start()
try:
    fio.load_model(path)
    outcome = "loaded"
except fio.ModelFileError as e:
    outcome = "ModelFileError: " + str(e)[:200]
peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0
print(json.dumps({"size": size, "peak": peak, "rss": rss, "outcome": outcome}))
"""


def _json_file(path, header, data=b""):
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data)
    return path


def _fastrnn_meta(arch):
    return {"format": "fastrnn", "format_version": "1", "fastrnn_version": fr.__version__,
            "kind": "model", "architecture": json.dumps(arch)}


def _hostile_files(tmp_path):
    """Files that try to make the loader allocate far more than their size. Those that pass
    the format checks carry a valid checksum, so the architecture checks are what stops them."""
    D = 2000
    files = {}
    # the 416-byte file of the issue: zero-size tensors declaring huge dimensions
    arch = {"name": "s", "layers": [{"class_name": "LSTM", "config": {
        "units": D, "input_size": D, "dtype": "float32", "name": "lstm"}}],
        "build_input_shape": [None, None, D]}
    zero = {f"layers.0.{k}": np.zeros(shape, np.float32) for k, shape in (
        ("weight_ih", (4 * D, 0)), ("weight_hh", (4 * D, 0)), ("bias_ih", (0,)),
        ("bias_hh", (0,)))}
    files["zero-size tensors, huge LSTM"] = tmp_path / "a.safetensors"
    fio.write_tensors(files["zero-size tensors, huge LSTM"], zero, _fastrnn_meta(arch))
    # a real (small) weight but an architecture far larger than the weights
    arch2 = {"name": "s", "layers": [{"class_name": "Embedding", "config": {
        "input_dim": 10 ** 6, "output_dim": 300, "name": "e"}}]}
    files["embedding larger than its weight"] = tmp_path / "b.safetensors"
    fio.write_tensors(files["embedding larger than its weight"],
                      {"layers.0.weight": np.zeros((1000, 300), np.float32)},
                      _fastrnn_meta(arch2))
    # a legal header of very many empty tensors
    hdr = {f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}
           for i in range(60000)}
    files["60,000 empty tensors"] = _json_file(tmp_path / "c.safetensors", hdr)
    # cheap-to-write, expensive-to-parse JSON: a million empty objects
    files["a million empty objects"] = _json_file(tmp_path / "d.safetensors",
                                                  {"x": [{}] * 1000000})
    # the same inside the architecture string
    hdr = {"__metadata__": dict(_fastrnn_meta({"name": "s", "layers": [[]] * 1000000}),
                                checksum="sha256:" + "0" * 64)}
    files["a million lists in the architecture"] = _json_file(tmp_path / "e.safetensors", hdr)
    # layers the pre-build shape check does not know: the parameter budget refuses them
    arch3 = {"name": "s", "layers": [{"class_name": "Conv1D", "config": {
        "filters": D, "kernel_size": 50, "input_size": D, "name": "c"}}],
        "build_input_shape": [None, None, D]}
    files["Conv1D far larger than its weights"] = tmp_path / "f.safetensors"
    fio.write_tensors(files["Conv1D far larger than its weights"],
                      {"layers.0.weight": np.zeros((D, D, 0), np.float32),
                       "layers.0.bias": np.zeros(D, np.float32)}, _fastrnn_meta(arch3))
    return files


def test_hostile_files_allocate_at_most_a_small_multiple_of_their_size(tmp_path):
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(fr.__file__)))
    env = dict(os.environ, PYTHONPATH=pkg_parent)
    for name, path in _hostile_files(tmp_path).items():
        proc = subprocess.run([sys.executable, "-c", HOSTILE_SCRIPT, str(path)],
                              capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, f"{name}: {proc.stderr[-1500:]}"
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        assert r["outcome"].startswith("ModelFileError"), (name, r)
        assert "checksum" not in r["outcome"], (name, r)       # the real check was reached
        bound = 8 * r["size"] + (16 << 20)
        assert r["peak"] <= bound, (name, r)
        assert r["rss"] <= bound + (48 << 20), (name, r)


def test_loading_a_real_model_allocates_a_small_multiple_of_its_size(tmp_path):
    m = fr.Sequential([fr.LSTM(256, input_size=64, seed=1), fr.Dense(10, seed=2)])
    p = tmp_path / "real.safetensors"
    fio.save_model(m, p)
    size = p.stat().st_size
    tracemalloc.start()
    try:
        m2 = fio.load_model(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # file bytes + parameters + gradient buffers, and no initialisation temporaries
    assert peak <= 4 * size + (1 << 20), (peak, size)
    for a, b in zip(m.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_loading_builds_layers_without_initialising_them(tmp_path, monkeypatch):
    from fastrnn import initializers
    m = fr.Sequential([fr.Embedding(20, 8, seed=3), fr.GRU(6, seed=4),
                       fr.Bidirectional(fr.LSTM(5, seed=5)), fr.Dense(3, seed=6)])
    m.build((None, 7))
    p = tmp_path / "m.safetensors"
    fio.save_model(m, p)
    calls = []
    for cls in {c for c in vars(initializers).values()
                if isinstance(c, type) and issubclass(c, initializers.Initializer)}:
        real = cls.__call__

        def spy(self, *a, _real=real, **k):
            calls.append(type(self).__name__)
            return _real(self, *a, **k)
        monkeypatch.setattr(cls, "__call__", spy)
    fr.Dense(2, input_size=3)                      # the spies work outside a load ...
    assert calls
    calls.clear()
    m2 = fio.load_model(p)                         # ... and see nothing during one
    assert calls == []
    for a, b in zip(m.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_every_registered_layer_has_known_parameter_shapes(tmp_path):
    """The loader computes each layer's parameter shapes from its config before building
    (io._layer_params) for the layers of recurrent models; a Sequential holding any other
    layer class falls back to the coarser dimension bound (io._check_dimensions)."""
    from fastrnn.layers import LAYER_REGISTRY
    known = set(fio._CELL_GATES) | {"Bidirectional", "Dense", "Embedding", *fio._NO_PARAMS}
    assert known <= set(LAYER_REGISTRY), sorted(known - set(LAYER_REGISTRY))
    other = sorted(set(LAYER_REGISTRY) - known)
    if other:
        arch = {"layers": [{"class_name": other[0], "config": {}}]}
        assert fio._expected_params(arch) is None
    m = fr.Sequential([fr.Masking(), fr.SimpleRNN(4, return_sequences=True, seed=1),
                       fr.Dropout(0.1), fr.Bidirectional(fr.GRU(3, use_bias=False, seed=2),
                                                         merge_mode="sum"),
                       fr.Dense(2, dtype="float32", seed=3)])
    m.build((None, 5, 6))
    arch = json.loads(json.dumps(m.get_config()))
    expected = fio._expected_params(arch)
    assert expected == {k: (fio._dtype_name(v, k), v.shape) for k, v in m.params()}
    m2 = fr.Sequential([fr.Embedding(30, 4, seed=1), fr.LSTM(5, seed=2, return_sequences=True),
                        fr.Bidirectional(fr.SimpleRNN(3, seed=3)), fr.Dense(7, seed=4)])
    m2.build((None, 9))
    expected = fio._expected_params(json.loads(json.dumps(m2.get_config())))
    assert expected == {k: (fio._dtype_name(v, k), v.shape) for k, v in m2.params()}


def test_too_many_tensors_is_refused_before_parsing(tmp_path):
    hdr = {f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}
           for i in range(fio.MAX_TENSORS + 1)}
    p = _json_file(tmp_path / "many.safetensors", hdr)
    with pytest.raises(ModelFileError, match="limit"):
        fio.read_tensors(p)


# ------------------------------------------------------------------------------------------
# issue 9, "Also": a fastrnn file without its checksum; stale temp files; step counters

def test_fastrnn_file_without_checksum_is_refused(small_file, tmp_path):
    content, _ = small_file
    src = _write(tmp_path, content, "src.safetensors")
    tensors, meta = fio.read_tensors(src)
    meta["chksum"] = meta.pop("checksum")               # the key renamed
    dst = tmp_path / "renamed.safetensors"
    fio.write_tensors(dst, tensors, meta, checksum=False)
    for load in (fio.load_model, fio.read_tensors,
                 lambda p: fio.load_weights(fio.load_model(src), p)):
        with pytest.raises(ModelFileError, match="no 'checksum'"):
            load(dst)
    # files that do not claim to be fastrnn's (plain safetensors) need none
    fio.write_tensors(tmp_path / "plain.safetensors", {"a": np.ones(3)}, checksum=False)
    fio.read_tensors(tmp_path / "plain.safetensors")


def test_killed_save_leaves_no_temp_file_forever(tmp_path):
    """kill -9 in the middle of a save: the next save of the same path removes the temp."""
    target = tmp_path / "m.safetensors"
    script = (
        "import os, signal, sys\n"
        "from fastrnn import io as fio\n"
        "import numpy as np\n"
        "def write(f):\n"
        "    f.write(b'x' * 1000)\n"
        "    f.flush()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        f"fio._atomic_write({str(target)!r}, write)\n")
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(fr.__file__)))
    for _ in range(3):
        proc = subprocess.run([sys.executable, "-c", script], env=dict(
            os.environ, PYTHONPATH=pkg_parent), capture_output=True, timeout=60)
        assert proc.returncode == -9
    left = [n for n in os.listdir(tmp_path) if n != "m.safetensors"]
    assert len(left) == 1          # each save removed the one its killed predecessor left
    other = tmp_path / ".other.safetensors.fastrnn-tmp-1-abc.tmp"   # another file's temp
    other.write_bytes(b"keep")
    mine_alive = tmp_path / f".m.safetensors.fastrnn-tmp-{os.getpid()}-x.tmp"
    mine_alive.write_bytes(b"a save in progress in a live process")
    fio.save_weights(fr.Sequential([fr.Dense(2, input_size=3, seed=0)]), target)
    assert sorted(os.listdir(tmp_path)) == sorted(["m.safetensors", other.name, mine_alive.name])


def test_absurd_optimizer_step_counter_is_refused(small_file, tmp_path):
    for key in ("optimizer.iterations", None):
        def edit(t, key=key):
            k = key or next(k for k in t if k.startswith("optimizer.step."))
            t[k] = np.array(2 ** 63 - 1, dtype=np.int64)
        p = _rewrite(tmp_path, small_file[0], edit_tensors=edit)
        with pytest.raises(ModelFileError, match="step counter"):
            fio.load_model(p)
