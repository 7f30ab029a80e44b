"""The implementations timed by the suite, and the start-up agreement check.

Each implementation offers

- ``seq_fn(d, mode)`` -> ``fn(n)``: runs n full-sequence calls (inference or training);
- ``step_fn(d)`` -> ``fn(n)``: runs n streaming steps (state carried from step to step);
- ``outputs(d)`` -> dict y, h_n[, c_n] (float64 copies) for the start-up agreement check;
- ``grads(d)`` -> dict of gradients, or None when the implementation has no training;
- ``step_outputs(d)`` -> h after one streaming step.

An implementation that cannot run raises :class:`Unavailable` from its constructor. The
one-node ONNX model builder (:func:`onnx_model_bytes`) is private to the suite: it serves the
ONNX Runtime peer only (``fastrnn.onnx`` is the public exporter).
"""

import importlib

import numpy as np

from .grid import make_data
from .report import _log

__all__ = ["Unavailable", "FastrnnImpl", "TorchImpl", "OrtImpl", "make_fastrnn_layer",
           "onnx_model_bytes", "check_agreement"]

TORCH_CLASS = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}
TORCH_CELL = {"rnn": "RNNCell", "gru": "GRUCell", "lstm": "LSTMCell"}
LAYER_CLASS = {"rnn": "SimpleRNN", "gru": "GRU", "lstm": "LSTM"}
ONNX_OP = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}
# torch gate order -> ONNX gate order (block permutation of the G*H rows)
ONNX_PERM = {"rnn": [0], "gru": [1, 0, 2], "lstm": [0, 3, 1, 2]}


class Unavailable(Exception):
    """Raised by an implementation that cannot run here (not installed, not compiled)."""


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
    """PyTorch's ``nn.RNN/GRU/LSTM`` (time-major) and ``*Cell`` for streaming."""

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
    """ONNX Runtime running a one-node RNN/GRU/LSTM model; inference and streaming only."""

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
