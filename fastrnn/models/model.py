"""Sequential: a Keras-shaped stack of layers with compile / fit / evaluate / predict.

Masks flow through the stack: ``Embedding(mask_zero=True)`` (or ``Masking``) produces a (B, T)
mask, recurrent layers take it as ``mask=`` and pass it on when they return sequences, Dense
and Dropout pass it through. When the model output is a sequence (B, T, C) and a mask reaches
the end, the loss and the metrics average over the valid steps only (padded steps get zero
gradient), as in Keras.

Training steps are never applied when they are not finite: a NaN/Inf loss or gradient skips the
step (counted in ``model.skipped_steps``); ``callbacks.TerminateOnNaN`` stops training then.

With ``seed=`` training is reproducible: layers without their own seed get seeds derived from
it (initialisation and Dropout masks) and batch shuffling uses a generator derived from it.
"""

import math
import numbers

import numpy as np

from .. import callbacks as callbacks_module
from .. import losses as losses_module
from .. import metrics as metrics_module
from ..layers import Layer, serialize, deserialize
from ..layers.core import Dense, InputLayer
from ..layers.dropout import Dropout
from ..layers.embedding import Embedding
from ..distributed import entry_point as _distributed_entry, is_dask_array as _is_dask_array

__all__ = ["Sequential"]


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


class Sequential:
    """A linear stack of layers.

    ``Sequential(layers=None, name=None, seed=None)``; ``add`` / ``pop``; ``compile(optimizer,
    loss, metrics)``; ``fit`` -> :class:`fastrnn.callbacks.History`; ``evaluate``; ``predict``;
    ``train_on_batch`` / ``test_on_batch``; ``summary``; ``get_config`` / ``from_config``;
    ``get_weights`` / ``set_weights``; ``params()`` -> (``"layers.{i}.{name}"``, array) pairs;
    ``save(path)`` (see :func:`fastrnn.load_model`).
    """

    def __init__(self, layers=None, name=None, seed=None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                                 or seed < 0):
            raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {type(name).__name__}")
        self.name = name or "sequential"
        self.seed = None if seed is None else int(seed)
        self._layers = []
        self._input_shape = None          # per-model input shape with batch axis, e.g. (None, T, F)
        self._input_dtype = None
        self._output_shape = None
        self.optimizer = None
        self.loss = None
        self.compiled_metrics = []
        self.stop_training = False
        self.history = None
        self.skipped_steps = 0
        self._shuffle_rng = None
        self._compiled = False
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

    def get_layer(self, name=None, index=None):
        """A layer by index or by name (the first with that name)."""
        if (name is None) == (index is None):
            raise ValueError("get_layer: give exactly one of name= or index=")
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
                raise TypeError(f"get_layer: index must be an int, got {index!r}")
            if not -len(self._layers) <= index < len(self._layers):
                raise ValueError(f"get_layer: index {index} out of range for "
                                 f"{len(self._layers)} layers")
            return self._layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"get_layer: no layer named {name!r}; layers: "
                         f"{[l.name for l in self._layers]}")

    def add(self, layer):
        """Append a layer. ``Input(shape)`` as the first entry fixes the input shape instead."""
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

    # ---- parameters -----------------------------------------------------------------------
    def params(self):
        """Iterate ``("layers.{i}.{name}", array)`` over every parameter, in order."""
        for i, layer in enumerate(self._layers):
            for k, v in layer.params.items():
                yield f"layers.{i}.{k}", v

    def grads(self):
        """Iterate ``("layers.{i}.{name}", gradient)`` after a training step."""
        for i, layer in enumerate(self._layers):
            for k in layer.params:
                g = layer.grads.get(k)
                if g is not None:
                    yield f"layers.{i}.{k}", g

    def count_params(self):
        return int(sum(v.size for _, v in self.params()))

    def get_weights(self):
        """Copies of every parameter array, in ``params()`` order."""
        return [np.array(v, copy=True) for _, v in self.params()]

    def set_weights(self, weights):
        """Set every parameter from a list in ``get_weights()`` order. Everything is checked
        before anything is changed."""
        entries = [(layer, k) for layer in self._layers for k in layer.params]
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

    def save(self, path, **kw):
        """Save architecture and weights (see fastrnn.io.save_model)."""
        from .. import io
        return io.save_model(self, path, **kw)

    # ---- compile --------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        """Set the optimizer (name or fastrnn.optimizers object), the loss (name or
        fastrnn.losses object) and the metrics (list of names or fastrnn.metrics objects)."""
        from .. import optimizers as optimizers_module
        if loss is None:
            raise ValueError("compile: loss is required (e.g. loss='mse')")
        if isinstance(optimizer, str) or optimizer is None or isinstance(optimizer, dict):
            optimizer = optimizers_module.get("rmsprop" if optimizer is None else optimizer)
        elif not callable(getattr(optimizer, "apply", None)):
            raise TypeError(f"compile: optimizer must be a name or an optimizer with an apply() "
                            f"method, got {type(optimizer).__name__}")
        loss_obj = losses_module.get(loss)
        if metrics is None:
            metrics = []
        elif isinstance(metrics, (str, metrics_module.Metric)):
            metrics = [metrics]
        elif not isinstance(metrics, (list, tuple)):
            raise TypeError(f"compile: metrics must be a list of metric names or Metric objects, "
                            f"got {type(metrics).__name__}")
        metric_objs = [metrics_module.get(m, loss=loss_obj) for m in metrics]
        names = [m.name for m in metric_objs]
        if len(set(names)) != len(names) or "loss" in names:
            raise ValueError(f"compile: metric names must be unique and not 'loss', got {names}")
        self.optimizer = optimizer
        self.loss = loss_obj
        self.compiled_metrics = metric_objs
        self._compiled = True

    def get_compile_config(self):
        """JSON-able ``compile()`` arguments except the optimizer (saved separately by io):
        ``{"loss": {...}, "metrics": [...]}``; None when not compiled."""
        if not self._compiled:
            return None
        return {"loss": losses_module.serialize(self.loss),
                "metrics": [metrics_module.serialize(m) for m in self.compiled_metrics]}

    def _require_compiled(self, what):
        if not self._compiled:
            raise RuntimeError(f"{what}: the model must be compiled first: call "
                               f"model.compile(optimizer=..., loss=...)")

    def _fused_loss(self):
        """The logits twin of the loss when the last layer's activation can be fused with it."""
        if not self._layers:
            return None
        last = self._layers[-1]
        loss = self.loss
        if not isinstance(last, Dense) or getattr(loss, "from_logits", True):
            return None
        if last.activation == "softmax" and isinstance(
                loss, (losses_module.CategoricalCrossentropy,
                       losses_module.SparseCategoricalCrossentropy)):
            return type(loss)(from_logits=True)
        if last.activation == "sigmoid" and isinstance(loss, losses_module.BinaryCrossentropy):
            return losses_module.BinaryCrossentropy(from_logits=True)
        return None

    # ---- running ------------------------------------------------------------------------
    def _prepare_x(self, x, name="x"):
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

    def _prepare_y(self, y, n, name="y"):
        y = _to_array(y, name)
        if y.ndim == 0 or y.shape[0] != n:
            raise ValueError(f"{name} must have the same number of samples as x ({n}), got "
                             f"shape {y.shape}")
        if y.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be a numeric array, got dtype {y.dtype}")
        if not isinstance(self.loss, losses_module.SparseCategoricalCrossentropy):
            y = y.astype(self.dtype, copy=False)
            if not np.isfinite(y).all():
                raise ValueError(f"{name} must be finite")
        return y

    def _forward(self, x, training):
        if not self._layers:
            raise ValueError("the model has no layers")
        if not self.built:
            shape = (None,) + tuple(x.shape[1:])
            if self._input_shape is not None and len(self._input_shape) == len(shape):
                shape = self._input_shape
            self.build(shape)
        mask = None
        for layer in self._layers:
            if layer.supports_masking:
                out = layer.forward(x, training=training, mask=mask)
            else:
                out = layer.forward(x, training=training)
            mask = layer.compute_mask(x, mask)
            x = out
        return x, mask

    def __call__(self, x, training=False):
        x = self._prepare_x(x)
        return self._forward(x, training)[0]

    def _loss_on(self, y, out, mask, with_grad):
        fused = self._fused_loss()
        if fused is not None:
            logits = self._layers[-1].last_logits
            if with_grad:
                return fused.loss_and_gradient(y, logits, mask)
            return fused.loss(y, logits, mask), None
        if with_grad:
            return self.loss.loss_and_gradient(y, out, mask)
        return self.loss.loss(y, out, mask), None

    def _train_step(self, x, y, distributed=None):
        """One step on prepared arrays. Returns (loss, output, mask, applied).
        ``distributed`` (a fastrnn.distributed context) averages the gradients and the loss
        over the ranks between backward and the optimizer step."""
        out, mask = self._forward(x, training=True)
        loss, d = self._loss_on(y, out, mask, with_grad=True)
        raise_mode = getattr(self.optimizer, "on_nonfinite", "skip") == "raise"
        if distributed is None and not math.isfinite(loss):
            if raise_mode:
                from ..optimizers import NonFiniteGradientError
                raise NonFiniteGradientError(f"the loss is not finite ({loss}); no step was "
                                             f"applied")
            self.skipped_steps += 1
            return loss, out, mask, False
        fused = self._fused_loss() is not None
        n = len(self._layers)
        for i in range(n - 1, -1, -1):
            layer = self._layers[i]
            if i == n - 1 and fused:
                d = layer.backward(d, from_logits=True)
            else:
                d = layer.backward(d)
            if d is None:
                break
        items = []
        for i, layer in enumerate(self._layers):
            for k, p in layer.params.items():
                items.append((f"layers.{i}.{k}", p, layer.grads[k]))
        if distributed is not None:     # every rank reduces, then decides alike on the result
            items, loss = distributed.reduce(self, items, loss, out, mask)
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
    def train_on_batch(self, x, y, return_dict=False, *, distributed=None):
        """One optimizer step on one batch; returns the loss (before the step) as a float, or a
        dict with the loss and the metrics on this batch with ``return_dict=True``.
        ``distributed="mpi"``: this rank's batch of a data-parallel step (see
        fastrnn.distributed.mpi); the loss returned is the step's loss over all ranks."""
        self._require_compiled("train_on_batch")
        x = self._prepare_x(x)
        y = self._prepare_y(y, x.shape[0])
        if distributed is not None:
            distributed.ensure_synced(self)
        loss, out, mask, _ = self._train_step(x, y, distributed)
        if return_dict:
            logs = {"loss": loss}
            for m in self.compiled_metrics:
                logs[m.name] = m(y, out, mask)
            return logs
        return float(loss)

    def test_on_batch(self, x, y, return_dict=False):
        """Loss (and with ``return_dict=True`` the metrics) on one batch, without training."""
        self._require_compiled("test_on_batch")
        x = self._prepare_x(x)
        y = self._prepare_y(y, x.shape[0])
        out, mask = self._forward(x, training=False)
        loss, _ = self._loss_on(y, out, mask, with_grad=False)
        if return_dict:
            logs = {"loss": loss}
            for m in self.compiled_metrics:
                logs[m.name] = m(y, out, mask)
            return logs
        return float(loss)

    def _batches(self, n, batch_size):
        return [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]

    def _evaluate_arrays(self, x, y, batch_size, callbacks=None, verbose=0):
        for m in self.compiled_metrics:
            m.reset_state()
        n = x.shape[0]
        batches = self._batches(n, batch_size)
        total, seen = 0.0, 0
        bar = callbacks_module.Progbar(len(batches), verbose) if verbose else None
        logs = {}
        for step, (a, b) in enumerate(batches):
            if callbacks is not None:
                callbacks.on_test_batch_begin(step, None)
            out, mask = self._forward(x[a:b], training=False)
            loss, _ = self._loss_on(y[a:b], out, mask, with_grad=False)
            total += loss * (b - a)
            seen += b - a
            for m in self.compiled_metrics:
                m.update_state(y[a:b], out, mask)
            logs = {"loss": total / seen}
            logs.update({m.name: m.result() for m in self.compiled_metrics})
            if callbacks is not None:
                callbacks.on_test_batch_end(step, logs)
            if bar is not None and verbose == 1:
                bar.update(step + 1, logs)
        if bar is not None:
            bar.update(len(batches), logs, final=True)
        return logs

    def evaluate(self, x, y, batch_size=32, verbose=0, callbacks=None, return_dict=False):
        """Loss (and metrics) over ``x, y`` in batches: returns the loss, ``[loss, *metrics]``
        when metrics were compiled, or a dict with ``return_dict=True``."""
        self._require_compiled("evaluate")
        batch_size = _positive_int(32 if batch_size is None else batch_size, "batch_size")
        x = self._prepare_x(x)
        y = self._prepare_y(y, x.shape[0])
        if x.shape[0] == 0:
            raise ValueError("evaluate: x has no samples")
        cbs = callbacks_module.CallbackList(callbacks, model=self, params={
            "verbose": verbose, "steps": math.ceil(x.shape[0] / batch_size)})
        cbs.on_test_begin(None)
        logs = self._evaluate_arrays(x, y, batch_size, cbs, verbose)
        cbs.on_test_end(logs)
        if return_dict:
            return logs
        if self.compiled_metrics:
            return [logs["loss"]] + [logs[m.name] for m in self.compiled_metrics]
        return logs["loss"]

    def predict(self, x, batch_size=32, verbose=0, callbacks=None):
        """Model outputs for ``x``, computed in batches of ``batch_size`` (inference mode).
        A ``dask.array`` ``x`` gives a lazy dask array (fastrnn.distributed.predict)."""
        batch_size = _positive_int(32 if batch_size is None else batch_size, "batch_size")
        if _is_dask_array(x):
            from ..distributed import predict as _dask_predict
            return _dask_predict(self, x, batch_size=batch_size)
        x = self._prepare_x(x)
        n = x.shape[0]
        if n == 0:
            raise ValueError("predict: x has no samples")
        batches = self._batches(n, batch_size)
        cbs = callbacks_module.CallbackList(callbacks, model=self,
                                            params={"verbose": verbose, "steps": len(batches)})
        cbs.on_predict_begin(None)
        bar = callbacks_module.Progbar(len(batches), verbose) if verbose else None
        outs = []
        for step, (a, b) in enumerate(batches):
            cbs.on_predict_batch_begin(step, None)
            out, _ = self._forward(x[a:b], training=False)
            outs.append(out)
            cbs.on_predict_batch_end(step, {"outputs": out})
            if bar is not None and verbose == 1:
                bar.update(step + 1)
        if bar is not None:
            bar.update(len(batches), final=True)
        cbs.on_predict_end(None)
        return np.concatenate(outs, axis=0)

    @_distributed_entry
    def fit(self, x=None, y=None, batch_size=32, epochs=1, verbose=1, callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, initial_epoch=0, *,
            distributed=None):
        """Train for ``epochs`` epochs; returns a History (also ``model.history``).

        ``validation_split`` holds out the LAST fraction of the samples (before shuffling);
        ``validation_data=(x_val, y_val)`` overrides it. ``verbose``: 0 silent, 1 progress bar,
        2 one line per epoch. The loss and metrics logged per epoch are the batch-size-weighted
        means over the epoch's batches (taken before each step), validation values are computed
        after the epoch.

        ``distributed="mpi"`` (run under ``mpiexec``; x, y are this rank's shard): data-parallel
        training, one step per local batch on every rank, gradients averaged over the ranks;
        callbacks and printing on rank 0 only (see fastrnn.distributed.mpi).
        """
        self._require_compiled("fit")
        batch_size = _positive_int(32 if batch_size is None else batch_size, "batch_size")
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
        x = self._prepare_x(x)
        y = self._prepare_y(y, x.shape[0])
        n = x.shape[0]
        if n == 0:
            raise ValueError("fit: x has no samples")
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a tuple (x_val, y_val)")
            xv = self._prepare_x(validation_data[0], "validation_data[0]")
            yv = self._prepare_y(validation_data[1], xv.shape[0], "validation_data[1]")
            if xv.shape[0] == 0:
                raise ValueError("validation_data has no samples")
            val = (xv, yv)
        elif validation_split:
            split_at = int(math.floor(n * (1.0 - validation_split)))
            if split_at == 0 or split_at == n:
                raise ValueError(f"validation_split={validation_split} leaves an empty training "
                                 f"or validation set for {n} samples")
            val = (x[split_at:], y[split_at:])
            x, y = x[:split_at], y[:split_at]
            n = split_at
        if self._shuffle_rng is None:
            self._shuffle_rng = np.random.default_rng(
                None if self.seed is None else np.random.SeedSequence([self.seed, 0x5EED]))
        if not self.built:
            shape = (None,) + tuple(x.shape[1:])
            self.build(shape)
        self._assign_seeds()

        batches = self._batches(n, batch_size)
        dist = distributed
        if dist is not None:     # rank 0 prints and runs the callbacks; all start from its model
            verbose, callbacks = dist.begin_fit(self, len(batches), epochs, initial_epoch,
                                                val is not None, verbose, callbacks)
        history = callbacks_module.History()
        user = list(callbacks) if callbacks is not None else []
        cb_list = ([callbacks_module.ProgbarLogger(verbose)] if verbose else []) + user + [history]
        params = {"verbose": verbose, "epochs": epochs, "steps": len(batches),
                  "samples": n, "batch_size": batch_size}
        cbs = callbacks_module.CallbackList(cb_list, model=self, params=params)
        history.params = {"verbose": verbose, "epochs": epochs, "steps": len(batches)}
        self.history = history
        self.stop_training = False
        cbs.on_train_begin(None)
        logs = {}
        for epoch in range(initial_epoch, epochs):
            for m in self.compiled_metrics:
                m.reset_state()
            cbs.on_epoch_begin(epoch, None)
            order = self._shuffle_rng.permutation(n) if shuffle else None
            total, seen = 0.0, 0
            logs = {}
            for step, (a, b) in enumerate(batches):
                cbs.on_train_batch_begin(step, None)
                if order is not None:
                    idx = order[a:b]
                    xb, yb = x[idx], y[idx]
                else:
                    xb, yb = x[a:b], y[a:b]
                loss, out, mask, _ = self._train_step(xb, yb, dist)
                total += loss * (b - a)
                seen += b - a
                for m in self.compiled_metrics:
                    m.update_state(yb, out, mask)
                logs = {"loss": total / seen}
                logs.update({m.name: m.result() for m in self.compiled_metrics})
                cbs.on_train_batch_end(step, logs)
                if dist is not None:
                    dist.sync_control(self)
                if self.stop_training:
                    break
            epoch_logs = dict(logs) if dist is None else dist.epoch_logs(self, total, seen)
            if val is not None:
                val_logs = self._evaluate_arrays(val[0], val[1], batch_size)
                if dist is not None:
                    val_logs = dist.validation_logs(self, val_logs, val[0].shape[0])
                epoch_logs.update({"val_" + k: v for k, v in val_logs.items()})
            cbs.on_epoch_end(epoch, epoch_logs)
            logs = epoch_logs
            if dist is not None:
                dist.sync_control(self)
            if self.stop_training:
                break
        cbs.on_train_end(logs)
        if dist is not None:
            dist.end_fit(self)
        return history

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
        print_fn(f"Total params: {total:,}")
        print_fn(f"Trainable params: {total:,}")
        print_fn("Non-trainable params: 0")
        print_fn("_" * width)
        return None

    def __repr__(self):
        return f"Sequential(name={self.name!r}, layers={[type(l).__name__ for l in self._layers]})"
