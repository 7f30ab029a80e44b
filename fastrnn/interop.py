"""Weights from and to PyTorch and Keras.

fastrnn's parameters are PyTorch's (``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``,
LSTM gates i, f, g, o; GRU gates r, z, n in the linear-before-reset form), so PyTorch weights copy
one-to-one. Keras stores the transposes (``kernel (I, G*H)``, ``recurrent_kernel (H, G*H)``) and
one bias; its GRU orders the gates z, r, h and, with ``reset_after=True`` (the Keras 3
default), keeps an input row and a recurrent row of biases ``(2, 3H)``. A Keras GRU with
``reset_after=False`` computes a different function (reset before the recurrent product) and
cannot be loaded: that is an error, not a silent approximation.

* PyTorch: ``load_torch_weights`` (one layer), ``from_torch`` (a whole ``nn.RNN/LSTM/GRU``, as
  fastrnn layers or, with ``as_module=True``, as a :class:`TorchRNN` with the module's own call
  signature: time-major input, ``lengths``/PackedSequence, ``hx``).
* Keras 3: ``load_keras_weights`` / ``to_keras_weights`` (one recurrent or Bidirectional layer),
  ``from_keras`` / ``to_keras`` (whole Sequential and functional models, configurations
  checked, ``KerasConversionError`` for what fastrnn would compute differently).

torch is imported only to unpack a PackedSequence it was given, Keras only by ``to_keras``;
everything else reads their objects through their attributes.
"""

import numpy as np

from .layers.recurrent import GRU, LSTM, RecurrentLayer, SimpleRNN

__all__ = ["load_torch_weights", "from_torch", "TorchRNN", "load_keras_weights",
           "to_keras_weights",
           "from_keras", "to_keras", "KerasConversionError"]

_GRU_KERAS_ORDER = [1, 0, 2]      # torch r,z,n <-> keras z,r,h (its own inverse)


def _blocks(a, order, axis=0):
    parts = np.split(np.asarray(a), len(order), axis=axis)
    return np.concatenate([parts[k] for k in order], axis=axis)


def _numpy(t):
    """A torch tensor (or anything array-like) as a NumPy array, without importing torch."""
    if hasattr(t, "detach"):
        t = t.detach().cpu().numpy()
    return np.asarray(t)


def _check_layer(layer):
    if not isinstance(layer, RecurrentLayer):
        raise TypeError(f"layer must be a fastrnn SimpleRNN, LSTM or GRU, got "
                        f"{type(layer).__name__}")


def load_torch_weights(layer, module, layer_index=0, reverse=False):
    """Copy one layer (and direction) of a ``torch.nn.RNN/LSTM/GRU`` into a fastrnn layer.

    The fastrnn layer is built to the module's input size if it is not built yet. Shapes, the
    cell type, the Elman nonlinearity and the presence of biases must match; nothing is written
    unless all of them do.

    Parameters
    ----------
    layer : SimpleRNN, LSTM or GRU
        The fastrnn layer to fill (same cell type as ``module``).
    module : torch.nn.RNN, torch.nn.LSTM or torch.nn.GRU
        Read through its ``weight_ih_l{k}`` etc. attributes (torch is not imported here).
    layer_index : int, default 0
        Which of the module's ``num_layers`` to copy.
    reverse : bool, default False
        Copy the reverse direction (``*_reverse`` parameters) of a bidirectional module.

    Returns
    -------
    layer
        The same layer, filled.

    Examples
    --------
    >>> import torch, fastrnn as fr                                   # doctest: +SKIP
    >>> tm = torch.nn.LSTM(8, 16, batch_first=True)                   # doctest: +SKIP
    >>> layer = fr.interop.load_torch_weights(fr.LSTM(16), tm)        # doctest: +SKIP
    """
    _check_layer(layer)
    kind = type(module).__name__
    expected = {SimpleRNN: "RNN", LSTM: "LSTM", GRU: "GRU"}[type(layer)]
    if kind != expected:
        raise TypeError(f"module must be a torch.nn.{expected} for a fastrnn "
                        f"{type(layer).__name__}, got {kind}")
    if getattr(module, "proj_size", 0):
        raise ValueError(f"LSTM projections are not supported, got proj_size={module.proj_size}")
    if expected == "RNN" and module.nonlinearity != layer.activation:
        raise ValueError(f"the module's nonlinearity is {module.nonlinearity!r} but the layer's "
                         f"activation is {layer.activation!r}")
    if module.hidden_size != layer.units:
        raise ValueError(f"module.hidden_size ({module.hidden_size}) must equal layer.units "
                         f"({layer.units})")
    if bool(module.bias) != layer.use_bias:
        raise ValueError(f"module bias={bool(module.bias)} but layer use_bias={layer.use_bias}")
    if not 0 <= layer_index < module.num_layers:
        raise ValueError(f"layer_index must be in [0, {module.num_layers}), got {layer_index}")
    if reverse and not module.bidirectional:
        raise ValueError("reverse=True needs a bidirectional module")
    suffix = f"_l{layer_index}" + ("_reverse" if reverse else "")
    values = {name: _numpy(getattr(module, name + suffix))
              for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
              if hasattr(module, name + suffix)}
    if not layer.built:
        layer.build((None, None, values["weight_ih"].shape[1]))
    for name in layer.params:          # check everything before writing anything
        if values[name].shape != layer.params[name].shape:
            raise ValueError(f"{name}{suffix} has shape {values[name].shape}, the layer expects "
                             f"{layer.params[name].shape}")
    for name in layer.params:
        layer.params[name] = values[name]
    return layer


def from_torch(module, *, dtype=None, return_sequences=False, return_state=False,
               as_module=False):
    """Build fastrnn layers holding a ``torch.nn.RNN/LSTM/GRU``'s weights.

    Parameters
    ----------
    module : torch.nn.RNN, LSTM or GRU
    dtype : None, "float32" or "float64"
        Defaults to the module's.
    return_sequences, return_state : bool
        For the last layer of the list (the others return sequences).
    as_module : bool
        Return a :class:`TorchRNN` instead of a list: a callable with the module's own
        signature and layout, ``rnn(input, hx=None, lengths=None)``, for time-major
        (``batch_first=False``) modules, packed sequences and initial states.

    Returns
    -------
    list of layers, or TorchRNN
        One layer per ``num_layers`` (all but the last with ``return_sequences=True``); a
        bidirectional module gives ``Bidirectional`` layers with ``merge_mode="concat"``
        (PyTorch's output layout). The layers are batch-first ``(B, T, F)`` like every
        fastrnn layer; for a ``batch_first=False`` module a ``UserWarning`` says so (use
        ``as_module=True`` to keep the module's time-major layout).

    Examples
    --------
    >>> import torch, fastrnn as fr                                   # doctest: +SKIP
    >>> tm = torch.nn.GRU(8, 16, num_layers=2, batch_first=True)      # doctest: +SKIP
    >>> model = fr.Sequential(fr.interop.from_torch(tm, return_sequences=True))  # doctest: +SKIP
    """
    kind = type(module).__name__
    cls = {"RNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}.get(kind)
    if cls is None:
        raise TypeError(f"module must be a torch.nn.RNN, LSTM or GRU, got {kind}")
    if as_module:
        return TorchRNN(module, dtype=dtype)
    if not getattr(module, "batch_first", False):
        import warnings
        warnings.warn(f"the torch.nn.{kind} has batch_first=False (time-major input) but fastrnn "
                      "layers take (batch, time, features): transpose your inputs, or use "
                      "from_torch(module, as_module=True), which keeps the module's layout",
                      UserWarning, stacklevel=2)
    return _torch_layers(module, cls, dtype, return_sequences, return_state)


def _torch_layers(module, cls, dtype, return_sequences, return_state):
    if dtype is None:
        dtype = "float64" if str(module.weight_ih_l0.dtype).endswith("float64") else "float32"
    layers = []
    for k in range(module.num_layers):
        last = k == module.num_layers - 1
        kw = dict(dtype=dtype, use_bias=bool(module.bias),
                  return_sequences=return_sequences or not last,
                  return_state=return_state and last)
        if cls is SimpleRNN:
            kw["activation"] = module.nonlinearity
        fwd = load_torch_weights(cls(module.hidden_size, **kw), module, k)
        if module.bidirectional:
            from .layers import Bidirectional
            bwd = load_torch_weights(cls(module.hidden_size, **kw), module, k, reverse=True)
            bi = Bidirectional(cls(module.hidden_size, **kw), merge_mode="concat")
            bi.build((None, None, fwd.input_size))
            for name in fwd.params:
                bi.params["forward_" + name] = fwd.params[name]
                bi.params["backward_" + name] = bwd.params[name]
            layers.append(bi)
        else:
            layers.append(fwd)
    return layers


def _is_packed(x):
    return all(hasattr(x, a) for a in ("data", "batch_sizes", "sorted_indices",
                                       "unsorted_indices"))


class TorchRNN:
    """A ``torch.nn.RNN/LSTM/GRU`` run by fastrnn, with the module's call signature.

    ``rnn(input, hx=None, lengths=None) -> (output, h_n)`` (LSTM: ``(output, (h_n, c_n))``),
    every array in PyTorch's layout: ``input`` is ``(T, B, I)``, or ``(B, T, I)`` when the
    module has ``batch_first=True``; ``hx`` / ``h_n`` / ``c_n`` are ``(D*num_layers, B, H)``
    (index ``layer*D + direction``; batch_first does not apply to them, as in PyTorch).

    Variable lengths: pass ``lengths`` (B,) with a padded ``input`` (each row valid on its
    first ``lengths[b]`` steps), or a ``torch.nn.utils.rnn.PackedSequence`` as ``input``
    (then ``output`` is a PackedSequence too). As with ``pack_padded_sequence`` +
    ``pad_packed_sequence``, ``output`` is zero past each row's length, ``h_n`` is each row's
    state at its last valid step and the reverse direction starts at each row's own end.
    Arrays are NumPy (torch tensors are accepted as inputs).

    Attributes
    ----------
    layers : list of fastrnn layers (one per ``num_layers``; ``Bidirectional`` when the
        module is bidirectional), each returning sequences and states.
    """

    def __init__(self, module, dtype=None):
        kind = type(module).__name__
        cls = {"RNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}.get(kind)
        if cls is None:
            raise TypeError(f"module must be a torch.nn.RNN, LSTM or GRU, got {kind}")
        self.batch_first = bool(module.batch_first)
        self.num_layers = int(module.num_layers)
        self.bidirectional = bool(module.bidirectional)
        self.hidden_size = int(module.hidden_size)
        self.input_size = int(module.input_size)
        self.n_states = 2 if cls is LSTM else 1
        self.layers = _torch_layers(module, cls, dtype, True, True)
        for layer in self.layers:          # every layer's final states make up h_n
            layer.return_state = True
        self.dtype = self.layers[0].dtype

    @property
    def D(self):
        return 2 if self.bidirectional else 1

    def _array(self, a, name):
        a = _numpy(a)
        if a.dtype.kind not in "fiu":
            raise TypeError(f"{name} must be a real numeric array, got dtype {a.dtype}")
        return a.astype(self.dtype, copy=False)

    def _initial(self, hx, B):
        """hx -> per layer the list of initial states fastrnn takes (or None)."""
        if hx is None:
            return [None] * self.num_layers
        parts = list(hx) if self.n_states == 2 else [hx]
        if self.n_states == 2 and len(parts) != 2:
            raise ValueError("hx must be (h_0, c_0) for an LSTM")
        shape = (self.D * self.num_layers, B, self.hidden_size)
        arrs = []
        for name, p in zip(("h_0", "c_0"), parts):
            p = self._array(p, name)
            if p.shape != shape:
                raise ValueError(f"{name} must have shape (D*num_layers, batch, hidden_size) = "
                                 f"{shape}, got {p.shape}")
            arrs.append(p)
        out = []
        for k in range(self.num_layers):
            states = []
            for d in range(self.D):
                states += [np.ascontiguousarray(a[k * self.D + d]) for a in arrs]
            out.append(states if len(states) > 1 else states[0])
        return out

    def __call__(self, input, hx=None, lengths=None):
        packed = _is_packed(input)
        if packed:
            if lengths is not None:
                raise ValueError("give lengths= or a PackedSequence, not both")
            from torch.nn.utils.rnn import pad_packed_sequence
            padded, lens = pad_packed_sequence(input, batch_first=True)
            x = self._array(padded, "input")
            lengths = _numpy(lens)
        else:
            x = self._array(input, "input")
            if x.ndim != 3:
                axes = "batch, time" if self.batch_first else "time, batch"
                raise ValueError(f"input must have 3 dimensions ({axes}, features), got shape "
                                 f"{x.shape}")
            if not self.batch_first:
                x = x.transpose(1, 0, 2)
        B, T, _ = x.shape
        if x.shape[2] != self.input_size:
            raise ValueError(f"input must have {self.input_size} features, got {x.shape[2]}")
        mask = None
        if lengths is not None:
            lengths = np.asarray(_numpy(lengths))
            if lengths.shape != (B,) or lengths.dtype.kind not in "iu":
                raise ValueError(f"lengths must be {B} integers (one per sequence), got "
                                 f"{lengths.dtype} array of shape {lengths.shape}")
            if lengths.min() < 1 or lengths.max() > T:
                raise ValueError(f"lengths must be in [1, {T}] (the padded length), got "
                                 f"min {lengths.min()}, max {lengths.max()}")
            mask = np.arange(T)[None, :] < lengths[:, None]
        init = self._initial(hx, B)
        y = np.ascontiguousarray(x)
        finals = []
        for layer, h0 in zip(self.layers, init):
            out = layer(y, initial_state=h0, mask=mask)
            y, states = out[0], list(out[1:])
            if mask is not None:     # PyTorch pads with zeros; fastrnn repeats the state there
                y = y * mask[:, :, None]
            finals.append(states)
        n = self.n_states
        h_n = np.stack([s[d * n] for s in finals for d in range(self.D)])
        c_n = (np.stack([s[d * n + 1] for s in finals for d in range(self.D)])
               if n == 2 else None)
        if packed:
            import torch
            from torch.nn.utils.rnn import pack_padded_sequence
            y = pack_padded_sequence(torch.from_numpy(np.ascontiguousarray(y)),
                                     torch.as_tensor(lengths, dtype=torch.int64),
                                     batch_first=True, enforce_sorted=False)
        elif not self.batch_first:
            y = np.ascontiguousarray(y.transpose(1, 0, 2))
        return (y, (h_n, c_n)) if n == 2 else (y, h_n)


# ================================================================================================
# Keras: weight lists
# ================================================================================================

def _is_keras_layer(obj):
    return callable(getattr(obj, "get_weights", None)) and callable(getattr(obj, "get_config",
                                                                          None))


def _keras_weights_list(weights, what):
    if not isinstance(weights, (list, tuple)):
        raise ValueError(f"{what} must be a list of arrays (Keras get_weights()), got "
                         f"{type(weights).__name__}")
    return [np.asarray(w) for w in weights]


def _load_recurrent_keras(layer, weights, check_only=False):
    """Convert one Keras recurrent weight list for ``layer``; returns {param: array} (nothing
    is written here)."""
    n = len(weights)
    if n not in (2, 3):
        raise ValueError("weights must be [kernel, recurrent_kernel] or [kernel, "
                         f"recurrent_kernel, bias], got a list of length {n}")
    kernel, recurrent = weights[0], weights[1]
    bias = weights[2] if n == 3 else None
    if (bias is not None) != layer.use_bias:
        raise ValueError(f"the layer has use_bias={layer.use_bias} but the weights "
                         f"{'have' if bias is not None else 'have no'} bias")
    GH = layer.gates * layer.units
    if kernel.ndim != 2 or kernel.shape[1] != GH:
        raise ValueError(f"kernel must have shape (input_size, {GH}), got {kernel.shape}")
    if recurrent.shape != (layer.units, GH):
        raise ValueError(f"recurrent_kernel must have shape {(layer.units, GH)}, got "
                         f"{recurrent.shape}")
    if layer.built and kernel.shape[0] != layer.input_size:
        raise ValueError(f"kernel has {kernel.shape[0]} input rows, the layer expects "
                         f"{layer.input_size}")
    out = {"weight_ih": kernel.T, "weight_hh": recurrent.T}
    if isinstance(layer, GRU):
        out = {k: _blocks(v, _GRU_KERAS_ORDER) for k, v in out.items()}
        if bias is not None:
            if bias.shape != (2, GH):
                raise ValueError(f"a GRU bias must have shape (2, {GH}) (Keras reset_after="
                                 f"True); got {bias.shape}. A reset_after=False GRU computes a "
                                 "different function and cannot be loaded")
            out["bias_ih"] = _blocks(bias[0], _GRU_KERAS_ORDER)
            out["bias_hh"] = _blocks(bias[1], _GRU_KERAS_ORDER)
    elif bias is not None:
        if bias.shape != (GH,):
            raise ValueError(f"bias must have shape ({GH},), got {bias.shape}")
        out["bias_ih"] = bias
        out["bias_hh"] = np.zeros_like(bias)
    return out


def _write_recurrent(layer, values, input_size):
    if not layer.built:
        layer.build((None, None, input_size))
    if "bias_ih" in values and "bias_hh" not in layer.params:   # one Keras-style bias
        values = dict(values, bias_ih=values["bias_ih"] + values.pop("bias_hh"))
    for k, v in values.items():
        layer.params[k] = v


def load_keras_weights(layer, weights):
    """Load a Keras layer's weights into a fastrnn ``SimpleRNN``/``LSTM``/``GRU`` or
    ``Bidirectional``.

    Parameters
    ----------
    layer : fastrnn SimpleRNN, LSTM, GRU or Bidirectional
        Built to the kernel's input size if it is not built yet.
    weights : list of arrays, or a Keras layer
        The Keras ``get_weights()`` list: ``[kernel (I, G*H), recurrent_kernel (H, G*H)
        (, bias)]``; for a Bidirectional the forward layer's list followed by the backward
        layer's. Given the Keras layer itself, its configuration is checked too (activations,
        ``reset_after``, ``use_bias``, ``go_backwards``, ``merge_mode``), which a bare list
        cannot tell: a ``reset_after=False`` GRU without biases has the same shapes as a
        ``reset_after=True`` one and would silently compute something else.

    Returns
    -------
    layer

    Notes
    -----
    Keras has one bias per layer (GRU: an input row and a recurrent row ``(2, 3H)``); it goes
    into ``bias_ih`` and ``bias_hh`` becomes zero, which computes the same function. Everything
    is checked before anything is written.

    Examples
    --------
    >>> import numpy as np, fastrnn as fr
    >>> rng = np.random.default_rng(0)
    >>> keras_weights = [rng.standard_normal((3, 8)), rng.standard_normal((2, 8)),
    ...                  np.zeros(8)]                             # an LSTM(2) on 3 features
    >>> layer = fr.interop.load_keras_weights(fr.LSTM(2, dtype="float64"), keras_weights)
    >>> layer.params["weight_ih"].shape                           # PyTorch layout (4H, I)
    (8, 3)
    """
    from .layers import Bidirectional
    if not isinstance(layer, (RecurrentLayer, Bidirectional)):
        raise TypeError(f"layer must be a fastrnn SimpleRNN, LSTM, GRU or Bidirectional, got "
                        f"{type(layer).__name__}")
    if _is_keras_layer(weights):
        _check_keras_matches(weights, layer)
        weights = weights.get_weights()
    weights = _keras_weights_list(weights, "weights")
    if isinstance(layer, Bidirectional):
        f, b = layer.forward_layer, layer.backward_layer
        if len(weights) % 2:
            raise ValueError(f"a Bidirectional needs the forward then the backward layer's "
                             f"weights (an even number of arrays), got {len(weights)}")
        half = len(weights) // 2
        vf = _load_recurrent_keras(f, weights[:half])
        vb = _load_recurrent_keras(b, weights[half:])
        size = weights[0].shape[0]
        if weights[half].shape[0] != size:
            raise ValueError(f"the forward kernel has {size} input rows but the backward "
                             f"kernel {weights[half].shape[0]}")
        _write_recurrent(f, vf, size)
        _write_recurrent(b, vb, size)
        layer._sync_built()
        return layer
    values = _load_recurrent_keras(layer, weights)
    _write_recurrent(layer, values, weights[0].shape[0])
    return layer


def _to_keras_recurrent(layer):
    p = layer.params
    w_ih, w_hh = p["weight_ih"], p["weight_hh"]
    b_hh = p["bias_hh"] if "bias_hh" in p else None
    if isinstance(layer, GRU):
        out = [_blocks(w_ih, _GRU_KERAS_ORDER).T.copy(), _blocks(w_hh, _GRU_KERAS_ORDER).T.copy()]
        if layer.use_bias:
            out.append(np.stack([_blocks(p["bias_ih"], _GRU_KERAS_ORDER),
                                 _blocks(p["bias_hh"], _GRU_KERAS_ORDER)]))
        return out
    out = [w_ih.T.copy(), w_hh.T.copy()]
    if layer.use_bias:
        out.append(p["bias_ih"] + b_hh if b_hh is not None else p["bias_ih"].copy())
    return out


def to_keras_weights(layer):
    """The ``set_weights()`` list of the Keras layer of the same kind.

    Parameters
    ----------
    layer : fastrnn SimpleRNN, LSTM, GRU (Keras ``reset_after=True``) or Bidirectional

    Returns
    -------
    list of ndarray
        ``[kernel, recurrent_kernel(, bias)]``; for a Bidirectional the forward list then the
        backward list, as Keras's ``Bidirectional.get_weights()``.
    """
    from .layers import Bidirectional
    if isinstance(layer, Bidirectional):
        return _to_keras_recurrent(layer.forward_layer) + _to_keras_recurrent(
            layer.backward_layer)
    _check_layer(layer)
    return _to_keras_recurrent(layer)


# ================================================================================================
# Keras: whole models
# ================================================================================================

_KERAS_CELLS = {"SimpleRNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}
_DENSE_ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid", "softmax")


class KerasConversionError(ValueError):
    """A Keras model or layer holds something fastrnn cannot compute exactly."""


def _act_name(a):
    if a is None:
        return "linear"
    if isinstance(a, str):
        return a
    if isinstance(a, dict):
        return a.get("config", a.get("class_name"))
    return getattr(a, "__name__", repr(a))


def _keras_dtype(klayer, where):
    dt = getattr(klayer, "dtype", None) or "float32"
    dt = getattr(dt, "name", dt)
    if dt not in ("float32", "float64"):
        raise KerasConversionError(f"{where}: dtype {dt!r} is not supported; fastrnn computes "
                                   "in float32 or float64")
    cdt = getattr(klayer, "compute_dtype", dt)
    if cdt not in (None, dt):
        raise KerasConversionError(f"{where}: mixed precision (compute dtype {cdt!r}, variables "
                                   f"{dt!r}) is not supported")
    return dt


def _recurrent_kwargs(klayer, where, cfg=None):
    """fastrnn constructor arguments for a Keras SimpleRNN/LSTM/GRU, refusing what fastrnn
    would compute differently."""
    cls_name = type(klayer).__name__
    cfg = klayer.get_config() if cfg is None else cfg
    act = _act_name(cfg.get("activation", "tanh"))
    allowed = ("tanh", "relu") if cls_name == "SimpleRNN" else ("tanh",)
    if act not in allowed:
        raise KerasConversionError(f"{where}: {cls_name}(activation={act!r}) is not supported; "
                                   f"fastrnn's {cls_name} computes activation in {allowed}")
    if cls_name != "SimpleRNN":
        ract = _act_name(cfg.get("recurrent_activation", "sigmoid"))
        if ract != "sigmoid":
            raise KerasConversionError(f"{where}: {cls_name}(recurrent_activation={ract!r}) is "
                                       "not supported; fastrnn's gates use 'sigmoid'")
    if cls_name == "GRU" and not cfg.get("reset_after", True):
        raise KerasConversionError(f"{where}: GRU(reset_after=False) applies the reset gate "
                                   "before the recurrent product, a different function; fastrnn "
                                   "computes reset_after=True (PyTorch's form) only")
    kw = dict(return_sequences=bool(cfg.get("return_sequences", False)),
              return_state=bool(cfg.get("return_state", False)),
              go_backwards=bool(cfg.get("go_backwards", False)),
              use_bias=bool(cfg.get("use_bias", True)),
              dtype=_keras_dtype(klayer, where))
    if cls_name == "SimpleRNN":
        kw["activation"] = act
    for rate in ("dropout", "recurrent_dropout"):
        if cfg.get(rate):
            kw[rate] = float(cfg[rate])
    if cfg.get("stateful"):
        kw["stateful"] = True
    return kw


_OPTIONAL_RECURRENT = ("dropout", "recurrent_dropout", "stateful")


def _make_recurrent(cls, units, kw, where):
    try:
        return cls(units, **kw)
    except TypeError:
        # options this fastrnn's layers do not take: never drop them silently (dropout only
        # acts in training, but training would differ; stateful changes every later call)
        extra = {k: kw[k] for k in _OPTIONAL_RECURRENT if k in kw}
        if not extra:
            raise
        raise KerasConversionError(f"{where}: {extra} is not supported by fastrnn's "
                                   f"{cls.__name__}") from None


def _check_keras_matches(klayer, layer):
    """load_keras_weights(layer, keras_layer): the configurations must agree."""
    from .layers import Bidirectional
    where = f"Keras layer {getattr(klayer, 'name', '?')!r}"
    kname = type(klayer).__name__
    if isinstance(layer, Bidirectional):
        if kname != "Bidirectional":
            raise KerasConversionError(f"{where}: a fastrnn Bidirectional needs a Keras "
                                       f"Bidirectional, got {kname}")
        mode = klayer.merge_mode
        if mode != layer.merge_mode:
            raise KerasConversionError(f"{where}: merge_mode {mode!r} differs from the fastrnn "
                                       f"layer's {layer.merge_mode!r}")
        _check_bidirectional_pair(klayer, where)
        _check_keras_matches(klayer.forward_layer, layer.forward_layer)
        return
    expected = {SimpleRNN: "SimpleRNN", LSTM: "LSTM", GRU: "GRU"}[type(layer)]
    if kname != expected:
        raise KerasConversionError(f"{where}: a fastrnn {expected} needs a Keras {expected}, got "
                                   f"{kname}")
    kw = _recurrent_kwargs(klayer, where)
    if klayer.units != layer.units:
        raise KerasConversionError(f"{where}: units={klayer.units} but the fastrnn layer has "
                                   f"{layer.units}")
    for k in ("use_bias", "activation"):
        if k in kw and kw[k] != getattr(layer, k):
            raise KerasConversionError(f"{where}: {k}={kw[k]!r} but the fastrnn layer has "
                                       f"{getattr(layer, k)!r}")


def _check_bidirectional_pair(klayer, where):
    if klayer.merge_mode not in ("concat", "sum", "mul", "ave"):
        raise KerasConversionError(f"{where}: Bidirectional(merge_mode={klayer.merge_mode!r}) "
                                   "is not supported; use 'concat', 'sum', 'mul' or 'ave'")
    f, b = klayer.forward_layer, klayer.backward_layer
    cf, cb = dict(f.get_config()), dict(b.get_config())
    if cf.get("go_backwards") or not cb.get("go_backwards"):
        raise KerasConversionError(f"{where}: the wrapped layer has go_backwards=True; fastrnn's "
                                   "Bidirectional runs its forward copy forwards")
    ignore = {"name", "go_backwards", "zero_output_for_mask", "seed", "kernel_initializer",
              "recurrent_initializer", "bias_initializer"}
    diff = sorted(k for k in set(cf) | set(cb) if k not in ignore and cf.get(k) != cb.get(k))
    if type(f) is not type(b) or diff:
        raise KerasConversionError(f"{where}: the backward layer differs from the forward one "
                                   f"({diff or type(b).__name__}); fastrnn's Bidirectional runs "
                                   "two copies of one layer")


def _from_keras_layer(klayer, where):
    """One Keras layer -> one fastrnn layer (weights copied), or None for an InputLayer."""
    from .layers import Bidirectional, Dense, Dropout, Embedding, Masking
    name = type(klayer).__name__
    cfg = klayer.get_config()
    if name == "InputLayer":
        return None
    if name in _KERAS_CELLS:
        kw = _recurrent_kwargs(klayer, where, cfg)
        layer = _make_recurrent(_KERAS_CELLS[name], int(cfg["units"]), kw, where)
        return load_keras_weights(layer, klayer.get_weights())
    if name == "Bidirectional":
        _check_bidirectional_pair(klayer, where)
        inner = klayer.forward_layer
        iname = type(inner).__name__
        if iname not in _KERAS_CELLS:
            raise KerasConversionError(f"{where}: Bidirectional({iname}) is not supported")
        kw = _recurrent_kwargs(inner, where)
        layer = Bidirectional(_make_recurrent(_KERAS_CELLS[iname], int(inner.units), kw, where),
                              merge_mode=klayer.merge_mode)
        return load_keras_weights(layer, klayer.get_weights())
    if name == "Dense":
        act = _act_name(cfg.get("activation"))
        if act not in _DENSE_ACTIVATIONS:
            raise KerasConversionError(f"{where}: Dense(activation={act!r}) is not supported; "
                                       f"fastrnn's Dense has {_DENSE_ACTIVATIONS}")
        w = klayer.get_weights()
        use_bias = bool(cfg.get("use_bias", True))
        layer = Dense(int(cfg["units"]), activation=act, use_bias=use_bias,
                      input_size=w[0].shape[0], dtype=_keras_dtype(klayer, where))
        layer.params["weight"] = w[0].T
        if use_bias:
            layer.params["bias"] = w[1]
        return layer
    if name == "Embedding":
        w = klayer.get_weights()
        layer = Embedding(int(cfg["input_dim"]), int(cfg["output_dim"]),
                          mask_zero=bool(cfg.get("mask_zero", False)),
                          dtype=_keras_dtype(klayer, where))
        layer.build()
        layer.params["weight"] = w[0]
        return layer
    if name == "Dropout":
        if cfg.get("noise_shape") is not None:
            raise KerasConversionError(f"{where}: Dropout(noise_shape={cfg['noise_shape']}) is "
                                       "not supported; fastrnn drops elements independently")
        return Dropout(float(cfg["rate"]), seed=cfg.get("seed"))
    if name == "Masking":
        return Masking(float(cfg.get("mask_value", 0.0)))
    other = _from_keras_other(klayer, name, cfg, where)
    if other is not None:
        return other
    merge = _merge_layer(name, cfg, where, klayer)
    if merge is not None:
        return merge
    raise KerasConversionError(f"{where}: Keras {name} has no fastrnn counterpart (supported: "
                               "Embedding, Dense, SimpleRNN, LSTM, GRU, Bidirectional, Dropout, "
                               "Masking, Activation, Conv1D, LayerNormalization, pooling, "
                               "Flatten, RepeatVector, SpatialDropout1D, TimeDistributed)")


def _channels_last(cfg, where, name):
    fmt = cfg.get("data_format", "channels_last")
    if fmt not in (None, "channels_last"):
        raise KerasConversionError(f"{where}: {name}(data_format={fmt!r}) is not supported; "
                                   "fastrnn layers take (batch, time, channels)")


def _from_keras_other(klayer, name, cfg, where):
    """Keras layers beyond the recurrent core, when this fastrnn has them (None otherwise)."""
    from . import layers as fl
    cls = getattr(fl, name, None)
    if cls is None:
        return None
    dtype = _keras_dtype(klayer, where)
    if name == "Activation":
        act = _act_name(cfg.get("activation"))
        from .layers.activation import ACTIVATION_FUNCTIONS
        if act not in ACTIVATION_FUNCTIONS:
            raise KerasConversionError(f"{where}: Activation({act!r}) is not supported; fastrnn "
                                       f"has {sorted(ACTIVATION_FUNCTIONS)}")
        return cls(act, dtype=dtype)
    if name == "Conv1D":
        _channels_last(cfg, where, name)
        if cfg.get("groups", 1) != 1:
            raise KerasConversionError(f"{where}: Conv1D(groups={cfg['groups']}) is not "
                                       "supported")
        act = _act_name(cfg.get("activation"))
        w = klayer.get_weights()
        one = lambda v: v[0] if isinstance(v, (list, tuple)) else v     # noqa: E731
        try:
            layer = cls(int(cfg["filters"]), one(cfg["kernel_size"]), strides=one(cfg["strides"]),
                        padding=cfg["padding"], dilation_rate=one(cfg["dilation_rate"]),
                        activation=act, use_bias=bool(cfg.get("use_bias", True)),
                        input_size=w[0].shape[1], dtype=dtype)
        except ValueError as exc:
            raise KerasConversionError(f"{where}: {exc}") from None
        layer.params["weight"] = w[0].transpose(2, 1, 0)      # (k, C, F) -> (F, C, k)
        if layer.use_bias:
            layer.params["bias"] = w[1]
        return layer
    if name == "LayerNormalization":
        axis = cfg.get("axis", -1)
        if axis not in (-1, [-1], (-1,)):
            raise KerasConversionError(f"{where}: LayerNormalization(axis={axis}) is not "
                                       "supported; fastrnn normalises the last axis")
        if cfg.get("rms_scaling"):
            raise KerasConversionError(f"{where}: LayerNormalization(rms_scaling=True) is not "
                                       "supported")
        w = klayer.get_weights()
        layer = cls(epsilon=float(cfg.get("epsilon", 1e-3)), center=bool(cfg.get("center", True)),
                    scale=bool(cfg.get("scale", True)), dtype=dtype)
        if w:
            layer.build((None, w[0].shape[0]))
            names = (["weight"] if layer.scale else []) + (["bias"] if layer.center else [])
            for k, v in zip(names, w):             # Keras order: gamma, beta
                layer.params[k] = v
        return layer
    if name == "RepeatVector":
        return cls(int(cfg["n"]), dtype=dtype)
    if name == "Flatten":
        _channels_last(cfg, where, name)
        return cls(dtype=dtype)
    if name in ("GlobalAveragePooling1D", "GlobalMaxPooling1D"):
        _channels_last(cfg, where, name)
        return cls(keepdims=bool(cfg.get("keepdims", False)), dtype=dtype)
    if name == "MaxPooling1D":
        _channels_last(cfg, where, name)
        one = lambda v: v[0] if isinstance(v, (list, tuple)) else v     # noqa: E731
        strides = cfg.get("strides")
        return cls(one(cfg.get("pool_size", 2)), strides=None if strides is None else one(strides),
                   padding=cfg.get("padding", "valid"), dtype=dtype)
    if name == "SpatialDropout1D":
        return cls(float(cfg["rate"]), seed=cfg.get("seed"), dtype=dtype)
    if name == "TimeDistributed":
        inner = _from_keras_layer(klayer.layer, where + " (wrapped)")
        return cls(inner)
    return None


_MERGE_LAYERS = ("Concatenate", "Add", "Subtract", "Multiply", "Average", "Dot", "Attention",
                 "AdditiveAttention")


def _merge_layer(name, cfg, where, klayer=None):
    """Keras merge and attention layers, when this fastrnn has the layer of the same name."""
    from . import layers as fr_layers
    cls = getattr(fr_layers, name, None) if name in _MERGE_LAYERS else None
    if cls is None:
        return None
    kw = {}
    if name == "Concatenate":
        kw = {"axis": int(cfg.get("axis", -1))}
    elif name == "Dot":
        axes = cfg.get("axes")
        kw = {"axes": list(axes) if isinstance(axes, (list, tuple)) else axes,
              "normalize": bool(cfg.get("normalize", False))}
    elif name in ("Attention", "AdditiveAttention"):
        if cfg.get("score_mode", "dot") != "dot":
            raise KerasConversionError(f"{where}: Attention(score_mode="
                                       f"{cfg['score_mode']!r}) is not supported; fastrnn's "
                                       "Attention is the dot-product score")
        if cfg.get("dropout"):
            raise KerasConversionError(f"{where}: {name}(dropout={cfg['dropout']}) is not "
                                       "supported (fastrnn's attention has no dropout)")
        kw = {"use_scale": bool(cfg.get("use_scale", name == "AdditiveAttention"))}
    try:
        layer = cls(**kw)
    except (TypeError, ValueError) as exc:
        raise KerasConversionError(f"{where}: Keras {name}{kw or ''} cannot be built in "
                                   f"fastrnn: {exc}") from None
    if klayer is not None and kw.get("use_scale"):
        (scale,) = klayer.get_weights()
        scale = np.asarray(scale).reshape(-1)
        layer.build([(None, None, scale.size)] * 2)
        layer.params["scale"] = scale
    return layer


def _from_keras_functional(model):
    """A functional Keras model -> fastrnn.Model, replaying its layer calls on fastrnn.Input
    tensors (shared layers stay shared, states passed as initial_state stay connected)."""
    from .models import Input, Model
    tensors, made = {}, {}

    def convert(kt):
        if id(kt) in tensors:
            return tensors[id(kt)]
        hist = getattr(kt, "_keras_history", None)
        if hist is None:
            raise KerasConversionError(f"from_keras: {kt!r} is not a Keras symbolic tensor")
        op, node_index, tensor_index = hist
        oname = type(op).__name__
        if oname == "InputLayer":
            kind = np.dtype(str(kt.dtype)).kind
            dtype = "int64" if kind in "iu" else str(kt.dtype)
            tensors[id(kt)] = Input(tuple(kt.shape[1:]), dtype=dtype, name=op.name)
            return tensors[id(kt)]
        node = op._inbound_nodes[node_index]
        args, kwargs = node.arguments.args, dict(node.arguments.kwargs)
        where = f"layer {op.name!r}"
        if len(args) != 1:
            raise KerasConversionError(f"{where}: called with {len(args)} positional "
                                       "arguments; expected the input only")
        kwargs.pop("training", None)
        x = args[0]
        mask = kwargs.pop("mask", None)
        if mask is not None:       # the mask Keras propagates itself is fine: fastrnn does too
            xs = x if isinstance(x, (list, tuple)) else [x]
            ms = mask if isinstance(mask, (list, tuple)) else [mask]
            if len(ms) != len(xs) or any(m is not None and m is not getattr(v, "_keras_mask",
                                                                            None)
                                         for m, v in zip(ms, xs)):
                raise KerasConversionError(f"{where}: an explicit mask= argument is not "
                                           "supported; use Masking or Embedding(mask_zero=True)")
        init = kwargs.pop("initial_state", None)
        passed = {k: kwargs.pop(k) for k in ("use_causal_mask", "return_attention_scores")
                  if k in kwargs and oname in ("Attention", "AdditiveAttention")}
        if kwargs:
            raise KerasConversionError(f"{where}: call arguments {sorted(kwargs)} are not "
                                       "supported")
        fx = [convert(v) for v in x] if isinstance(x, (list, tuple)) else convert(x)
        if id(op) not in made:
            layer = _from_keras_layer(op, where)
            if layer is None:
                raise KerasConversionError(f"{where}: a Keras {oname} inside a model")
            made[id(op)] = layer
        call_kw = {k: bool(v) for k, v in passed.items() if v is not None}
        if init is not None:
            call_kw["initial_state"] = ([convert(v) for v in init]
                                        if isinstance(init, (list, tuple)) else convert(init))
        out = made[id(op)](fx, **call_kw)
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        if len(outs) != len(node.outputs):
            raise KerasConversionError(f"{where}: Keras gives {len(node.outputs)} outputs, "
                                       f"fastrnn {len(outs)}")
        for k_out, f_out in zip(node.outputs, outs):
            tensors[id(k_out)] = f_out
        return outs[tensor_index]

    ins = [convert(t) for t in model.inputs]
    outs = [convert(t) for t in model.outputs]
    return Model(ins if len(ins) > 1 else ins[0], outs if len(outs) > 1 else outs[0],
                 name=None)


def from_keras(model):
    """Convert a Keras 3 model (or one layer) to fastrnn, weights included.

    Parameters
    ----------
    model : keras.Sequential, a functional keras.Model, or a layer
        Made of Embedding, Dense, SimpleRNN, LSTM, GRU, Bidirectional, Dropout, Masking,
        Activation, Conv1D, LayerNormalization, MaxPooling1D, GlobalAverage/MaxPooling1D,
        Flatten, RepeatVector, SpatialDropout1D, TimeDistributed, the merge layers
        (Concatenate, Add, Subtract, Multiply, Average), Dot, Attention (``score_mode="dot"``)
        and AdditiveAttention. Functional
        models may have several inputs and outputs, shared layers and states passed as
        ``initial_state=``.

    Returns
    -------
    fastrnn.Sequential, fastrnn.Model (functional Keras models) or a fastrnn layer
        ``model.predict(x)`` equals ``keras_model(x)`` to float32 rounding. At padded steps of
        a masked sequence output, a Keras ``Bidirectional`` writes zeros where fastrnn repeats
        the last state (as a Keras LSTM on its own does): valid steps agree.

    Raises
    ------
    KerasConversionError (a ValueError)
        For a configuration fastrnn would compute differently: non-default activations
        (LSTM/GRU ``activation`` other than tanh, ``recurrent_activation`` other than
        sigmoid; SimpleRNN tanh or relu), ``GRU(reset_after=False)``,
        ``Bidirectional(merge_mode=None)`` or with a different backward layer, Dense
        activations fastrnn lacks, ``Dropout(noise_shape=...)``, any other layer type,
        mixed precision. Regularizers and constraints (training-time only) are not carried.

    Example
    -------
    >>> fr_model = fastrnn.interop.from_keras(keras_model)          # doctest: +SKIP
    """
    from .models import Sequential
    if not hasattr(model, "layers"):
        if _is_keras_layer(model):
            return _from_keras_layer(model, f"Keras layer {model.name!r}")
        raise TypeError(f"from_keras: expected a Keras model or layer, got "
                        f"{type(model).__name__}")
    if type(model).__name__ != "Sequential":
        return _from_keras_functional(model)
    klayers = [l for l in model.layers if type(l).__name__ != "InputLayer"]
    layers = []
    for i, kl in enumerate(klayers):
        layer = _from_keras_layer(kl, f"layer {i} ({kl.name!r})")
        if layer is None:
            continue
        if getattr(layer, "return_state", False):
            raise KerasConversionError(f"layer {i} ({kl.name!r}): return_state=True inside a "
                                       "model; a fastrnn.Sequential passes one array on")
        layers.append(layer)
    out = Sequential(layers, name=None)
    shape = None
    try:
        shape = tuple(model.inputs[0].shape)
    except Exception:
        pass
    if shape is not None and len(shape) >= 2:
        out.build(shape)
    return out


def _keras_layer_for(layer, keras, return_state=None):
    from .layers import Bidirectional, Dense, Dropout, Embedding, Masking
    L = keras.layers
    if isinstance(layer, Bidirectional):
        inner, _ = _keras_layer_for(layer.forward_layer, keras, layer.return_state)
        return L.Bidirectional(inner, merge_mode=layer.merge_mode), to_keras_weights(layer)
    if isinstance(layer, RecurrentLayer):
        kw = dict(return_sequences=layer.return_sequences,
                  return_state=layer.return_state if return_state is None else return_state,
                  go_backwards=layer.go_backwards, use_bias=layer.use_bias,
                  dtype=layer.dtype.name)
        if getattr(layer, "stateful", False):
            kw["stateful"] = True
        for rate in ("dropout", "recurrent_dropout"):
            if getattr(layer, rate, 0):
                kw[rate] = getattr(layer, rate)
        if isinstance(layer, SimpleRNN):
            k = L.SimpleRNN(layer.units, activation=layer.activation, **kw)
        elif isinstance(layer, LSTM):
            k = L.LSTM(layer.units, **kw)
        else:
            k = L.GRU(layer.units, reset_after=True, **kw)
        return k, _to_keras_recurrent(layer)
    if isinstance(layer, Dense):
        w = [layer.params["weight"].T.copy()] + ([layer.params["bias"].copy()]
                                                  if layer.use_bias else [])
        act = None if layer.activation == "linear" else layer.activation
        return L.Dense(layer.units, activation=act, use_bias=layer.use_bias,
                       dtype=layer.dtype.name), w
    if isinstance(layer, Embedding):
        return (L.Embedding(layer.input_dim, layer.output_dim, mask_zero=layer.mask_zero,
                            dtype=layer.dtype.name), [layer.params["weight"].copy()])
    if type(layer) is Dropout:
        return L.Dropout(layer.rate, seed=layer.seed), []
    if isinstance(layer, Masking):
        return L.Masking(mask_value=layer.mask_value), []
    other = _to_keras_other(layer, L)
    if other is not None:
        return other
    raise KerasConversionError(f"to_keras: fastrnn {type(layer).__name__} has no Keras "
                               "counterpart here")


def _to_keras_other(layer, L):
    name = type(layer).__name__
    dt = layer.dtype.name
    if name == "Activation":
        return L.Activation(layer.activation, dtype=dt), []
    if name == "Conv1D":
        k = L.Conv1D(layer.filters, layer.kernel_size, strides=layer.strides,
                     padding=layer.padding, dilation_rate=layer.dilation_rate,
                     activation=None if layer.activation == "linear" else layer.activation,
                     use_bias=layer.use_bias, dtype=dt)
        w = [layer.params["weight"].transpose(2, 1, 0).copy()]
        return k, w + ([layer.params["bias"].copy()] if layer.use_bias else [])
    if name == "LayerNormalization":
        w = ([layer.params["weight"].copy()] if layer.scale else []) + \
            ([layer.params["bias"].copy()] if layer.center else [])
        return L.LayerNormalization(epsilon=layer.epsilon, center=layer.center,
                                    scale=layer.scale, dtype=dt), w
    if name == "RepeatVector":
        return L.RepeatVector(layer.n, dtype=dt), []
    if name == "Flatten":
        return L.Flatten(dtype=dt), []
    if name in ("GlobalAveragePooling1D", "GlobalMaxPooling1D"):
        return getattr(L, name)(keepdims=layer.keepdims, dtype=dt), []
    if name == "MaxPooling1D":
        return L.MaxPooling1D(layer.pool_size, strides=layer.strides, padding=layer.padding,
                              dtype=dt), []
    if name == "SpatialDropout1D":
        return L.SpatialDropout1D(layer.rate, seed=layer.seed), []
    if name == "TimeDistributed":
        import keras
        inner, w = _keras_layer_for(layer.layer, keras)
        return L.TimeDistributed(inner), w
    if name == "Concatenate":
        return L.Concatenate(axis=layer.axis, dtype=dt), []
    if name in ("Add", "Subtract", "Multiply", "Average"):
        return getattr(L, name)(dtype=dt), []
    if name == "Dot":
        return L.Dot(axes=layer.axes, normalize=layer.normalize, dtype=dt), []
    if name in ("Attention", "AdditiveAttention"):
        w = [layer.params["scale"].reshape(() if name == "Attention" else -1).copy()] \
            if layer.use_scale else []
        return getattr(L, name)(use_scale=layer.use_scale, dtype=dt), w
    return None


def _stateful(model_layers):
    from .layers import Bidirectional
    for l in model_layers:
        inner = l.forward_layer if isinstance(l, Bidirectional) else getattr(l, "layer", l)
        if getattr(inner, "stateful", False):
            return True
    return False


def to_keras(model, batch_size=None):
    """Convert a fastrnn ``Sequential`` (or one layer) to a Keras 3 model, weights included.

    Keras is imported here (``pip install keras``; any backend). The model must be built
    (its input feature size known). Returns a ``keras.Sequential`` starting with
    ``keras.Input`` of the model's input shape (int32 ids before an Embedding), a functional
    ``keras.Model`` for a ``fastrnn.Model``, or a built Keras layer for a fastrnn layer.
    ``batch_size`` fixes the inputs' batch size, which Keras needs for ``stateful=True``
    layers. ``keras_model(x)`` equals ``model.predict(x)`` to
    float32 rounding (for masked sequence outputs of a Bidirectional: on the valid steps).

    Example
    -------
    >>> keras_model = fastrnn.interop.to_keras(model)               # doctest: +SKIP
    """
    try:
        import keras
    except ImportError:
        raise ImportError("to_keras needs Keras 3: pip install keras") from None
    from .models import Model, Sequential
    if batch_size is not None and (isinstance(batch_size, bool) or
                                   not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
    if isinstance(model, Model) and batch_size is None and _stateful(model.layers):
        raise ValueError("to_keras: the model has stateful=True layers; Keras needs a fixed "
                         "batch: pass batch_size=")
    if isinstance(model, Model) and not isinstance(model, Sequential):
        return _to_keras_functional(model, keras, batch_size)
    if not isinstance(model, Sequential):
        klayer, weights = _keras_layer_for(model, keras)
        if not model.built:
            raise ValueError("to_keras: the layer is not built; give input_size= or run it once")
        size = getattr(model, "input_size", None)
        klayer.build((None, None, size) if isinstance(model, (RecurrentLayer,)) or
                     type(model).__name__ == "Bidirectional" else (None, size))
        klayer.set_weights(weights)
        return klayer
    if not model.built:
        raise ValueError("to_keras: the model is not built; give the first layer input_size= "
                         "or an Input(shape), or run it once")
    shape = model._input_shape
    from .layers import Embedding
    first = model.layers[0]
    dtype = "int32" if isinstance(first, Embedding) else first.dtype.name
    kmodel = keras.Sequential([keras.Input(shape=tuple(shape[1:]), dtype=dtype,
                                           batch_size=batch_size)])
    pending = []
    for layer in model.layers:
        klayer, weights = _keras_layer_for(layer, keras)
        kmodel.add(klayer)
        pending.append((klayer, weights))
    for klayer, weights in pending:
        if weights:
            klayer.set_weights(weights)
    return kmodel


def _to_keras_functional(model, keras, batch_size=None):
    graph = model._graph
    if graph is None or not model.built:
        raise ValueError("to_keras: the model is not built")
    env, made, pending = {}, {}, []
    ins = []
    for t in graph.inputs:
        kind = np.dtype(t.dtype).kind
        kt = keras.Input(shape=tuple(t.shape[1:]), dtype="int32" if kind in "iu" else t.dtype,
                         name=t.node.layer.name, batch_size=batch_size)
        env[t._id] = kt
        ins.append(kt)
    for node in graph.nodes:
        layer = node.layer
        if id(layer) not in made:
            made[id(layer)] = _keras_layer_for(layer, keras)
            pending.append(made[id(layer)])
        klayer = made[id(layer)][0]
        xs = [env[t._id] for t in node.x_tensors]
        kw = dict(node.kwargs)
        if getattr(layer, "causal", False) and "use_causal_mask" not in kw:
            kw["use_causal_mask"] = True        # fastrnn's constructor default, Keras's call
        if node.has_states:
            sts = [env[t._id] for t in node.states]
            kw["initial_state"] = sts if node.states_is_list or len(sts) > 1 else sts[0]
        out = klayer(xs if node.x_is_list else xs[0], **kw)
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        for t, kt in zip(node.outputs, outs):
            env[t._id] = kt
    outs = [env[t._id] for t in graph.outputs]
    kmodel = keras.Model(ins if len(ins) > 1 else ins[0], outs if len(outs) > 1 else outs[0])
    for klayer, weights in pending:
        if weights:
            klayer.set_weights(weights)
    return kmodel
