"""Weights from and to PyTorch and Keras.

fastrnn's parameters are PyTorch's (``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``,
LSTM gates i, f, g, o; GRU gates r, z, n in the linear-before-reset form), so PyTorch weights copy
one-to-one. Keras stores the transposes (``kernel (I, G*H)``, ``recurrent_kernel (H, G*H)``) and
one bias; its GRU orders the gates z, r, h and, with ``reset_after=True`` (the Keras 3
default), keeps an input row and a recurrent row of biases ``(2, 3H)``. A Keras GRU with
``reset_after=False`` computes a different function (reset before the recurrent product) and
cannot be loaded: that is an error, not a silent approximation.

torch is never imported here; modules are read through their attributes.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence

import numpy as np

from .layers.recurrent import GRU, LSTM, RecurrentLayer, SimpleRNN

__all__ = ["load_torch_weights", "from_torch", "load_keras_weights", "to_keras_weights"]

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


def load_torch_weights(layer: RecurrentLayer, module: Any, layer_index: int = 0,
                       reverse: bool = False) -> RecurrentLayer:
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


def from_torch(module: Any, *, dtype: Optional[str] = None, return_sequences: bool = False,
               return_state: bool = False) -> List:
    """Build fastrnn layers holding a ``torch.nn.RNN/LSTM/GRU``'s weights.

    Returns a list with one layer per ``num_layers`` (all but the last with
    ``return_sequences=True``); a bidirectional module gives ``Bidirectional`` layers with
    ``merge_mode="concat"`` (PyTorch's output layout). ``dtype`` defaults to the module's.

    Parameters
    ----------
    module : torch.nn.RNN, torch.nn.LSTM or torch.nn.GRU
        Any ``num_layers``, uni- or bidirectional, with or without biases; ``batch_first`` does
        not matter (fastrnn layers are batch-first).
    dtype : {None, "float32", "float64"}, optional
        Dtype of the new layers (default: the module's).
    return_sequences : bool, default False
        For the last layer (the others always return sequences).
    return_state : bool, default False
        For the last layer.

    Returns
    -------
    list of Layer
        Ready for ``fr.Sequential(layers)``; the output for a ``(B, T, I)`` batch equals the
        module's ``output[:, -1]`` (or ``output`` with ``return_sequences``).

    Examples
    --------
    >>> import torch, fastrnn as fr                                   # doctest: +SKIP
    >>> tm = torch.nn.GRU(8, 16, num_layers=2, bidirectional=True)    # doctest: +SKIP
    >>> model = fr.Sequential(fr.interop.from_torch(tm, return_sequences=True))  # doctest: +SKIP
    """
    kind = type(module).__name__
    cls = {"RNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}.get(kind)
    if cls is None:
        raise TypeError(f"module must be a torch.nn.RNN, LSTM or GRU, got {kind}")
    if getattr(module, "batch_first", True) is False:
        pass  # fastrnn layers are always batch-first; weights do not depend on it
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


def load_keras_weights(layer: RecurrentLayer, weights: Sequence[np.ndarray]) -> RecurrentLayer:
    """Load a Keras ``SimpleRNN``/``LSTM``/``GRU``'s ``get_weights()`` list into ``layer``.

    ``weights`` is ``[kernel (I, G*H), recurrent_kernel (H, G*H)(, bias)]``. Keras has one
    bias; it goes into ``bias_ih`` and ``bias_hh`` becomes zero, which computes the same function.
    A GRU needs ``reset_after=True`` weights (bias shape ``(2, 3H)``).

    Parameters
    ----------
    layer : SimpleRNN, LSTM or GRU
        The fastrnn layer to fill (built to the kernel's input size if needed).
    weights : list of ndarray
        ``keras_layer.get_weights()``: ``kernel (I, G*H)``, ``recurrent_kernel (H, G*H)`` and,
        with a bias, ``bias (G*H,)`` (GRU ``reset_after=True``: ``(2, 3H)``).

    Returns
    -------
    layer
        The same layer, filled.

    Examples
    --------
    >>> import numpy as np, fastrnn as fr
    >>> rng = np.random.default_rng(0)
    >>> keras_weights = [rng.standard_normal((3, 8)), rng.standard_normal((2, 8)),
    ...                  np.zeros(8)]                             # an LSTM(2) on 3 features
    >>> layer = fr.interop.load_keras_weights(fr.LSTM(2, dtype="float64"), keras_weights)
    >>> layer.params["weight_ih"].shape                           # PyTorch layout (4H, I)
    (8, 3)
    >>> np.allclose(fr.interop.to_keras_weights(layer)[0], keras_weights[0])
    True
    """
    _check_layer(layer)
    if not isinstance(weights, (list, tuple)) or len(weights) not in (2, 3):
        raise ValueError("weights must be [kernel, recurrent_kernel] or [kernel, "
                         f"recurrent_kernel, bias], got {type(weights).__name__} of length "
                         f"{len(weights) if hasattr(weights, '__len__') else '?'}")
    kernel, recurrent = (np.asarray(w) for w in weights[:2])
    bias = np.asarray(weights[2]) if len(weights) == 3 else None
    if (bias is not None) != layer.use_bias:
        raise ValueError(f"the layer has use_bias={layer.use_bias} but the weights "
                         f"{'have' if bias is not None else 'have no'} bias")
    GH = layer.gates * layer.units
    if kernel.ndim != 2 or kernel.shape[1] != GH:
        raise ValueError(f"kernel must have shape (input_size, {GH}), got {kernel.shape}")
    if recurrent.shape != (layer.units, GH):
        raise ValueError(f"recurrent_kernel must have shape {(layer.units, GH)}, got "
                         f"{recurrent.shape}")
    w_ih, w_hh = kernel.T, recurrent.T
    if isinstance(layer, GRU):
        w_ih, w_hh = _blocks(w_ih, _GRU_KERAS_ORDER), _blocks(w_hh, _GRU_KERAS_ORDER)
        if bias is not None:
            if bias.shape != (2, GH):
                raise ValueError(f"a GRU bias must have shape (2, {GH}) (Keras reset_after="
                                 f"True); got {bias.shape}. A reset_after=False GRU computes a "
                                 "different function and cannot be loaded")
            b_ih = _blocks(bias[0], _GRU_KERAS_ORDER)
            b_hh = _blocks(bias[1], _GRU_KERAS_ORDER)
    elif bias is not None:
        if bias.shape != (GH,):
            raise ValueError(f"bias must have shape ({GH},), got {bias.shape}")
        b_ih, b_hh = bias, np.zeros_like(bias)
    if not layer.built:
        layer.build((None, None, kernel.shape[0]))
    elif kernel.shape[0] != layer.input_size:
        raise ValueError(f"kernel has {kernel.shape[0]} input rows, the layer expects "
                         f"{layer.input_size}")
    layer.params["weight_ih"] = w_ih
    layer.params["weight_hh"] = w_hh
    if bias is not None:
        layer.params["bias_ih"] = b_ih
        layer.params["bias_hh"] = b_hh
    return layer


def to_keras_weights(layer: RecurrentLayer) -> List[np.ndarray]:
    """The ``set_weights()`` list a Keras layer of the same kind (GRU: reset_after=True) takes.

    Parameters
    ----------
    layer : SimpleRNN, LSTM or GRU
        A built fastrnn layer.

    Returns
    -------
    list of ndarray
        ``[kernel (I, G*H), recurrent_kernel (H, G*H)]`` plus, with biases, the Keras bias
        (``b_ih + b_hh``, or the ``(2, 3H)`` rows for a GRU), gates in Keras's order.
    """
    _check_layer(layer)
    p = layer.params
    w_ih, w_hh = p["weight_ih"], p["weight_hh"]
    if isinstance(layer, GRU):
        out = [_blocks(w_ih, _GRU_KERAS_ORDER).T.copy(), _blocks(w_hh, _GRU_KERAS_ORDER).T.copy()]
        if layer.use_bias:
            out.append(np.stack([_blocks(p["bias_ih"], _GRU_KERAS_ORDER),
                                 _blocks(p["bias_hh"], _GRU_KERAS_ORDER)]))
        return out
    out = [w_ih.T.copy(), w_hh.T.copy()]
    if layer.use_bias:
        out.append(p["bias_ih"] + p["bias_hh"])
    return out
