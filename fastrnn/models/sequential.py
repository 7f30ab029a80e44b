"""Sequential: a Keras-shaped stack of layers, the chain special case of :class:`Model`.

Layers are added with ``add`` (or the constructor's list) and built when the input shape is
known (from an ``Input``, a first layer's ``input_size``, or the first data). The built stack
is laid out as a chain graph and runs through :class:`~fastrnn.models.model.Model`'s training
loop: masks, fused softmax/sigmoid + cross-entropy gradients, non-finite step skipping and
seeding behave the same for both (see :mod:`fastrnn.models.model`).
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np

from ..layers import Layer, serialize, deserialize
from ..layers.core import InputLayer
from ..layers.dropout import Dropout
from ..layers.embedding import Embedding
from .graph import Graph, SymbolicTensor, _input_tensor, node_from_chain
from .model import (Model, _check_seed_and_name, _derive_seed, _format_shape,
                    _fresh_unseeded, _to_array)

__all__ = ["Sequential"]


class Sequential(Model):
    """A linear stack of layers.

    ``Sequential(layers=None, name=None, seed=None)``; ``add`` / ``pop``; ``compile(optimizer,
    loss, metrics)``; ``fit`` -> :class:`fastrnn.callbacks.History`; ``evaluate``; ``predict``;
    ``train_on_batch`` / ``test_on_batch``; ``summary``; ``get_config`` / ``from_config``;
    ``get_weights`` / ``set_weights``; ``params()`` -> (``"layers.{i}.{name}"``, array) pairs;
    ``save(path)`` (see :func:`fastrnn.load_model`).

    Parameters
    ----------
    layers : Layer or sequence of Layer, optional
        The stack, first layer first (more with :meth:`add`).
    name : str, optional
        Model name (default "sequential").
    seed : int, optional
        Seeds the layers that have no seed of their own, the Dropout masks and the batch
        shuffling, so a run is reproducible.

    Notes
    -----
    Shapes: inputs are batch-first, ``(B, T, F)`` floats for a recurrent first layer or
    ``(B, T)`` integer ids for an :class:`~fastrnn.layers.embedding.Embedding`; targets match
    the last layer's output (class ids for ``sparse_categorical_crossentropy``).

    Examples
    --------
    >>> import numpy as np, fastrnn as fr
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((64, 12, 3)).astype("float32")
    >>> y = (x[:, :, 0].sum(axis=1) > 0).astype("int64")
    >>> model = fr.Sequential([fr.LSTM(16), fr.Dense(2, activation="softmax")], seed=0)
    >>> model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    >>> history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    >>> model.predict(x[:5]).shape
    (5, 2)
    """

    def __init__(self, layers: Optional[Union[Layer, Sequence[Layer]]] = None,
                 name: Optional[str] = None, seed: Optional[int] = None) -> None:
        _check_seed_and_name(seed, name)
        super().__init__(name=name or "sequential", seed=seed)
        self._layers = []
        self._input_shape = None          # per-model input shape with batch axis, e.g. (None, T, F)
        self._input_dtype = None
        self._output_shape = None
        if layers is not None:
            if isinstance(layers, Layer):
                layers = [layers]
            if not isinstance(layers, (list, tuple)):
                raise TypeError(f"layers must be a list of fastrnn layers, got "
                                f"{type(layers).__name__}")
            for layer in layers:
                self.add(layer)

    # ---- structure ------------------------------------------------------------------------
    @property
    def layers(self):
        return list(self._layers)

    @property
    def dtype(self):
        for layer in self._layers:
            return layer.dtype.name
        return "float32"

    @property
    def built(self):
        return bool(self._layers) and all(l.built for l in self._layers) and \
            self._output_shape is not None

    def add(self, layer):
        """Append a layer. ``Input(shape)`` as the first entry fixes the input shape instead."""
        if isinstance(layer, SymbolicTensor) and isinstance(layer.node.layer, InputLayer):
            layer = layer.node.layer          # fastrnn.Input(shape) fixes the input shape
        if not isinstance(layer, Layer):
            raise TypeError(f"add: layer must be a fastrnn Layer instance, got "
                            f"{type(layer).__name__}")
        if isinstance(layer, InputLayer):
            if self._layers or self._input_shape is not None:
                raise ValueError("add: an Input layer can only come first")
            self._input_shape = (None,) + tuple(layer.shape)
            self._input_dtype = layer.input_dtype
            return
        if getattr(layer, "return_state", False):
            raise ValueError(f"add: {type(layer).__name__} has return_state=True; a Sequential "
                             f"model passes a single array between layers")
        if any(l is layer for l in self._layers):
            raise ValueError(f"add: this {type(layer).__name__} instance is already in the model")
        if isinstance(layer, Embedding) and self._layers:
            raise ValueError("add: Embedding must be the first layer (it takes integer ids)")
        self._reseed_fresh(layer, len(self._layers))
        self._layers.append(layer)
        self._output_shape = None
        self._graph = None
        try:
            self._try_build()
        except Exception:
            self._layers.pop()
            raise

    def pop(self):
        """Remove and return the last layer."""
        if not self._layers:
            raise ValueError("pop: the model has no layers")
        layer = self._layers.pop()
        self._output_shape = None
        self._graph = None
        if self._layers:
            self._try_build()
        return layer

    def _reseed_fresh(self, layer, index):
        """With a model seed, a layer that was built at construction (input_size=...) without
        a seed and never given weights is re-initialised from a seed derived from the model's,
        so ``Sequential(seed=...)`` is reproducible whichever way the layer was declared."""
        if self.seed is None or layer.seed is not None:
            return
        seed = _derive_seed(self.seed, index)
        from ..layers.bidirectional import Bidirectional
        if isinstance(layer, Bidirectional):
            layer.reseed_if_fresh(seed)
        elif layer.built and _fresh_unseeded(layer) and getattr(layer, "input_size", None):
            layer.seed = seed
            layer.build((None, None, layer.input_size))

    def _assign_seeds(self):
        if self.seed is None:
            return
        for i, layer in enumerate(self._layers):
            if layer.seed is not None:
                continue
            if isinstance(layer, Dropout):
                if layer._gen is None:
                    layer.seed = _derive_seed(self.seed, i)
            elif not layer.built:
                layer.seed = _derive_seed(self.seed, i)

    def _infer_input_shape(self):
        if self._input_shape is not None:
            return self._input_shape
        if not self._layers:
            return None
        first = self._layers[0]
        if getattr(first, "batch_input_shape", None) is not None:    # Keras's input_shape=
            return first.batch_input_shape
        if isinstance(first, Embedding):
            return (None, None)
        size = getattr(first, "input_size", None)
        if size is not None:
            from ..layers.recurrent import RecurrentLayer
            from ..layers.bidirectional import Bidirectional
            if isinstance(first, (RecurrentLayer, Bidirectional)):
                return (None, None, size)
            return (None, size)
        return None

    def _try_build(self):
        shape = self._infer_input_shape()
        if shape is not None:
            self.build(shape)

    def build(self, input_shape):
        """Create every layer's parameters for inputs of ``input_shape`` (batch axis included,
        e.g. ``(None, T, F)``; None for unknown sizes)."""
        if not self._layers:
            raise ValueError("build: the model has no layers")
        if not isinstance(input_shape, (tuple, list)) or len(input_shape) < 1:
            raise ValueError(f"build: input_shape must be a tuple with the batch axis first, got "
                             f"{input_shape!r}")
        shape = tuple(None if s is None else int(s) for s in input_shape)
        self._graph = None
        self._assign_seeds()
        for i, layer in enumerate(self._layers):
            if not layer.built:
                if not isinstance(layer, Embedding) and shape[-1] is None:
                    raise ValueError(f"build: the feature size reaching {type(layer).__name__} "
                                     f"is unknown (input_shape {input_shape})")
                layer.build(shape)
            elif not isinstance(layer, Embedding):
                size = getattr(layer, "input_size", None)
                if size is not None and shape[-1] is not None and shape[-1] != size:
                    raise ValueError(f"layer {i} ({type(layer).__name__}) takes {size} input "
                                     f"features, but the previous layer gives {shape[-1]} "
                                     f"(shape {shape})")
            shape = layer.compute_output_shape(shape)
            shape = tuple(shape)
        self._input_shape = tuple(None if i == 0 else s for i, s in
                                  enumerate(tuple(None if s is None else int(s) for s in input_shape)))
        self._output_shape = shape

    def _output_shapes(self):
        """Per-layer output shapes, or None per layer when they cannot be known yet."""
        shape = self._infer_input_shape()
        out = []
        for layer in self._layers:
            if shape is None:
                out.append(None)
                continue
            try:
                shape = tuple(layer.compute_output_shape(shape))
            except Exception:
                shape = None
            out.append(shape)
        return out

    # ---- config ---------------------------------------------------------------------------
    def get_config(self):
        cfg = {
            "name": self.name,
            "layers": [serialize(l) for l in self._layers],
            "build_input_shape": None if self._input_shape is None else list(self._input_shape),
        }
        if self.seed is not None:
            cfg["seed"] = self.seed
        return cfg

    @classmethod
    def from_config(cls, config):
        """Rebuild an (uncompiled) model from ``get_config()``; layers come only from
        fastrnn.layers.LAYER_REGISTRY."""
        if not isinstance(config, dict):
            raise ValueError(f"from_config: config must be a dict, got {type(config).__name__}")
        unknown = set(config) - {"name", "layers", "build_input_shape", "seed"}
        if unknown:
            raise ValueError(f"from_config: unknown keys {sorted(unknown)}")
        layer_cfgs = config.get("layers", [])
        if not isinstance(layer_cfgs, list):
            raise ValueError(f"from_config: 'layers' must be a list, got {type(layer_cfgs).__name__}")
        model = cls([deserialize(c) for c in layer_cfgs], name=config.get("name"),
                    seed=config.get("seed"))
        shape = config.get("build_input_shape")
        if shape is not None:
            if not isinstance(shape, (list, tuple)) or not all(
                    s is None or (isinstance(s, int) and not isinstance(s, bool) and s > 0)
                    for s in shape[1:]):
                raise ValueError(f"from_config: bad build_input_shape {shape!r}")
            if model._layers:
                model.build(tuple(shape))
            else:
                model._input_shape = tuple(shape)
        return model

    def _prepare_x(self, x, name="x"):
        if not self._layers:
            raise TypeError(f"{self.name} has no layers: add layers (Sequential([...]) or "
                            f"model.add(layer)) before passing it data")
        x = _to_array(x, name)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be a numeric array, got dtype {x.dtype}")
        if x.ndim == 0:
            raise ValueError(f"{name} must have a batch axis, got a scalar")
        if x.shape[0] == 0:
            raise ValueError(f"{name} has no samples (shape {x.shape})")
        first = self._layers[0] if self._layers else None
        if not isinstance(first, Embedding):
            if x.dtype.kind != "f" or x.dtype != first.dtype:
                x = x.astype(first.dtype if first is not None else np.float32)
            if not np.isfinite(x).all():
                bad = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
                raise ValueError(f"{name} must be finite, got {x[bad]} at index {bad}")
        return x

    def _output_dtype(self, k):
        return self.dtype

    def _ensure_graph(self, x):
        """Build the layers for ``x``'s shape if needed and lay them out as a chain graph."""
        if not self._layers:
            raise ValueError("the model has no layers")
        if not self.built:
            shape = (None,) + tuple(np.shape(x)[1:])
            if self._input_shape is not None and len(self._input_shape) == len(shape):
                shape = self._input_shape
            self.build(shape)
        if self._graph is None:
            first = self._layers[0]
            dtype = self._input_dtype or ("int64" if isinstance(first, Embedding)
                                          else first.dtype.name)
            inp = InputLayer(tuple(self._input_shape[1:]) or (None,), dtype=dtype,
                             name="input")
            t = x_in = _input_tensor(inp)
            for layer in self._layers:
                t = node_from_chain(layer, t)
            self._graph = Graph([x_in], [t])
        return self._graph

    # ---- summary --------------------------------------------------------------------------
    def summary(self, line_length=None, print_fn=None):
        """Print the layers, their output shapes and parameter counts. ``print_fn`` receives
        each line (default: print)."""
        if print_fn is None:
            print_fn = print
        if not self.built:
            self._try_build()
        shapes = self._output_shapes()
        counts = {}
        rows = []
        for layer, shape in zip(self._layers, shapes):
            cls = type(layer).__name__
            base = layer.name
            k = counts.get(base, 0)
            counts[base] = k + 1
            lname = base if k == 0 else f"{base}_{k}"
            if layer.built:
                pc = str(layer.count_params())
            else:
                pc = "0 (unbuilt)"
            rows.append((f"{lname} ({cls})", "?" if shape is None else _format_shape(shape), pc))
        w1 = max([len("Layer (type)")] + [len(r[0]) for r in rows]) + 3
        w2 = max([len("Output Shape")] + [len(r[1]) for r in rows]) + 3
        w3 = max([len("Param #")] + [len(r[2]) for r in rows])
        width = line_length or (w1 + w2 + w3)
        print_fn(f'Model: "{self.name}"')
        print_fn("_" * width)
        print_fn(f"{'Layer (type)':<{w1}}{'Output Shape':<{w2}}{'Param #':>{w3}}")
        print_fn("=" * width)
        for i, (a, b, c) in enumerate(rows):
            print_fn(f"{a:<{w1}}{b:<{w2}}{c:>{w3}}")
            if i != len(rows) - 1:
                print_fn("_" * width)
        print_fn("=" * width)
        total = sum(l.count_params() for l in self._layers if l.built)
        frozen = sum(l.count_params() for l in self._layers if l.built and not l.trainable)
        print_fn(f"Total params: {total:,}")
        print_fn(f"Trainable params: {total - frozen:,}")
        print_fn(f"Non-trainable params: {frozen:,}")
        print_fn("_" * width)
        return None

    def __repr__(self):
        return f"Sequential(name={self.name!r}, layers={[type(l).__name__ for l in self._layers]})"
