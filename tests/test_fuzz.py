"""Property test: any array thrown at the layers gives a documented error or a sound result.

Shapes, dtypes and values come from hypothesis, including 0-d to 4-d arrays, empty sides,
integer/bool/complex dtypes, NaN and inf. Whatever comes in, the call either raises ValueError or
TypeError before the compiled code runs, or returns an output of the documented shape that is
finite whenever the input was. The weights never change.
"""

import numpy as np
import pytest

hyp = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings           # noqa: E402
from hypothesis import strategies as st                        # noqa: E402
from hypothesis.extra import numpy as hnp                      # noqa: E402

import fastrnn as fr                                            # noqa: E402

DTYPES = st.sampled_from([np.float32, np.float64, np.int32, np.bool_, np.complex64,
                          np.float16])
LAYERS = {name: cls(3, input_size=4, seed=0, return_sequences=True)
          for name, cls in (("rnn", fr.SimpleRNN), ("lstm", fr.LSTM), ("gru", fr.GRU))}


@st.composite
def inputs(draw):
    dtype = draw(DTYPES)
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)
                 | st.tuples(st.integers(0, 3), st.integers(0, 4), st.just(4)))
    elements = None
    if np.dtype(dtype).kind == "f":
        width = np.dtype(dtype).itemsize * 8
        elements = (st.floats(-1e4, 1e4, width=width)
                    | st.sampled_from([np.nan, np.inf, -np.inf]))
    return draw(hnp.arrays(dtype, shape, elements=elements))


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(x=inputs(), cell=st.sampled_from(sorted(LAYERS)), training=st.booleans())
def test_any_input_gives_a_clear_error_or_a_sound_output(x, cell, training):
    layer = LAYERS[cell]
    before = {k: v.copy() for k, v in layer.params.items()}
    try:
        y = layer.forward(x, training=training)
    except (ValueError, TypeError) as exc:
        assert str(exc)
    else:
        assert y.shape == (x.shape[0], x.shape[1], 3)
        assert y.dtype == np.float32
        if np.isfinite(x).all():
            assert np.isfinite(y).all()
    for k, v in layer.params.items():
        np.testing.assert_array_equal(v, before[k])


# ------------------------------------------------------------------------------------------
# Every public entry point, in a subprocess: a crash (SIGSEGV, abort) fails the test instead
# of killing the test run. Hypothesis runs derandomized with a modest example count, so the
# module stays fast and a failure reproduces exactly.

ENTRY_POINTS = r'''
import io as _io, json, os, sys, tempfile, traceback, warnings
import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp
import fastrnn as fr
from fastrnn import functional as F, io as fio, cli

warnings.simplefilter("ignore")
N = int(sys.argv[1])
SET = settings(max_examples=N, derandomize=True, deadline=None, database=None,
               suppress_health_check=list(HealthCheck))
CLEAR = (ValueError, TypeError)        # documented: FormatError, NonFiniteError are ValueErrors
problems = []


def check(name, fn, ok=lambda r: True):
    try:
        r = fn()
    except CLEAR as e:
        if not str(e):
            problems.append(f"{name}: {type(e).__name__} without a message")
        return
    except RuntimeError as e:            # documented call-order error: backward before forward
        if "needs a preceding forward" not in str(e):
            problems.append(f"{name}: RuntimeError: {str(e)[:200]}")
        return
    except Exception as e:               # anything else is not a documented error
        problems.append(f"{name}: {type(e).__name__}: {str(e)[:200]}\n"
                        + "".join(traceback.format_exc(limit=4))[-800:])
        return
    if not ok(r):
        problems.append(f"{name}: unsound result {str(r)[:200]}")


DT = st.sampled_from([np.float32, np.float64, np.int64, np.bool_, np.complex64, np.float16])


@st.composite
def arrays(draw, near=None):
    dt = draw(DT)
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)
                 | (st.just(near) if near else st.nothing()))
    el = None
    if np.dtype(dt).kind == "f":
        el = st.floats(-1e3, 1e3, width=np.dtype(dt).itemsize * 8) | st.sampled_from(
            [np.nan, np.inf, -np.inf, 0.0])
    return draw(hnp.arrays(dt, shape, elements=el))


def finite_or_nan_input(x, y):
    return not (isinstance(x, np.ndarray) and x.dtype.kind == "f" and np.isfinite(x).all()) \
        or np.isfinite(np.asarray(y)).all()


G = {"rnn": 1, "lstm": 4, "gru": 3}


@SET
@given(cell=st.sampled_from(sorted(G)), x=arrays((3, 2, 4)), h=arrays((2, 5)),
       w=st.booleans(), dy=arrays((3, 2, 5)), backend=st.sampled_from(["cython", "numpy"]))
def functional_api(cell, x, h, w, dy, backend):
    rng = np.random.default_rng(0)
    W = (rng.standard_normal((G[cell] * 5, 4)), rng.standard_normal((G[cell] * 5, 5)))
    if w:
        W = (W[0][:, :3], W[1])           # a wrong weight shape too
    st_ = (h, h) if cell == "lstm" else (h,)
    fwd, bwd = getattr(F, cell + "_forward"), getattr(F, cell + "_backward")

    def run():
        out = fwd(x, *st_, *W, training=True, backend=backend)
        g = bwd(out[-1], dy)
        return out[0], g
    check(f"{cell}_forward/backward", run, lambda r: r[0].shape[2] == 5)


LAYERS = [lambda: fr.SimpleRNN(5, input_size=4, seed=0, return_sequences=True),
          lambda: fr.LSTM(5, input_size=4, seed=0, return_state=True),
          lambda: fr.GRU(5, input_size=4, seed=0, go_backwards=True),
          lambda: fr.Bidirectional(fr.LSTM(5, input_size=4, seed=0)),
          lambda: fr.Dense(5, input_size=4, seed=0), lambda: fr.Embedding(7, 5, seed=0)]


@SET
@given(k=st.integers(0, len(LAYERS) - 1), x=arrays((2, 3, 4)), s=arrays((2, 5)),
       mask=arrays((2, 3)), d=arrays((2, 3, 5)), use_state=st.booleans())
def layer_api(k, x, s, mask, d, use_state):
    layer = LAYERS[k]()
    before = {n: np.array(p) for n, p in layer.params.items()} if layer.built else {}
    rec = isinstance(layer, (fr.SimpleRNN, fr.LSTM, fr.GRU))
    kw = {}
    if rec and use_state:
        kw["initial_state"] = (s, s) if isinstance(layer, fr.LSTM) else s
    if rec:
        kw["mask"] = mask
    check(f"{type(layer).__name__}.forward", lambda: layer.forward(x, training=True, **kw),
          lambda y: finite_or_nan_input(x, y[0] if isinstance(y, tuple) else y))
    check(f"{type(layer).__name__}.backward", lambda: layer.backward(d))
    if rec:
        check(f"{type(layer).__name__}.step", lambda: layer.step(x if x.ndim == 2 else
                                                                 x.reshape(x.shape[0], -1)
                                                                 if x.ndim else x, s))
    for n, p in before.items():            # a failed call never changes the weights
        if not np.array_equal(p, layer.params[n], equal_nan=True) and n in layer.grads:
            pass   # backward only fills grads; params are never written by these calls
        assert np.array_equal(p, layer.params[n], equal_nan=True), n


@SET
@given(x=arrays((6, 3, 4)), y=arrays((6, 2)), bs=st.sampled_from([0, 1, 4, -1, 2.5, None]),
       epochs=st.sampled_from([0, 1, 2, -1, 1.5]), fn=st.sampled_from(
           ["fit", "predict", "evaluate", "train_on_batch", "test_on_batch"]))
def model_api(x, y, bs, epochs, fn):
    m = fr.Sequential([fr.GRU(3, seed=1), fr.Dense(2, seed=2)])
    m.compile(optimizer="adam", loss="mse")
    calls = {"fit": lambda: m.fit(x, y, batch_size=bs, epochs=epochs, verbose=0),
             "predict": lambda: m.predict(x, batch_size=bs, verbose=0),
             "evaluate": lambda: m.evaluate(x, y, batch_size=bs, verbose=0),
             "train_on_batch": lambda: m.train_on_batch(x, y),
             "test_on_batch": lambda: m.test_on_batch(x, y)}
    check(f"Sequential.{fn}", calls[fn])


TMP = tempfile.mkdtemp()
GOOD = os.path.join(TMP, "good.safetensors")
_m = fr.Sequential([fr.LSTM(3, input_size=2, seed=0), fr.Dense(2, seed=1)])
_m.compile(optimizer="adam", loss="mse")
_m.train_on_batch(np.ones((2, 4, 2), np.float32), np.ones((2, 2), np.float32))
_m.save(GOOD)
GOOD_BYTES = open(GOOD, "rb").read()


@SET
@given(cut=st.integers(0, len(GOOD_BYTES)), flips=st.lists(
    st.tuples(st.integers(0, len(GOOD_BYTES) - 1), st.integers(1, 255)), max_size=4),
    junk=st.binary(max_size=64), which=st.sampled_from(["load_model", "read_tensors",
                                                        "read_header", "generate"]))
def file_api(cut, flips, junk, which):
    b = bytearray(GOOD_BYTES[:cut] + (junk if cut < 16 else b""))
    for i, v in flips:
        if i < len(b):
            b[i] ^= v
    p = os.path.join(TMP, "f.safetensors")
    with open(p, "wb") as f:
        f.write(bytes(b))
    calls = {"load_model": lambda: fio.load_model(p), "read_tensors": lambda: fio.read_tensors(p),
             "read_header": lambda: fio.read_header(p)}
    if which == "generate":
        old = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = _io.StringIO()
        try:
            rc = cli.main(["generate", p, "--length", "3"])
        finally:
            sys.stdout, sys.stderr = old
        if rc not in (0, 2):
            problems.append(f"fastrnn generate on a damaged file: exit status {rc}")
        return
    check(which, calls[which])


@SET
@given(args=st.lists(st.sampled_from(["--length", "--hidden", "--temperature", "--num-samples",
                                      "--seed", "-1", "0", "1e10", "nan", "inf", "x", "7",
                                      "--threads", "99999999999999999999"]), max_size=5))
def cli_api(args):
    old = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = _io.StringIO()
    try:
        rc = cli.main(["generate", GOOD, *args])
    except SystemExit as e:
        rc = e.code
    except Exception as e:
        rc = f"{type(e).__name__}: {e}"
    finally:
        sys.stdout, sys.stderr = old
    if rc not in (0, 2):
        problems.append(f"fastrnn generate {args}: {rc}")


for target in (functional_api, layer_api, model_api, file_api, cli_api):
    target()
fr.set_num_threads(None)
print(json.dumps(problems))
'''


def test_every_public_entry_point_gives_a_clear_error_or_a_result_never_a_crash(tmp_path):
    import json
    import os
    import subprocess
    import sys
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(fr.__file__)))
    env = dict(os.environ, PYTHONPATH=pkg_parent, OMP_NUM_THREADS="2")
    proc = subprocess.run([sys.executable, "-c", ENTRY_POINTS, "25"], capture_output=True,
                          text=True, env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, (f"the process died (status {proc.returncode}):\n"
                                  f"{proc.stderr[-3000:]}")
    problems = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not problems, "\n\n".join(problems[:10])
