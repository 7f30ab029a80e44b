"""fastrnn benchmark suite (``fastrnn bench`` / ``python bench/run.py``).

Times fastrnn's compiled engine against its own NumPy reference and, when they are installed,
PyTorch and ONNX Runtime, on a grid of (cell, shape, mode), plus single-step streaming latency.
Everything runs in one process: for every row the implementations are warmed up, then timed
round-robin (one sample of each implementation per round, the starting implementation rotating),
so that a slow or noisy machine moves all of them together and the ratios hold. The reported time
is the median of the samples.

Forward FLOPs are ``2*B*T*G*H*(I+H)`` (G = 1 rnn, 3 gru, 4 lstm); a training step (forward +
backward with every gradient) is counted as 3x that. Pointwise work is not counted.

Only numpy and scipy are required; torch, onnx + onnxruntime, threadpoolctl and matplotlib are
used when present.
"""

import argparse
import contextlib
import datetime
import gc
import importlib
import io
import json
import math
import os
import platform
import statistics
import sys
import time
import tracemalloc

import numpy as np

__all__ = ["main", "run", "SHAPES", "QUICK_SHAPES", "CELLS", "MODES", "IMPLS"]

# --------------------------------------------------------------------------------------------
# the grid
# --------------------------------------------------------------------------------------------

CELLS = ("rnn", "gru", "lstm")
GATES = {"rnn": 1, "gru": 3, "lstm": 4}
#: name -> (B, T, I, H)
SHAPES = {
    "latency": (1, 100, 64, 128),
    "small": (16, 100, 64, 128),
    "medium": (32, 100, 128, 256),
    "large": (64, 50, 512, 512),
    "wide": (16, 50, 1024, 1024),
}
#: shapes usable by name but not part of the default grid (tests, smoke runs)
EXTRA_SHAPES = {"tiny": (2, 5, 8, 16)}
DEFAULT_SHAPES = tuple(SHAPES)
QUICK_SHAPES = ("latency", "small")
MODES = ("inference", "training", "streaming")
IMPLS = ("fastrnn", "numpy", "torch", "ort")
#: streaming step: B=1, (I, H)
STREAM_SIZE = (64, 256)

TORCH_CLASS = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}
TORCH_CELL = {"rnn": "RNNCell", "gru": "GRUCell", "lstm": "LSTMCell"}
LAYER_CLASS = {"rnn": "SimpleRNN", "gru": "GRU", "lstm": "LSTM"}
ONNX_OP = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}
# torch gate order -> ONNX gate order (block permutation of the G*H rows)
ONNX_PERM = {"rnn": [0], "gru": [1, 0, 2], "lstm": [0, 3, 1, 2]}


def forward_flops(cell, B, T, I, H):
    """Forward FLOPs of one call: 2*B*T*G*H*(I+H) (the GEMMs only)."""
    return 2.0 * B * T * GATES[cell] * H * (I + H)


def mode_flops(cell, B, T, I, H, mode):
    f = forward_flops(cell, B, T, I, H)
    return 3.0 * f if mode == "training" else f


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------

def make_data(cell, B, T, I, H, seed=0):
    """Random float32 inputs and PyTorch-layout weights shared by every implementation."""
    rng = np.random.default_rng(seed)
    G = GATES[cell]
    k = 1.0 / math.sqrt(H)

    def u(*shape, scale=k):
        return rng.uniform(-scale, scale, size=shape).astype(np.float32)

    return {
        "cell": cell, "B": B, "T": T, "I": I, "H": H,
        "x": rng.standard_normal((T, B, I)).astype(np.float32),
        "h0": u(B, H, scale=0.5), "c0": u(B, H, scale=0.5),
        "weight_ih": u(G * H, I), "weight_hh": u(G * H, H),
        "bias_ih": u(G * H), "bias_hh": u(G * H),
        "dy": rng.standard_normal((T, B, H)).astype(np.float32),
        "dh_n": rng.standard_normal((B, H)).astype(np.float32),
        "dc_n": rng.standard_normal((B, H)).astype(np.float32),
    }


GRAD_NAMES = ("x", "h0", "c0", "weight_ih", "weight_hh", "bias_ih", "bias_hh")


# --------------------------------------------------------------------------------------------
# implementations
# --------------------------------------------------------------------------------------------
# Each implementation offers
#   seq_fn(d, mode)  -> fn(n): runs n full-sequence calls (inference or training)
#   step_fn(d)       -> fn(n): runs n streaming steps (state carried from step to step)
#   outputs(d)       -> dict y, h_n[, c_n] (float64 copies) for the start-up agreement check
#   grads(d)         -> dict of gradients, or None when the implementation has no training
# An implementation that cannot run raises Unavailable from its constructor.

class Unavailable(Exception):
    pass


class FastrnnImpl:
    """fastrnn.functional with backend="cython" (name "fastrnn") or "numpy" (name "numpy")."""

    training = True
    mem_method = "tracemalloc"

    def __init__(self, backend):
        self.backend = backend
        self.name = "fastrnn" if backend == "cython" else "numpy"
        try:
            self.F = importlib.import_module("fastrnn.functional")
        except Exception as exc:      # pragma: no cover - the package itself is broken
            raise Unavailable(f"fastrnn.functional import failed: {exc}") from exc
        # smoke call: a missing or broken compiled extension shows up here
        d = make_data("rnn", 1, 2, 3, 4)
        try:
            self._forward(d, False)
        except Exception as exc:
            raise Unavailable(f"backend={backend!r} failed: {type(exc).__name__}: {exc}") from exc

    def _forward(self, d, training, x=None, h0=None, c0=None):
        cell = d["cell"]
        fn = getattr(self.F, cell + "_forward")
        x = d["x"] if x is None else x
        h0 = d["h0"] if h0 is None else h0
        w = (d["weight_ih"], d["weight_hh"], d["bias_ih"], d["bias_hh"])
        if cell == "lstm":
            c0 = d["c0"] if c0 is None else c0
            return fn(x, h0, c0, *w, training=training, backend=self.backend)
        return fn(x, h0, *w, training=training, backend=self.backend)

    def _backward(self, d, cache):
        cell = d["cell"]
        bwd = getattr(self.F, cell + "_backward")
        if cell == "lstm":
            return bwd(cache, d["dy"], d["dh_n"], d["dc_n"])
        return bwd(cache, d["dy"], d["dh_n"])

    def seq_fn(self, d, mode):
        if mode == "inference":
            def fn(n):
                for _ in range(n):
                    self._forward(d, False)
        else:
            def fn(n):
                for _ in range(n):
                    out = self._forward(d, True)
                    self._backward(d, out[-1])
        return fn

    def outputs(self, d):
        out = self._forward(d, False)
        res = {"y": out[0], "h_n": out[1]}
        if d["cell"] == "lstm":
            res["c_n"] = out[2]
        return {k: np.asarray(v, dtype=np.float64) for k, v in res.items()}

    def grads(self, d):
        out = self._forward(d, True)
        g = self._backward(d, out[-1])
        return {k: np.asarray(v, dtype=np.float64) for k, v in g.items() if v is not None}

    def step_fn(self, d):
        """numpy: a T=1 functional call per step. fastrnn: the public layer's ``step``."""
        cell = d["cell"]
        x1 = d["x"][0]
        if self.backend == "numpy":
            state = [d["h0"], d["c0"]]
            x1t = x1[None]

            def fn(n):
                for _ in range(n):
                    out = self._forward(d, False, x=x1t, h0=state[0], c0=state[1])
                    state[0] = out[1]
                    if cell == "lstm":
                        state[1] = out[2]
            return fn
        layer, state0 = make_fastrnn_layer(d)
        st = [state0]

        def fn(n):
            step = layer.step
            s = st[0]
            for _ in range(n):
                _, s = step(x1, s)
            st[0] = s
        return fn

    def step_outputs(self, d):
        """One streaming step (for the agreement check): h after the first step."""
        layer, state0 = make_fastrnn_layer(d)
        h, _ = layer.step(d["x"][0], state0)
        return np.asarray(h, dtype=np.float64)


def make_fastrnn_layer(d, backend="cython"):
    """A built fastrnn recurrent layer holding the benchmark weights, and its initial state."""
    import fastrnn
    cell, I, H = d["cell"], d["I"], d["H"]
    cls = getattr(fastrnn, LAYER_CLASS[cell])
    layer = cls(H, input_size=I, backend=backend)
    if not getattr(layer, "built", True):
        layer.build((None, None, I))
    for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        layer.params[k] = d[k]
    if cell == "lstm":
        state = (d["h0"].copy(), d["c0"].copy())
    else:
        state = d["h0"].copy()
    return layer, state


class TorchImpl:
    name = "torch"
    training = True
    mem_method = "rss"

    def __init__(self, threads):
        try:
            self.torch = importlib.import_module("torch")
        except ImportError as exc:
            raise Unavailable("torch not installed") from exc
        self.old_threads = self.torch.get_num_threads()
        self.torch.set_num_threads(threads)

    def _module(self, d, step=False):
        torch = self.torch
        cell, I, H = d["cell"], d["I"], d["H"]
        if step:
            m = getattr(torch.nn, TORCH_CELL[cell])(I, H)
            names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        else:
            m = getattr(torch.nn, TORCH_CLASS[cell])(I, H, batch_first=False)
            names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
        with torch.no_grad():
            for tn, k in zip(names, ("weight_ih", "weight_hh", "bias_ih", "bias_hh")):
                getattr(m, tn).copy_(torch.from_numpy(d[k]))
        return m

    def _state(self, d, requires_grad=False):
        t = self.torch
        h0 = t.from_numpy(d["h0"][None].copy()).requires_grad_(requires_grad)
        if d["cell"] == "lstm":
            c0 = t.from_numpy(d["c0"][None].copy()).requires_grad_(requires_grad)
            return (h0, c0), [h0, c0]
        return h0, [h0]

    def seq_fn(self, d, mode):
        torch = self.torch
        m = self._module(d)
        if mode == "inference":
            x = torch.from_numpy(d["x"])
            hx, _ = self._state(d)

            def fn(n):
                with torch.inference_mode():
                    for _ in range(n):
                        m(x, hx)
            return fn
        x = torch.from_numpy(d["x"].copy()).requires_grad_(True)
        hx, hlist = self._state(d, requires_grad=True)
        inputs = [x] + hlist + list(m.parameters())
        gouts = [torch.from_numpy(d["dy"]), torch.from_numpy(d["dh_n"][None].copy())]
        if d["cell"] == "lstm":
            gouts.append(torch.from_numpy(d["dc_n"][None].copy()))

        def fn(n):
            for _ in range(n):
                y, hn = m(x, hx)
                outs = [y] + (list(hn) if isinstance(hn, tuple) else [hn])
                torch.autograd.grad(outs, inputs, gouts)
        return fn

    def outputs(self, d):
        torch = self.torch
        m = self._module(d)
        hx, _ = self._state(d)
        with torch.inference_mode():
            y, hn = m(torch.from_numpy(d["x"]), hx)
        res = {"y": y.numpy(), "h_n": (hn[0] if isinstance(hn, tuple) else hn)[0].numpy()}
        if d["cell"] == "lstm":
            res["c_n"] = hn[1][0].numpy()
        return {k: np.asarray(v, dtype=np.float64) for k, v in res.items()}

    def grads(self, d):
        torch = self.torch
        m = self._module(d)
        x = torch.from_numpy(d["x"].copy()).requires_grad_(True)
        hx, hlist = self._state(d, requires_grad=True)
        params = list(m.parameters())   # weight_ih, weight_hh, bias_ih, bias_hh
        y, hn = m(x, hx)
        outs = [y] + (list(hn) if isinstance(hn, tuple) else [hn])
        gouts = [torch.from_numpy(d["dy"]), torch.from_numpy(d["dh_n"][None].copy())]
        if d["cell"] == "lstm":
            gouts.append(torch.from_numpy(d["dc_n"][None].copy()))
        g = torch.autograd.grad(outs, [x] + hlist + params, gouts)
        names = ["x", "h0"] + (["c0"] if d["cell"] == "lstm" else []) + \
            ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
        res = {}
        for k, v in zip(names, g):
            v = v.numpy()
            res[k] = np.asarray(v[0] if k in ("h0", "c0") else v, dtype=np.float64)
        return res

    def step_fn(self, d):
        torch = self.torch
        m = self._module(d, step=True)
        x1 = torch.from_numpy(d["x"][0].copy())
        if d["cell"] == "lstm":
            st = [(torch.from_numpy(d["h0"].copy()), torch.from_numpy(d["c0"].copy()))]
        else:
            st = [torch.from_numpy(d["h0"].copy())]

        def fn(n):
            s = st[0]
            with torch.inference_mode():
                for _ in range(n):
                    s = m(x1, s)
            st[0] = s
        return fn

    def step_outputs(self, d):
        torch = self.torch
        m = self._module(d, step=True)
        x1 = torch.from_numpy(d["x"][0].copy())
        h0 = torch.from_numpy(d["h0"].copy())
        with torch.inference_mode():
            if d["cell"] == "lstm":
                h = m(x1, (h0, torch.from_numpy(d["c0"].copy())))[0]
            else:
                h = m(x1, h0)
        return np.asarray(h.numpy(), dtype=np.float64)

    def describe(self):
        torch = self.torch
        lines = [f"torch {torch.__version__}: threads={torch.get_num_threads()}, "
                 f"mkldnn (oneDNN) available={torch.backends.mkldnn.is_available()} "
                 "(used by torch for LSTM only; RNN/GRU take the native ATen path)"]
        try:
            info = torch.__config__.parallel_info()
            keep = [ln.strip() for ln in info.splitlines()
                    if ln.strip() and not ln.startswith("-") and "ATen/Parallel" not in ln]
            lines.append("  parallel_info: " + "; ".join(keep))
        except Exception as exc:     # pragma: no cover
            lines.append(f"  parallel_info unavailable: {exc}")
        return lines


def blk(a, order):
    """Split ``a`` into len(order) equal blocks along axis 0 and reorder them."""
    parts = np.split(a, len(order), axis=0)
    return np.concatenate([parts[k] for k in order], axis=0)


def onnx_model_bytes(cell, I, H, weight_ih, weight_hh, bias_ih, bias_hh, opset=14):
    """A one-node ONNX RNN/GRU/LSTM model (time-major X (T, N, I)) with torch-layout weights
    converted to ONNX order as initializers; inputs X, initial_h (, initial_c)."""
    from onnx import TensorProto, helper, numpy_helper
    perm = ONNX_PERM[cell]
    W = np.ascontiguousarray(blk(weight_ih, perm)[None])
    R = np.ascontiguousarray(blk(weight_hh, perm)[None])
    Bb = np.ascontiguousarray(np.concatenate([blk(bias_ih, perm), blk(bias_hh, perm)])[None])
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R"),
             numpy_helper.from_array(Bb, "B")]
    f32 = TensorProto.FLOAT
    ins = [helper.make_tensor_value_info("X", f32, ["T", "N", I]),
           helper.make_tensor_value_info("initial_h", f32, [1, "N", H])]
    node_in = ["X", "W", "R", "B", "", "initial_h"]
    outs = [helper.make_tensor_value_info("Y", f32, ["T", 1, "N", H]),
            helper.make_tensor_value_info("Y_h", f32, [1, "N", H])]
    node_out = ["Y", "Y_h"]
    if cell == "lstm":
        ins.append(helper.make_tensor_value_info("initial_c", f32, [1, "N", H]))
        node_in.append("initial_c")
        outs.append(helper.make_tensor_value_info("Y_c", f32, [1, "N", H]))
        node_out.append("Y_c")
    attrs = {"hidden_size": H}
    if cell == "gru":
        attrs["linear_before_reset"] = 1
    node = helper.make_node(ONNX_OP[cell], node_in, node_out, **attrs)
    graph = helper.make_graph([node], f"fastrnn_bench_{cell}", ins, outs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model.SerializeToString()


class OrtImpl:
    name = "ort"
    training = False
    mem_method = "rss"

    def __init__(self, threads):
        try:
            self.ort = importlib.import_module("onnxruntime")
        except ImportError as exc:
            raise Unavailable("onnxruntime not installed") from exc
        try:
            self.onnx = importlib.import_module("onnx")
        except ImportError as exc:
            raise Unavailable("onnx not installed (needed to build the ORT models)") from exc
        self.threads = threads
        self.providers = None

    def _session(self, d):
        ort = self.ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        sess = ort.InferenceSession(
            onnx_model_bytes(d["cell"], d["I"], d["H"], d["weight_ih"], d["weight_hh"],
                             d["bias_ih"], d["bias_hh"]),
            so, providers=["CPUExecutionProvider"])
        self.providers = sess.get_providers()
        return sess

    def _feed(self, d, x):
        feed = {"X": x, "initial_h": d["h0"][None].copy()}
        if d["cell"] == "lstm":
            feed["initial_c"] = d["c0"][None].copy()
        return feed

    def seq_fn(self, d, mode):
        if mode != "inference":
            raise Unavailable("ONNX Runtime: inference only")
        sess = self._session(d)
        feed = self._feed(d, d["x"])

        def fn(n):
            run = sess.run
            for _ in range(n):
                run(None, feed)
        return fn

    def outputs(self, d):
        out = self._session(d).run(None, self._feed(d, d["x"]))
        res = {"y": out[0][:, 0], "h_n": out[1][0]}
        if d["cell"] == "lstm":
            res["c_n"] = out[2][0]
        return {k: np.asarray(v, dtype=np.float64) for k, v in res.items()}

    def grads(self, d):
        return None

    def step_fn(self, d):
        sess = self._session(d)
        feed = self._feed(d, d["x"][:1].copy())
        lstm = d["cell"] == "lstm"

        def fn(n):
            run = sess.run
            for _ in range(n):
                out = run(None, feed)
                feed["initial_h"] = out[1]
                if lstm:
                    feed["initial_c"] = out[2]
        return fn

    def step_outputs(self, d):
        out = self._session(d).run(None, self._feed(d, d["x"][:1].copy()))
        return np.asarray(out[1][0], dtype=np.float64)

    def describe(self):
        ort = self.ort
        return [f"onnxruntime {ort.__version__} (onnx {self.onnx.__version__}): available "
                f"providers {ort.get_available_providers()}, sessions use CPUExecutionProvider, "
                f"intra_op_num_threads={self.threads}, inter_op_num_threads=1"]


# --------------------------------------------------------------------------------------------
# machine information and peaks
# --------------------------------------------------------------------------------------------

def cpu_info():
    info = {"model": platform.processor() or platform.machine(), "flags": [], "mhz": None,
            "cores": os.cpu_count()}
    try:
        info["cores"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):   # pragma: no cover - non-Linux
        pass
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return info
    mhz = []
    for line in text.splitlines():
        key, _, val = line.partition(":")
        key, val = key.strip(), val.strip()
        if key == "model name" and info["model"] in ("", platform.machine(), platform.processor()):
            info["model"] = val
        elif key == "flags" and not info["flags"]:
            info["flags"] = val.split()
        elif key == "cpu MHz":
            try:
                mhz.append(float(val))
            except ValueError:
                pass
    if mhz:
        info["mhz"] = max(mhz)
    return info


def theoretical_peak(info):
    """Estimated fp32 FMA peak per core in GFLOP/s, assuming 2 FMA units per core."""
    flags = set(info.get("flags") or ())
    mhz = info.get("mhz")
    if not mhz or not flags:
        return None, "cannot derive (no /proc/cpuinfo flags or MHz)"
    if "avx512f" in flags:
        lanes, isa = 16, "AVX-512"
    elif "avx2" in flags and "fma" in flags:
        lanes, isa = 8, "AVX2+FMA"
    elif "avx" in flags:
        return mhz * 1e-3 * 16, "AVX without FMA: 1 add + 1 mul x 8 lanes per cycle (estimate)"
    else:
        return mhz * 1e-3 * 8, "SSE: 1 add + 1 mul x 4 lanes per cycle (estimate)"
    per_core = mhz * 1e-3 * lanes * 2 * 2
    return per_core, (f"{isa}: 2 FMA units x {lanes} fp32 lanes x 2 flop x {mhz / 1e3:.2f} GHz "
                      "(estimate; turbo/AVX clocks differ)")


def _blas_controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def sgemm_peak(threads, n=1024, repeats=5):
    """Measured sgemm GFLOP/s with scipy's BLAS at 1 thread and at ``threads`` threads."""
    from scipy.linalg import blas
    rng = np.random.default_rng(1)
    a = np.asfortranarray(rng.standard_normal((n, n)).astype(np.float32))
    b = np.asfortranarray(rng.standard_normal((n, n)).astype(np.float32))
    flops = 2.0 * n ** 3
    ctl = _blas_controller()
    res = {}
    for nt in sorted({1, threads}):
        if ctl is not None:
            cm = ctl.limit(limits=nt, user_api="blas")
        elif nt == threads:
            cm = contextlib.nullcontext()
        else:
            continue      # cannot limit threads without threadpoolctl
        with cm:
            blas.sgemm(1.0, a, b)
            ts = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                blas.sgemm(1.0, a, b)
                ts.append(time.perf_counter() - t0)
        res[nt] = flops / min(ts) / 1e9
    return res


def numpy_blas_description():
    ctl = _blas_controller()
    if ctl is None:
        cfg = getattr(np, "__config__", None)
        name = "unknown"
        try:
            name = cfg.CONFIG["Build Dependencies"]["blas"]["name"]      # numpy >= 1.26
        except Exception:
            pass
        return [f"numpy {np.__version__} BLAS: {name} (threadpoolctl not installed: "
                "its thread count is not controlled)"]
    lines = []
    for lib in ctl.info():
        if lib.get("user_api") != "blas":
            continue
        owner = os.path.basename(os.path.dirname(lib.get("filepath", "")))
        lines.append(f"BLAS {lib.get('internal_api')} {lib.get('version')} ({owner}, "
                     f"{lib.get('architecture')}, {lib.get('threading_layer')}, "
                     f"threads={lib.get('num_threads')})")
    return lines or ["no BLAS library found by threadpoolctl"]


def fastrnn_description():
    import fastrnn
    lines = [f"fastrnn {getattr(fastrnn, '__version__', '(no __version__)')}"]
    show = getattr(fastrnn, "show_config", None)
    if show is None:
        try:
            show = importlib.import_module("fastrnn._engine.config").show_config
        except Exception:
            show = None
    if show is None:
        lines.append("  fastrnn.show_config not available")
        return lines
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            ret = show()
    except Exception as exc:
        lines.append(f"  fastrnn.show_config failed: {exc}")
        return lines
    text = buf.getvalue()
    if not text.strip() and ret is not None:
        text = ret if isinstance(ret, str) else json.dumps(ret, default=str, indent=1)
    shown = text.strip().splitlines()
    if shown and shown[0].startswith("fastrnn"):
        return shown           # show_config names the version itself
    lines.extend("  " + ln for ln in shown)
    return lines


def _fastrnn_thread_fns():
    import fastrnn
    get = getattr(fastrnn, "get_num_threads", None)
    put = getattr(fastrnn, "set_num_threads", None)
    if put is None:
        try:
            cfg = importlib.import_module("fastrnn._engine.config")
            get, put = getattr(cfg, "get_num_threads", None), cfg.set_num_threads
        except Exception:
            put = None
    return get, put


def set_threads(threads, notes, restore):
    """Give numpy's BLAS and fastrnn ``threads`` threads (torch and ORT get theirs in their
    constructors). Appends undo callables to ``restore``; returns the knobs used (text)."""
    knobs = []
    ctl = _blas_controller()
    if ctl is not None:
        limiter = ctl.limit(limits=threads, user_api="blas")
        restore.append(limiter.restore_original_limits)
        knobs.append(f"numpy/scipy BLAS: threadpoolctl limit {threads}")
    else:
        notes.append("threadpoolctl not installed: the NumPy reference's BLAS thread count is "
                     "not controlled (OPENBLAS_NUM_THREADS / OMP_NUM_THREADS set it)")
    try:
        get, put = _fastrnn_thread_fns()
        if put is not None:
            if get is not None:
                old = get()
                restore.append(lambda: put(old))
            put(threads)
            knobs.append(f"fastrnn.set_num_threads({threads})")
        else:
            notes.append("fastrnn.set_num_threads not present: fastrnn runs with its default "
                         "thread count")
    except Exception as exc:      # pragma: no cover
        notes.append(f"fastrnn.set_num_threads failed: {exc}")
    return knobs


# --------------------------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------------------------

def time_round_robin(fns, min_repeats, max_repeats, budget, sample_time, warmup=1,
                     slow_repeats=3, gap=0.0):
    """Time several ``fn(n)`` callables interleaved.

    Each fn is warmed up (``warmup`` calls, at least one), its per-call time estimated and an
    inner count ``n`` chosen so that one sample lasts about ``sample_time`` seconds. Then rounds
    of one sample per implementation run, the starting implementation rotating, until every
    implementation has ``min_repeats`` samples and the round loop has used ``budget`` seconds,
    or ``max_repeats`` rounds ran. An implementation whose single call is so slow that
    ``min_repeats`` samples of it alone would exceed the budget takes part in only
    ``slow_repeats`` rounds (never fewer than 1). Before each sample the loop sleeps ``gap``
    seconds, so that the previous implementation's thread pool (OpenMP, OpenBLAS and ORT workers
    spin-wait for a while after their work) has gone idle and does not steal the cores of the
    next one. Returns name -> dict(times (per call), n).
    """
    names = list(fns)
    est, inner = {}, {}
    for name in names:
        fn = fns[name]
        t0 = time.perf_counter()
        fn(1)
        t = time.perf_counter() - t0
        for _ in range(max(0, warmup - 1)):
            t0 = time.perf_counter()
            fn(1)
            t = min(t, time.perf_counter() - t0)
        if t < sample_time / 4:
            # cheap call: a second estimate over several calls (warms caches further)
            k = max(1, int(sample_time / 4 / max(t, 1e-7)))
            t0 = time.perf_counter()
            fn(k)
            t = (time.perf_counter() - t0) / k
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
        r = 0
        while r < max_repeats:
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                if len(times[name]) >= limit[name]:
                    continue
                n = inner[name]
                if gap > 0 and len(names) > 1:
                    time.sleep(gap)
                t0 = time.perf_counter()
                fns[name](n)
                times[name].append((time.perf_counter() - t0) / n)
            r += 1
            done_min = all(len(times[nm]) >= min(min_repeats, limit[nm]) for nm in names)
            used = time.perf_counter() - start - (r * len(names) * gap if len(names) > 1 else 0)
            if done_min and used >= budget:
                break
    finally:
        if gc_was:
            gc.enable()
    return {name: {"times": times[name], "n": inner[name]} for name in names}


def _loadavg():
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):   # pragma: no cover
        return None


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


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------

def _csv(value, allowed, what):
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise SystemExit(f"--{what}: empty list")
    bad = [v for v in items if allowed is not None and v not in allowed]
    if bad:
        raise SystemExit(f"--{what}: unknown {bad}; choose from {', '.join(allowed)}")
    return items


def _parse_shape(text, what):
    try:
        vals = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        vals = ()
    if len(vals) != 4 or min(vals) < 1:
        raise SystemExit(f"{what} must be four positive integers B,T,I,H, got {text!r}")
    return vals


def build_parser():
    p = argparse.ArgumentParser(
        prog="fastrnn bench",
        description="Benchmark fastrnn against its NumPy reference, PyTorch and ONNX Runtime "
                    "(interleaved timing in one process; median of repeats).")
    p.add_argument("--cells", default=",".join(CELLS), help="comma list of rnn,gru,lstm")
    p.add_argument("--shapes", default=None,
                   help="comma list of shape names: " + ", ".join(
                       f"{k}={'x'.join(map(str, v))}"
                       for k, v in {**SHAPES, **EXTRA_SHAPES}.items())
                   + " (B x T x I x H); default all but tiny, --quick: latency,small")
    p.add_argument("--custom-shape", action="append", default=[], metavar="B,T,I,H",
                   help="add a custom shape (repeatable)")
    p.add_argument("--modes", default=None,
                   help="comma list of inference,training,streaming (default all)")
    p.add_argument("--impls", default=",".join(IMPLS),
                   help="comma list of fastrnn,numpy,torch,ort (fastrnn is the baseline)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for every implementation (default: all cores)")
    p.add_argument("--stream-size", default=None, metavar="I,H",
                   help="streaming step input and hidden size (default 64,256; B=1)")
    p.add_argument("--quick", action="store_true",
                   help="small subset (latency+small shapes, short budget): under two minutes")
    p.add_argument("--row-budget", type=float, default=None,
                   help="seconds of timed rounds per row (default 6, --quick 1)")
    p.add_argument("--min-repeats", type=int, default=5, help="samples per implementation")
    p.add_argument("--max-repeats", type=int, default=50)
    p.add_argument("--sample-time", type=float, default=None,
                   help="target seconds per sample (calls are batched to reach it; default "
                        "0.02, --quick 0.01)")
    p.add_argument("--switch-gap", type=float, default=0.02,
                   help="idle seconds before each sample so the previous implementation's "
                        "spinning worker threads go to sleep (default 0.02)")
    p.add_argument("--numpy-max-call", type=float, default=None,
                   help="skip the NumPy reference on a row when its estimated time per call "
                        "(from earlier rows) exceeds this many seconds (default: 1.5 * row "
                        "budget / min repeats, at least 1)")
    p.add_argument("--no-memory", action="store_true",
                   help="skip the peak-memory measurement of training steps")
    p.add_argument("--no-peak", action="store_true", help="skip the sgemm peak measurement")
    p.add_argument("--no-check", action="store_true",
                   help="skip the start-up agreement check between implementations")
    p.add_argument("--json", metavar="PATH", help="write results as JSON")
    p.add_argument("--plot", metavar="PATH", help="write a PNG of fastrnn's speed-ups")
    p.add_argument("--seed", type=int, default=0)
    return p


def _log(out, msg=""):
    print(msg, file=out, flush=True)


def _fmt_time(s, streaming):
    if s is None:
        return "-"
    if streaming:
        return f"{s * 1e6:.1f} us"
    return f"{s * 1e3:.3f} ms"


def check_agreement(impls, cells, base_name, out, tol=2e-4):
    """Compare every implementation's outputs (and torch's gradients) with the baseline's on a
    small random problem per cell. Prints one line per cell and WARNING lines on mismatch."""
    results = []
    base = impls.get(base_name)
    if base is None:
        return results
    for cell in cells:
        d = make_data(cell, 3, 5, 7, 6, seed=123)
        parts = []
        try:
            ref = base.outputs(d)
            ref_g = base.grads(d)
        except Exception as exc:
            _log(out, f"WARNING: check {cell}: baseline {base_name} failed: {exc}")
            continue
        try:
            ref_step = base.step_outputs(d)
        except Exception as exc:
            ref_step = None
            _log(out, f"WARNING: check {cell}: {base_name} streaming step failed: "
                      f"{type(exc).__name__}: {exc}")
        for name, impl in impls.items():
            if name == base_name:
                continue
            try:
                o = impl.outputs(d)
                diff = max(float(np.max(np.abs(o[k] - ref[k]))) for k in ref)
                g_diff = None
                if impl.training and ref_g is not None:
                    g = impl.grads(d)
                    if g is not None:
                        keys = [k for k in ref_g if k in g]
                        g_diff = max(float(np.max(np.abs(g[k] - ref_g[k]))
                                     / max(1.0, float(np.max(np.abs(ref_g[k]))))) for k in keys)
                s_diff = None
                if ref_step is not None:
                    if name == "numpy":
                        s = impl.outputs({**d, "x": d["x"][:1]})["h_n"]
                    else:
                        s = impl.step_outputs(d)
                    s_diff = float(np.max(np.abs(s - ref_step)))
            except Exception as exc:
                _log(out, f"WARNING: {name} {cell} failed the agreement check run: "
                          f"{type(exc).__name__}: {exc}")
                results.append({"cell": cell, "impl": name, "ok": False, "error": str(exc)})
                continue
            ok = diff <= tol and (g_diff is None or g_diff <= tol) and \
                (s_diff is None or s_diff <= tol)
            txt = f"{name} out {diff:.1e}"
            if g_diff is not None:
                txt += f" grad {g_diff:.1e}"
            if s_diff is not None:
                txt += f" step {s_diff:.1e}"
            parts.append(txt + ("" if ok else " MISMATCH"))
            results.append({"cell": cell, "impl": name, "ok": ok, "max_abs_diff": diff,
                            "grad_max_rel_diff": g_diff, "step_max_abs_diff": s_diff})
            if not ok:
                _log(out, f"WARNING: {name} {cell} does not match {base_name} "
                          f"(max |diff| outputs {diff:.3g}, gradients {g_diff}, step {s_diff}; "
                          f"tolerance {tol:g}): its timings may not be comparable")
        _log(out, f"check {cell} vs {base_name}: " + (", ".join(parts) or "no peers"))
    return results


def run(argv=None, out=None):
    """Run the benchmark; returns the result dict (also written with --json)."""
    out = sys.stdout if out is None else out
    args = build_parser().parse_args(argv)
    cells = _csv(args.cells, CELLS, "cells")
    all_shapes = {**SHAPES, **EXTRA_SHAPES}
    if args.shapes is not None:
        shape_names = _csv(args.shapes, tuple(all_shapes), "shapes")
    elif args.custom_shape:
        shape_names = []
    else:
        shape_names = list(QUICK_SHAPES if args.quick else DEFAULT_SHAPES)
    shapes = [(nm, all_shapes[nm]) for nm in shape_names]
    for text in args.custom_shape:
        s = _parse_shape(text, "--custom-shape")
        shapes.append(("x".join(map(str, s)), s))
    modes = _csv(args.modes, MODES, "modes") if args.modes is not None else list(MODES)
    impl_names = _csv(args.impls, IMPLS, "impls")
    threads = args.threads or cpu_info()["cores"] or 1
    if threads < 1:
        raise SystemExit(f"--threads must be >= 1, got {threads}")
    stream_I, stream_H = STREAM_SIZE
    if args.stream_size:
        try:
            stream_I, stream_H = (int(v) for v in args.stream_size.split(","))
        except ValueError:
            raise SystemExit(f"--stream-size must be I,H, got {args.stream_size!r}")
    budget = args.row_budget if args.row_budget is not None else (1.0 if args.quick else 6.0)
    sample_time = args.sample_time if args.sample_time is not None else (
        0.01 if args.quick else 0.02)
    min_rep = max(1, args.min_repeats)
    max_rep = max(min_rep, args.max_repeats)
    numpy_max_call = args.numpy_max_call if args.numpy_max_call is not None else \
        max(1.0, 1.5 * budget / min_rep)

    o = dict(cells=cells, shapes=shapes, modes=modes, impl_names=impl_names, threads=threads,
             stream_I=stream_I, stream_H=stream_H, budget=budget, sample_time=sample_time,
             min_rep=min_rep, max_rep=max_rep, numpy_max_call=numpy_max_call)
    restore = []
    try:
        return _run(args, o, out, restore, argv)
    finally:
        for undo in reversed(restore):
            try:
                undo()
            except Exception:     # pragma: no cover
                pass


def _run(args, o, out, restore, argv):
    cells, shapes, modes, impl_names = o["cells"], o["shapes"], o["modes"], o["impl_names"]
    threads, stream_I, stream_H = o["threads"], o["stream_I"], o["stream_H"]
    budget, sample_time = o["budget"], o["sample_time"]
    min_rep, max_rep = o["min_rep"], o["max_rep"]
    numpy_max_call = o["numpy_max_call"]
    notes = []
    t_start = time.perf_counter()
    info = cpu_info()
    _log(out, f"fastrnn benchmark  "
              f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M:%S} UTC")
    flags = set(info["flags"])
    isa = [f for f in ("avx512f", "avx2", "fma") if f in flags]
    _log(out, f"machine: {info['model']}, {info['cores']} cores, flags {' '.join(isa) or 'n/a'}"
              f"{'' if 'avx512f' in flags else ' (no avx512f)'}, "
              f"{info['mhz'] or '?'} MHz; python {platform.python_version()}, numpy "
              f"{np.__version__}")
    load = _loadavg()
    if load is not None:
        busy = load > 0.5 * (info["cores"] or 1)
        _log(out, f"load average (1 min) at start: {load:.2f}" + (
            "  WARNING: the machine is busy; other processes distort the timings, most of all "
            "for multi-threaded implementations" if busy else ""))
        if busy:
            notes.append(f"machine busy at start (load average {load:.2f})")
    knobs = set_threads(threads, notes, restore)

    # implementations
    impls, skipped = {}, []
    for name in impl_names:
        try:
            if name == "fastrnn":
                impls[name] = FastrnnImpl("cython")
            elif name == "numpy":
                impls[name] = FastrnnImpl("numpy")
            elif name == "torch":
                impls[name] = TorchImpl(threads)
                restore.append(lambda t=impls[name]: t.torch.set_num_threads(t.old_threads))
                knobs.append(f"torch.set_num_threads({threads})")
            elif name == "ort":
                impls[name] = OrtImpl(threads)
                knobs.append(f"ORT intra_op_num_threads={threads}, inter_op_num_threads=1")
        except Unavailable as exc:
            skipped.append({"impl": name, "reason": str(exc)})
            _log(out, f"{exc}: skipped" if name in ("torch", "ort")
                 else f"{name} not available ({exc}): skipped")
    _log(out, f"threads: {threads} ({'; '.join(knobs)})")
    base_name = "fastrnn" if "fastrnn" in impls else None
    if base_name is None:
        _log(out, "fastrnn (cython) not in this run: speed-up columns are n/a")

    # what each ran
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    try:
        import scipy
        versions["scipy"] = scipy.__version__
    except ImportError:   # pragma: no cover
        pass
    describe = []
    try:
        describe += fastrnn_description()
        import fastrnn
        versions["fastrnn"] = getattr(fastrnn, "__version__", None)
    except Exception as exc:  # pragma: no cover
        describe.append(f"fastrnn description failed: {exc}")
    describe += numpy_blas_description()
    for name in ("torch", "ort"):
        if name in impls:
            describe += impls[name].describe()
            if name == "torch":
                versions["torch"] = impls[name].torch.__version__
            else:
                versions["onnxruntime"] = impls[name].ort.__version__
                versions["onnx"] = impls[name].onnx.__version__
    for line in describe:
        _log(out, line)

    # peaks
    peaks = {}
    if not args.no_peak:
        try:
            peaks = sgemm_peak(threads)
            _log(out, "measured sgemm peak (scipy BLAS, 1024^3, best of 5): " + ", ".join(
                f"{k} thread{'s' if k > 1 else ''} {v:.1f} GFLOP/s"
                for k, v in sorted(peaks.items())))
        except Exception as exc:
            notes.append(f"sgemm peak not measured: {exc}")
    theo_core, theo_how = theoretical_peak(info)
    if theo_core:
        _log(out, f"theoretical FMA peak: {theo_core:.0f} GFLOP/s per core, "
                  f"{theo_core * threads:.0f} for {threads} threads [{theo_how}]")
    else:
        _log(out, f"theoretical FMA peak: {theo_how}")
    peak_ref = peaks.get(threads)

    # agreement check
    checks = []
    if not args.no_check and impls:
        base_for_check = base_name or next(iter(impls))
        checks = check_agreement(impls, cells, base_for_check, out)

    # rows
    rows = []
    for cell in cells:
        for mode in modes:
            if mode == "streaming":
                continue
            for sname, (B, T, I, H) in shapes:
                rows.append((cell, sname, (B, T, I, H), mode))
        if "streaming" in modes:
            rows.append((cell, "stream", (1, 1, stream_I, stream_H), "streaming"))

    records, row_notes = [], []
    numpy_rate = {}      # (cell, mode) -> last measured FLOP/s of the numpy reference
    _log(out)
    header = (f"{'cell':<5} {'shape':<9} {'mode':<9} {'impl':<8} {'median':>12} {'GFLOP/s':>8} "
              f"{'%peak':>6} {'fastrnn x':>9} {'reps':>5} {'peak MiB':>12}")
    _log(out, header)
    _log(out, "-" * len(header))
    for cell, sname, (B, T, I, H), mode in rows:
        d = make_data(cell, B, T, I, H, seed=args.seed)
        flops = mode_flops(cell, B, T, I, H, mode)
        fns, row_skip = {}, []
        for name, impl in impls.items():
            if mode == "training" and not impl.training:
                continue
            if name == "numpy" and mode != "streaming":
                rate = numpy_rate.get((cell, mode))
                if rate and flops / rate > numpy_max_call:
                    msg = (f"numpy reference skipped on {cell}/{sname}/{mode}: estimated "
                           f"{flops / rate:.2f} s per call (from smaller rows) exceeds "
                           f"{numpy_max_call:.2f} s (row budget)")
                    row_skip.append(msg)
                    continue
            try:
                fns[name] = impl.step_fn(d) if mode == "streaming" else impl.seq_fn(d, mode)
            except Unavailable:
                continue
            except Exception as exc:
                row_skip.append(f"{name} failed to set up {cell}/{sname}/{mode}: "
                                f"{type(exc).__name__}: {exc}")
        mem = {}
        if mode == "training" and not args.no_memory:
            for name, fn in list(fns.items()):
                try:
                    fn(1)           # warm: first-call allocations are not a training step's
                    mem[name] = peak_memory(fn, impls[name].mem_method)
                except Exception as exc:
                    row_skip.append(f"{name} failed on {cell}/{sname}/{mode}: {exc}")
                    fns.pop(name)
        try:
            res = time_round_robin(fns, min_rep, max_rep, budget, sample_time,
                                   gap=args.switch_gap) if fns else {}
        except Exception as exc:
            # one implementation raising inside the timing loop: retry the others alone
            row_skip.append(f"timing failed on {cell}/{sname}/{mode}: {type(exc).__name__}: "
                            f"{exc}")
            res = {}
        row_load = _loadavg()
        base_t = None
        if base_name in res:
            base_t = statistics.median(res[base_name]["times"])
        for name in impls:
            if name not in res:
                continue
            ts = res[name]["times"]
            med = statistics.median(ts)
            gf = flops / med / 1e9
            if name == "numpy" and mode != "streaming":
                numpy_rate[(cell, mode)] = flops / med
            m = mem.get(name)
            rec = {
                "cell": cell, "shape": sname, "B": B, "T": T, "I": I, "H": H, "mode": mode,
                "impl": name, "median_s": med, "min_s": min(ts), "max_s": max(ts),
                "repeats": len(ts), "calls_per_sample": res[name]["n"], "flops": flops,
                "gflops": gf, "frac_peak": (gf / peak_ref) if peak_ref else None,
                "fastrnn_speedup": (med / base_t) if base_t else None,
                "peak_mem_bytes": m[0] if m else None, "mem_method": m[1] if m else None,
                "threads": threads, "dtype": "float32", "samples_s": ts,
                "load_1min": row_load,
            }
            records.append(rec)
            mem_txt = "-" if not m else f"{m[0] / 2**20:.1f} {m[1][:2]}"
            _log(out, f"{cell:<5} {sname:<9} {mode:<9} {name:<8} "
                      f"{_fmt_time(med, mode == 'streaming'):>12} {gf:>8.2f} "
                      f"{(f'{100 * gf / peak_ref:.1f}%' if peak_ref else '-'):>6} "
                      f"{(f'{med / base_t:.2f}' if base_t else '-'):>9} {len(ts):>5} "
                      f"{mem_txt:>12}")
        for msg in row_skip:
            _log(out, "  note: " + msg)
            row_notes.append(msg)
    elapsed = time.perf_counter() - t_start

    # summary: where fastrnn loses
    losses = [r for r in records if r["fastrnn_speedup"] is not None and r["impl"] != "fastrnn"
              and r["fastrnn_speedup"] < 1.0]
    _log(out)
    if base_name:
        if losses:
            _log(out, "fastrnn is slower than a peer on these rows (speed-up < 1):")
            for r in sorted(losses, key=lambda r: r["fastrnn_speedup"]):
                _log(out, f"  {r['cell']}/{r['shape']}/{r['mode']}: {r['impl']} is "
                          f"{1 / r['fastrnn_speedup']:.2f}x faster")
        else:
            _log(out, "fastrnn is at least as fast as every peer on every row measured.")
    for s in skipped:
        row_notes.append(f"{s['impl']} skipped: {s['reason']}")
    for n in notes:
        _log(out, "note: " + n)
    _log(out, "columns: median = median time per call (per step for streaming); GFLOP/s uses "
              "forward FLOPs 2*B*T*G*H*(I+H), training 3x; %peak = of the measured "
              f"{threads}-thread sgemm peak; fastrnn x = impl time / fastrnn time (>1: fastrnn "
              "faster); peak MiB = extra peak memory of one training step (tr = tracemalloc, "
              "numpy allocations; rs = peak RSS delta, lower bound).")
    load = _loadavg()
    _log(out, f"total time {elapsed:.1f} s" + (
        f"; load average (1 min) at the end {load:.2f} (this run counts for about "
        f"{min(threads, info['cores'] or 1)})" if load is not None else ""))

    result = {
        "metadata": {
            "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "threads": threads, "thread_knobs": knobs, "versions": versions,
            "cpu": {"model": info["model"], "cores": info["cores"], "mhz": info["mhz"],
                    "isa": isa},
            "sgemm_peak_gflops": {str(k): v for k, v in peaks.items()},
            "theoretical_peak_gflops_per_core": theo_core,
            "theoretical_peak_note": theo_how,
            "implementations": list(impls), "skipped": skipped, "notes": notes + row_notes,
            "describe": describe, "checks": checks,
            "timing": {"row_budget_s": budget, "switch_gap_s": args.switch_gap,
                       "min_repeats": min_rep,
                       "max_repeats": max_rep, "sample_time_s": sample_time,
                       "statistic": "median", "interleaved": True},
            "flops": "forward 2*B*T*G*H*(I+H); training 3x forward; streaming one step (T=1)",
            "elapsed_s": elapsed, "argv": list(argv) if argv is not None else sys.argv[1:],
        },
        "records": records,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        _log(out, f"wrote {args.json}")
    if args.plot:
        plot_speedups(records, args.plot, out)
    return result


def plot_speedups(records, path, out=None):
    """Horizontal bars: fastrnn's speed-up over each peer per row (log scale). Returns True when
    a file was written."""
    out = sys.stdout if out is None else out
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _log(out, f"matplotlib not installed: --plot {path} skipped")
        return False
    peers = [p for p in IMPLS if p != "fastrnn" and any(
        r["impl"] == p and r["fastrnn_speedup"] for r in records)]
    rows = []
    for r in records:
        key = (r["cell"], r["shape"], r["mode"])
        if key not in rows:
            rows.append(key)
    if not peers or not rows:
        _log(out, f"nothing to plot (no fastrnn speed-ups): --plot {path} skipped")
        return False
    val = {(r["cell"], r["shape"], r["mode"], r["impl"]): r["fastrnn_speedup"] for r in records}
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(rows) * max(1, len(peers)) / 1.6 + 1.5))
    height = 0.8 / len(peers)
    for j, p in enumerate(peers):
        ys = [i + j * height for i in range(len(rows))]
        xs = [val.get(k + (p,)) or 0 for k in rows]
        ax.barh(ys, xs, height=height, label=f"vs {p}")
    ax.axvline(1.0, color="k", lw=1)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(rows))])
    ax.set_yticklabels(["/".join(k) for k in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("fastrnn speed-up (peer time / fastrnn time; > 1 = fastrnn faster)")
    ax.legend(loc="best", fontsize=8)
    ax.set_title("fastrnn speed-up per (cell, shape, mode)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    _log(out, f"wrote {path}")
    return True


def main(argv=None):
    """Command-line entry point (``fastrnn bench``, ``python bench/run.py``). Returns 0."""
    run(argv)
    return 0


if __name__ == "__main__":      # pragma: no cover
    sys.exit(main())
