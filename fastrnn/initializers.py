"""Weight initialisers with Keras's names and statistics.

Every initializer is called as ``init(shape, dtype=None, rng=None)`` and returns a new array of
``shape``. ``shape`` is always given in **Keras's layout**: a kernel is ``(fan_in, fan_out)``
(``(input_dim, G*units)`` for a recurrent kernel, ``(units, G*units)`` for a recurrent one);
the layers store the transpose in PyTorch's ``(out, in)`` layout. Working in Keras's layout
means the fans, the orthogonal directions and any user callable written for Keras
(``def my_init(shape, dtype=None)``) give exactly what they give in Keras.

Keras's defaults, which fastrnn's layers use by default:

====================  ==========================================================================
layer                 default initialisers
====================  ==========================================================================
SimpleRNN/LSTM/GRU    ``kernel_initializer="glorot_uniform"``, ``recurrent_initializer=
                      "orthogonal"``, ``bias_initializer="zeros"``; LSTM ``unit_forget_bias=True``
Dense                 ``kernel_initializer="glorot_uniform"``, ``bias_initializer="zeros"``
Embedding             ``embeddings_initializer="uniform"`` (U(-0.05, 0.05))
Conv1D                ``kernel_initializer="glorot_uniform"``, ``bias_initializer="zeros"``
====================  ==========================================================================

PyTorch's scheme is one argument away: ``init="torch"`` on a layer (U(-1/sqrt(H), 1/sqrt(H))
for every recurrent parameter, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for Dense/Conv1D, N(0, 1)
for Embedding). The same string is accepted by each ``*_initializer`` argument.

Example
-------
>>> import fastrnn as fr
>>> init = fr.initializers.get("glorot_uniform")
>>> w = init((8, 16), dtype="float64", rng=np.random.default_rng(0))
>>> bool(abs(w).max() <= np.sqrt(6 / 24))
True
"""

import math
import numbers

import numpy as np

__all__ = ["Initializer", "Zeros", "Ones", "Constant", "RandomUniform", "RandomNormal",
           "TruncatedNormal", "VarianceScaling", "GlorotUniform", "GlorotNormal", "HeUniform",
           "HeNormal", "LecunUniform", "LecunNormal", "Orthogonal", "Identity", "TorchUniform",
           "get", "serialize", "compute_fans"]


def compute_fans(shape):
    """Keras's ``(fan_in, fan_out)`` of a shape.

    Parameters
    ----------
    shape : tuple of int
        ``()`` / ``(n,)`` / ``(fan_in, fan_out)`` / ``(*receptive, in, out)`` (conv kernels).

    Returns
    -------
    (int, int)
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = int(np.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


def _dtype(dtype):
    return np.dtype(np.float32 if dtype is None else dtype)


def _gen(rng):
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _real(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


class Initializer:
    """Base class. Subclasses implement ``__call__(shape, dtype=None, rng=None)``.

    ``rng`` is a ``numpy.random.Generator`` (or a seed); None draws fresh entropy.
    """

    def __call__(self, shape, dtype=None, rng=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self):
        """Constructor arguments (JSON-able)."""
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Zeros(Initializer):
    """All zeros."""

    def __call__(self, shape, dtype=None, rng=None):
        return np.zeros(shape, dtype=_dtype(dtype))


class Ones(Initializer):
    """All ones."""

    def __call__(self, shape, dtype=None, rng=None):
        return np.ones(shape, dtype=_dtype(dtype))


class Constant(Initializer):
    """Every entry equal to ``value``."""

    def __init__(self, value=0.0):
        self.value = _real(value, "Constant: value")

    def __call__(self, shape, dtype=None, rng=None):
        return np.full(shape, self.value, dtype=_dtype(dtype))

    def get_config(self):
        return {"value": self.value}


class RandomUniform(Initializer):
    """U(minval, maxval); Keras's ``"uniform"`` / ``"random_uniform"`` is U(-0.05, 0.05)."""

    def __init__(self, minval=-0.05, maxval=0.05):
        self.minval = _real(minval, "RandomUniform: minval")
        self.maxval = _real(maxval, "RandomUniform: maxval")
        if self.maxval < self.minval:
            raise ValueError(f"RandomUniform: maxval must be >= minval, got minval={minval!r}, "
                             f"maxval={maxval!r}")

    def __call__(self, shape, dtype=None, rng=None):
        return _gen(rng).uniform(self.minval, self.maxval, shape).astype(_dtype(dtype))

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval}


class RandomNormal(Initializer):
    """N(mean, stddev^2); Keras's ``"normal"`` / ``"random_normal"`` has stddev 0.05."""

    def __init__(self, mean=0.0, stddev=0.05):
        self.mean = _real(mean, "RandomNormal: mean")
        self.stddev = _real(stddev, "RandomNormal: stddev")
        if self.stddev < 0:
            raise ValueError(f"RandomNormal: stddev must be >= 0, got {stddev!r}")

    def __call__(self, shape, dtype=None, rng=None):
        return _gen(rng).normal(self.mean, self.stddev, shape).astype(_dtype(dtype))

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev}


def _truncated_normal(gen, shape, stddev):
    """N(0, stddev^2) redrawn outside two standard deviations (what Keras does)."""
    out = gen.standard_normal(shape)
    bad = np.abs(out) > 2
    while bad.any():
        out[bad] = gen.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2
    return out * stddev


class TruncatedNormal(Initializer):
    """N(mean, stddev^2) truncated at two standard deviations (values beyond are redrawn)."""

    def __init__(self, mean=0.0, stddev=0.05):
        self.mean = _real(mean, "TruncatedNormal: mean")
        self.stddev = _real(stddev, "TruncatedNormal: stddev")
        if self.stddev < 0:
            raise ValueError(f"TruncatedNormal: stddev must be >= 0, got {stddev!r}")

    def __call__(self, shape, dtype=None, rng=None):
        return (self.mean + _truncated_normal(_gen(rng), shape, self.stddev)).astype(_dtype(dtype))

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev}


# std of N(0,1) truncated to [-2, 2]: Keras divides by it so the result has the target variance
_TRUNC_STD = 0.87962566103423978


class VarianceScaling(Initializer):
    """Keras's VarianceScaling: variance ``scale / n`` with n = fan_in, fan_out or their mean.

    Parameters
    ----------
    scale : float > 0
    mode : {"fan_in", "fan_out", "fan_avg"}
    distribution : {"truncated_normal", "untruncated_normal", "uniform"}
        ``uniform`` draws U(-limit, limit) with ``limit = sqrt(3 * scale / n)``.
    """

    MODES = ("fan_in", "fan_out", "fan_avg")
    DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal"):
        self.scale = _real(scale, "VarianceScaling: scale")
        if self.scale <= 0:
            raise ValueError(f"VarianceScaling: scale must be > 0, got {scale!r}")
        if mode not in self.MODES:
            raise ValueError(f"VarianceScaling: mode must be one of {self.MODES}, got {mode!r}")
        if distribution == "normal":
            distribution = "truncated_normal"
        if distribution not in self.DISTRIBUTIONS:
            raise ValueError(f"VarianceScaling: distribution must be one of "
                             f"{self.DISTRIBUTIONS}, got {distribution!r}")
        self.mode, self.distribution = mode, distribution

    def _n(self, shape):
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        return max(1.0, n)

    def __call__(self, shape, dtype=None, rng=None):
        gen = _gen(rng)
        var = self.scale / self._n(shape)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * var)
            out = gen.uniform(-limit, limit, shape)
        elif self.distribution == "untruncated_normal":
            out = gen.standard_normal(shape) * math.sqrt(var)
        else:
            out = _truncated_normal(gen, shape, math.sqrt(var) / _TRUNC_STD)
        return out.astype(_dtype(dtype))

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution}


class _Preset(VarianceScaling):
    """A VarianceScaling with fixed arguments (glorot_*, he_*, lecun_*)."""

    _args = {}

    def __init__(self):
        super().__init__(**self._args)

    def get_config(self):
        return {}


class GlorotUniform(_Preset):
    """U(-l, l), ``l = sqrt(6 / (fan_in + fan_out))`` (Keras's default kernel initializer)."""
    _args = dict(scale=1.0, mode="fan_avg", distribution="uniform")


class GlorotNormal(_Preset):
    """Truncated normal with variance ``2 / (fan_in + fan_out)``."""
    _args = dict(scale=1.0, mode="fan_avg", distribution="truncated_normal")


class HeUniform(_Preset):
    """U(-l, l), ``l = sqrt(6 / fan_in)``."""
    _args = dict(scale=2.0, mode="fan_in", distribution="uniform")


class HeNormal(_Preset):
    """Truncated normal with variance ``2 / fan_in``."""
    _args = dict(scale=2.0, mode="fan_in", distribution="truncated_normal")


class LecunUniform(_Preset):
    """U(-l, l), ``l = sqrt(3 / fan_in)``."""
    _args = dict(scale=1.0, mode="fan_in", distribution="uniform")


class LecunNormal(_Preset):
    """Truncated normal with variance ``1 / fan_in``."""
    _args = dict(scale=1.0, mode="fan_in", distribution="truncated_normal")


class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix times ``gain`` (Keras's default recurrent initializer).

    The shape is flattened to ``(prod(shape[:-1]), shape[-1])``; QR of a normal matrix of the
    taller orientation, Q's columns multiplied by the signs of R's diagonal (so the result is
    uniformly distributed), transposed back when there are fewer rows than columns. For a
    recurrent kernel ``(units, G*units)`` the rows are orthonormal over the full width (not
    per gate), as in Keras.
    """

    def __init__(self, gain=1.0):
        self.gain = _real(gain, "Orthogonal: gain")

    def __call__(self, shape, dtype=None, rng=None):
        shape = tuple(int(s) for s in shape)
        if len(shape) < 2:
            raise ValueError(f"Orthogonal: needs a shape with at least 2 dimensions, got {shape}")
        rows, cols = int(np.prod(shape[:-1])), shape[-1]
        a = _gen(rng).standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return (self.gain * q).reshape(shape).astype(_dtype(dtype))

    def get_config(self):
        return {"gain": self.gain}


class Identity(Initializer):
    """``gain`` times the identity (2-D shapes only; rectangular gives an identity block)."""

    def __init__(self, gain=1.0):
        self.gain = _real(gain, "Identity: gain")

    def __call__(self, shape, dtype=None, rng=None):
        shape = tuple(int(s) for s in shape)
        if len(shape) != 2:
            raise ValueError(f"Identity: needs a 2-D shape, got {shape}")
        return (self.gain * np.eye(*shape)).astype(_dtype(dtype))

    def get_config(self):
        return {"gain": self.gain}


class TorchUniform(Initializer):
    """PyTorch's default: U(-1/sqrt(n), 1/sqrt(n)).

    Parameters
    ----------
    n : int or None
        The size in the bound: the hidden size for recurrent layers (every parameter), the
        fan-in for Linear/Conv. None uses the Keras-layout fan-in ``compute_fans(shape)[0]``.
    """

    def __init__(self, n=None):
        if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0):
            raise ValueError(f"TorchUniform: n must be a positive int or None, got {n!r}")
        self.n = None if n is None else int(n)

    def __call__(self, shape, dtype=None, rng=None):
        n = self.n if self.n is not None else compute_fans(shape)[0]
        k = 1.0 / math.sqrt(max(1, n))
        return _gen(rng).uniform(-k, k, shape).astype(_dtype(dtype))

    def get_config(self):
        return {"n": self.n}


class _TorchNormal(Initializer):
    """N(0, 1): torch.nn.Embedding's initialisation."""

    def __call__(self, shape, dtype=None, rng=None):
        return _gen(rng).standard_normal(shape).astype(_dtype(dtype))


_BY_NAME = {
    "zeros": Zeros, "zero": Zeros, "ones": Ones, "one": Ones, "constant": Constant,
    "uniform": RandomUniform, "random_uniform": RandomUniform,
    "normal": RandomNormal, "random_normal": RandomNormal,
    "truncated_normal": TruncatedNormal, "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal,
    "xavier_uniform": GlorotUniform, "xavier_normal": GlorotNormal,
    "he_uniform": HeUniform, "he_normal": HeNormal,
    "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal,
    "orthogonal": Orthogonal, "identity": Identity,
}
_CLASSES = {c.__name__: c for c in (Zeros, Ones, Constant, RandomUniform, RandomNormal,
                                    TruncatedNormal, VarianceScaling, GlorotUniform, GlorotNormal,
                                    HeUniform, HeNormal, LecunUniform, LecunNormal, Orthogonal,
                                    Identity, TorchUniform)}


def _snake(name):
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def get(identifier, torch_default=None):
    """Resolve an initializer from a name, a config dict, an Initializer or a callable.

    Parameters
    ----------
    identifier : str, dict, Initializer or callable
        Keras names (``"glorot_uniform"``, ``"orthogonal"``, ``"zeros"``, ``"uniform"``,
        ``"he_normal"``, ...; CamelCase class names too), ``{"class_name": ..., "config":
        {...}}``, an instance, or any callable ``f(shape, dtype=None)`` returning an array.
        ``"torch"`` means PyTorch's scheme for the layer asking (``torch_default``).
    torch_default : Initializer, optional
        What ``"torch"`` resolves to (the layer's own PyTorch initialisation).

    Returns
    -------
    Initializer or callable
    """
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        key = identifier.strip()
        if key.lower() == "torch":
            if torch_default is None:
                raise ValueError("initializer 'torch' is only meaningful on a layer")
            return torch_default
        cls = _BY_NAME.get(key.lower()) or _BY_NAME.get(_snake(key)) or _CLASSES.get(key)
        if cls is None:
            raise ValueError(f"unknown initializer {identifier!r}; known: "
                             f"{sorted(_BY_NAME) + ['torch']}")
        return cls()
    if isinstance(identifier, dict):
        name, cfg = identifier.get("class_name"), identifier.get("config") or {}
        cls = _CLASSES.get(name) if isinstance(name, str) else None
        if cls is None or not isinstance(cfg, dict):
            raise ValueError(f"unknown initializer config {identifier!r}; class_name must be "
                             f"one of {sorted(_CLASSES)}")
        return cls.from_config(dict(cfg))
    if callable(identifier):
        return identifier
    raise TypeError(f"initializer must be a name, a config dict or a callable, got "
                    f"{type(identifier).__name__}")


def serialize(initializer):
    """JSON-able form for a layer config: the name string as given, or ``{"class_name",
    "config"}`` for an Initializer; None for a plain callable (it cannot be saved; the weights
    it produced are saved with the model anyway)."""
    if initializer is None or isinstance(initializer, str):
        return initializer
    if isinstance(initializer, Initializer) and type(initializer).__name__ in _CLASSES:
        return {"class_name": type(initializer).__name__, "config": initializer.get_config()}
    return None


def draw(initializer, shape, dtype, rng, what):
    """Call ``initializer`` for ``shape`` and check what comes back (user callables may not
    take ``rng``). Returns a C-contiguous array of ``dtype``.

    Inside :func:`fastrnn.layers.base.skip_initialization` (a loader about to overwrite every
    parameter from a file) nothing is computed: an uninitialised array of the shape is
    returned, so loading never pays for random numbers or an orthogonal QR."""
    from .layers.base import charge_parameter, initialization_skipped
    if initialization_skipped():
        charge_parameter(shape, dtype, what)
        return np.empty(tuple(shape), dtype=dtype)
    if isinstance(initializer, Initializer):
        out = initializer(shape, dtype=dtype, rng=rng)
    else:
        try:
            out = initializer(tuple(shape), dtype=np.dtype(dtype).name)
        except TypeError:
            out = initializer(tuple(shape))
        out = np.asarray(out)
    if out.shape != tuple(shape):
        raise ValueError(f"{what}: the initializer returned shape {out.shape}, expected "
                         f"{tuple(shape)}")
    if out.dtype.kind not in "fiu":
        raise TypeError(f"{what}: the initializer returned dtype {out.dtype}, expected floats")
    return np.ascontiguousarray(out, dtype=dtype)
