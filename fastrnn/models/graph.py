"""The layer graph behind every model: Input, symbolic tensors, nodes, and the topological
forward and backward passes.

Calling a layer on a :class:`SymbolicTensor` (what :func:`Input` returns) does not compute
anything: it records a :class:`Node` (the layer, the tensors it was called on, its constant
keyword arguments) and returns the node's output tensors, whose shapes come from the layer's
``compute_output_shape``. A :class:`Graph` collects the nodes between some input tensors and
some output tensors in topological order and runs them on arrays:

- ``forward`` calls each node's layer with the values (and masks) of its input tensors;
  a recurrent layer's ``return_state`` outputs are tensors like any other and may be passed
  as another layer's ``initial_state=``; the mask a layer computes for its output travels
  along the edge with the value.
- ``backward`` walks the nodes in reverse, summing the gradients of a tensor consumed by
  several nodes (fan-out), and routing ``layer.d_initial_state`` back to the state tensors.
  A layer called at several nodes (a shared layer) gets its per-call caches restored before
  each node's backward and its parameter gradients summed over its calls.

Layers never import this module: ``Layer.__call__`` hands symbolic arguments to
``SymbolicTensor._call_layer`` (duck typing keeps the dependency direction models -> layers).
"""

import itertools

import numpy as np

from ..layers.base import Layer
from ..layers.core import InputLayer

__all__ = ["Input", "SymbolicTensor", "Node", "Graph", "is_symbolic"]

_uid = itertools.count()


def is_symbolic(x):
    """True for a SymbolicTensor or a (nested) list/tuple holding one."""
    if isinstance(x, SymbolicTensor):
        return True
    if isinstance(x, (list, tuple)):
        return any(is_symbolic(v) for v in x)
    return False


def _format_shape(shape):
    return "(" + ", ".join("None" if s is None else str(s) for s in shape) + ")"


class SymbolicTensor:
    """A placeholder for an array flowing through a model graph.

    ``shape`` includes the batch axis first (``None``), as in Keras; ``dtype`` is a dtype name.
    ``node`` is the :class:`Node` that produces it and ``index`` which of its outputs it is.
    Calling a layer on it records a new node; arithmetic on it is not supported (use the merge
    layers: ``Add``, ``Concatenate``, ...).
    """

    def __init__(self, shape, dtype, node=None, index=0, name=None):
        self.shape = tuple(None if s is None else int(s) for s in shape)
        self.dtype = np.dtype(dtype).name
        self.node = node
        self.index = int(index)
        self.name = name
        self._id = next(_uid)

    @property
    def ndim(self):
        return len(self.shape)

    def _call_layer(self, layer, x, args, kwargs):
        return call_layer(layer, x, args, kwargs)

    def __repr__(self):
        src = self.node.layer.name if self.node is not None else "?"
        return (f"<SymbolicTensor shape={_format_shape(self.shape)} dtype={self.dtype} "
                f"from {src!r}>")

    def __array__(self, *a, **k):
        raise TypeError("a symbolic tensor (from fastrnn.Input or a layer called on one) has no "
                        "values; build a fastrnn.Model(inputs, outputs) and call it on arrays")

    def __bool__(self):
        raise TypeError("a symbolic tensor has no truth value")


class Node:
    """One call of a layer in a graph.

    ``x`` is what the layer was called on: one tensor (``x_is_list`` False) or a list of
    tensors (merge and attention layers). ``states`` are the tensors given as
    ``initial_state=`` (``states_is_list`` tells whether they were given as a list), ``kwargs``
    the other (constant, JSON-able) keyword arguments. ``outputs`` are the tensors it
    produces: the layer's output, then its returned states when it has several outputs.
    """

    def __init__(self, layer, x_tensors, x_is_list, states, states_is_list, kwargs):
        self.layer = layer
        self.x_tensors = list(x_tensors)
        self.x_is_list = bool(x_is_list)
        self.states = list(states) if states is not None else []
        self.states_is_list = bool(states_is_list)
        self.has_states = states is not None
        self.kwargs = dict(kwargs)
        self.outputs = []

    @property
    def inputs(self):
        """Every tensor this node reads: its x tensors then its state tensors."""
        return self.x_tensors + self.states

    @property
    def multi_output(self):
        return len(self.outputs) > 1

    def __repr__(self):
        return f"<Node {self.layer.name} ({type(self.layer).__name__})>"


def Input(shape=None, dtype="float32", name=None, batch_shape=None):
    """The entry point of a functional model: a symbolic tensor of per-sample ``shape``.

    Parameters
    ----------
    shape : tuple of int or None
        The shape of one sample, the batch axis excluded, e.g. ``(None, 16)`` for sequences of
        any length with 16 features, ``(None,)`` with ``dtype="int64"`` for token ids.
    dtype : str
        ``"float32"`` (default), ``"float64"`` or an integer dtype for Embedding ids.
    name : str, optional
        The input's name (used as the key when inputs are given as a dict).
    batch_shape : tuple, optional
        Keras's ``(batch_size,) + shape`` (what Keras needs before a ``stateful=True`` layer);
        the batch size is recorded as ``batch_size`` on the input layer, fastrnn itself does
        not need it (a stateful layer takes the first batch's size). Give ``shape`` or
        ``batch_shape``, not both.

    Returns
    -------
    SymbolicTensor
        Of shape ``(None,) + shape``. Call layers on it, then ``fastrnn.Model(inputs, outputs)``.
        ``Sequential([Input(shape), ...])`` also accepts it to fix the input shape.

    Example
    -------
    >>> import fastrnn as fr
    >>> ids = fr.Input((None,), dtype="int64")
    >>> h = fr.LSTM(8)(fr.Embedding(100, 4)(ids))
    >>> model = fr.Model(ids, fr.Dense(2)(h))
    """
    batch_size = None
    if batch_shape is not None:
        if shape is not None:
            raise ValueError("Input: give shape or batch_shape, not both")
        if not isinstance(batch_shape, (tuple, list)) or len(batch_shape) < 2:
            raise ValueError(f"Input: batch_shape must be (batch_size, *shape), got "
                             f"{batch_shape!r}")
        batch_size, shape = batch_shape[0], tuple(batch_shape[1:])
    if shape is None:
        raise ValueError("Input: shape is required (or batch_shape)")
    layer = InputLayer(shape, dtype=dtype, name=name or "input")
    layer._auto_name = name is None
    layer.batch_size = batch_size
    return _input_tensor(layer)


def _input_tensor(layer):
    node = Node(layer, [], False, None, False, {})
    t = SymbolicTensor((None,) + layer.shape, layer.input_dtype, node, 0, name=layer.name)
    node.outputs = [t]
    return t


def _flatten_tensors(value, what):
    """One SymbolicTensor or a list/tuple of them -> (list, given_as_list)."""
    if isinstance(value, SymbolicTensor):
        return [value], False
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, SymbolicTensor)
                                                          for v in value):
        return list(value), True
    raise TypeError(f"{what} must be a symbolic tensor or a list of symbolic tensors (all "
                    f"from fastrnn.Input or layers called on them; arrays and symbolic tensors "
                    f"cannot be mixed), got {type(value).__name__}")


def _check_feature_size(layer, shape):
    size = getattr(layer, "input_size", None)
    if size is not None and shape and shape[-1] is not None and shape[-1] != size:
        raise ValueError(f"{type(layer).__name__} {layer.name!r} takes {size} input features, "
                         f"got a tensor of shape {_format_shape(shape)}")


def call_layer(layer, x, args, kwargs):
    """Record ``layer(x, **kwargs)`` on symbolic tensors; returns its output tensor(s)."""
    if not isinstance(layer, Layer):
        raise TypeError(f"expected a fastrnn Layer, got {type(layer).__name__}")
    if isinstance(layer, InputLayer):
        raise TypeError("an InputLayer cannot be called; use fastrnn.Input(shape) instead")
    if args:
        raise TypeError(f"{type(layer).__name__}: on symbolic tensors pass only the input and "
                        f"keyword arguments (initial_state=...), got {len(args)} extra "
                        f"positional argument(s)")
    kwargs = dict(kwargs)
    for bad in ("training", "mask"):
        if bad in kwargs:
            raise TypeError(f"{type(layer).__name__}: {bad}= cannot be given when calling a "
                            f"layer on symbolic tensors (the model sets it)")
    x_tensors, x_is_list = _flatten_tensors(x, f"{type(layer).__name__} input")
    states, states_is_list = None, False
    if kwargs.get("initial_state") is not None:
        states, states_is_list = _flatten_tensors(kwargs.pop("initial_state"), "initial_state")
    else:
        kwargs.pop("initial_state", None)
    for k, v in kwargs.items():
        if is_symbolic(v):
            raise TypeError(f"{type(layer).__name__}: keyword argument {k!r} cannot be a "
                            f"symbolic tensor")
    if kwargs:
        _check_forward_kwargs(layer, kwargs)
    units = getattr(layer, "units", None)
    if states is not None and units is not None:
        for k, t in enumerate(states):
            if t.shape[-1] is not None and t.shape[-1] != units:
                raise ValueError(f"{type(layer).__name__} {layer.name!r} has {units} units, but "
                                 f"initial_state[{k}] has shape {_format_shape(t.shape)}")
    shapes = [t.shape for t in x_tensors]
    in_shape = shapes if x_is_list else shapes[0]
    if not layer.built:
        if not x_is_list and not _int_input(layer) and in_shape[-1] is None:
            raise ValueError(f"{type(layer).__name__} {layer.name!r}: the feature size of its "
                             f"input is unknown (shape {_format_shape(in_shape)})")
        layer.build(in_shape)
    elif not x_is_list and not _int_input(layer):
        _check_feature_size(layer, in_shape)
    out_shape = _output_shape(layer, in_shape, kwargs)
    node = Node(layer, x_tensors, x_is_list, states, states_is_list, kwargs)
    multi = isinstance(out_shape, list)
    shapes_out = out_shape if multi else [out_shape]
    dt = getattr(layer, "dtype", np.dtype("float32")).name
    node.outputs = [SymbolicTensor(s, dt, node, i) for i, s in enumerate(shapes_out)]
    if multi:
        return list(node.outputs)
    return node.outputs[0]


def _check_forward_kwargs(layer, kwargs):
    """Constant keyword arguments must be ones the layer's forward accepts (checked when the
    call is recorded, not at the first batch)."""
    import inspect
    try:
        params = inspect.signature(layer.forward).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise TypeError(f"{type(layer).__name__}: unexpected keyword argument(s) {unknown}; "
                        f"its forward accepts {sorted(k for k in params if k != 'x')}")


def _int_input(layer):
    from ..layers.embedding import Embedding
    return isinstance(layer, Embedding)


def _output_shape(layer, in_shape, kwargs):
    fn = layer.compute_output_shape
    try:
        out = fn(in_shape, **kwargs) if kwargs and _accepts_kwargs(fn) else fn(in_shape)
    except (TypeError, IndexError) as e:
        raise ValueError(f"{type(layer).__name__} {layer.name!r} cannot take an input of shape "
                         f"{in_shape}: {e}") from None
    if isinstance(out, list):
        return [tuple(s) for s in out]
    return tuple(out)


def _accepts_kwargs(fn):
    import inspect
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return len(params) > 1


def node_from_chain(layer, tensor):
    """Record ``layer(tensor)`` without building or shape checks (Sequential builds its layers
    itself and then lays them out as a chain)."""
    node = Node(layer, [tensor], False, None, False, {})
    try:
        shape = layer.compute_output_shape(tensor.shape)
    except Exception:
        shape = (None,)
    if isinstance(shape, list):        # cannot happen in a Sequential (return_state refused)
        shape = shape[0]
    node.outputs = [SymbolicTensor(tuple(shape), layer.dtype.name, node, 0)]
    return node.outputs[0]


# ---- per-call state of shared layers -------------------------------------------------------
_KEEP = ("params", "grads", "built", "seed", "name", "dtype")


class _Nested:
    __slots__ = ("layer", "state")

    def __init__(self, layer, state):
        self.layer, self.state = layer, state


def _snapshot(layer):
    """What a layer remembers of its last forward (its caches), as a shallow copy of its
    attributes; nested layers (Bidirectional's two directions) are captured too."""
    state = {}
    for k, v in vars(layer).items():
        if k in _KEEP:
            continue
        state[k] = _Nested(v, _snapshot(v)) if isinstance(v, Layer) else v
    return state


def _restore(layer, state):
    for k, v in state.items():
        if isinstance(v, _Nested):
            setattr(layer, k, v.layer)
            _restore(v.layer, v.state)
        else:
            setattr(layer, k, v)


# ---- the graph ----------------------------------------------------------------------------
class Graph:
    """The nodes between ``inputs`` and ``outputs`` (lists of SymbolicTensor), in topological
    order. ``layers`` lists each layer once (Input layers first, in input order, then by first
    use)."""

    def __init__(self, inputs, outputs):
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        for t in self.inputs:
            if not isinstance(t, SymbolicTensor) or not isinstance(t.node.layer, InputLayer):
                raise TypeError(f"model inputs must be tensors from fastrnn.Input(...), got {t!r}")
        if len({t._id for t in self.inputs}) != len(self.inputs):
            raise ValueError("the same Input tensor is listed twice in the model inputs")
        input_ids = {t._id for t in self.inputs}
        order, seen = [], set()

        def visit(root):
            """Depth-first post-order without recursion (a deep chain of layers, e.g. from a
            file, must not exhaust the interpreter's stack)."""
            stack = [(root, 0)]
            active = {id(root)}
            while stack:
                node, k = stack.pop()
                inputs = node.inputs
                while k < len(inputs):
                    t = inputs[k]
                    k += 1
                    if isinstance(t.node.layer, InputLayer):
                        if t._id not in input_ids:
                            raise ValueError(
                                f"graph disconnected: layer {node.layer.name!r} needs the input "
                                f"{t.name or '?'} {_format_shape(t.shape)}, which is not one of "
                                f"the model's inputs")
                        continue
                    child = t.node
                    if id(child) in seen:
                        continue
                    if id(child) in active:  # impossible with immutable tensors; defensive
                        raise ValueError("the layer graph has a cycle")
                    stack.append((node, k))
                    stack.append((child, 0))
                    active.add(id(child))
                    break
                else:
                    active.discard(id(node))
                    seen.add(id(node))
                    order.append(node)

        for t in self.outputs:
            if not isinstance(t, SymbolicTensor):
                raise TypeError(f"model outputs must be symbolic tensors (layers called on "
                                f"fastrnn.Input tensors), got {type(t).__name__}")
            if isinstance(t.node.layer, InputLayer):
                if t._id not in input_ids:
                    raise ValueError("graph disconnected: an output is an Input that is not one "
                                     "of the model's inputs")
                continue
            if id(t.node) not in seen:
                visit(t.node)
        self.nodes = order
        layers, lids = [t.node.layer for t in self.inputs], set()
        lids.update(id(l) for l in layers)
        calls = {}
        for node in order:
            calls[id(node.layer)] = calls.get(id(node.layer), 0) + 1
            if id(node.layer) not in lids:
                lids.add(id(node.layer))
                layers.append(node.layer)
        self.layers = layers
        self._shared = {lid for lid, n in calls.items() if n > 1}
        consumers = {}
        for node in order:
            for t in node.inputs:
                consumers[t._id] = consumers.get(t._id, 0) + 1
        for t in self.outputs:
            consumers[t._id] = consumers.get(t._id, 0) + 1
        self._consumers = consumers

    def is_shared(self, layer):
        return id(layer) in self._shared

    def fusable_output(self, k):
        """Whether output k may take a loss gradient with respect to its producer's
        pre-activation (its tensor is used nowhere else and its layer is called once)."""
        t = self.outputs[k]
        if isinstance(t.node.layer, InputLayer) or t.node.multi_output:
            return False
        return self._consumers.get(t._id, 0) == 1 and not self.is_shared(t.node.layer)

    # -- forward ------------------------------------------------------------------------
    def forward(self, xs, training=False):
        """Run the graph on ``xs`` (one array per input, in order). Returns ``(outs, masks,
        run)``: the output arrays, their masks (or None), and the record backward needs."""
        values, masks = {}, {}
        for t, x in zip(self.inputs, xs):
            values[t._id] = x
            masks[t._id] = None
        saved = {}
        logits = {}
        for node in self.nodes:
            layer = node.layer
            xv = [values[t._id] for t in node.x_tensors]
            xm = [masks[t._id] for t in node.x_tensors]
            x = xv if node.x_is_list else xv[0]
            mask = xm if node.x_is_list else xm[0]
            if node.x_is_list and all(m is None for m in xm):
                mask = None
            kw = dict(node.kwargs)
            if node.has_states:
                sv = [values[t._id] for t in node.states]
                kw["initial_state"] = sv if node.states_is_list else sv[0]
            if layer.supports_masking:
                out = layer.forward(x, training=training, mask=mask, **kw)
            else:
                out = layer.forward(x, training=training, **kw)
            outs = list(out) if node.multi_output else [out]
            if len(outs) != len(node.outputs):
                raise RuntimeError(f"{type(layer).__name__} returned {len(outs)} outputs, its "
                                   f"node expects {len(node.outputs)}")
            out_mask = layer.compute_mask(x, mask)
            for i, (t, v) in enumerate(zip(node.outputs, outs)):
                values[t._id] = v
                masks[t._id] = out_mask if i == 0 else None
            if training and id(layer) in self._shared:
                saved[id(node)] = _snapshot(layer)
            lg = getattr(layer, "last_logits", None)
            if lg is not None:
                logits[id(node)] = lg
        outs = [values[t._id] for t in self.outputs]
        out_masks = [masks[t._id] for t in self.outputs]
        run = {"values": values, "saved": saved, "logits": logits}
        return outs, out_masks, run

    def output_logits(self, run, k):
        """The pre-activation of output k recorded by its (Dense) layer during ``forward``."""
        return run["logits"].get(id(self.outputs[k].node))

    # -- backward -----------------------------------------------------------------------
    def backward(self, run, d_outputs, from_logits=None):
        """Backpropagate ``d_outputs`` (one gradient per output, None for none). With
        ``from_logits[k]`` true, output k's gradient is with respect to its Dense layer's
        pre-activation. Fills every layer's ``grads``; returns the gradients of the inputs
        (None where none flows, e.g. integer ids)."""
        from_logits = from_logits or [False] * len(self.outputs)
        values = run["values"]
        grads = {}
        logit_nodes = set()

        def add(t, d):
            if d is None:
                return
            prev = grads.get(t._id)
            grads[t._id] = d if prev is None else prev + d

        for k, (t, d) in enumerate(zip(self.outputs, d_outputs)):
            if from_logits[k]:
                logit_nodes.add(id(t.node))
            add(t, d)
        sums = {}
        done = set()
        for node in reversed(self.nodes):
            layer = node.layer
            ds = [grads.get(t._id) for t in node.outputs]
            if all(d is None for d in ds):
                continue
            if id(node) in run["saved"]:
                _restore(layer, run["saved"][id(node)])
            d0 = ds[0]
            if d0 is None:
                d0 = np.zeros_like(values[node.outputs[0]._id])
            if node.multi_output:
                rest = ds[1:]
                dstate = None if all(d is None for d in rest) else rest
                dx = layer.backward(d0, d_state=dstate)
            elif id(node) in logit_nodes:
                dx = layer.backward(d0, from_logits=True)
            else:
                dx = layer.backward(d0)
            if node.x_is_list:
                if dx is not None:
                    for t, d in zip(node.x_tensors, dx):
                        add(t, d)
            else:
                add(node.x_tensors[0], dx)
            if node.has_states:
                dstates = getattr(layer, "d_initial_state", None)
                if dstates is not None:
                    if not isinstance(dstates, (list, tuple)):
                        dstates = [dstates]
                    for t, d in zip(node.states, dstates):
                        add(t, d)
            if id(layer) in self._shared:
                acc = sums.setdefault(id(layer), {})
                for k in layer.params:
                    g = layer.grads[k]
                    acc[k] = np.array(g, copy=True) if k not in acc else acc[k] + g
            done.add(id(layer))
        for layer in self.layers:
            if id(layer) in sums:
                for k, g in sums[id(layer)].items():
                    layer.grads[k] = g
            elif id(layer) not in done and layer.params:
                # no gradient reached this layer: its parameters get zero, not stale, grads
                for k, p in layer.params.items():
                    layer.grads[k] = np.zeros_like(p)
        return [grads.get(t._id) for t in self.inputs]
