"""Model: a graph of layers with compile / fit / evaluate / predict / summary / save.

``Model(inputs, outputs)`` takes symbolic tensors (``fastrnn.Input`` and layers called on
them, see :mod:`fastrnn.models.graph`) and trains any DAG of layers: several inputs and
outputs, shared layers, states passed between recurrent layers. :class:`~fastrnn.models.
Sequential` is the special case of a chain and uses this same training loop.

Masks flow along the graph's edges: ``Embedding(mask_zero=True)`` (or ``Masking``) produces a
(B, T) mask, recurrent layers take it as ``mask=`` and pass it on when they return sequences,
Dense and Dropout pass it through. When an output is a sequence (B, T, C) and a mask reaches
it, its loss and metrics average over the valid steps only (padded steps get zero gradient),
as in Keras.

Training steps are never applied when they are not finite: a NaN/Inf loss or gradient skips the
step (counted in ``model.skipped_steps``); ``callbacks.TerminateOnNaN`` stops training then.

With ``seed=`` training is reproducible: layers without their own seed get seeds derived from
it (initialisation and Dropout masks) and batch shuffling uses a generator derived from it.
"""

import contextlib
import math
import numbers
import signal
import threading

import numpy as np

from .. import callbacks as callbacks_module
from .. import losses as losses_module
from .. import metrics as metrics_module
from ..functional import NonFiniteError
from ..layers import serialize, deserialize
from ..layers.core import Dense, InputLayer
from ..layers.dropout import Dropout
from ..distributed import entry_point as _distributed_entry, is_dask_array as _is_dask_array
from . import data as data_module
from . import graph as graph_module
from .graph import Graph, SymbolicTensor

__all__ = ["Model"]


class _RWLock:
    """Many readers (inference) or one writer (a training step), never both.

    Inference clears the layers' training caches and reads the weights an optimizer step
    updates in place, so a ``predict`` in one thread must never run inside another thread's
    training step. Concurrent inference calls only read the weights: they may overlap."""

    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = None            # thread id of the writer; re-entrant for it
        self._depth = 0

    @contextlib.contextmanager
    def read(self):
        me = threading.get_ident()
        if self._writer == me:          # inference inside this thread's own training step
            yield
            return
        with self._cond:
            while self._writer is not None:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def write(self):
        me = threading.get_ident()
        with self._cond:
            if self._writer != me:
                while self._writer is not None or self._readers:
                    self._cond.wait()
                self._writer = me
            self._depth += 1
        try:
            yield
        finally:
            with self._cond:
                self._depth -= 1
                if not self._depth:
                    self._writer = None
                    self._cond.notify_all()


class TrainingInterrupted(KeyboardInterrupt):
    """``fit`` was stopped by SIGINT (Ctrl-C) or SIGTERM; ``signal`` says which. Raised after
    the current step finished (weights are never half-updated) and ``on_train_end`` ran, so
    ``except KeyboardInterrupt: model.save(...)`` keeps everything learned so far."""

    def __init__(self, signum):
        super().__init__(f"training interrupted by {signal.Signals(signum).name}")
        self.signal = signum


class _StopOnSignal:
    """During ``fit`` (main thread only): the first SIGINT or SIGTERM asks the loop to stop
    after the current step; a second one interrupts at once."""

    def __init__(self, enabled=True):
        self.signum = None
        self._old = {}
        self._enabled = enabled

    def _handler(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self):
        if self._enabled and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, getattr(signal, "SIGTERM", None)):
                if sig is None:
                    continue
                try:
                    self._old[sig] = signal.signal(sig, self._handler)
                except (ValueError, OSError):
                    pass
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}
        return False


def _positive_int(value, name, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _derive_seed(seed, key):
    return int(np.random.SeedSequence([int(seed), int(key)]).generate_state(1)[0])


def _fresh_unseeded(layer):
    """True when the layer was initialised without a seed and its parameter arrays are still
    the ones that initialisation created (nobody assigned weights to it)."""
    refs = getattr(layer, "_unseeded_init", None)
    if layer.seed is not None or not refs or set(refs) != set(layer.params):
        return False
    return all(refs[k]() is layer.params[k] for k in refs)


def _to_array(a, name):
    if isinstance(a, np.ndarray):
        return a
    if a is None:
        raise ValueError(f"{name} is required, got None")
    try:
        arr = np.asarray(a)
    except Exception:
        raise TypeError(f"{name} must be array-like, got {type(a).__name__}") from None
    if arr.dtype == object:
        raise TypeError(f"{name} must be a rectangular numeric array (ragged or mixed inputs "
                        f"are not supported), got an object array")
    return arr


def _format_shape(shape):
    if isinstance(shape, list):
        return ", ".join(_format_shape(s) for s in shape)
    return "(" + ", ".join("None" if s is None else str(s) for s in shape) + ")"


def _check_seed_and_name(seed, name):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                             or seed < 0):
        raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str or None, got {type(name).__name__}")


class Model:
    """A model made of layers called on symbolic tensors (the functional API).

    Parameters
    ----------
    inputs : SymbolicTensor or list of SymbolicTensor
        Tensors from :func:`fastrnn.Input`.
    outputs : SymbolicTensor or list of SymbolicTensor
        Tensors computed from ``inputs`` by calling layers on them.
    name : str, optional
    seed : int, optional
        Layers without their own seed, whose initial weights were never replaced, are
        re-initialised from seeds derived from it (so the model is reproducible), and Dropout
        masks and batch shuffling derive from it.

    Notes
    -----
    Methods follow Keras: ``compile`` (one loss for every output, or a list/dict per output,
    ``loss_weights``, metrics per output), ``fit`` -> :class:`fastrnn.callbacks.History`,
    ``evaluate``, ``predict``, ``train_on_batch`` / ``test_on_batch``, ``summary``,
    ``get_config`` / ``from_config``, ``get_weights`` / ``set_weights``, ``save`` (see
    :func:`fastrnn.load_model`). ``params()`` yields ``("layers.{i}.{name}", array)`` with ``i``
    the index in ``model.layers``. Data for several inputs (outputs) is a list in the order of
    ``inputs`` (``outputs``) or a dict keyed by input (output layer) names.

    Example
    -------
    >>> import fastrnn as fr
    >>> x = fr.Input((None, 3))
    >>> seq, h, c = fr.LSTM(8, return_sequences=True, return_state=True)(x)
    >>> y = fr.Dense(1)(fr.LSTM(8)(seq, initial_state=[h, c]))
    >>> model = fr.Model(x, y)
    >>> model.compile("adam", "mse")
    """

    def __init__(self, inputs=None, outputs=None, name=None, seed=None):
        _check_seed_and_name(seed, name)
        self.name = name or ("model" if type(self) is Model else type(self).__name__.lower())
        self.seed = None if seed is None else int(seed)
        self.optimizer = None
        self.loss = None
        self.compiled_metrics = []
        self.stop_training = False
        self.history = None
        self.skipped_steps = 0
        self._shuffle_rng = None
        self._compiled = False
        self._graph = None
        self._losses = []
        self._loss_weights = []
        self._metric_slots = []          # (output index, Metric, log name)
        self._compile_args = None
        self._lock = _RWLock()              # see predict / fit: thread safety
        self._runs = threading.local()      # each thread's last forward run (loss, backward)
        if type(self) is Model or inputs is not None or outputs is not None:
            self._init_graph(inputs, outputs)

    # ---- structure ------------------------------------------------------------------------
    def _init_graph(self, inputs, outputs):
        if inputs is None or outputs is None:
            raise TypeError("Model(inputs, outputs): both are required (symbolic tensors from "
                            "fastrnn.Input and layers called on them)")
        self._inputs_list = isinstance(inputs, (list, tuple))
        self._outputs_list = isinstance(outputs, (list, tuple))
        ins = list(inputs) if self._inputs_list else [inputs]
        outs = list(outputs) if self._outputs_list else [outputs]
        if not ins or not outs:
            raise ValueError("Model: inputs and outputs must not be empty")
        for what, ts in (("inputs", ins), ("outputs", outs)):
            for t in ts:
                if not isinstance(t, SymbolicTensor):
                    raise TypeError(f"Model: {what} must be symbolic tensors (fastrnn.Input "
                                    f"and layers called on it), got {type(t).__name__}")
        self._graph = Graph(ins, outs)
        self._unique_names()
        self._reseed_graph()

    def _unique_names(self):
        """Layers keep their names; default names that repeat get a suffix (``lstm``,
        ``lstm_1``, ...) as in Keras, so outputs and saved files can refer to layers by name.
        Two layers explicitly given the same name are an error."""
        taken = {}
        for layer in self._graph.layers:
            if not getattr(layer, "_auto_name", False):
                if layer.name in taken and taken[layer.name] is not layer:
                    raise ValueError(f"Model: two different layers are named {layer.name!r}; "
                                     f"layer names must be unique")
                taken[layer.name] = layer
        auto = [l for l in self._graph.layers if getattr(l, "_auto_name", False)]
        for layer in sorted(auto, key=lambda l: getattr(l, "_created", 0)):
            base = layer.name
            if base in taken and taken[base] is not layer:
                k = 1
                while f"{base}_{k}" in taken:
                    k += 1
                layer.name = f"{base}_{k}"
            taken[layer.name] = layer

    @property
    def inputs(self):
        return list(self._graph.inputs) if self._graph is not None else []

    @property
    def outputs(self):
        return list(self._graph.outputs) if self._graph is not None else []

    @property
    def input_names(self):
        return [t.node.layer.name for t in self.inputs]

    @property
    def output_names(self):
        """One name per output: the producing layer's name (made unique)."""
        names, seen = [], {}
        for t in self.outputs:
            base = t.node.layer.name
            k = seen.get(base, 0)
            seen[base] = k + 1
            names.append(base if k == 0 else f"{base}_{k}")
        return names

    @property
    def layers(self):
        return list(self._graph.layers) if self._graph is not None else []

    def _n_outputs(self):
        return len(self._graph.outputs) if self._graph is not None else 1

    @property
    def dtype(self):
        for layer in self.layers:
            if not isinstance(layer, InputLayer):
                return layer.dtype.name
        return "float32"

    @property
    def built(self):
        return self._graph is not None

    def get_layer(self, name=None, index=None):
        """A layer by index or by name (the first with that name)."""
        layers = self.layers
        if (name is None) == (index is None):
            raise ValueError("get_layer: give exactly one of name= or index=")
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
                raise TypeError(f"get_layer: index must be an int, got {index!r}")
            if not -len(layers) <= index < len(layers):
                raise ValueError(f"get_layer: index {index} out of range for "
                                 f"{len(layers)} layers")
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"get_layer: no layer named {name!r}; layers: "
                         f"{[l.name for l in layers]}")

    def _trainable_layers(self):
        """Layers that may own parameters or random state, without Input layers: their
        position in this list keys the seeds derived from the model's seed."""
        return [l for l in self.layers if not isinstance(l, InputLayer)]

    def _reseed_graph(self):
        """With a model seed, layers built when they were called (without a seed, weights never
        replaced) are re-initialised from seeds derived from the model's, numbered like a
        Sequential's layers, so both are reproducible and agree for the same layer list."""
        if self.seed is None:
            return
        from ..layers.bidirectional import Bidirectional
        first_shape = {}
        for node in self._graph.nodes:
            if id(node.layer) not in first_shape:
                shapes = [t.shape for t in node.x_tensors]
                first_shape[id(node.layer)] = shapes if node.x_is_list else shapes[0]
        for i, layer in enumerate(self._trainable_layers()):
            if layer.seed is not None:
                continue
            seed = _derive_seed(self.seed, i)
            if isinstance(layer, Bidirectional):
                layer.reseed_if_fresh(seed)
            elif isinstance(layer, Dropout):
                if layer._gen is None:
                    layer.seed = seed
            elif layer.built and _fresh_unseeded(layer):
                layer.seed = seed
                layer.build(first_shape[id(layer)])

    def _assign_seeds(self):
        """Seeds for layers that will draw random numbers later (Dropout masks)."""
        if self.seed is None:
            return
        for i, layer in enumerate(self._trainable_layers()):
            if layer.seed is None and isinstance(layer, Dropout) and layer._gen is None:
                layer.seed = _derive_seed(self.seed, i)

    # ---- parameters -----------------------------------------------------------------------
    def params(self):
        """Iterate ``("layers.{i}.{name}", array)`` over every parameter, in order."""
        for i, layer in enumerate(self.layers):
            for k, v in layer.params.items():
                yield f"layers.{i}.{k}", v

    def grads(self):
        """Iterate ``("layers.{i}.{name}", gradient)`` after a training step."""
        for i, layer in enumerate(self.layers):
            for k in layer.params:
                g = layer.grads.get(k)
                if g is not None:
                    yield f"layers.{i}.{k}", g

    def count_params(self, trainable=None):
        """Number of parameters; ``trainable=True`` / ``False`` counts only the layers with
        that ``trainable`` flag."""
        return int(sum(v.size for layer in self.layers for v in layer.params.values()
                       if trainable is None or bool(getattr(layer, "trainable", True))
                       == trainable))

    @property
    def trainable_weights(self):
        """The parameter arrays fit() updates (layers with ``trainable=True``)."""
        return [v for layer in self.layers if getattr(layer, "trainable", True)
                for v in layer.params.values()]

    @property
    def non_trainable_weights(self):
        """The parameter arrays of frozen layers (``trainable=False``)."""
        return [v for layer in self.layers if not getattr(layer, "trainable", True)
                for v in layer.params.values()]

    def reset_states(self):
        """Forget the carried state of every ``stateful=True`` layer (Keras 2's
        ``model.reset_states()``; Keras 3 calls ``layer.reset_state()`` per layer)."""
        for layer in self.layers:
            for inner in (layer, getattr(layer, "forward_layer", None),
                          getattr(layer, "backward_layer", None)):
                if inner is not None and callable(getattr(inner, "reset_states", None)):
                    inner.reset_states()

    def get_weights(self):
        """Copies of every parameter array, in ``params()`` order."""
        return [np.array(v, copy=True) for _, v in self.params()]

    def set_weights(self, weights):
        """Set every parameter from a list in ``get_weights()`` order. Everything is checked
        before anything is changed."""
        entries = [(layer, k) for layer in self.layers for k in layer.params]
        if not isinstance(weights, (list, tuple)):
            raise TypeError(f"set_weights: weights must be a list of arrays, got "
                            f"{type(weights).__name__}")
        if len(weights) != len(entries):
            raise ValueError(f"set_weights: expected {len(entries)} arrays (one per parameter), "
                             f"got {len(weights)}")
        arrays = []
        for i, ((layer, k), w) in enumerate(zip(entries, weights)):
            arr = np.asarray(w)
            cur = layer.params[k]
            if arr.shape != cur.shape:
                raise ValueError(f"set_weights: weights[{i}] ({k} of layer {layer.name}) must "
                                 f"have shape {cur.shape}, got {arr.shape}")
            if arr.dtype.kind not in "fiu":
                raise TypeError(f"set_weights: weights[{i}] must be a real numeric array, got "
                                f"dtype {arr.dtype}")
            arrays.append(arr)
        for (layer, k), arr in zip(entries, arrays):
            layer.params[k][...] = arr

    # ---- config ---------------------------------------------------------------------------
    def get_config(self):
        """JSON-able architecture: every layer (``serialize``d) with the calls that connect it
        (its inbound tensors as ``[layer index, node index, output index]``) and the model's
        inputs and outputs in the same form."""
        layers = self.layers
        index = {id(l): i for i, l in enumerate(layers)}
        node_index = {}
        per_layer = {}
        for t in self._graph.inputs:
            node_index[id(t.node)] = 0
        for node in self._graph.nodes:
            k = per_layer.get(id(node.layer), 0)
            per_layer[id(node.layer)] = k + 1
            node_index[id(node)] = k

        def ref(t):
            return [index[id(t.node.layer)], node_index[id(t.node)], t.index]

        entries = []
        calls = {id(l): [] for l in layers}
        for node in self._graph.nodes:
            call = {"x": [ref(t) for t in node.x_tensors], "x_is_list": node.x_is_list}
            if node.has_states:
                call["initial_state"] = [ref(t) for t in node.states]
                call["states_is_list"] = node.states_is_list
            if node.kwargs:
                call["kwargs"] = dict(node.kwargs)
            calls[id(node.layer)].append(call)
        for layer in layers:
            entries.append({"class_name": type(layer).__name__ if isinstance(layer, InputLayer)
                            else serialize(layer)["class_name"],
                            "config": layer.get_config(),
                            "calls": calls[id(layer)]})
        cfg = {"name": self.name, "layers": entries,
               "inputs": [ref(t) for t in self._graph.inputs],
               "outputs": [ref(t) for t in self._graph.outputs],
               "inputs_is_list": self._inputs_list, "outputs_is_list": self._outputs_list}
        if self.seed is not None:
            cfg["seed"] = self.seed
        return cfg

    @classmethod
    def from_config(cls, config):
        """Rebuild an (uncompiled) functional model from ``get_config()``; layers come only
        from fastrnn.layers.LAYER_REGISTRY. Weights are freshly initialised (``load_model``
        restores them)."""
        if not isinstance(config, dict):
            raise ValueError(f"from_config: config must be a dict, got {type(config).__name__}")
        unknown = set(config) - {"name", "layers", "inputs", "outputs", "inputs_is_list",
                                 "outputs_is_list", "seed"}
        if unknown:
            raise ValueError(f"from_config: unknown keys {sorted(unknown)}")
        entries = config.get("layers")
        if not isinstance(entries, list) or not entries:
            raise ValueError("from_config: 'layers' must be a non-empty list")
        layers, made = [], []
        for i, e in enumerate(entries):
            if not isinstance(e, dict) or not isinstance(e.get("calls", []), list):
                raise ValueError(f"from_config: layers[{i}] must be a dict with 'class_name', "
                                 f"'config' and 'calls'")
            if e.get("class_name") == "InputLayer":
                cfg = e.get("config")
                if not isinstance(cfg, dict):
                    raise ValueError(f"from_config: layers[{i}] config must be a dict")
                layer = InputLayer(**cfg)
                made.append([graph_module._input_tensor(layer).node])
            else:
                layer = deserialize({"class_name": e.get("class_name"),
                                     "config": e.get("config")})
                made.append([])
            layers.append(layer)

        def tensor(r, what):
            if not (isinstance(r, list) and len(r) == 3 and all(
                    isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in r)):
                raise ValueError(f"from_config: bad tensor reference {r!r} in {what}")
            li, ni, oi = r
            if li >= len(made) or ni >= len(made[li]) or oi >= len(made[li][ni].outputs):
                raise ValueError(f"from_config: tensor reference {r!r} in {what} points to a "
                                 f"call that does not exist (yet)")
            return made[li][ni].outputs[oi]

        # replay the calls in an order that respects dependencies (a few passes at most)
        pending = [(i, k) for i, e in enumerate(entries) for k in range(len(e.get("calls", [])))]
        progress = True
        while pending and progress:
            progress = False
            rest = []
            for i, k in pending:
                if k != len(made[i]):
                    rest.append((i, k))
                    continue
                call = entries[i]["calls"][k]
                if not isinstance(call, dict):
                    raise ValueError(f"from_config: layers[{i}] call {k} must be a dict")
                try:
                    xs = [tensor(r, f"layers[{i}]") for r in call.get("x", [])]
                    sts = [tensor(r, f"layers[{i}]") for r in call.get("initial_state", [])]
                except ValueError:
                    rest.append((i, k))
                    continue
                if not xs:
                    raise ValueError(f"from_config: layers[{i}] call {k} has no inputs")
                kwargs = call.get("kwargs", {}) or {}
                if not isinstance(kwargs, dict):
                    raise ValueError(f"from_config: layers[{i}] call kwargs must be a dict")
                x = xs if call.get("x_is_list") else xs[0]
                if sts:
                    kwargs = dict(kwargs, initial_state=sts if call.get("states_is_list")
                                  else sts[0])
                out = graph_module.call_layer(layers[i], x, (), kwargs)
                first = out[0] if isinstance(out, list) else out
                made[i].append(first.node)
                progress = True
            pending = rest
        if pending:
            raise ValueError("from_config: the layer calls reference tensors that are never "
                             "produced")
        ins = [tensor(r, "inputs") for r in config.get("inputs", [])]
        outs = [tensor(r, "outputs") for r in config.get("outputs", [])]
        inputs = ins if config.get("inputs_is_list", len(ins) > 1) else ins[0]
        outputs = outs if config.get("outputs_is_list", len(outs) > 1) else outs[0]
        return Model(inputs, outputs, name=config.get("name"), seed=config.get("seed"))

    def save(self, path, **kw):
        """Save architecture and weights (see fastrnn.io.save_model)."""
        from .. import io
        return io.save_model(self, path, **kw)

    # ---- compile --------------------------------------------------------------------------
    def _per_output(self, value, what, names):
        """A single value for every output, or a list (in output order) / dict (by output
        name) -> one entry per output."""
        n = len(names)
        if isinstance(value, dict) and "class_name" in value:
            return [value] * n            # one serialized loss/metric, not a dict by output
        if isinstance(value, dict):
            unknown = set(value) - set(names)
            if unknown:
                raise ValueError(f"compile: {what} names unknown outputs {sorted(unknown)}; "
                                 f"outputs: {names}")
            return [value.get(k) for k in names]
        if isinstance(value, (list, tuple)) and n > 1:
            if len(value) != n:
                raise ValueError(f"compile: {what} must have one entry per output ({n}), got "
                                 f"{len(value)}")
            return list(value)
        return [value] * n

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None):
        """Set the optimizer, the loss and the metrics.

        Parameters
        ----------
        optimizer : str, dict or fastrnn.optimizers object
        loss : str or fastrnn.losses object, or (several outputs) a list / dict by output name
            One loss for every output, or one per output (None leaves an output out of the
            loss).
        metrics : list, optional
            Metric names or objects applied to every output, or (several outputs) a list of
            lists / dict of lists per output. Logged as ``name`` (one output) or
            ``{output}_{name}``.
        loss_weights : list or dict of float, optional
            The training loss is ``sum_k w_k * loss_k`` (default weights 1).
        """
        from .. import optimizers as optimizers_module
        if loss is None:
            raise ValueError("compile: loss is required (e.g. loss='mse')")
        if isinstance(optimizer, str) or optimizer is None or isinstance(optimizer, dict):
            optimizer = optimizers_module.get("rmsprop" if optimizer is None else optimizer)
        elif not callable(getattr(optimizer, "apply", None)):
            raise TypeError(f"compile: optimizer must be a name or an optimizer with an apply() "
                            f"method, got {type(optimizer).__name__}")
        names = self.output_names if self._graph is not None else ["output"]
        n = len(names)
        losses = [None if l is None else losses_module.get(l)
                  for l in self._per_output(loss, "loss", names)]
        if all(l is None for l in losses):
            raise ValueError("compile: loss is required for at least one output")
        if loss_weights is None:
            weights = [1.0] * n
        else:
            if not isinstance(loss_weights, (list, tuple, dict)):
                raise TypeError(f"compile: loss_weights must be a list or a dict, got "
                                f"{type(loss_weights).__name__}")
            if isinstance(loss_weights, (list, tuple)) and len(loss_weights) != n:
                raise ValueError(f"compile: loss_weights must have one entry per output ({n}), "
                                 f"got {len(loss_weights)}")
            weights = self._per_output(loss_weights, "loss_weights", names)
            weights = [1.0 if w is None else w for w in weights]
            for w in weights:
                if isinstance(w, bool) or not isinstance(w, numbers.Real) or not math.isfinite(w) \
                        or w < 0:
                    raise ValueError(f"compile: loss_weights must be finite numbers >= 0, got "
                                     f"{loss_weights!r}")
            weights = [float(w) for w in weights]
        if metrics is None:
            per = [[] for _ in range(n)]
        elif isinstance(metrics, (str, metrics_module.Metric)):
            per = [[metrics] for _ in range(n)]
        elif isinstance(metrics, dict):
            per = [m if isinstance(m, (list, tuple)) else ([] if m is None else [m])
                   for m in self._per_output(metrics, "metrics", names)]
        elif isinstance(metrics, (list, tuple)):
            if n > 1 and len(metrics) == n and all(isinstance(m, (list, tuple)) or m is None
                                                   for m in metrics):
                per = [list(m or []) for m in metrics]
            else:
                per = [list(metrics) for _ in range(n)]
        else:
            raise TypeError(f"compile: metrics must be a list of metric names or Metric objects, "
                            f"got {type(metrics).__name__}")
        slots = []
        for k, ms in enumerate(per):
            for m in ms:
                obj = metrics_module.get(m, loss=losses[k])
                if n > 1 and any(obj is s[1] for s in slots):
                    obj = metrics_module.get(metrics_module.serialize(obj), loss=losses[k])
                log = obj.name if n == 1 else f"{names[k]}_{obj.name}"
                slots.append((k, obj, log))
        logs = [s[2] for s in slots]
        if len(set(logs)) != len(logs) or "loss" in logs:
            raise ValueError(f"compile: metric names must be unique and not 'loss', got {logs}")
        self.optimizer = optimizer
        self._losses = losses
        self._loss_weights = weights
        self.loss = losses[0] if n == 1 else losses
        self._metric_slots = slots
        self.compiled_metrics = [s[1] for s in slots]
        self._compile_args = {"n": n}
        self._compiled = True

    def get_compile_config(self):
        """JSON-able ``compile()`` arguments except the optimizer (saved separately by io):
        ``{"loss": ..., "metrics": [...]}`` (per output lists with several outputs, plus
        ``loss_weights``); None when not compiled."""
        if not self._compiled:
            return None
        if len(self._losses) == 1:
            return {"loss": losses_module.serialize(self._losses[0]),
                    "metrics": [metrics_module.serialize(m) for m in self.compiled_metrics]}
        per = [[] for _ in self._losses]
        for k, m, _ in self._metric_slots:
            per[k].append(metrics_module.serialize(m))
        return {"loss": [None if l is None else losses_module.serialize(l) for l in self._losses],
                "metrics": per, "loss_weights": list(self._loss_weights)}

    def _require_compiled(self, what):
        if not self._compiled:
            raise RuntimeError(f"{what}: the model must be compiled first: call "
                               f"model.compile(optimizer=..., loss=...)")

    def _fused_loss(self, k=0):
        """The logits twin of output k's loss when its Dense layer's activation can be fused
        with it (softmax/sigmoid + cross-entropy), else None."""
        g = self._graph
        if g is None or k >= len(self._losses) or not g.fusable_output(k):
            return None
        last = g.outputs[k].node.layer
        loss = self._losses[k]
        from ..layers.wrappers import TimeDistributed
        if isinstance(last, TimeDistributed):     # TimeDistributed(Dense): same fused path
            last = last.layer
        if loss is None or not isinstance(last, Dense) or getattr(loss, "from_logits", True):
            return None
        if last.activation == "softmax" and isinstance(
                loss, (losses_module.CategoricalCrossentropy,
                       losses_module.SparseCategoricalCrossentropy)):
            return type(loss)(from_logits=True)
        if last.activation == "sigmoid" and isinstance(loss, losses_module.BinaryCrossentropy):
            return losses_module.BinaryCrossentropy(from_logits=True)
        return None

    # ---- data -----------------------------------------------------------------------------
    def _split(self, data, names, what):
        """Array / list / dict -> list of entries, one per name."""
        n = len(names)
        if isinstance(data, dict):
            missing = [k for k in names if k not in data]
            unknown = sorted(set(data) - set(names))
            if missing or unknown:
                raise ValueError(f"{what}: dict keys must be {names}; missing {missing}, unknown "
                                 f"{unknown}")
            return [data[k] for k in names]
        if isinstance(data, (list, tuple)) and n > 1:
            if len(data) != n:
                raise ValueError(f"{what} must be a list of {n} arrays (one per "
                                 f"{'input' if what.startswith('x') else 'output'}: {names}), "
                                 f"got {len(data)}")
            return list(data)
        if n > 1:
            raise ValueError(f"{what} must be a list or dict of {n} arrays ({names}), got "
                             f"{type(data).__name__}")
        return [data]

    def _prepare_one_x(self, x, k, name):
        x = _to_array(x, name)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be a numeric array, got dtype {x.dtype}")
        if x.ndim == 0:
            raise ValueError(f"{name} must have a batch axis, got a scalar")
        if x.shape[0] == 0:
            raise ValueError(f"{name} has no samples (shape {x.shape})")
        t = self._graph.inputs[k]
        want = t.shape[1:]
        if len(want) != x.ndim - 1 or any(w is not None and w != s
                                          for w, s in zip(want, x.shape[1:])):
            raise ValueError(f"{name} must have shape {_format_shape(t.shape)} (input "
                             f"{self.input_names[k]!r}), got {x.shape}")
        dt = np.dtype(t.dtype)
        if dt.kind == "f":
            if x.dtype != dt:
                x = x.astype(dt)
            if not np.isfinite(x).all():
                bad = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
                raise ValueError(f"{name} must be finite, got {x[bad]} at index {bad}")
        return x

    def _prepare_x(self, x, name="x"):
        """Validated input arrays: one array (one input) or a list."""
        if not self.layers:
            raise TypeError(f"{self.name} has no layers: add layers (Sequential([...]) or "
                            f"model.add(layer)) before passing it data")
        names = self.input_names
        parts = self._split(x, names, name)
        xs = [self._prepare_one_x(v, k, name if len(names) == 1 else f"{name}[{names[k]!r}]")
              for k, v in enumerate(parts)]
        n = xs[0].shape[0]
        for k, v in enumerate(xs):
            if v.shape[0] != n:
                raise ValueError(f"{name}: every input must have the same number of samples, "
                                 f"got {[a.shape[0] for a in xs]}")
        return xs[0] if len(xs) == 1 else xs

    def _prepare_one_y(self, y, n, k, name):
        y = _to_array(y, name)
        if y.ndim == 0 or y.shape[0] != n:
            raise ValueError(f"{name} must have the same number of samples as x ({n}), got "
                             f"shape {y.shape}")
        if y.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be a numeric array, got dtype {y.dtype}")
        loss = self._losses[k] if k < len(self._losses) else None
        if not isinstance(loss, losses_module.SparseCategoricalCrossentropy):
            y = y.astype(self._output_dtype(k), copy=False)
            if not np.isfinite(y).all():
                raise ValueError(f"{name} must be finite")
        return y

    def _output_dtype(self, k):
        t = self._graph.outputs[k] if self._graph is not None else None
        if t is None or np.dtype(t.dtype).kind != "f":
            return self.dtype
        return t.dtype

    def _prepare_y(self, y, n, name="y"):
        names = self.output_names if self._graph is not None else ["output"]
        parts = self._split(y, names, name)
        ys = [None if (v is None and self._losses[k] is None)
              else self._prepare_one_y(v, n, k, name if len(names) == 1
                                       else f"{name}[{names[k]!r}]")
              for k, v in enumerate(parts)]
        return ys[0] if len(ys) == 1 else ys

    @staticmethod
    def _as_list(v):
        return list(v) if isinstance(v, list) else [v]

    @staticmethod
    def _n_samples(x):
        return (x[0] if isinstance(x, list) else x).shape[0]

    @staticmethod
    def _take(x, idx):
        if isinstance(x, list):
            return [None if a is None else a[idx] for a in x]
        return x[idx]

    # ---- running ------------------------------------------------------------------------
    def _ensure_graph(self, x):
        """The graph to run (Sequential builds its own on first data)."""
        return self._graph

    @property
    def _last_run(self):
        return getattr(self._runs, "run", None)

    @_last_run.setter
    def _last_run(self, run):
        self._runs.run = run

    def _forward(self, x, training):
        """Run on prepared data: ``(output, mask)`` for one output, else lists of them."""
        g = self._ensure_graph(x)
        try:
            outs, masks, run = g.forward(self._as_list(x), training=training)
        except NonFiniteError as e:
            # the model's input was checked finite: a layer before this one overflowed
            raise NonFiniteError(f"{e}; the model's input is finite, so the layers before "
                                 "it produced NaN/inf (an overflow)") from None
        self._last_run = run
        if len(outs) == 1:
            return outs[0], masks[0]
        return outs, masks

    def __call__(self, x, training=False):
        x = self._prepare_x(x)
        with (self._lock.write() if training else self._lock.read()):
            return self._forward(x, training)[0]

    def _loss_on(self, y, out, mask, with_grad, sample_weight=None):
        """Weighted total loss (and per-output losses and gradients) on prepared arrays;
        ``sample_weight`` (Keras semantics, see fastrnn.losses) applies to every output."""
        sw = sample_weight
        ys, outs, masks = self._as_list(y), self._as_list(out), self._as_list(mask)
        total, parts, grads, fused_flags = 0.0, [], [], []
        for k, loss in enumerate(self._losses):
            if loss is None:
                parts.append(None)
                grads.append(None)
                fused_flags.append(False)
                continue
            fused = self._fused_loss() if len(self._losses) == 1 else self._fused_loss(k)
            logits = None
            if fused is not None and self._last_run is not None:
                logits = self._graph.output_logits(self._last_run, k)
            if fused is not None and logits is not None:
                if with_grad:
                    value, d = fused.loss_and_gradient(ys[k], logits, masks[k], sw)
                else:
                    value, d = fused.loss(ys[k], logits, masks[k], sw), None
                fused_flags.append(True)
            else:
                if with_grad:
                    value, d = loss.loss_and_gradient(ys[k], outs[k], masks[k], sw)
                else:
                    value, d = loss.loss(ys[k], outs[k], masks[k], sw), None
                fused_flags.append(False)
            w = self._loss_weights[k]
            if d is not None and w != 1.0:
                d = d * d.dtype.type(w)
            total += w * float(value)
            parts.append(float(value))
            grads.append(d)
        if len(self._losses) == 1:
            total = parts[0]
        return total, parts, grads, fused_flags

    def _loss_logs(self, total, parts):
        logs = {"loss": total}
        if len(self._losses) > 1:
            for name, v in zip(self.output_names, parts):
                if v is not None:
                    logs[f"{name}_loss"] = v
        return logs

    def _metric_values(self, y, out, mask, update):
        ys, outs, masks = self._as_list(y), self._as_list(out), self._as_list(mask)
        res = {}
        for k, m, log in self._metric_slots:
            if update:
                m.update_state(ys[k], outs[k], masks[k])
            else:
                res[log] = m(ys[k], outs[k], masks[k])
        return res

    def _train_step(self, x, y, distributed=None, *, sample_weight=None):
        """One step on prepared arrays. Returns (loss, output, mask, applied).
        ``distributed`` (a fastrnn.distributed context) turns the gradients and losses into
        those of all ranks' batches together, between backward and the optimizer step;
        ``sample_weight`` weights the loss (Keras semantics, see fastrnn.losses).
        Exclusive against inference in other threads (``predict`` waits for the step)."""
        with self._lock.write():
            return self._train_step_locked(x, y, distributed, sample_weight=sample_weight)

    def _train_step_locked(self, x, y, distributed=None, *, sample_weight=None):
        raise_mode = getattr(self.optimizer, "on_nonfinite", "skip") == "raise"
        try:
            out, mask = self._forward(x, training=True)
        except NonFiniteError as e:
            # an activation overflowed inside the model: the documented non-finite step path
            # (skip, so TerminateOnNaN sees a NaN loss), unless the optimizer should raise
            if raise_mode or distributed is not None:
                from ..optimizers import NonFiniteGradientError
                raise NonFiniteGradientError(f"no step was applied: {e}") from None
            self.skipped_steps += 1
            self._last_parts = [float("nan")] * max(1, len(self._losses))
            return float("nan"), None, None, False
        loss, parts, d, fused_flags = self._loss_on(y, out, mask, with_grad=True,
                                                    sample_weight=sample_weight)
        self._last_parts = parts
        if distributed is not None:      # every rank takes part in every collective
            d = distributed.before_backward(self, d, out, mask)
        elif not math.isfinite(loss):
            if raise_mode:
                from ..optimizers import NonFiniteGradientError
                raise NonFiniteGradientError(f"the loss is not finite ({loss}); no step was "
                                             f"applied")
            self.skipped_steps += 1
            return loss, out, mask, False
        self._graph.backward(self._last_run, d, fused_flags)
        items = []
        for i, layer in enumerate(self.layers):
            if not getattr(layer, "trainable", True):      # frozen: never updated
                continue
            for k, p in layer.params.items():
                items.append((f"layers.{i}.{k}", p, layer.grads[k]))
        if distributed is not None:      # all ranks then decide alike on the reduced values
            items, loss, self._last_parts = distributed.reduce(self, items, parts, out, mask)
            if not math.isfinite(loss):
                if raise_mode:
                    from ..optimizers import NonFiniteGradientError
                    raise NonFiniteGradientError(f"the loss is not finite ({loss}) on some "
                                                 f"rank; no step was applied")
                self.skipped_steps += 1
                return loss, out, mask, False
        if not raise_mode:      # in raise mode the optimizer reports non-finite gradients
            for name, _, g in items:
                if not np.isfinite(g).all():
                    self.skipped_steps += 1
                    return loss, out, mask, False
        applied = self.optimizer.apply(items)
        if applied is False:
            self.skipped_steps += 1
        return loss, out, mask, applied is not False

    @_distributed_entry
    def train_on_batch(self, x, y, sample_weight=None, class_weight=None, return_dict=False, *,
                       distributed=None):
        """One optimizer step on one batch; returns the loss (before the step) as a float, or a
        dict with the loss and the metrics on this batch with ``return_dict=True``.
        ``sample_weight`` / ``class_weight`` weight the loss as in :meth:`fit`.
        ``distributed="mpi"``: this rank's batch of a data-parallel step (see
        fastrnn.distributed.mpi); the loss is then that of all ranks' batches together."""
        self._require_compiled("train_on_batch")
        x = self._prepare_x(x)
        y = self._prepare_y(y, self._n_samples(x))
        sw = data_module.check_sample_weight(sample_weight, self._n_samples(x))
        sw = data_module.with_class_weight(self, y, sw, class_weight)
        if distributed is not None:
            distributed.ensure_synced(self)
        args = (x, y) if distributed is None else (x, y, distributed)
        kw = {} if sw is None else {"sample_weight": sw}
        loss, out, mask, _ = self._train_step(*args, **kw)
        if return_dict:
            logs = self._loss_logs(loss, self._last_parts)
            if out is not None:
                logs.update(self._metric_values(y, out, mask, update=False))
            return logs
        return float(loss)

    def test_on_batch(self, x, y, sample_weight=None, return_dict=False):
        """Loss (and with ``return_dict=True`` the metrics) on one batch, without training."""
        self._require_compiled("test_on_batch")
        x = self._prepare_x(x)
        y = self._prepare_y(y, self._n_samples(x))
        sw = data_module.check_sample_weight(sample_weight, self._n_samples(x))
        with self._lock.write():      # the fused loss reads logits the layers keep
            out, mask = self._forward(x, training=False)
            loss, parts, _, _ = self._loss_on(y, out, mask, with_grad=False, sample_weight=sw)
        if return_dict:
            logs = self._loss_logs(loss, parts)
            logs.update(self._metric_values(y, out, mask, update=False))
            return logs
        return float(loss)

    def predict_on_batch(self, x):
        """Outputs for one batch ``x`` (inference mode): one array, or a list with several
        outputs."""
        x = self._prepare_x(x)
        with self._lock.read():
            return self._forward(x, training=False)[0]

    def _batches(self, n, batch_size):
        return [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]

    def _metric_results(self):
        return {log: m.result() for _, m, log in self._metric_slots}

    def _evaluate_arrays(self, x, y, batch_size, callbacks=None, verbose=0,
                         sample_weight=None):
        batches = data_module.ArrayBatches(self, x, y, sample_weight, batch_size)
        return self._evaluate_batches(batches, callbacks, verbose)

    def _evaluate_batches(self, batches, callbacks=None, verbose=0):
        """Loss and metrics over the batches of an ArrayBatches / SourceBatches."""
        for m in self.compiled_metrics:
            m.reset_state()
        total, seen = 0.0, 0
        part_tot = None
        bar = callbacks_module.Progbar(batches.steps, verbose) if verbose else None
        logs = {}
        step = -1
        for step, (xb, yb, swb, nb) in enumerate(batches.epoch()):
            if callbacks is not None:
                callbacks.on_test_batch_begin(step, None)
            with self._lock.write():      # the fused loss reads logits the layers keep
                out, mask = self._forward(xb, training=False)
                loss, parts, _, _ = self._loss_on(yb, out, mask, with_grad=False,
                                                  sample_weight=swb)
            total += loss * nb
            part_tot = [None if p is None else p * nb + (0 if part_tot is None else part_tot[i])
                        for i, p in enumerate(parts)]
            seen += nb
            self._metric_values(yb, out, mask, update=True)
            logs = self._loss_logs(total / seen, [None if p is None else p / seen
                                                  for p in part_tot])
            logs.update(self._metric_results())
            if callbacks is not None:
                callbacks.on_test_batch_end(step, logs)
            if bar is not None and verbose == 1:
                bar.update(step + 1, logs)
        if step < 0:
            raise ValueError("evaluation got no batches (an empty generator?)")
        if bar is not None:
            bar.update(step + 1, logs, final=True)
        return logs

    def evaluate(self, x, y=None, batch_size=32, verbose=0, callbacks=None, return_dict=False,
                 sample_weight=None, steps=None):
        """Loss (and metrics) over ``x, y`` in batches: returns the loss, ``[loss, *metrics]``
        when metrics were compiled (or there are several outputs), or a dict with
        ``return_dict=True``.

        ``x`` may be a :class:`fastrnn.utils.Sequence` or a generator of ``(x, y)`` /
        ``(x, y, sample_weight)`` batches (then ``y`` is None; ``steps`` limits the batches).
        ``sample_weight`` weights each sample's loss (Keras semantics, see
        :mod:`fastrnn.losses`); metrics are not weighted.

        Parameters
        ----------
        x, y : ndarray (or lists / dicts for several inputs / outputs)
            Inputs and targets, as for :meth:`fit`.
        batch_size : int, default 32
        verbose : {0, 1, 2}, default 0
        callbacks : list of Callback, optional
        return_dict : bool, default False
        sample_weight : ndarray (N,), optional
        steps : int, optional
            Batches to read from a Sequence or generator.

        Returns
        -------
        float, list of float or dict
        """
        self._require_compiled("evaluate")
        batch_size = _positive_int(32 if batch_size is None else batch_size, "batch_size")
        if data_module.is_source(x):
            if y is not None or sample_weight is not None:
                raise ValueError("evaluate: with a Sequence or generator as x, y and "
                                 "sample_weight come from its batches (pass y=None)")
            batches = data_module.SourceBatches(self, x, steps, "x", name="steps")
        else:
            x = self._prepare_x(x)
            n = self._n_samples(x)
            y = self._prepare_y(y, n)
            sw = data_module.check_sample_weight(sample_weight, n)
            batches = data_module.ArrayBatches(self, x, y, sw, batch_size, steps=steps,
                                               name="steps")
        cbs = callbacks_module.CallbackList(callbacks, model=self, params={
            "verbose": verbose, "steps": batches.steps})
        cbs.on_test_begin(None)
        logs = self._evaluate_batches(batches, cbs, verbose)
        cbs.on_test_end(logs)
        if return_dict:
            return logs
        if len(logs) > 1:
            return list(logs.values())
        return logs["loss"]

    def predict(self, x, batch_size=32, verbose=0, callbacks=None, steps=None):
        """Model outputs for ``x``, computed in batches of ``batch_size`` (inference mode):
        one array, or a list with several outputs. ``x`` may be a
        :class:`fastrnn.utils.Sequence` or a generator of batches (``x`` or ``(x, ...)``;
        ``steps`` limits how many are read). A ``dask.array`` ``x`` gives a lazy dask
        array (see fastrnn.distributed.predict).

        Parameters
        ----------
        x : ndarray (or a list / dict for several inputs, or a dask array)
            Batch-first inputs, ``N`` samples.
        batch_size : int, default 32
        verbose : {0, 1, 2}, default 0
        callbacks : list of Callback, optional

        Returns
        -------
        ndarray or list of ndarray
            ``N`` rows of each output, e.g. ``(N, units)`` or ``(N, T, units)``.
        """
        batch_size = _positive_int(32 if batch_size is None else batch_size, "batch_size")
        if _is_dask_array(x):
            from ..distributed import predict as _dask_predict
            return _dask_predict(self, x, batch_size=batch_size)
        if data_module.is_source(x):
            batches = data_module.SourceBatches(self, x, steps, "x", targets=False, name="steps")
        else:
            x = self._prepare_x(x)
            batches = data_module.ArrayBatches(self, x, None, None, batch_size, steps=steps,
                                               name="steps")
        cbs = callbacks_module.CallbackList(callbacks, model=self,
                                            params={"verbose": verbose, "steps": batches.steps})
        cbs.on_predict_begin(None)
        bar = callbacks_module.Progbar(batches.steps, verbose) if verbose else None
        outs = []
        for step, (xb, _, _, _) in enumerate(batches.epoch()):
            cbs.on_predict_batch_begin(step, None)
            with self._lock.read():       # never inside another thread's training step
                out, _ = self._forward(xb, training=False)
            outs.append(out)
            cbs.on_predict_batch_end(step, {"outputs": out})
            if bar is not None and verbose == 1:
                bar.update(step + 1)
        if not outs:
            raise ValueError("predict: got no batches (an empty generator?)")
        if bar is not None:
            bar.update(len(outs), final=True)
        cbs.on_predict_end(None)
        if isinstance(outs[0], list):
            return [np.concatenate([o[k] for o in outs], axis=0) for k in range(len(outs[0]))]
        return np.concatenate(outs, axis=0)

    @_distributed_entry
    def fit(self, x=None, y=None, batch_size=32, epochs=1, verbose=1, callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, *, distributed=None):
        """Train for ``epochs`` epochs; returns a History (also ``model.history``).

        Parameters
        ----------
        x, y : arrays, or a batch source
            Arrays (lists / dicts for several inputs / outputs), or ``x`` a
            :class:`fastrnn.utils.Sequence` or a Python generator of ``(x, y)`` /
            ``(x, y, sample_weight)`` batches (then ``y`` is None); see
            :mod:`fastrnn.models.data`.
        batch_size : int, default 32
            Arrays only.
        epochs : int, default 1
            Training runs epochs ``initial_epoch .. epochs - 1``.
        verbose : {0, 1, 2, "auto"}, default 1
            0 silent, 1 progress bar, 2 one line per epoch. The bar fits the terminal;
            when the output is not a terminal (a log, a pipe), 1 prints one line per epoch
            as 2 does, with no carriage returns.
        callbacks : list of fastrnn.callbacks.Callback, optional
        validation_split : float in [0, 1), default 0
            The LAST fraction of the samples (before shuffling) is held out (arrays only).
        validation_data : tuple or batch source, optional
            ``(x_val, y_val)``, ``(x_val, y_val, sample_weight_val)``, a Sequence or a
            generator (then ``validation_steps`` batches are read, or all of it).
        shuffle : bool, default True
            Reshuffle the samples every pass (arrays only).
        class_weight : dict, optional
            ``{class_id: weight}``: each training sample's loss is multiplied by the weight of
            its class (``fastrnn.losses.class_weight_to_sample_weight``); not with
            ``sample_weight``.
        sample_weight : ndarray, optional
            ``(n,)`` or ``(n, T)`` weights of each sample's (or step's) loss. The weighted
            loss is ``sum(w * loss) / count`` (Keras); metrics are not weighted.
        initial_epoch : int, default 0
            The epoch to start at (to resume a run).
        steps_per_epoch : int, optional
            Batches per epoch (the data is read on across epochs).
        validation_steps : int, optional
            Batches of the validation pass.
        validation_batch_size : int, optional
            Batch size of the validation pass (default ``batch_size``).

        Returns
        -------
        fastrnn.callbacks.History

        Example
        -------
        >>> model.fit(x, y, epochs=10, class_weight={0: 1.0, 1: 4.0})   # doctest: +SKIP

        Notes
        -----
        The loss and metrics logged per epoch are the batch-size-weighted means over the
        epoch's batches (taken before each step); validation values are computed after the
        epoch.

        ``distributed="mpi"`` (run under ``mpiexec``; x, y are this rank's shard): data-parallel
        training, one step per local batch on every rank, gradients averaged over the ranks;
        callbacks and printing on rank 0 only (see fastrnn.distributed.mpi). It takes arrays
        (not Sequences or generators).
        """
        self._require_compiled("fit")
        batch_size = _positive_int(32 if batch_size is None else batch_size, "batch_size")
        val_batch_size = _positive_int(batch_size if validation_batch_size is None
                                       else validation_batch_size, "validation_batch_size")
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs must be an int >= 0, got {epochs!r}")
        if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, (int, np.integer)) \
                or initial_epoch < 0:
            raise ValueError(f"initial_epoch must be an int >= 0, got {initial_epoch!r}")
        if verbose not in (0, 1, 2, "auto"):
            raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
        if verbose == "auto":
            verbose = 1
        if isinstance(validation_split, bool) or not isinstance(validation_split, numbers.Real) \
                or not (0 <= validation_split < 1):
            raise ValueError(f"validation_split must be a number in [0, 1), got "
                             f"{validation_split!r}")
        if class_weight is not None and not isinstance(class_weight, dict):
            raise TypeError(f"class_weight must be a dict {{class_id: weight}}, got "
                            f"{type(class_weight).__name__}")
        if self._shuffle_rng is None:
            self._shuffle_rng = np.random.default_rng(
                None if self.seed is None else np.random.SeedSequence([self.seed, 0x5EED]))
        n = None
        if data_module.is_source(x):
            if y is not None or sample_weight is not None:
                raise ValueError("fit: with a Sequence or generator as x, y and sample_weight "
                                 "come from its batches (pass y=None)")
            if validation_split:
                raise ValueError("fit: validation_split needs arrays; with a Sequence or "
                                 "generator pass validation_data")
            train = data_module.SourceBatches(self, x, steps_per_epoch, "x",
                                              class_weight=class_weight)
            first_x = train.peek_x()
        else:
            x = self._prepare_x(x)
            n = self._n_samples(x)
            y = self._prepare_y(y, n)
            if n == 0:
                raise ValueError("fit: x has no samples")
            sw = data_module.check_sample_weight(sample_weight, n)
            if class_weight is not None and sw is not None:
                raise ValueError("pass either class_weight or sample_weight, not both")
            val_split = None
            if validation_split and validation_data is None:
                split_at = int(math.floor(n * (1.0 - validation_split)))
                if split_at == 0 or split_at == n:
                    raise ValueError(f"validation_split={validation_split} leaves an empty "
                                     f"training or validation set for {n} samples")
                tail = slice(split_at, None)
                val_split = (self._take(x, tail), self._take(y, tail),
                             None if sw is None else sw[tail])
                head = slice(0, split_at)
                x, y = self._take(x, head), self._take(y, head)
                sw = None if sw is None else sw[head]
                n = split_at
            # class weights weight the training loss only (the held-out tail keeps the user's
            # sample weights, as in Keras)
            sw = data_module.with_class_weight(self, y, sw, class_weight)
            train = data_module.ArrayBatches(self, x, y, sw, batch_size, shuffle,
                                             self._shuffle_rng, steps_per_epoch)
            first_x = x
        val = None
        if validation_data is not None:
            val = self._validation_batches(validation_data, val_batch_size, validation_steps)
        elif n is not None and validation_split:
            val = data_module.ArrayBatches(self, *val_split, val_batch_size,
                                           steps=validation_steps, name="validation_steps")
        if distributed is not None and (
                not isinstance(train, data_module.ArrayBatches) or
                (val is not None and not isinstance(val, data_module.ArrayBatches))):
            raise ValueError("fit(distributed=...) takes arrays, not a Sequence or a generator")
        self._ensure_graph(first_x)
        self._assign_seeds()

        dist = distributed
        if dist is not None:     # rank 0 prints and runs the callbacks; all start from its model
            verbose, callbacks = dist.begin_fit(self, train.steps, epochs, initial_epoch,
                                                val is not None, verbose, callbacks)
        history = callbacks_module.History()
        user = callbacks_module.CallbackList(callbacks).callbacks     # checked: a clear TypeError
        cb_list = ([callbacks_module.ProgbarLogger(verbose)] if verbose else []) + user + [history]
        params = {"verbose": verbose, "epochs": epochs, "steps": train.steps,
                  "samples": n, "batch_size": batch_size}
        cbs = callbacks_module.CallbackList(cb_list, model=self, params=params)
        history.params = {"verbose": verbose, "epochs": epochs, "steps": train.steps}
        self.history = history
        self.stop_training = False
        cbs.on_train_begin(None)
        logs = {}
        # SIGINT / SIGTERM: finish the current step, end training as usual, then raise
        # (not for data-parallel training: every rank must take part in every step)
        with _StopOnSignal(enabled=dist is None) as stop:
            for epoch in range(initial_epoch, epochs):
                for m in self.compiled_metrics:
                    m.reset_state()
                cbs.on_epoch_begin(epoch, None)
                total, seen = 0.0, 0
                part_tot = None
                logs = {}
                for step, (xb, yb, swb, nb) in enumerate(train.epoch()):
                    cbs.on_train_batch_begin(step, None)
                    args = (xb, yb) if dist is None else (xb, yb, dist)
                    kw = {} if swb is None else {"sample_weight": swb}
                    loss, out, mask, _ = self._train_step(*args, **kw)
                    parts = getattr(self, "_last_parts", [loss])
                    total += loss * nb
                    part_tot = [None if p is None else
                                p * nb + (0 if part_tot is None else part_tot[i])
                                for i, p in enumerate(parts)]
                    seen += nb
                    if out is not None:       # None: a skipped step whose forward overflowed
                        self._metric_values(yb, out, mask, update=True)
                    logs = self._loss_logs(total / seen, [None if p is None else p / seen
                                                          for p in part_tot])
                    logs.update(self._metric_results())
                    cbs.on_train_batch_end(step, logs)
                    if dist is not None:
                        dist.sync_control(self)
                    if self.stop_training or stop.signum is not None:
                        break
                if stop.signum is not None:       # the epoch is incomplete: not logged
                    break
                if getattr(train, "exhausted", False):
                    data_module.ran_out_warning("the training generator")
                    self.stop_training = True
                    if seen == 0:
                        break
                train.on_epoch_end()
                epoch_logs = dict(logs) if dist is None else dist.global_logs(self, logs, seen)
                if val is not None:
                    val_logs = self._evaluate_batches(val)
                    if dist is not None:
                        val_logs = dist.global_logs(self, val_logs, val.n)
                    epoch_logs.update({"val_" + k: v for k, v in val_logs.items()})
                cbs.on_epoch_end(epoch, epoch_logs)
                logs = epoch_logs
                if dist is not None:
                    dist.sync_control(self)
                if self.stop_training or stop.signum is not None:
                    break
        cbs.on_train_end(logs)
        if dist is not None:
            dist.end_fit(self)
        if stop.signum is not None:
            raise TrainingInterrupted(stop.signum)
        return history

    def _validation_batches(self, validation_data, batch_size, steps):
        if data_module.is_source(validation_data):
            return data_module.SourceBatches(self, validation_data, steps, "validation_data",
                                              name="validation_steps")
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("validation_data must be a tuple (x_val, y_val) or (x_val, y_val, "
                             "sample_weight_val), a Sequence or a generator")
        xv = self._prepare_x(validation_data[0], "validation_data[0]")
        nv = self._n_samples(xv)
        yv = self._prepare_y(validation_data[1], nv, "validation_data[1]")
        if nv == 0:
            raise ValueError("validation_data has no samples")
        swv = data_module.check_sample_weight(
            validation_data[2] if len(validation_data) == 3 else None, nv,
            "validation_data[2] (sample_weight)")
        return data_module.ArrayBatches(self, xv, yv, swv, batch_size, steps=steps,
                                        name="validation_steps")

    # ---- weights and config shortcuts (Keras names) -----------------------------------------
    @property
    def weights(self):
        """The parameter arrays themselves (not copies), in ``get_weights()`` order."""
        return [v for _, v in self.params()]

    def save_weights(self, path):
        """Save the weights only (see :func:`fastrnn.io.save_weights`)."""
        from .. import io
        return io.save_weights(self, path)

    def load_weights(self, path):
        """Load weights saved by :meth:`save_weights` or :meth:`save` (checked against this
        architecture first; see :func:`fastrnn.io.load_weights`)."""
        from .. import io
        return io.load_weights(self, path)

    def to_json(self, **kwargs):
        """The architecture as a JSON string ``{"class_name", "config"}`` (no weights);
        :func:`fastrnn.models.model_from_json` rebuilds it.  ``kwargs`` go to
        ``json.dumps`` (e.g. ``indent=2``)."""
        import json
        from .. import io
        name = io._model_class_name(self) or type(self).__name__
        return json.dumps({"class_name": name, "config": self.get_config()}, allow_nan=False,
                          **kwargs)

    # ---- summary --------------------------------------------------------------------------
    def _summary_rows(self):
        """(layer column, output shape column, param count column, connected-to column)."""
        rows = []
        names = {}
        for layer in self.layers:
            base = layer.name
            k = names.get(id(layer))
            if k is None:
                names[id(layer)] = base
        for t in self._graph.inputs:
            layer = t.node.layer
            rows.append((f"{layer.name} (InputLayer)", _format_shape(t.shape), "0", ""))
        seen = set()
        for node in self._graph.nodes:
            layer = node.layer
            shapes = [t.shape for t in node.outputs]
            shape = _format_shape(shapes if len(shapes) > 1 else shapes[0])
            first = id(layer) not in seen
            seen.add(id(layer))
            pc = str(layer.count_params()) if first else "(shared)"
            conn = ", ".join(t.node.layer.name for t in node.inputs)
            rows.append((f"{layer.name} ({type(layer).__name__})", shape, pc, conn))
        return rows

    def summary(self, line_length=None, print_fn=None):
        """Print the layers (one row per call), their output shapes, parameter counts and
        what each is connected to. ``print_fn`` receives each line (default: print)."""
        if print_fn is None:
            print_fn = print
        rows = self._summary_rows()
        heads = ("Layer (type)", "Output Shape", "Param #", "Connected to")
        w = [max([len(heads[j])] + [len(r[j]) for r in rows]) + 3 for j in range(4)]
        width = line_length or sum(w)
        print_fn(f'Model: "{self.name}"')
        print_fn("_" * width)
        print_fn(f"{heads[0]:<{w[0]}}{heads[1]:<{w[1]}}{heads[2]:>{w[2] - 3}}   {heads[3]}")
        print_fn("=" * width)
        for i, r in enumerate(rows):
            print_fn(f"{r[0]:<{w[0]}}{r[1]:<{w[1]}}{r[2]:>{w[2] - 3}}   {r[3]}")
            if i != len(rows) - 1:
                print_fn("_" * width)
        print_fn("=" * width)
        total = self.count_params()
        frozen = self.count_params(trainable=False)
        print_fn(f"Total params: {total:,}")
        print_fn(f"Trainable params: {total - frozen:,}")
        print_fn(f"Non-trainable params: {frozen:,}")
        print_fn("_" * width)
        return None

    def __repr__(self):
        return (f"Model(name={self.name!r}, inputs={len(self.inputs)}, "
                f"outputs={len(self.outputs)}, layers={[type(l).__name__ for l in self.layers]})")


def model_from_json(json_string):
    """Rebuild a model from :meth:`Model.to_json` (architecture only, fresh weights).

    Only registered model classes (``Sequential``, ``Model``) and allowlisted layers are
    built; nothing named in the string is imported or executed.

    Example
    -------
    >>> m2 = model_from_json(model.to_json())          # doctest: +SKIP
    """
    import json
    from .. import io
    if not isinstance(json_string, (str, bytes)):
        raise TypeError(f"json_string must be a str, got {type(json_string).__name__}")
    try:
        spec = json.loads(json_string)
    except ValueError as exc:
        raise ValueError(f"model_from_json: not valid JSON: {exc}") from None
    if not isinstance(spec, dict) or set(spec) != {"class_name", "config"} or \
            not isinstance(spec["config"], dict):
        raise ValueError("model_from_json: expected a JSON object {'class_name', 'config'}")
    cls = io.MODEL_REGISTRY.get(spec["class_name"]) if isinstance(spec["class_name"], str) \
        else None
    if cls is None:
        raise ValueError(f"model_from_json: unknown model class {str(spec['class_name'])[:100]!r}"
                         f"; expected one of {sorted(io.MODEL_REGISTRY)}")
    return cls.from_config(spec["config"])
