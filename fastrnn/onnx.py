"""ONNX export and import (needs the optional ``onnx`` package: ``pip install fastrnn[onnx]``).

``export(model, f)`` writes a ``Sequential`` model, a functional ``fastrnn.Model`` or a single
recurrent / Bidirectional layer as an ONNX graph that ONNX Runtime runs with the same outputs:

* SimpleRNN / LSTM / GRU become one ``RNN`` / ``LSTM`` / ``GRU`` node each (time-major,
  ``layout=0``), with ONNX's gate orders: LSTM i, o, f, c (fastrnn i, f, g, o), GRU z, r, h
  (fastrnn r, z, n) with ``linear_before_reset=1``, which is fastrnn's (and PyTorch's) GRU.
  ``Bidirectional`` becomes one node with ``direction="bidirectional"``, ``go_backwards`` a
  ``"reverse"`` node whose output is flipped back to fastrnn's processing order.
* Masks (``Embedding(mask_zero=True)``, ``Masking``) become ``sequence_lens`` = the number of
  kept steps per row. That is exact for right-padded batches, the only kind ONNX can express.
  At padded steps fastrnn repeats the last state (Keras semantics) where ONNX writes zeros; the
  graph restores fastrnn's values there, so sequence outputs match too.
* ``Embedding`` is a ``Gather``, ``Dense`` a ``Gemm`` (2-D input) or ``MatMul`` + ``Add``
  followed by its activation node, ``Dropout`` an ``Identity`` (inference).

A ``Sequential`` graph has one input ``"input"``: ``(batch, time, features)`` floats, or
int64 ids ``(batch, time)`` when the model starts with an Embedding; batch and time are
dynamic. Its output is ``"output"`` (plus the states when a single layer with
``return_state`` is exported: ``"h"``, ``"c"``, or ``"h_forward"``, ``"c_forward"``,
``"h_backward"``, ...). A functional model's inputs and outputs keep its names
(``model.input_names``, ``model.output_names``; integer inputs become int64), and states
passed as ``initial_state=`` become the nodes' ``initial_h``/``initial_c``.

``load_model(f)`` reads an ONNX graph back into fastrnn: a graph with a single
``RNN``/``LSTM``/``GRU`` node gives one layer (``return_sequences=True, return_state=True``;
pass ``mask=``/``initial_state=`` to it yourself), a chain of recurrent, ``Gather`` (embedding),
``Gemm``/``MatMul`` (dense) and activation nodes joined by layout operations (``Transpose``,
``Squeeze``, ``Reshape``, direction ``Gather``/``Concat``) gives a ``Sequential`` (PyTorch's
exporter's stacks included: its zero initial states are recognised). Graphs written
by :func:`export` (functional models too) come back exactly, masks included: the fastrnn
configuration is stored in the graph's metadata, every number is read from the graph.
What fastrnn cannot compute exactly is refused with a ``ValueError`` naming the node and
attribute: GRU ``linear_before_reset=0``, LSTM peepholes or ``input_forget``, ``clip``,
activations other than the defaults (SimpleRNN: Tanh or Relu), ``activation_alpha/beta``.
"""

import json
import os

import numpy as np

from .layers import serialize, deserialize
from .layers.bidirectional import Bidirectional
from .layers.core import Dense, InputLayer, Masking
from .layers.dropout import Dropout
from .layers.embedding import Embedding
from .layers.recurrent import GRU, LSTM, RecurrentLayer, SimpleRNN

__all__ = ["export", "load_model", "to_onnx", "from_onnx", "ONNXImportError", "DEFAULT_OPSET"]

#: opset written by default (Softmax over one axis needs >= 13, Slice with steps >= 10)
DEFAULT_OPSET = 14

# fastrnn gate order -> ONNX gate order, as block permutations of the G*H axis
_TO_ONNX = {"rnn": [0], "lstm": [0, 3, 1, 2], "gru": [1, 0, 2]}   # ifgo -> iofc; rzn -> zrn
_FROM_ONNX = {"rnn": [0], "lstm": [0, 2, 3, 1], "gru": [1, 0, 2]}  # iofc -> ifgo; zrn -> rzn
_OP = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
_CELL_OF_OP = {"RNN": "rnn", "LSTM": "lstm", "GRU": "gru"}
_LAYER_OF_CELL = {"rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}
_META_KEY = "fastrnn_config"
_INT64_MIN = -(2 ** 63)


def _require_onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("fastrnn.onnx needs the 'onnx' package: pip install onnx "
                          "(or pip install fastrnn[onnx])") from None
    return onnx


def _blocks(a, order, axis=0):
    parts = np.split(np.asarray(a), len(order), axis=axis)
    return np.concatenate([parts[k] for k in order], axis=axis)


# ================================================================================================
# export
# ================================================================================================

class _Graph:
    """Collects nodes and initializers with unique names."""

    def __init__(self, onnx, dtype):
        self.onnx = onnx
        self.h = onnx.helper
        self.dtype = np.dtype(dtype)
        self.elem = onnx.helper.np_dtype_to_tensor_dtype(self.dtype)
        self.nodes, self.inits = [], []
        self._n = 0

    def name(self, hint):
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, value, hint="const", dtype=None):
        arr = np.asarray(value, dtype=dtype if dtype is not None else self.dtype)
        name = self.name(hint)
        self.inits.append(self.onnx.numpy_helper.from_array(np.array(arr, order="C"), name))
        return name

    def ints(self, values, hint="axes"):
        return self.const(np.asarray(values, dtype=np.int64), hint, dtype=np.int64)

    def op(self, op_type, inputs, hint=None, n_out=1, **attrs):
        outs = [self.name(hint or op_type.lower()) for _ in range(n_out)]
        self.nodes.append(self.h.make_node(op_type, list(inputs), outs,
                                           name=self.name("n_" + op_type), **attrs))
        return outs[0] if n_out == 1 else outs


def _bias_hh(layer):
    """A layer keeping one Keras-style bias has no bias_hh: zeros compute the same."""
    p = layer.params
    return p["bias_hh"] if "bias_hh" in p else np.zeros_like(p["bias_ih"])


class _Exporter:
    """Walks the layers, keeping the current tensor's name and rank and the mask (B, T)."""

    def __init__(self, g):
        self.g = g
        self.weights = {}       # layer id -> {"kind": ..., role: initializer name}

    def _record(self, layer, kind, **names):
        self.weights.setdefault(id(layer), dict(kind=kind, **names))

    # -- masks ---------------------------------------------------------------------------------
    def _and_mask(self, new, mask):
        return new if mask is None else self.g.op("And", [mask, new], "mask")

    def embedding(self, layer, x, mask):
        g = self.g
        w = g.const(layer.params["weight"], "embedding_weight")
        self._record(layer, "embedding", weight=w)
        if layer.mask_zero:
            zero = g.const(np.array(0, dtype=np.int64), "zero", dtype=np.int64)
            mask = self._and_mask(g.op("Not", [g.op("Equal", [x, zero])], "mask"), mask)
        return g.op("Gather", [w, x], "embedded", axis=0), mask

    def masking(self, layer, x, mask):
        g = self.g
        value = g.const(np.array(layer.mask_value), "mask_value")
        differs = g.op("Cast", [g.op("Not", [g.op("Equal", [x, value])])], to=g.elem)
        count = g.op("ReduceSum", [differs, g.ints([-1])], keepdims=0)
        keep = self._and_mask(g.op("Greater", [count, g.const(np.array(0.0))], "mask"), mask)
        scale = g.op("Unsqueeze", [g.op("Cast", [keep], to=g.elem), g.ints([-1])])
        return g.op("Mul", [x, scale], "masked"), keep

    def dense(self, layer, x, rank):
        g = self.g
        w = layer.params["weight"]
        b = g.const(layer.params["bias"], "dense_bias") if layer.use_bias else None
        if rank == 2:
            wn = g.const(w, "dense_weight")
            z = g.op("Gemm", [x, wn] + ([b] if b else []), "dense", transB=1)
            self._record(layer, "dense", weight=wn, bias=b)
        else:
            kn = g.const(w.T, "dense_kernel")
            self._record(layer, "dense", kernel=kn, bias=b)
            z = g.op("MatMul", [x, kn], "dense")
            if b:
                z = g.op("Add", [z, b], "dense")
        return _activation(g, layer.activation, z)

    # -- recurrent -----------------------------------------------------------------------------
    def recurrent(self, layer, x, mask, mask_reversed, want_states=False, init=None):
        """One RNN/LSTM/GRU node for a RecurrentLayer or Bidirectional; ``init`` the names of
        the initial states in fastrnn's order (``[h(, c)]`` per direction). Returns
        (output, [state outputs], output mask, output mask reversed?)."""
        g = self.g
        bi = isinstance(layer, Bidirectional)
        if bi:
            fwd, bwd = layer.forward_layer, layer.backward_layer
            if fwd.go_backwards or not bwd.go_backwards:
                raise ValueError("export: a Bidirectional wrapping a go_backwards layer has no "
                                 "ONNX equivalent")
            cells = [fwd, bwd]
            direction = "bidirectional"
        else:
            cells = [layer]
            direction = "reverse" if layer.go_backwards else "forward"
        if mask is not None and mask_reversed:
            raise ValueError("export: this layer receives the time-reversed mask of a "
                             "go_backwards layer with return_sequences=True; ONNX "
                             "sequence_lens cannot express it")
        first = cells[0]
        cell = first.cell
        order = _TO_ONNX[cell]
        W = np.stack([_blocks(c.params["weight_ih"], order) for c in cells])
        R = np.stack([_blocks(c.params["weight_hh"], order) for c in cells])
        ins = [g.op("Transpose", [x], "time_major", perm=[1, 0, 2]),
               g.const(W, f"{cell}_W"), g.const(R, f"{cell}_R")]
        names = dict(W=ins[1], R=ins[2])
        if first.use_bias:
            B = np.stack([np.concatenate([_blocks(c.params["bias_ih"], order),
                                          _blocks(_bias_hh(c), order)])
                          for c in cells])
            ins.append(g.const(B, f"{cell}_B"))
            names["B"] = ins[-1]
        else:
            ins.append("")
        self._record(layer, cell, **names)
        if mask is not None:
            lens = g.op("ReduceSum", [g.op("Cast", [mask], to=6), g.ints([1])],
                        "sequence_lens", keepdims=0)
            ins.append(lens)
        else:
            ins.append("")
        n_st = first.n_states
        h0s = None
        if init:
            if len(init) != n_st * len(cells):
                raise ValueError(f"export: {type(layer).__name__} {layer.name!r} takes "
                                 f"{n_st * len(cells)} initial state tensors, got {len(init)}")
            h0s = [init[d * n_st] for d in range(len(cells))]
            for j in range(n_st):          # (B, H) per direction -> (D, B, H)
                parts = [g.op("Unsqueeze", [init[d * n_st + j], g.ints([0])])
                         for d in range(len(cells))]
                ins.append(parts[0] if len(parts) == 1 else
                           g.op("Concat", parts, "initial_state", axis=0))
        while ins[-1] == "":
            ins.pop()
        attrs = dict(hidden_size=first.units, direction=direction)
        if cell == "gru":
            attrs["linear_before_reset"] = 1
        if cell == "rnn":
            attrs["activations"] = [first.activation.capitalize()] * len(cells)
        n_out = 3 if cell == "lstm" else 2
        outs = g.op(_OP[cell], ins, cell, n_out=n_out, **attrs)
        Y, Y_h = outs[0], outs[1]
        Y_c = outs[2] if cell == "lstm" else None

        def direction_of(t, k, axis):      # (..., D, ...) -> the k-th direction, axis removed
            return g.op("Gather", [t, g.const(np.array(k, dtype=np.int64), "dir",
                                              dtype=np.int64)], axis=axis)

        ret_seq = first.return_sequences
        if ret_seq:
            Ybt = g.op("Transpose", [Y], "batch_first", perm=[2, 0, 1, 3])   # (B, T, D, H)
            ys = [direction_of(Ybt, k, 2) for k in range(len(cells))]
            if mask is not None:
                # fastrnn repeats the final forward state over right padding; ONNX writes zeros
                # ONNX writes zeros at padded steps. fastrnn's forward direction repeats its
                # final state there, a reverse direction holds its initial state
                keep = g.op("Unsqueeze", [mask, g.ints([2])])
                for k, c in enumerate(cells):
                    if not c.go_backwards:
                        fill = direction_of(Y_h, k, 0)
                    elif h0s is not None:
                        fill = h0s[k]
                    else:
                        continue
                    ys[k] = g.op("Where", [keep, ys[k], g.op("Unsqueeze", [fill, g.ints([1])])],
                                 "padded")
            if not bi and layer.go_backwards:     # fastrnn keeps the processing order
                ys[0] = g.op("Slice", [ys[0], g.ints([-1]), g.ints([_INT64_MIN]), g.ints([1]),
                                       g.ints([-1])], "flipped")
        else:
            ys = [direction_of(Y_h, k, 0) for k in range(len(cells))]
        out = ys[0] if not bi else self._merge(layer.merge_mode, ys[0], ys[1])
        states = []
        if want_states:
            for k in range(len(cells)):
                states.append(direction_of(Y_h, k, 0))
                if Y_c is not None:
                    states.append(direction_of(Y_c, k, 0))
        out_mask = mask if ret_seq else None
        return out, states, out_mask, bool(ret_seq and not bi and layer.go_backwards)

    def _merge(self, mode, a, b):
        g = self.g
        if mode == "concat":
            return g.op("Concat", [a, b], "concat", axis=-1)
        if mode == "sum":
            return g.op("Add", [a, b], "sum")
        if mode == "mul":
            return g.op("Mul", [a, b], "mul")
        return g.op("Mul", [g.op("Add", [a, b]), g.const(np.array(0.5))], "ave")


_SIMPLE_ACTS = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid", "softplus": "Softplus",
                "softsign": "Softsign", "exponential": "Exp"}


def _activation(g, name, z):
    """fastrnn's activation ``name`` (same constants as fastrnn.layers.activation) on z."""
    if name == "linear":
        return z
    if name in _SIMPLE_ACTS:
        return g.op(_SIMPLE_ACTS[name], [z], name)
    if name == "softmax":
        return g.op("Softmax", [z], "softmax", axis=-1)
    if name == "log_softmax":
        return g.op("LogSoftmax", [z], "log_softmax", axis=-1)
    if name == "relu6":
        return g.op("Clip", [z, g.const(np.array(0.0)), g.const(np.array(6.0))], "relu6")
    if name == "leaky_relu":
        return g.op("LeakyRelu", [z], "leaky_relu", alpha=0.2)
    if name == "hard_sigmoid":            # Keras 3: clip(x / 6 + 0.5, 0, 1)
        return g.op("HardSigmoid", [z], "hard_sigmoid", alpha=1.0 / 6.0, beta=0.5)
    if name == "elu":
        return g.op("Elu", [z], "elu", alpha=1.0)
    if name == "selu":
        from .layers.activation import _SELU_ALPHA, _SELU_SCALE
        return g.op("Selu", [z], "selu", alpha=_SELU_ALPHA, gamma=_SELU_SCALE)
    if name in ("swish", "silu"):
        return g.op("Mul", [z, g.op("Sigmoid", [z])], "swish")
    if name == "gelu":                    # exact form: 0.5 * x * (1 + erf(x / sqrt(2)))
        e = g.op("Erf", [g.op("Mul", [z, g.const(np.array(1 / np.sqrt(2.0)))])])
        half = g.op("Mul", [z, g.const(np.array(0.5))])
        return g.op("Mul", [half, g.op("Add", [e, g.const(np.array(1.0))])], "gelu")
    raise ValueError(f"export: activation {name!r} has no ONNX translation")


def _emit(ex, layer, x, rank, mask, mask_rev, init, want_states):
    """One layer's nodes: returns (output, [state outputs], rank, mask, mask reversed?)."""
    g = ex.g
    if isinstance(layer, Embedding):
        x, mask = ex.embedding(layer, x, mask)
        return x, [], rank + 1, mask, mask_rev
    if isinstance(layer, Masking):
        x, mask = ex.masking(layer, x, mask)
        return x, [], rank, mask, mask_rev
    if isinstance(layer, Dropout):
        return g.op("Identity", [x], "dropout"), [], rank, mask, mask_rev
    if isinstance(layer, Dense):
        return ex.dense(layer, x, rank), [], rank, mask, mask_rev
    kind = type(layer).__name__
    if kind == "Activation":
        return _activation(g, layer.activation, x), [], rank, mask, mask_rev
    if kind == "TimeDistributed" and type(layer.layer).__name__ in ("Dense", "Dropout",
                                                                    "Activation"):
        # these act on the last axis only, so one node over (B, T, ...) is the same
        out = _emit(ex, layer.layer, x, rank, None, False, None, False)[0]
        if id(layer.layer) in ex.weights:      # the wrapper is what models list
            ex.weights.setdefault(id(layer), ex.weights.pop(id(layer.layer)))
        return out, [], rank, mask, mask_rev
    if isinstance(layer, (RecurrentLayer, Bidirectional)):
        out, states, mask, mask_rev = ex.recurrent(layer, x, mask, mask_rev,
                                                   want_states=want_states, init=init)
        return out, states, 3 if layer.return_sequences else 2, mask, mask_rev
    raise ValueError(f"export: {type(layer).__name__} {layer.name!r} has no ONNX translation")


_MERGE_OPS = {"Add": "Sum", "Multiply": "Mul", "Average": "Mean", "Subtract": "Sub"}


def _merge(g, layer, ins):
    """Merge layers on several tensors -> (name, rank, mask, mask reversed?)."""
    kind = type(layer).__name__
    names = [t[0] for t in ins]
    ranks = {t[1] for t in ins}
    masks = [t[2] for t in ins if t[2] is not None]
    if kind == "Concatenate":
        rank = ranks.pop()
        axis = layer.axis if layer.axis >= 0 else rank + layer.axis
        if masks and axis != rank - 1:
            raise ValueError(f"export: Concatenate {layer.name!r} joins masked sequences along "
                             f"axis {layer.axis}; only the features axis is exported")
        out = g.op("Concat", names, "concat", axis=axis)
    elif kind in _MERGE_OPS:
        op = _MERGE_OPS[kind]
        if op == "Mul" and len(names) > 2:
            out = names[0]
            for n in names[1:]:
                out = g.op("Mul", [out, n], "multiply")
        else:
            out = g.op(op, names, kind.lower())
        rank = ranks.pop()
    else:
        raise ValueError(f"export: {kind} {layer.name!r} takes several inputs; it has no ONNX "
                         "translation yet")
    mask = None
    for m in masks:                    # fastrnn's merges keep the steps valid in every input
        mask = m if mask is None else g.op("And", [mask, m], "mask")
    return out, rank, mask, any(t[3] for t in ins if t[2] is not None)


def _functional_to_onnx(model, onnx, opset, dtype, producer):
    """A fastrnn.Model (any DAG of supported layers) -> ModelProto."""
    graph = model._graph
    if graph is None or not model.built:
        raise ValueError("export: the model is not built")
    layers = [l for l in model.layers if not isinstance(l, InputLayer)]
    dts = {l.dtype for l in layers if isinstance(l, (RecurrentLayer, Bidirectional, Dense,
                                                      Embedding))}
    g = _Graph(onnx, dtype if dtype is not None else
               (dts.pop() if len(dts) == 1 else np.dtype(np.float32)))
    ex = _Exporter(g)
    h = onnx.helper
    env, infos = {}, []
    for t in graph.inputs:
        name = t.node.layer.name
        ints = np.dtype(t.dtype).kind in "iu"
        dims = ["batch"] + [d if d is not None else f"{name}_{k}"
                            for k, d in enumerate(t.shape[1:], 1)]
        infos.append(h.make_tensor_value_info(name, onnx.TensorProto.INT64 if ints else g.elem,
                                              dims))
        env[t._id] = (name, len(t.shape), None, False)
    for node in graph.nodes:
        layer = node.layer
        if node.x_is_list:
            ins = [env[t._id] for t in node.x_tensors]
            env[node.outputs[0]._id] = _merge(g, layer, ins)
            continue
        if node.kwargs:
            raise ValueError(f"export: {layer.name!r} is called with {sorted(node.kwargs)}; "
                             "only initial_state= is exported")
        x, rank, mask, mrev = env[node.x_tensors[0]._id]
        init = [env[t._id][0] for t in node.states] or None
        out, states, rank, mask, mrev = _emit(ex, layer, x, rank, mask, mrev, init,
                                              len(node.outputs) > 1)
        env[node.outputs[0]._id] = (out, rank, mask, mrev)
        for t, st in zip(node.outputs[1:], states):
            env[t._id] = (st, 2, None, False)
    out_infos = []
    for name, t in zip(model.output_names, graph.outputs):
        src, rank = env[t._id][:2]
        g.nodes.append(h.make_node("Identity", [src], [name], name=g.name("n_out")))
        out_infos.append(h.make_tensor_value_info(
            name, g.elem, ["batch"] + [f"{name}_{k}" for k in range(1, rank)]))
    proto = h.make_model(h.make_graph(g.nodes, "fastrnn", infos, out_infos,
                                      initializer=g.inits),
                         producer_name=producer, opset_imports=[h.make_opsetid("", opset)])
    proto.ir_version = min(proto.ir_version, 10)
    index = {id(l): i for i, l in enumerate(model.layers)}
    weights = {str(index[k]): v for k, v in ex.weights.items()}
    h.set_model_props(proto, {_META_KEY: json.dumps({"model": model.get_config(),
                                                     "weights": weights})})
    onnx.checker.check_model(proto)
    return proto


def _model_layers(model):
    """(layers, input spec, single-layer?) for a Sequential or a lone layer."""
    from .models import Sequential
    if isinstance(model, Sequential):
        layers = model.layers
        if not layers:
            raise ValueError("export: the model has no layers")
        return layers, getattr(model, "_input_shape", None), False
    if isinstance(model, (RecurrentLayer, Bidirectional, Dense, Embedding)):
        return [model], None, True
    raise TypeError(f"export: model must be a fastrnn Sequential or a recurrent, "
                    f"Bidirectional, Dense or Embedding layer, got {type(model).__name__}")


def to_onnx(model, *, opset=DEFAULT_OPSET, dtype=None, producer="fastrnn"):
    """The ``onnx.ModelProto`` that :func:`export` writes (see there)."""
    onnx = _require_onnx()
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 14:
        raise ValueError(f"opset must be an int >= 14, got {opset!r}")
    from .models import Model, Sequential
    if isinstance(model, Model) and not isinstance(model, Sequential):
        if dtype is not None:
            from .layers.base import as_dtype
            dtype = as_dtype(dtype)
        return _functional_to_onnx(model, onnx, opset, dtype, producer)
    layers, input_shape, single = _model_layers(model)
    for i, layer in enumerate(layers):
        if not layer.built:
            raise ValueError(f"export: layer {i} ({type(layer).__name__}) is not built; run the "
                             "model once or give input_size= so its weights exist")
        if not isinstance(layer, (RecurrentLayer, Bidirectional, Dense, Embedding, Dropout,
                                  Masking)) and type(layer).__name__ not in ("Activation",
                                                                             "TimeDistributed"):
            raise ValueError(f"export: layer {i} ({type(layer).__name__}) has no ONNX "
                             "translation")
    dtypes = {l.dtype for l in layers if isinstance(l, (RecurrentLayer, Bidirectional, Dense,
                                                        Embedding))}
    if dtype is None:
        dtype = dtypes.pop() if len(dtypes) == 1 else np.dtype(np.float32)
    else:
        from .layers.base import as_dtype
        dtype = as_dtype(dtype)
    g = _Graph(onnx, dtype)
    ex = _Exporter(g)
    h = onnx.helper
    first = layers[0]
    if isinstance(first, Embedding):
        x_info = h.make_tensor_value_info("input", onnx.TensorProto.INT64, ["batch", "time"])
        rank = 2
    elif isinstance(first, Dense) and (input_shape is None or len(input_shape) == 2):
        x_info = h.make_tensor_value_info("input", g.elem, ["batch", first.input_size])
        rank = 2
    else:
        feat = getattr(first, "input_size", None)
        if feat is None and input_shape is not None:
            feat = input_shape[-1]
        x_info = h.make_tensor_value_info("input", g.elem, ["batch", "time", feat or "features"])
        rank = 3
    x, mask, mask_rev, states = "input", None, False, []
    for i, layer in enumerate(layers):
        x, states, rank, mask, mask_rev = _emit(ex, layer, x, rank, mask, mask_rev, None,
                                                single and layer.return_state)
    out_names = ["output"]
    if states:
        bi = isinstance(layers[0], Bidirectional)
        names = ["h", "c"][:len(states) // (2 if bi else 1)]
        out_names += ([f"{n}_{d}" for d in ("forward", "backward") for n in names] if bi
                      else names)
    outs = [x] + states
    for name, t in zip(out_names, outs):
        g.nodes.append(h.make_node("Identity", [t], [name], name=g.name("n_out")))
    ranks = [rank] + [2] * len(states)
    out_infos = [h.make_tensor_value_info(n, g.elem, ["batch"] + [f"{n}_{k}" for k in
                                                                   range(1, r)])
                 for n, r in zip(out_names, ranks)]
    graph = h.make_graph(g.nodes, "fastrnn", [x_info], out_infos, initializer=g.inits)
    proto = h.make_model(graph, producer_name=producer,
                         opset_imports=[h.make_opsetid("", opset)])
    proto.ir_version = min(proto.ir_version, 10)   # readable by older runtimes too
    cfg = ({"sequential": [serialize(l) for l in layers]} if not single
           else {"layer": serialize(layers[0])})
    index = {id(l): i for i, l in enumerate(layers)}
    cfg["weights"] = {str(index[k]): v for k, v in ex.weights.items()}
    h.set_model_props(proto, {_META_KEY: json.dumps(cfg)})
    onnx.checker.check_model(proto)
    return proto


def export(model, f, *, opset=DEFAULT_OPSET, dtype=None):
    """Write ``model`` as an ONNX file.

    Parameters
    ----------
    model : fastrnn.Sequential or a built SimpleRNN / LSTM / GRU / Bidirectional layer
        Made of Embedding, Masking, SimpleRNN, LSTM, GRU, Bidirectional, Dense and Dropout.
    f : str, os.PathLike or binary file object
        Where to write. The graph is built and checked before anything is written.
    opset : int, default 14
        ONNX opset (>= 14).
    dtype : None, "float32" or "float64"
        Element type of the graph; None keeps the model's. ONNX Runtime's CPU RNN, LSTM and
        GRU kernels run float32 only, so export float64 models with ``dtype="float32"`` to
        run them there.

    Returns
    -------
    onnx.ModelProto
        The model written.

    Example
    -------
    >>> fastrnn.onnx.export(model, "model.onnx")                      # doctest: +SKIP
    >>> import onnxruntime as ort                                      # doctest: +SKIP
    >>> ort.InferenceSession("model.onnx").run(None, {"input": x})[0]  # == model.predict(x)
    """
    proto = to_onnx(model, opset=opset, dtype=dtype)
    data = proto.SerializeToString()
    if hasattr(f, "write"):
        f.write(data)
    elif isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as fh:
            fh.write(data)
    else:
        raise TypeError(f"f must be a path or a binary file object, got {type(f).__name__}")
    return proto


# ================================================================================================
# import
# ================================================================================================

class ONNXImportError(ValueError):
    """The graph holds something fastrnn cannot compute exactly (or cannot recognise)."""


def _read_proto(f):
    onnx = _require_onnx()
    if isinstance(f, onnx.ModelProto):
        return f
    if hasattr(f, "read"):
        data = f.read()
    elif isinstance(f, (bytes, bytearray)):
        data = bytes(f)
    elif isinstance(f, (str, os.PathLike)):
        with open(f, "rb") as fh:
            data = fh.read()
    else:
        raise TypeError(f"f must be a path, a binary file object, bytes or an onnx.ModelProto, "
                        f"got {type(f).__name__}")
    try:
        return onnx.load_model_from_string(data)
    except Exception as exc:
        raise ONNXImportError(f"not a readable ONNX model: {exc}") from None


class _RecurrentSpec:
    """One RNN/LSTM/GRU node, its converted weights and (once known) how its output is used."""

    def __init__(self, node, cell, units, direction, layout, weights, use_bias, activation):
        self.node, self.cell, self.units = node, cell, units
        self.direction, self.layout = direction, layout
        self.weights, self.use_bias, self.activation = weights, use_bias, activation
        self.usage = None                  # (return_sequences, merge_mode, flipped)
        self.has_lens = self.has_init = False

    @property
    def n_dirs(self):
        return 2 if self.direction == "bidirectional" else 1

    def use(self, usage, what):
        if self.usage is not None and self.usage != usage:
            raise ONNXImportError(f"node {self.node.name!r}: its outputs are used in two "
                                  f"different ways ({what}); a fastrnn layer has one output")
        self.usage = usage

    def layer(self, dtype, return_state=False):
        ret_seq, merge, flipped = self.usage or (True, "concat", False)
        cls = _LAYER_OF_CELL[self.cell]
        kw = dict(return_sequences=ret_seq, return_state=return_state, use_bias=self.use_bias,
                  dtype=dtype)
        if self.cell == "rnn":
            kw["activation"] = self.activation
        if self.direction == "bidirectional":
            layer = Bidirectional(cls(self.units, **kw), merge_mode=merge or "concat")
            layer.build((None, None, self.weights[0]["weight_ih"].shape[1]))
            for prefix, w in zip(("forward_", "backward_"), self.weights):
                for k, v in w.items():
                    layer.params[prefix + k] = v
            return layer
        backwards = self.direction == "reverse"
        if ret_seq and flipped != backwards:
            raise ONNXImportError(
                f"node {self.node.name!r}: a {self.direction!r} node whose sequence output Y is "
                f"used {'time-flipped' if flipped else 'as is'} has no fastrnn layer (a "
                "go_backwards layer returns its sequence in processing order, i.e. the time "
                "flip of ONNX's 'reverse' Y)")
        layer = cls(self.units, go_backwards=backwards,
                    input_size=self.weights[0]["weight_ih"].shape[1], **kw)
        for k, v in self.weights[0].items():
            layer.params[k] = v
        return layer


_DEFAULT_ACTS = {"lstm": ["sigmoid", "tanh", "tanh"], "gru": ["sigmoid", "tanh"]}


def _attrs(node):
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _recurrent_spec(node, arrays):
    """Check an RNN/LSTM/GRU node and convert its weights to fastrnn's layout."""
    cell = _CELL_OF_OP[node.op_type]
    at = _attrs(node)
    where = f"{node.op_type} node {node.name!r}"
    for bad in ("clip", "activation_alpha", "activation_beta"):
        if bad in at:
            raise ONNXImportError(f"{where}: attribute {bad!r} is not supported (fastrnn has "
                                  "no clipped or parameterised activations); got "
                                  f"{bad}={at[bad]!r}")
    if cell == "lstm" and at.get("input_forget", 0):
        raise ONNXImportError(f"{where}: input_forget={at['input_forget']} (coupled input and "
                              "forget gates) is not supported; expected 0")
    if cell == "gru" and at.get("linear_before_reset", 0) != 1:
        raise ONNXImportError(
            f"{where}: linear_before_reset={at.get('linear_before_reset', 0)} (reset applied "
            "before the recurrent product, Keras reset_after=False) computes a different GRU; "
            "fastrnn supports only linear_before_reset=1 (PyTorch's and Keras reset_after=True)")
    direction = at.get("direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    if direction not in ("forward", "reverse", "bidirectional"):
        raise ONNXImportError(f"{where}: unknown direction {direction!r}")
    D = 2 if direction == "bidirectional" else 1
    layout = at.get("layout", 0)
    if layout not in (0, 1):
        raise ONNXImportError(f"{where}: layout must be 0 or 1, got {layout}")
    acts = [a.decode().lower() if isinstance(a, bytes) else str(a).lower()
            for a in at.get("activations", [])]
    activation = "tanh"
    if cell == "rnn":
        if acts:
            if len(acts) != D or len(set(acts)) != 1 or acts[0] not in ("tanh", "relu"):
                raise ONNXImportError(f"{where}: activations={acts} are not supported; fastrnn's "
                                      "SimpleRNN needs the same 'Tanh' or 'Relu' in every "
                                      "direction")
            activation = acts[0]
    elif acts and acts != _DEFAULT_ACTS[cell] * D:
        raise ONNXImportError(f"{where}: activations={acts} are not supported; fastrnn computes "
                              f"only the defaults {_DEFAULT_ACTS[cell] * D}")
    ins = list(node.input) + [""] * 8

    def const(k, what):
        name = ins[k]
        if not name:
            return None
        if name not in arrays:
            raise ONNXImportError(f"{where}: input {what} ({name!r}) must be a constant "
                                  "(initializer), not computed in the graph")
        return arrays[name]

    W, R, B = const(1, "W"), const(2, "R"), const(3, "B")
    if W is None or R is None:
        raise ONNXImportError(f"{where}: inputs W and R are required")
    if cell == "lstm":
        P = const(7, "P") if ins[7] else None
        if P is not None and np.any(P != 0):
            raise ONNXImportError(f"{where}: peephole weights P are not supported (fastrnn's "
                                  "LSTM, like PyTorch's and Keras's, has no peepholes)")
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    H = at.get("hidden_size", R.shape[-1])
    if W.ndim != 3 or W.shape[:2] != (D, G * H) or R.shape != (D, G * H, H):
        raise ONNXImportError(f"{where}: W {W.shape} / R {R.shape} do not match hidden_size={H}, "
                              f"{D} direction(s)")
    if B is not None and B.shape != (D, 2 * G * H):
        raise ONNXImportError(f"{where}: B must have shape {(D, 2 * G * H)}, got {B.shape}")
    order = _FROM_ONNX[cell]
    weights = []
    for d in range(D):
        w = {"weight_ih": _blocks(W[d], order), "weight_hh": _blocks(R[d], order)}
        if B is not None:
            w["bias_ih"] = _blocks(B[d, :G * H], order)
            w["bias_hh"] = _blocks(B[d, G * H:], order)
        weights.append(w)
    spec = _RecurrentSpec(node, cell, int(H), direction, layout, weights, B is not None,
                          activation)
    spec.has_lens = bool(ins[4])
    spec.has_init = bool(ins[5]) or bool(ins[6])
    return spec


class _V:
    """What a tensor of the graph means: an activation (axes labels 'B','T','F' or '?0','?1'
    before the first recurrent node tells which is which), a raw recurrent output (axes with
    'D', 'H'), a constant, or auxiliary mask arithmetic."""

    def __init__(self, kind, axes=(), spec=None, dirs=(), flipped=False, merge=None,
                 dense=None, value=None, kind_seq=False):
        self.kind, self.axes, self.spec, self.dirs = kind, tuple(axes), spec, tuple(dirs)
        self.kind_seq = kind_seq         # from Y (a sequence) rather than Y_h
        self.flipped, self.merge, self.dense, self.value = flipped, merge, dense, value

    def copy(self, **kw):
        d = dict(kind=self.kind, axes=self.axes, spec=self.spec, dirs=self.dirs,
                 flipped=self.flipped, merge=self.merge, dense=self.dense, value=self.value,
                 kind_seq=self.kind_seq)
        d.update(kw)
        return _V(**d)


class _Importer:
    def __init__(self, proto):
        from onnx import numpy_helper
        self.proto = proto
        g = proto.graph
        self.arrays = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        self.values = {}
        self.layers = []            # ("spec", _RecurrentSpec) | ("dense", dict) | ("emb", array)
        self.bind = {}
        self.masking = False
        for node in g.node:         # Constant nodes are constants too
            if node.op_type == "Constant":
                at = _attrs(node)
                if "value" in at:
                    self.arrays[node.output[0]] = numpy_helper.to_array(at["value"])
        for name, arr in self.arrays.items():
            self.values[name] = _V("const", value=arr)
        init = set(self.arrays)
        self.inputs = [i for i in g.input if i.name not in init]

    # -- helpers ---------------------------------------------------------------------------------
    def fail(self, node, why):
        raise ONNXImportError(f"{node.op_type} node {node.name!r}: {why}")

    def const_of(self, name):
        v = self.values.get(name)
        return None if v is None or v.kind != "const" else v.value

    def finish_act(self, v, node, what):
        """The activation a compute node reads: settles how the producing layer is used."""
        if v.kind in ("Y", "Yh", "Yc"):
            self.fail(node, f"reads a raw recurrent output with axes {v.axes}; expected a "
                            "Squeeze/Transpose+Reshape/Gather of it first")
        if v.kind == "state":
            self.fail(node, "the LSTM cell state Y_c feeds the rest of the graph; fastrnn "
                            "layers pass on h only")
        if v.kind != "act":
            self.fail(node, f"unsupported input ({v.kind}) for {what}")
        if v.dense is not None and self.layers[-1][1] is not v.dense:
            self.fail(node, "the graph is not a chain of layers")
        if v.spec is not None:
            if len(v.dirs) != v.spec.n_dirs:
                self.fail(node, "reads a single direction of a bidirectional node; fastrnn's "
                                "Bidirectional merges both")
            v.spec.use((v.kind_seq, v.merge, v.flipped), what)
            if self.layers and self.layers[-1][1] is not v.spec:
                self.fail(node, "the graph is not a chain of layers")
        return v

    def resolve(self, axes):
        return tuple(self.bind.get(a, a) for a in axes)

    # -- the walk ------------------------------------------------------------------------------
    def run(self, states_ok=False):
        """Walk the nodes; ``states_ok``: outputs after the first may be final states (a
        single layer with return_state written by export)."""
        g = self.proto.graph
        if len(self.inputs) != 1:
            raise ONNXImportError(f"the graph must have one input (the sequence), got "
                                  f"{[i.name for i in self.inputs]}")
        inp = self.inputs[0]
        rank = len(inp.type.tensor_type.shape.dim)
        elem = inp.type.tensor_type.elem_type
        axes = ("?0", "?1", "F")[:rank] if rank == 3 else (("?0", "?1") if rank == 2 else None)
        if axes is None:
            raise ONNXImportError(f"graph input {inp.name!r} must have rank 2 or 3, got {rank}")
        self.input_is_ids = elem in (6, 7)     # INT32, INT64
        self.values[inp.name] = _V("ids" if self.input_is_ids else "act", axes)
        for node in g.node:
            if node.op_type == "Constant":
                continue
            handler = getattr(self, "op_" + node.op_type, None)
            if handler is None:
                self.fail(node, "operator not supported by the fastrnn importer")
            ins = [self.values.get(n) if n else None for n in node.input]
            for n, v in zip(node.input, ins):
                if n and v is None:
                    self.fail(node, f"input {n!r} is not produced by a supported node")
            outs = handler(node, ins)
            if not isinstance(outs, (list, tuple)):
                outs = [outs]
            for name, v in zip(node.output, outs):
                if name:
                    self.values[name] = v
        if len(g.output) != 1 and not states_ok:
            raise ONNXImportError(f"a multi-node graph must have one output to become a "
                                  f"Sequential, got {[o.name for o in g.output]}")
        out = self.values[g.output[0].name]
        self.finish_act(out, g.node[-1], "the graph output")
        self.output_axes = self.resolve(out.axes)
        return self.layers

    # layout and no-op nodes
    def op_Identity(self, node, ins):
        return ins[0]

    op_Dropout = op_Identity

    def op_Transpose(self, node, ins):
        v = ins[0]
        perm = _attrs(node).get("perm", list(range(len(v.axes)))[::-1])
        return v.copy(axes=[v.axes[p] for p in perm])

    def _axes_arg(self, node, ins, k=1):
        at = _attrs(node)
        if "axes" in at:
            return list(at["axes"])
        if len(ins) > k and ins[k] is not None:
            if ins[k].kind != "const":
                self.fail(node, "axes must be constant")
            return [int(a) for a in np.ravel(ins[k].value)]
        return None

    def op_Squeeze(self, node, ins):
        v = ins[0]
        axes = self._axes_arg(node, ins)
        if v.kind in ("Y", "Yh", "Yc") and axes is not None:
            axes = [a % len(v.axes) for a in axes]
            if [v.axes[a] for a in axes] == ["D"] and v.spec.n_dirs == 1:
                new = [a for i, a in enumerate(v.axes) if i not in axes]
                return self._directions(v, new, (0,))
        if v.kind == "aux":
            return v
        self.fail(node, f"unsupported Squeeze of axes {axes} of a tensor with axes {v.axes}")

    def _directions(self, v, axes, dirs, merge=None):
        """A raw recurrent output reduced to features: H becomes F."""
        kind_seq = v.kind == "Y"
        if v.kind == "Yc":
            return _V("state", spec=v.spec)
        return _V("act", ["F" if a == "H" else a for a in axes], spec=v.spec, dirs=dirs,
                  merge=merge, kind_seq=kind_seq)

    def op_Reshape(self, node, ins):
        v = ins[0]
        shape = self.const_of(node.input[1])
        if shape is None:
            self.fail(node, "the target shape must be constant")
        if v.kind in ("Y", "Yh") and len(shape) == len(v.axes) - 1:
            i = v.axes.index("D")
            if i + 1 < len(v.axes) and v.axes[i + 1] == "H":
                new = v.axes[:i] + ("F",) + v.axes[i + 2:]
                merge = "concat" if v.spec.n_dirs == 2 else None
                out = self._directions(v, list(new), tuple(range(v.spec.n_dirs)), merge)
                return out
        if v.kind == "act" and len(shape) == len(v.axes):
            return v
        if v.kind == "aux":
            return v
        self.fail(node, f"unsupported Reshape of a tensor with axes {v.axes} to {list(shape)}")

    def op_Gather(self, node, ins):
        data, idx = ins
        axis = _attrs(node).get("axis", 0)
        if data.kind == "const" and idx.kind in ("ids", "act"):
            w = data.value
            if w.ndim != 2 or axis != 0:
                self.fail(node, "an embedding Gather needs a 2-D table and axis=0")
            if self.layers:
                self.fail(node, "an embedding lookup must come first")
            self.layers.append(("emb", w))
            return _V("act", tuple(idx.axes) + ("F",))
        if data.kind in ("Y", "Yh", "Yc") and idx.kind == "const":
            axis %= len(data.axes)
            k = np.asarray(idx.value)
            if data.axes[axis] == "D" and k.ndim == 0:
                new = [a for i, a in enumerate(data.axes) if i != axis]
                return self._directions(data, new, (int(k) % data.spec.n_dirs,))
        if data.kind == "aux" or idx.kind == "aux":
            return _V("aux")
        self.fail(node, "unsupported Gather (neither an embedding lookup nor the choice of a "
                        "direction)")

    def _pair(self, node, a, b):
        """Two single directions of one bidirectional node, forward first."""
        if (a.kind == b.kind == "act" and a.spec is not None and a.spec is b.spec
                and a.dirs == (0,) and b.dirs == (1,) and a.kind_seq == b.kind_seq
                and not a.flipped and not b.flipped):
            return True
        return False

    def _merged(self, a, merge):
        return a.copy(dirs=(0, 1), merge=merge)

    def op_Concat(self, node, ins):
        axis = _attrs(node).get("axis")
        if len(ins) == 2 and self._pair(node, *ins) and ins[0].axes[axis] == "F":
            return self._merged(ins[0], "concat")
        if all(v.kind in ("const", "aux", "zeros") for v in ins):
            return _V("aux")
        self.fail(node, "unsupported Concat (only the two directions of a bidirectional node "
                        "along the features)")

    def op_Add(self, node, ins):
        a, b = ins
        if a.kind == "const" and b.kind == "act":        # bias + x, as PyTorch writes it
            a, b = b, a
        if len(ins) == 2 and self._pair(node, a, b):
            return self._merged(a, "sum")
        if a.kind == "act" and a.dense is not None and b.kind == "const" and \
                a.dense.get("bias") is None and not a.dense.get("act_set"):
            a.dense["bias"] = np.asarray(b.value).reshape(-1)
            return a
        if a.kind == "aux" or b.kind == "aux":
            return _V("aux")
        self.fail(node, "unsupported Add (only a dense bias or the sum of two directions)")

    def op_Mul(self, node, ins):
        a, b = ins
        if self._pair(node, a, b):
            return self._merged(a, "mul")
        if a.kind == "act" and a.merge == "sum" and b.kind == "const" and \
                np.allclose(b.value, 0.5):
            return a.copy(merge="ave")
        if a.kind == "act" and b.kind == "aux" and a.spec is None and a.dense is None:
            self.masking = True         # our Masking pattern: x * keep
            return a
        if a.kind == "aux" or b.kind == "aux":
            return _V("aux")
        self.fail(node, "unsupported Mul")

    def op_Where(self, node, ins):
        cond, a, b = ins
        if cond.kind == "aux" and a.kind == "act" and a.spec is not None and b.kind == "aux":
            return a       # fastrnn's carry over right padding, restored by export
        self.fail(node, "unsupported Where")

    def op_Slice(self, node, ins):
        v = ins[0]
        if v.kind in ("zeros", "aux"):
            return _V(v.kind)
        vals = [self.const_of(n) if n else None for n in node.input[1:]]
        if v.kind == "act" and v.spec is not None and len(vals) >= 4 and all(
                x is not None for x in vals[:4]):
            starts, ends, axes, steps = (np.ravel(x).tolist() for x in vals[:4])
            if steps == [-1] and starts == [-1] and ends[0] <= -(2 ** 31) and \
                    v.axes[axes[0] % len(v.axes)] == "T":
                return v.copy(flipped=not v.flipped)
        self.fail(node, "unsupported Slice (only a time flip of a recurrent output)")

    # mask arithmetic: recognised only to be skipped when the graph carries fastrnn's config
    def _aux(self, node, ins):
        return _V("aux")

    op_Equal = op_Not = op_Cast = op_ReduceSum = op_Greater = op_And = op_Unsqueeze = _aux
    op_Shape = _aux

    def op_ConstantOfShape(self, node, ins):
        # PyTorch's exporter builds zero initial states this way: they are no initial state
        value = _attrs(node).get("value")
        if value is None:
            return _V("zeros")
        from onnx import numpy_helper
        return _V("zeros" if not np.any(numpy_helper.to_array(value)) else "aux")

    # compute nodes
    def op_RNN(self, node, ins):
        spec = _recurrent_spec(node, self.arrays)
        x = ins[0]
        want = ("T", "B", "F") if spec.layout == 0 else ("B", "T", "F")
        if x.kind != "act" or len(x.axes) != 3:
            self.fail(node, f"input X must be a (time, batch, features) sequence, got "
                            f"{x.kind} with axes {x.axes}")
        self.finish_act(x, node, "a recurrent input")
        for have, need in zip(self.resolve(x.axes), want):
            if have.startswith("?"):
                self.bind[have] = need
                self.bind["?1" if have == "?0" else "?0"] = "B" if need == "T" else "T"
            elif have != need:
                self.fail(node, f"input X has axes {self.resolve(x.axes)}, expected {want} "
                                f"for layout={spec.layout}")
        # initial states that are computed zeros are no initial state
        names = list(node.input) + [""] * 8
        spec.has_init = any(names[k] and self.values[names[k]].kind != "zeros" for k in (5, 6))
        self.layers.append(("spec", spec))
        D = ("T", "D", "B", "H") if spec.layout == 0 else ("B", "T", "D", "H")
        S = ("D", "B", "H") if spec.layout == 0 else ("B", "D", "H")
        outs = [_V("Y", D, spec=spec), _V("Yh", S, spec=spec)]
        if spec.cell == "lstm":
            outs.append(_V("Yc", S, spec=spec))
        return outs

    op_LSTM = op_GRU = op_RNN

    def _dense(self, node, x, weight, bias):
        self.finish_act(x, node, "a dense input")
        d = {"weight": weight, "bias": bias, "activation": "linear"}
        self.layers.append(("dense", d))
        return _V("act", x.axes, dense=d)

    def op_Gemm(self, node, ins):
        at = _attrs(node)
        x, b = ins[0], ins[1]
        c = ins[2] if len(ins) > 2 else None
        if b.kind != "const" or (c is not None and c.kind != "const") or at.get("transA", 0) \
                or at.get("alpha", 1.0) != 1.0 or at.get("beta", 1.0) != 1.0:
            self.fail(node, "only Gemm(x, constant B, constant C) with alpha=beta=1 and "
                            "transA=0 is a Dense layer")
        w = b.value if at.get("transB", 0) else b.value.T
        bias = None
        if c is not None:
            cv = np.asarray(c.value)
            if cv.ndim == 2 and cv.shape[0] == 1:
                cv = cv[0]
            if cv.ndim > 1 or cv.size not in (1, w.shape[0]):
                self.fail(node, f"Gemm's C has shape {cv.shape}; a Dense bias is (units,)")
            bias = np.broadcast_to(cv, (w.shape[0],)).copy()
        return self._dense(node, x, w, bias)

    def op_MatMul(self, node, ins):
        x, b = ins
        if b.kind != "const" or b.value.ndim != 2:
            self.fail(node, "only MatMul(x, constant 2-D matrix) is a Dense layer")
        return self._dense(node, x, b.value.T, None)

    def _activation(self, node, ins, name):
        v = ins[0]
        if v.kind == "act" and v.dense is not None and v.dense["activation"] == "linear":
            if name == "softmax":
                axis = _attrs(node).get("axis", -1)
                if axis not in (-1, len(v.axes) - 1):
                    self.fail(node, f"Softmax over axis {axis}; fastrnn's Dense softmax is over "
                                    "the last axis")
            v.dense["activation"] = name
            v.dense["act_set"] = True
            return v
        self.fail(node, "an activation node must follow a Gemm/MatMul (a Dense layer)")

    def op_Relu(self, node, ins):
        return self._activation(node, ins, "relu")

    def op_Tanh(self, node, ins):
        return self._activation(node, ins, "tanh")

    def op_Sigmoid(self, node, ins):
        return self._activation(node, ins, "sigmoid")

    def op_Softmax(self, node, ins):
        return self._activation(node, ins, "softmax")


def _elem_dtype(proto):
    for t in proto.graph.initializer:
        if t.data_type == 11:       # DOUBLE
            return "float64"
    return "float32"


def _single_node(proto, arrays, dtype):
    """A graph with one recurrent node reading the graph input directly -> one layer."""
    nodes = [n for n in proto.graph.node if n.op_type != "Constant"]
    if len(nodes) != 1 or nodes[0].op_type not in _CELL_OF_OP:
        return None
    spec = _recurrent_spec(nodes[0], arrays)
    spec.usage = (True, "concat", spec.direction == "reverse")
    return spec.layer(dtype, return_state=True)


def _onnx_weights(cell, W, R, B, where):
    """ONNX W (D, G*H, I), R (D, G*H, H), B (D, 2*G*H) -> per direction fastrnn params."""
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    D, GH = W.shape[0], W.shape[1]
    if GH % G or R.shape != (D, GH, GH // G) or (B is not None and B.shape != (D, 2 * GH)):
        raise ONNXImportError(f"{where}: inconsistent W {W.shape}, R {R.shape}, B "
                              f"{None if B is None else B.shape}")
    order = _FROM_ONNX[cell]
    out = []
    for d in range(D):
        w = {"weight_ih": _blocks(W[d], order), "weight_hh": _blocks(R[d], order)}
        if B is not None:
            w["bias_ih"] = _blocks(B[d, :GH], order)
            w["bias_hh"] = _blocks(B[d, GH:], order)
        out.append(w)
    return out


def _assign_recurrent(cells, weights):
    for c, w in zip(cells, weights):
        if "bias_ih" in w and "bias_hh" not in c.params:    # one Keras-style bias
            w = dict(w, bias_ih=w["bias_ih"] + w["bias_hh"])
            del w["bias_hh"]
        for k, v in w.items():
            c.params[k] = v


def _layers_from_config(cfg, arrays):
    """A Sequential or single layer written by export(), numbers from the initializers."""
    from .models import Sequential
    try:
        if "layer" in cfg:
            layers = [deserialize(cfg["layer"])]
        else:
            layers = [deserialize(c) for c in cfg["sequential"]]
    except (TypeError, ValueError, KeyError) as exc:
        raise ONNXImportError(f"the stored fastrnn config is invalid: {exc}") from None
    _fill_weights(layers, cfg["weights"], arrays)
    return layers[0] if "layer" in cfg else Sequential(layers)


def _functional_from_config(cfg, arrays):
    """A fastrnn.Model written by export(): architecture from the stored config, every number
    from the graph's initializers (through the inverse gate permutations)."""
    from .models import Model
    try:
        model = Model.from_config(cfg["model"])
    except (TypeError, ValueError, KeyError) as exc:
        raise ONNXImportError(f"the stored fastrnn model config is invalid: {exc}") from None
    _fill_weights(model.layers, cfg.get("weights"), arrays)
    return model


def _fill_weights(layers, table, arrays):
    """Give ``layers`` the numbers of the graph's initializers named in ``table``
    ({layer index: {"kind": ..., role: initializer name}}), building layers from the shapes."""
    if not isinstance(table, dict):
        raise ONNXImportError("the stored fastrnn config has no 'weights' table")

    def arr(name, where):
        if name not in arrays:
            raise ONNXImportError(f"{where}: initializer {name!r} is missing from the graph")
        return arrays[name]

    for key, entry in table.items():
        try:
            layer = layers[int(key)]
            kind = entry["kind"]
        except (ValueError, IndexError, KeyError, TypeError):
            raise ONNXImportError(f"bad weights entry {key!r} in the stored config") from None
        where = f"layer {key} ({type(layer).__name__})"
        wrapper = layer if type(layer).__name__ == "TimeDistributed" else None
        if wrapper is not None:
            layer = wrapper.layer
        if kind == "embedding" and isinstance(layer, Embedding):
            if not layer.built:
                layer.build()
            layer.params["weight"] = arr(entry["weight"], where)
        elif kind == "dense" and isinstance(layer, Dense):
            w = arr(entry["weight"], where) if entry.get("weight") else \
                arr(entry["kernel"], where).T
            if not layer.built:
                layer.build((None, w.shape[1]))
            layer.params["weight"] = w
            if entry.get("bias"):
                layer.params["bias"] = arr(entry["bias"], where)
        elif kind in _CELL_OF_OP.values() and isinstance(layer, (RecurrentLayer, Bidirectional)):
            cells = ([layer.forward_layer, layer.backward_layer]
                     if isinstance(layer, Bidirectional) else [layer])
            B = arr(entry["B"], where) if entry.get("B") else None
            weights = _onnx_weights(kind, arr(entry["W"], where), arr(entry["R"], where), B,
                                    where)
            if cells[0].cell != kind or len(weights) != len(cells):
                raise ONNXImportError(f"{where}: the graph holds a {kind} with "
                                      f"{len(weights)} direction(s)")
            if not layer.built:
                layer.build((None, None, weights[0]["weight_ih"].shape[1]))
            _assign_recurrent(cells, weights)
        else:
            raise ONNXImportError(f"{where}: the graph's {kind!r} weights do not fit it")
        if wrapper is not None:
            wrapper.built = layer.built


def load_model(f):
    """Read an ONNX graph into fastrnn.

    Parameters
    ----------
    f : str, os.PathLike, binary file object, bytes or onnx.ModelProto

    Returns
    -------
    fastrnn layer or fastrnn.Sequential
        A single RNN/LSTM/GRU node reading the graph input gives one layer with
        ``return_sequences=True, return_state=True`` (a ``Bidirectional`` with
        ``merge_mode="concat"`` for ``direction="bidirectional"``, ``go_backwards=True`` for
        ``"reverse"``); give it ``mask=`` for ``sequence_lens`` and ``initial_state=`` for
        ``initial_h``/``initial_c``. Its sequence output is ``(B, T, D*H)``, ONNX's
        ``Y.transpose(2, 0, 1, 3).reshape(B, T, -1)`` (flipped in time for ``"reverse"``).
        Anything else must be a chain of layers and gives a ``Sequential``. fastrnn models
        are batch-first: a time-major graph (X fed straight to the recurrent node) becomes a
        model taking ``(batch, time, features)``.

    Raises
    ------
    ONNXImportError (a ValueError)
        For anything fastrnn cannot compute exactly or does not recognise, naming the node.
    """
    proto = _read_proto(f)
    dtype = _elem_dtype(proto)
    meta = {p.key: p.value for p in proto.metadata_props}
    imp = _Importer(proto)
    single = _single_node(proto, imp.arrays, dtype)
    if single is not None:
        return single
    cfg = None
    if _META_KEY in meta:
        try:
            cfg = json.loads(meta[_META_KEY])
        except ValueError:
            raise ONNXImportError(f"metadata {_META_KEY!r} is not valid JSON") from None
        if not isinstance(cfg, dict) or not ({"layer", "sequential", "model"} & set(cfg)):
            raise ONNXImportError(f"metadata {_META_KEY!r} is not a fastrnn model config")
    if cfg is not None and "model" in cfg:
        return _functional_from_config(cfg, imp.arrays)
    if cfg is not None and "weights" in cfg:
        return _layers_from_config(cfg, imp.arrays)
    layers = imp.run(states_ok=cfg is not None and "layer" in cfg)
    for kind, item in layers:
        if kind == "spec" and item.has_init:
            raise ONNXImportError(f"node {item.node.name!r}: initial_h/initial_c inside a "
                                  "multi-layer graph are not supported (import one-node graphs "
                                  "to pass initial_state=)")
    specs = layers
    from .models import Sequential
    if imp.masking:
        raise ONNXImportError("the graph multiplies its input by a computed mask; only graphs "
                              "written by fastrnn.onnx.export can be read back with masks")
    out = []
    for kind, item in specs:
        if kind == "emb":
            emb = Embedding(item.shape[0], item.shape[1], dtype=dtype)
            emb.build()
            emb.params["weight"] = item
            out.append(emb)
        elif kind == "dense":
            w, b = item["weight"], item.get("bias")
            d = Dense(w.shape[0], activation=item["activation"], use_bias=b is not None,
                      input_size=w.shape[1], dtype=dtype)
            d.params["weight"] = w
            if b is not None:
                d.params["bias"] = b
            out.append(d)
        else:
            if item.has_lens:
                raise ONNXImportError(
                    f"node {item.node.name!r}: sequence_lens computed in a graph that was not "
                    "written by fastrnn cannot be mapped to a mask; use Embedding(mask_zero=True)"
                    " or Masking in fastrnn instead")
            out.append(item.layer(dtype))
    return Sequential(out)


def from_onnx(f):
    """Alias of :func:`load_model`."""
    return load_model(f)
