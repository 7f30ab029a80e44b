"""ONNX export and import (needs the optional ``onnx`` package: ``pip install fastrnn[onnx]``).

``export(model, f)`` writes a ``Sequential`` model (or a single recurrent / Bidirectional
layer) as an ONNX graph that ONNX Runtime runs with the same outputs:

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

The graph has one input ``"input"``: ``(batch, time, features)`` floats, or int64 ids
``(batch, time)`` when the model starts with an Embedding; batch and time are dynamic. The
outputs are ``"output"`` (plus the states when a single layer with ``return_state`` is
exported: ``"h"``, ``"c"``, or ``"h_forward"``, ``"c_forward"``, ``"h_backward"``, ...).

``load_model(f)`` reads an ONNX graph back into fastrnn: a graph with a single
``RNN``/``LSTM``/``GRU`` node gives one layer (``return_sequences=True, return_state=True``;
pass ``mask=``/``initial_state=`` to it yourself), a chain of recurrent, ``Gather`` (embedding),
``Gemm``/``MatMul`` (dense) and activation nodes joined by layout operations (``Transpose``,
``Squeeze``, ``Reshape``, direction ``Gather``/``Concat``) gives a ``Sequential``. Graphs written
by :func:`export` come back exactly, masks included. What fastrnn cannot compute exactly is
refused with a ``ValueError`` naming the node and attribute: GRU ``linear_before_reset=0``,
LSTM peepholes or ``input_forget``, ``clip``, activations other than the defaults (SimpleRNN:
Tanh or Relu), ``activation_alpha/beta``.
"""

import io as _io
import json
import os

import numpy as np

from .layers import serialize, deserialize
from .layers.bidirectional import Bidirectional
from .layers.core import Dense, Masking
from .layers.dropout import Dropout
from .layers.embedding import Embedding
from .layers.recurrent import GRU, LSTM, RecurrentLayer, SimpleRNN

__all__ = ["export", "load_model", "to_onnx", "from_onnx", "DEFAULT_OPSET"]

#: opset written by default (Softmax over one axis needs >= 13, Slice with steps >= 10)
DEFAULT_OPSET = 14

# fastrnn gate order -> ONNX gate order, as block permutations of the G*H axis
_TO_ONNX = {"rnn": [0], "lstm": [0, 3, 1, 2], "gru": [1, 0, 2]}   # ifgo -> iofc; rzn -> zrn
_FROM_ONNX = {"rnn": [0], "lstm": [0, 2, 3, 1], "gru": [1, 0, 2]}  # iofc -> ifgo; zrn -> rzn
_OP = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
_CELL_OF_OP = {"RNN": "rnn", "LSTM": "lstm", "GRU": "gru"}
_LAYER_OF_CELL = {"rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}
_DENSE_ACTS = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid", "softmax": "Softmax"}
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


class _Exporter:
    """Walks the layers, keeping the current tensor's name and rank and the mask (B, T)."""

    def __init__(self, g):
        self.g = g

    # -- masks ---------------------------------------------------------------------------------
    def _and_mask(self, new, mask):
        return new if mask is None else self.g.op("And", [mask, new], "mask")

    def embedding(self, layer, x, mask):
        g = self.g
        w = g.const(layer.params["weight"], "embedding_weight")
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
        if rank == 2:
            ins = [x, g.const(w, "dense_weight")]
            if layer.use_bias:
                ins.append(g.const(layer.params["bias"], "dense_bias"))
            z = g.op("Gemm", ins, "dense", transB=1)
        else:
            z = g.op("MatMul", [x, g.const(w.T, "dense_kernel")], "dense")
            if layer.use_bias:
                z = g.op("Add", [z, g.const(layer.params["bias"], "dense_bias")], "dense")
        act = layer.activation
        if act == "linear":
            return z
        if act == "softmax":
            return g.op("Softmax", [z], "softmax", axis=-1)
        return g.op(_DENSE_ACTS[act], [z], act)

    # -- recurrent -----------------------------------------------------------------------------
    def recurrent(self, layer, x, mask, mask_reversed, want_states=False):
        """One RNN/LSTM/GRU node for a RecurrentLayer or Bidirectional; returns
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
        if first.use_bias:
            B = np.stack([np.concatenate([_blocks(c.params["bias_ih"], order),
                                          _blocks(c.params["bias_hh"], order)])
                          for c in cells])
            ins.append(g.const(B, f"{cell}_B"))
        else:
            ins.append("")
        if mask is not None:
            lens = g.op("ReduceSum", [g.op("Cast", [mask], to=6), g.ints([1])],
                        "sequence_lens", keepdims=0)
            ins.append(lens)
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
                keep = g.op("Unsqueeze", [mask, g.ints([2])])
                last = g.op("Unsqueeze", [direction_of(Y_h, 0, 0), g.ints([1])])
                ys[0] = g.op("Where", [keep, ys[0], last], "carried")
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


def to_onnx(model, *, opset=DEFAULT_OPSET, producer="fastrnn"):
    """The ``onnx.ModelProto`` that :func:`export` writes (see there)."""
    onnx = _require_onnx()
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 14:
        raise ValueError(f"opset must be an int >= 14, got {opset!r}")
    layers, input_shape, single = _model_layers(model)
    for i, layer in enumerate(layers):
        if not layer.built:
            raise ValueError(f"export: layer {i} ({type(layer).__name__}) is not built; run the "
                             "model once or give input_size= so its weights exist")
        if not isinstance(layer, (RecurrentLayer, Bidirectional, Dense, Embedding, Dropout,
                                  Masking)):
            raise ValueError(f"export: layer {i} ({type(layer).__name__}) has no ONNX "
                             "translation")
    dtypes = {l.dtype for l in layers if isinstance(l, (RecurrentLayer, Bidirectional, Dense,
                                                        Embedding))}
    dtype = dtypes.pop() if len(dtypes) == 1 else np.dtype(np.float32)
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
        if isinstance(layer, Embedding):
            x, mask = ex.embedding(layer, x, mask)
            rank += 1
        elif isinstance(layer, Masking):
            x, mask = ex.masking(layer, x, mask)
        elif isinstance(layer, Dropout):
            x = g.op("Identity", [x], "dropout")
        elif isinstance(layer, Dense):
            x = ex.dense(layer, x, rank)
        else:
            x, states, mask, mask_rev = ex.recurrent(
                layer, x, mask, mask_rev, want_states=single and layer.return_state)
            rank = 3 if layer.return_sequences else 2
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
    h.set_model_props(proto, {_META_KEY: json.dumps(cfg)})
    onnx.checker.check_model(proto)
    return proto


def export(model, f, *, opset=DEFAULT_OPSET):
    """Write ``model`` as an ONNX file.

    Parameters
    ----------
    model : fastrnn.Sequential or a built SimpleRNN / LSTM / GRU / Bidirectional layer
        Made of Embedding, Masking, SimpleRNN, LSTM, GRU, Bidirectional, Dense and Dropout.
    f : str, os.PathLike or binary file object
        Where to write. The graph is built and checked before anything is written.
    opset : int, default 14
        ONNX opset (>= 14).

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
    proto = to_onnx(model, opset=opset)
    data = proto.SerializeToString()
    if hasattr(f, "write"):
        f.write(data)
    elif isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as fh:
            fh.write(data)
    else:
        raise TypeError(f"f must be a path or a binary file object, got {type(f).__name__}")
    return proto
