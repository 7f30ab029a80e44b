"""The Layer base class every fastrnn layer follows.

A layer owns ``params`` (name -> ndarray, PyTorch names and shapes) and ``grads`` (same keys,
filled by ``backward``). ``forward`` runs it, ``backward`` takes the gradient of the output and
returns the gradient of the input, after a ``forward(..., training=True)``. Layers build their
parameters on the first input when the input size was not given.
"""

import contextlib
import itertools
import threading
import weakref

import numpy as np

__all__ = ["Layer", "ParamDict", "as_dtype", "skip_initialization"]

_init_state = threading.local()


class _NoInitRNG:
    """Stands in for the initialisation generator inside :func:`skip_initialization`:
    returns uninitialised float32 arrays of the requested shape (the caller casts them to the
    layer dtype), so building costs one allocation per parameter and no random numbers."""

    def _empty(self, *args, size=None, **kw):
        if size is None:                           # uniform(low, high, size) / normal(...)
            size = args[-1] if args else ()
        return np.empty(size, dtype=np.float32)

    uniform = normal = standard_normal = random = _empty


class ParameterBudgetError(ValueError):
    """Building asked for more parameter bytes than :func:`skip_initialization` allows."""


def initialization_skipped():
    """True inside :func:`skip_initialization` (this thread)."""
    return getattr(_init_state, "skip", False)


def charge_parameter(shape, dtype, what):
    """Inside :func:`skip_initialization` with a budget: count a parameter about to be
    allocated, raising :class:`ParameterBudgetError` *before* it is allocated when the block's
    total would exceed the budget (``fastrnn.initializers.draw`` calls this)."""
    budget = getattr(_init_state, "budget", None)
    if budget is None:
        return
    nbytes = np.dtype(dtype).itemsize
    for d in shape:
        nbytes *= int(d)
    if nbytes > budget[0]:
        raise ParameterBudgetError(f"{what} of shape {tuple(shape)} needs {nbytes} bytes, only "
                                   f"{budget[0]} remain of the budget")
    budget[0] -= nbytes


@contextlib.contextmanager
def skip_initialization(budget=None):
    """Build layers in this block (this thread only) without computing initial values.

    For loaders that overwrite every parameter right after building the model: the
    parameters are allocated but hold arbitrary values until they are assigned. Random
    streams used at run time (Dropout) are not affected: they are created on first use.
    With ``budget`` (bytes), a parameter that would take the total allocated in the block
    beyond it raises :class:`ParameterBudgetError` before it is allocated, so a tiny hostile
    file cannot make ``load_model`` allocate gigabytes.
    """
    old = (getattr(_init_state, "skip", False), getattr(_init_state, "budget", None))
    _init_state.skip = True
    _init_state.budget = None if budget is None else [int(budget)]
    try:
        yield
    finally:
        _init_state.skip, _init_state.budget = old

_CREATED = itertools.count()
_DTYPES = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}


def as_dtype(dtype):
    """'float32'/'float64' (or the numpy dtypes) -> np.dtype; anything else is a ValueError."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in _DTYPES.values():
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return dt


def _batch_shape(input_shape):
    """Keras's ``input_shape`` (without the batch axis) -> ``(None, *input_shape)`` or None."""
    if input_shape is None:
        return None
    if isinstance(input_shape, (int, np.integer)) and not isinstance(input_shape, bool):
        input_shape = (input_shape,)
    if not isinstance(input_shape, (tuple, list)) or not input_shape or not all(
            s is None or (isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0)
            for s in input_shape):
        raise ValueError(f"input_shape must be a tuple of positive ints or None (the batch axis "
                         f"excluded), got {input_shape!r}")
    return (None,) + tuple(None if s is None else int(s) for s in input_shape)


def _symbolic_in(value):
    """The first symbolic tensor in ``value`` (itself or a list/tuple element), else None.
    Symbolic tensors are recognised by their ``_call_layer`` method, so this module need not
    import the model graph (models depend on layers, not the reverse)."""
    if hasattr(value, "_call_layer"):
        return value
    if isinstance(value, (list, tuple)):
        for v in value:
            found = _symbolic_in(v)
            if found is not None:
                return found
    return None


class ParamDict(dict):
    """A dict of parameters that keeps each entry's shape and dtype.

    Assigning ``params[name] = array`` copies the values into a fresh C-contiguous array of the
    layer's dtype after checking the shape, so a PyTorch tensor's ``.numpy()`` (or a float64
    array for a float32 layer) can be assigned directly. Unknown names are a ``KeyError``.
    """

    def __init__(self, dtype):
        super().__init__()
        self._dtype = dtype
        self._locked = False

    def lock(self):
        self._locked = True

    def __setitem__(self, name, value):
        if self._locked:
            if name not in self:
                raise KeyError(f"unknown parameter {name!r}; this layer has {sorted(self)}")
            arr = np.asarray(value)
            if arr.dtype.kind not in "fiu":
                raise TypeError(f"params[{name!r}] must be a real numeric array, got dtype "
                                f"{arr.dtype}")
            old = dict.__getitem__(self, name)
            if arr.shape != old.shape:
                raise ValueError(f"params[{name!r}] must have shape {old.shape}, got {arr.shape}")
            value = np.array(arr, dtype=self._dtype, order="C", copy=True)
        dict.__setitem__(self, name, value)

    def update(self, *args, **kw):
        for k, v in dict(*args, **kw).items():
            self[k] = v


class Layer:
    """Base class: parameters, gradients, build-on-first-input, config and shapes."""

    #: whether the layer accepts a ``mask`` argument and passes masks on
    supports_masking = False

    def __init__(self, *, dtype="float32", seed=None, name=None, trainable=True,
                 input_shape=None):
        self.dtype = as_dtype(dtype)
        if not isinstance(trainable, (bool, np.bool_)):
            raise TypeError(f"trainable must be True or False, got {trainable!r}")
        #: False freezes the parameters: fit() skips them and summary() counts them apart
        self.trainable = bool(trainable)
        #: Keras's ``input_shape=`` on a model's first layer (batch axis excluded)
        self.batch_input_shape = _batch_shape(input_shape)
        if seed is not None and (not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
        self.seed = seed
        self.name = name or type(self).__name__.lower()
        # a default name may be made unique (lstm -> lstm_1) by a functional Model
        self._auto_name = name is None or name == type(self).__name__.lower()
        self._created = next(_CREATED)       # creation order: the suffixes follow it
        self.params = ParamDict(self.dtype)
        self.grads = {}
        self.built = False

    # -- building -------------------------------------------------------------------------
    def _rng(self):
        return np.random.default_rng(self.seed)

    def build(self, input_shape):
        self.built = True
        self.params.lock()

    def _finish_build(self):
        self.built = True
        self.params.lock()
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        # a seedless initialisation nobody has replaced yet: Sequential(seed=) may redo it
        self._unseeded_init = (None if self.seed is not None else
                               {k: weakref.ref(v) for k, v in self.params.items()})

    # -- running --------------------------------------------------------------------------
    def forward(self, x, training=False, **kw):
        raise NotImplementedError

    def backward(self, d_out):
        raise NotImplementedError

    def __call__(self, x, *args, **kw):
        """On arrays: ``forward``. On symbolic tensors (``fastrnn.Input`` and what layers
        return for them): record the call in the model graph and return output tensors."""
        sym = _symbolic_in(x)
        if sym is None:
            sym = _symbolic_in(kw.get("initial_state"))
        if sym is not None:
            return sym._call_layer(self, x, args, kw)
        return self.forward(x, *args, **kw)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_mask(self, x, mask=None):
        """The mask this layer's output carries (B, T) bool, or None."""
        return mask if self.supports_masking else None

    # -- bookkeeping ----------------------------------------------------------------------
    def count_params(self):
        return int(sum(p.size for p in self.params.values()))

    def get_weights(self):
        """Copies of the parameters, in ``params`` order (PyTorch names and layout: a
        recurrent layer gives ``[weight_ih, weight_hh, bias_ih, bias_hh]``, not Keras's
        ``[kernel, recurrent_kernel, bias]``; see :mod:`fastrnn.interop` to convert).

        Returns
        -------
        list of ndarray
        """
        return [np.array(v, copy=True) for v in self.params.values()]

    def set_weights(self, weights):
        """Set the parameters from a list in ``get_weights()`` order. Every shape is checked
        before anything is written, so a bad list leaves the layer unchanged.

        Parameters
        ----------
        weights : list of array_like
        """
        names = list(self.params)
        if not isinstance(weights, (list, tuple)):
            raise TypeError(f"set_weights: weights must be a list of arrays, got "
                            f"{type(weights).__name__}")
        if len(weights) != len(names):
            raise ValueError(f"set_weights: {self.name} has {len(names)} parameters {names}, "
                             f"got {len(weights)} arrays")
        arrays = []
        for k, w in zip(names, weights):
            arr = np.asarray(w)
            if arr.shape != self.params[k].shape:
                raise ValueError(f"set_weights: {k} of {self.name} must have shape "
                                 f"{self.params[k].shape}, got {arr.shape}")
            if arr.dtype.kind not in "fiu":
                raise TypeError(f"set_weights: {k} must be a real numeric array, got dtype "
                                f"{arr.dtype}")
            arrays.append(arr)
        for k, arr in zip(names, arrays):
            self.params[k][...] = arr

    def get_config(self):
        cfg = {"dtype": self.dtype.name, "name": self.name}
        if self.seed is not None:
            cfg["seed"] = int(self.seed)
        if not self.trainable:
            cfg["trainable"] = False
        return cfg

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        cfg = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({cfg})"
