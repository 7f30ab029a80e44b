"""Bidirectional wrapper around SimpleRNN / LSTM / GRU (Keras semantics, PyTorch parameters)."""

from collections.abc import MutableMapping

import numpy as np

from .base import Layer
from .recurrent import RecurrentLayer

__all__ = ["Bidirectional"]

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _derived_seed(seed):
    if seed is None:
        return None
    return int(np.random.SeedSequence([int(seed), 0xB1D]).generate_state(1)[0])


class _PrefixedParams(MutableMapping):
    """``params`` of a Bidirectional: ``forward_<name>`` / ``backward_<name>`` views onto the two
    wrapped layers' own parameter dicts. Reading gives the wrapped layer's array itself (so
    in-place optimizer updates reach it); assigning copies into it with its shape check."""

    def __init__(self, owner):
        self._owner = owner

    def _split(self, key):
        for prefix, layer in (("forward_", self._owner.forward_layer),
                              ("backward_", self._owner.backward_layer)):
            if isinstance(key, str) and key.startswith(prefix) and key[len(prefix):] in layer.params:
                return layer, key[len(prefix):]
        raise KeyError(f"unknown parameter {key!r}; this layer has {list(self)}")

    def __getitem__(self, key):
        layer, name = self._split(key)
        return layer.params[name]

    def __setitem__(self, key, value):
        layer, name = self._split(key)
        layer.params[name] = value

    def __delitem__(self, key):
        raise TypeError("parameters of a layer cannot be deleted")

    def __iter__(self):
        o = self._owner
        for prefix, layer in (("forward_", o.forward_layer), ("backward_", o.backward_layer)):
            for name in layer.params:
                yield prefix + name

    def __len__(self):
        o = self._owner
        return len(o.forward_layer.params) + len(o.backward_layer.params)

    def __repr__(self):
        return "{" + ", ".join(f"{k!r}: array{self[k].shape}" for k in self) + "}"


class Bidirectional(Layer):
    """Run a recurrent layer forwards and a copy of it backwards over the sequence and merge.

    ``Bidirectional(LSTM(64, return_sequences=True), merge_mode="concat")``. The wrapped layer
    is cloned from its config into ``forward_layer`` (its weights copied if it was built) and
    ``backward_layer`` (``go_backwards`` flipped, independent initialisation; with a seed it gets
    a seed derived from it). The backward copy's output sequence is flipped back to the original
    time order before merging, as in Keras and PyTorch, so with ``merge_mode="concat"`` the
    output equals ``torch.nn.LSTM(bidirectional=True, batch_first=True)``'s, whose
    ``*_l0_reverse`` parameters correspond to ``backward_*`` here.

    merge_mode: "concat" (last axis 2*units), "sum", "mul", "ave", or None (Keras: the output
    is the list ``[y_forward, y_backward]``, and ``backward`` takes such a list).
    ``backward_layer``: optionally the layer to run backwards (Keras's argument): a recurrent
    layer of the same class and units with ``go_backwards`` opposite to ``layer``'s; it is
    cloned from its config (and its weights copied if built), like ``layer``.
    ``params`` keys: ``forward_weight_ih``, ..., ``backward_bias_hh``.
    ``initial_state``: a list of the forward states then the backward states
    (``[h_f, h_b]`` or ``[h_f, c_f, h_b, c_b]``). With the wrapped layer's ``return_state=True``,
    forward returns ``[out, h_f(, c_f), h_b(, c_b)]`` and backward accepts
    ``d_state`` in the same order. Masks (B, T) are passed to both directions; with
    ``return_sequences`` the outputs at masked steps are zeros (Keras forces
    ``zero_output_for_mask`` inside Bidirectional) and the output mask is the input mask.

    Parameters
    ----------
    layer : SimpleRNN, LSTM or GRU
        The layer to run in both directions (its config is cloned; its weights are copied into
        ``forward_layer`` if it was built).
    merge_mode : {"concat", "sum", "mul", "ave", None}, default "concat"
        How the two outputs are combined: "concat" gives ``2 * units`` features.
    backward_layer : SimpleRNN, LSTM or GRU, optional
        The layer to run backwards (Keras's argument).
    name : str, optional
    trainable : bool, default True
    input_shape : tuple, optional

    Notes
    -----
    Shapes: input ``(B, T, I)``; output ``(B, T, 2H)`` (concat) or ``(B, T, H)`` with
    ``return_sequences``, else ``(B, 2H)`` or ``(B, H)``.

    Examples
    --------
    >>> import numpy as np, fastrnn as fr
    >>> bi = fr.Bidirectional(fr.GRU(8, return_sequences=True, seed=0))
    >>> bi.forward(np.zeros((2, 5, 3), dtype="float32")).shape
    (2, 5, 16)
    """

    supports_masking = True

    def __init__(self, layer, merge_mode="concat", backward_layer=None, *, name=None,
                 trainable=True, input_shape=None):
        if not isinstance(layer, RecurrentLayer):
            raise TypeError(f"Bidirectional: layer must be a SimpleRNN, LSTM or GRU instance, "
                            f"got {type(layer).__name__}")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"merge_mode must be one of {MERGE_MODES}, got {merge_mode!r}")
        if backward_layer is not None:
            if isinstance(backward_layer, dict):        # from a saved config
                from . import deserialize
                backward_layer = deserialize(backward_layer)
            if type(backward_layer) is not type(layer):
                raise TypeError(f"Bidirectional: backward_layer must be a "
                                f"{type(layer).__name__} like layer, got "
                                f"{type(backward_layer).__name__}")
            for attr in ("units", "return_sequences", "return_state", "dtype"):
                if getattr(backward_layer, attr) != getattr(layer, attr):
                    raise ValueError(f"Bidirectional: backward_layer.{attr} must equal "
                                     f"layer.{attr} ({getattr(layer, attr)!r}), got "
                                     f"{getattr(backward_layer, attr)!r}")
            if backward_layer.go_backwards == layer.go_backwards:
                raise ValueError(f"Bidirectional: backward_layer.go_backwards must be the "
                                 f"opposite of layer.go_backwards ({layer.go_backwards}), got "
                                 f"{backward_layer.go_backwards}")
        super().__init__(dtype=layer.dtype.name, seed=layer.seed,
                         name=name or "bidirectional", trainable=trainable,
                         input_shape=input_shape if input_shape is not None else (
                             None if layer.batch_input_shape is None
                             else layer.batch_input_shape[1:]))
        self.merge_mode = merge_mode
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self.units = layer.units
        self.n_states = layer.n_states
        cls = type(layer)
        cfg = layer.get_config()
        cfg["return_state"] = True
        fcfg = dict(cfg, name="forward_" + layer.name)
        bcfg = dict(cfg, name="backward_" + layer.name, go_backwards=not layer.go_backwards)
        bcfg.pop("seed", None)
        if layer.seed is not None:
            bcfg["seed"] = _derived_seed(layer.seed)
        self._custom_backward = backward_layer is not None
        if backward_layer is not None:
            bcfg = backward_layer.get_config()
            bcfg["return_state"] = True
            bcfg["name"] = "backward_" + backward_layer.name
        self.forward_layer = cls.from_config(fcfg)
        self.backward_layer = cls.from_config(bcfg)
        # the engine backend and user-callable initializers are not part of the config
        src_b = backward_layer if backward_layer is not None else layer
        self.forward_layer.backend = getattr(layer, "backend", None)
        self.backward_layer.backend = getattr(src_b, "backend", None)
        for dst, src in ((self.forward_layer, layer), (self.backward_layer, src_b)):
            if not dst.built:
                dst._initializers = dict(src._initializers)
        if layer.built and not self._fresh(layer):
            for k, v in layer.params.items():
                self.forward_layer.params[k] = v
        if backward_layer is not None and backward_layer.built:
            if not self.backward_layer.built:
                self.backward_layer.build((None, None, backward_layer.input_size))
            for k, v in backward_layer.params.items():
                self.backward_layer.params[k] = v
        self.params = _PrefixedParams(self)
        self._cache = None
        self.d_initial_state = None
        self._sync_built()

    @staticmethod
    def _fresh(layer):
        refs = getattr(layer, "_unseeded_init", None)
        if layer.seed is not None or not refs or set(refs) != set(layer.params):
            return False
        return all(refs[k]() is layer.params[k] for k in refs)

    def reseed_if_fresh(self, seed):
        """Give an unseeded wrapper the seed ``seed`` (used by ``Sequential(seed=)``): unbuilt
        directions take it at build time; built ones whose seedless initial weights were never
        replaced are re-initialised from it."""
        if self.seed is not None:
            return
        f, b = self.forward_layer, self.backward_layer
        if f.built != b.built or (f.built and not (self._fresh(f) and self._fresh(b))):
            return
        self.seed = seed
        if f.built:
            shape = (None, None, f.input_size)
            f.seed, b.seed = seed, _derived_seed(seed)
            f.build(shape)
            b.build(shape)
            self._sync_built()

    def _sync_built(self):
        self.built = self.forward_layer.built and self.backward_layer.built
        if self.built:
            self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    @property
    def input_size(self):
        return self.forward_layer.input_size

    def build(self, input_shape):
        for layer, seed in ((self.forward_layer, self.seed),
                            (self.backward_layer, _derived_seed(self.seed))):
            if not layer.built:
                if layer.seed is None:
                    layer.seed = seed
                layer.build(input_shape)
        self._sync_built()

    def get_config(self):
        inner = self.forward_layer.get_config()
        inner["return_state"] = self.return_state
        inner["name"] = inner["name"][len("forward_"):]
        if self.seed is not None:
            inner["seed"] = int(self.seed)
        cfg = {
            "layer": {"class_name": type(self.forward_layer).__name__, "config": inner},
            "merge_mode": self.merge_mode,
            "name": self.name,
        }
        if self._custom_backward:
            b = self.backward_layer.get_config()
            b["return_state"] = self.return_state
            b["name"] = b["name"][len("backward_"):]
            cfg["backward_layer"] = {"class_name": type(self.backward_layer).__name__,
                                     "config": b}
        if not self.trainable:
            cfg["trainable"] = False
        return cfg

    @classmethod
    def from_config(cls, config):
        from . import deserialize
        config = dict(config)
        if "layer" not in config:
            raise ValueError("Bidirectional config needs a 'layer' entry")
        config["layer"] = deserialize(config["layer"])
        return cls(**config)

    def compute_output_shape(self, input_shape):
        B, T = input_shape[0], input_shape[1]
        width = 2 * self.units if self.merge_mode == "concat" else self.units
        out = (B, T, width) if self.return_sequences else (B, width)
        if self.merge_mode is None:
            out = [out, out]
        if self.return_state:
            if self.merge_mode is None:
                return out + [(B, self.units)] * (2 * self.n_states)
            return [out] + [(B, self.units)] * (2 * self.n_states)
        return out

    def compute_mask(self, x, mask=None):
        return mask if (self.return_sequences and mask is not None) else None

    def _merge(self, yf, yb):
        if self.merge_mode is None:
            return [yf, yb]
        if self.merge_mode == "concat":
            return np.concatenate([yf, yb], axis=-1)
        if self.merge_mode == "sum":
            return yf + yb
        if self.merge_mode == "mul":
            return yf * yb
        return (yf + yb) * yf.dtype.type(0.5)

    def forward(self, x, initial_state=None, training=False, mask=None):
        n = self.n_states
        if initial_state is None:
            init_f = init_b = None
        else:
            if not isinstance(initial_state, (list, tuple)) or len(initial_state) != 2 * n:
                raise ValueError(
                    f"initial_state must be a list of {2 * n} arrays (forward states then "
                    f"backward states), got {type(initial_state).__name__}"
                    + (f" of length {len(initial_state)}" if isinstance(initial_state, (list, tuple)) else ""))
            init_f, init_b = list(initial_state[:n]), list(initial_state[n:])
        if not self.built:
            x_arr = np.asarray(x)
            if x_arr.ndim != 3:
                raise ValueError(f"x must have 3 dimensions (batch, time, features), got "
                                 f"{x_arr.ndim} dimensions with shape {x_arr.shape}")
            self.build(x_arr.shape)
        out_f = self.forward_layer.forward(x, initial_state=init_f, training=training, mask=mask)
        out_b = self.backward_layer.forward(x, initial_state=init_b, training=training, mask=mask)
        yf, states_f = out_f[0], list(out_f[1:])
        yb, states_b = out_b[0], list(out_b[1:])
        keep = None
        if self.return_sequences:
            yb = np.ascontiguousarray(yb[:, ::-1])
            if mask is not None:       # Keras: zeros at masked steps, not the carried state
                keep = np.asarray(mask, dtype=bool)[:, :, None].astype(yf.dtype)
                yf, yb = yf * keep, yb * keep
        y = self._merge(yf, yb)
        self._cache = (yf, yb, keep) if training else None
        if self.return_state:
            return (y if self.merge_mode is None else [y]) + states_f + states_b
        return y

    def backward(self, d_output, d_state=None):
        if self._cache is None:
            raise RuntimeError("Bidirectional.backward needs a preceding forward(..., training=True)")
        yf, yb, keep = self._cache
        H = self.units
        if self.merge_mode is None:
            if not isinstance(d_output, (list, tuple)) or len(d_output) != 2:
                raise ValueError("d_output must be a list [d_forward, d_backward] with "
                                 "merge_mode=None")
            df, db = (np.asarray(a) for a in d_output)
            for nm, a in (("d_output[0]", df), ("d_output[1]", db)):
                if a.shape != yf.shape:
                    raise ValueError(f"{nm} must have shape {yf.shape}, got {a.shape}")
            d = None
        else:
            d = np.asarray(d_output)
            expected = yf.shape[:-1] + ((2 * H,) if self.merge_mode == "concat" else (H,))
            if d.shape != expected:
                raise ValueError(f"d_output must have shape {expected}, got {d.shape}")
        if d is None:
            pass
        elif self.merge_mode == "concat":
            df, db = d[..., :H], d[..., H:]
        elif self.merge_mode == "sum":
            df, db = d, d
        elif self.merge_mode == "mul":
            df, db = d * yb, d * yf
        else:
            df = db = d * d.dtype.type(0.5)
        if keep is not None:
            df, db = df * keep, db * keep
        if self.return_sequences:
            db = db[:, ::-1]
        n = self.n_states
        ds_f = ds_b = None
        if d_state is not None:
            if not isinstance(d_state, (list, tuple)) or len(d_state) != 2 * n:
                raise ValueError(f"d_state must be a list of {2 * n} arrays (forward states then "
                                 f"backward states)")
            ds_f, ds_b = list(d_state[:n]), list(d_state[n:])
            if n == 1:
                ds_f, ds_b = ds_f[0], ds_b[0]
        dx = self.forward_layer.backward(np.ascontiguousarray(df), ds_f)
        dx = dx + self.backward_layer.backward(np.ascontiguousarray(db), ds_b)
        self.grads = {}
        for prefix, layer in (("forward_", self.forward_layer), ("backward_", self.backward_layer)):
            for k in layer.params:
                self.grads[prefix + k] = layer.grads[k]
        f0, b0 = self.forward_layer.d_initial_state, self.backward_layer.d_initial_state
        if n == 1:
            self.d_initial_state = [f0, b0]
        else:
            self.d_initial_state = [*f0, *b0]
        return dx

    def step(self, x_t, state=None):
        raise NotImplementedError("Bidirectional layers need the whole sequence; they cannot be "
                                  "run one step at a time")
