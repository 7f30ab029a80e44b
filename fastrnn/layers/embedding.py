"""Embedding: integer ids -> dense vectors (torch.nn.Embedding's parameter and init)."""

import numpy as np

from .. import initializers
from .base import Layer

__all__ = ["Embedding"]


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


class Embedding(Layer):
    """Look up rows of ``weight`` (input_dim, output_dim).

    Initialised like Keras, ``embeddings_initializer="uniform"`` (U(-0.05, 0.05)), or like
    torch.nn.Embedding (N(0, 1)) with ``init="torch"``. ``input_length`` (Keras 2) is accepted
    and ignored, as Keras 3 does.

    Input: integer ids of any shape, usually (B, T); output: ``x.shape + (output_dim,)``.
    Float arrays holding whole numbers are accepted (cast to int64); ids outside
    ``[0, input_dim)`` are a ValueError. With ``mask_zero=True`` id 0 is padding: the layer
    emits the mask ``x != 0`` for the layers after it (so the vocabulary must reserve id 0).
    ``backward`` accumulates the weight gradient and returns None (ids have no gradient).

    Parameters
    ----------
    input_dim : int
        Vocabulary size: ids are in ``[0, input_dim)``.
    output_dim : int
        Size of each vector.
    embeddings_initializer : str or callable, optional
        Keras name or object (default "uniform": U(-0.05, 0.05)).
    mask_zero : bool, default False
        Treat id 0 as padding and emit the mask ``x != 0``.
    init : {None, "keras", "torch"}, optional
        "torch": torch.nn.Embedding's N(0, 1).
    input_length : int, optional
        Ignored (Keras 2's argument).
    dtype : {"float32", "float64"}, default "float32"
    seed : int, optional
        Seed of the initial weights.
    name : str, optional
    trainable : bool, default True
    input_shape : tuple, optional

    Examples
    --------
    >>> import numpy as np, fastrnn as fr
    >>> emb = fr.Embedding(10, 4, mask_zero=True, seed=0)
    >>> ids = np.array([[3, 1, 0, 0]])                      # (B=1, T=4), right-padded
    >>> emb.forward(ids).shape, emb.compute_mask(ids)
    ((1, 4, 4), array([[ True,  True, False, False]]))
    """

    supports_masking = True

    def __init__(self, input_dim, output_dim, embeddings_initializer=None, mask_zero=False,
                 *, init=None, input_length=None, dtype="float32", seed=None, name=None,
                 trainable=True, input_shape=None):
        super().__init__(dtype=dtype, seed=seed, name=name, trainable=trainable,
                         input_shape=input_shape)
        if isinstance(embeddings_initializer, (bool, np.bool_)):
            # the old positional order was (input_dim, output_dim, mask_zero)
            raise TypeError("Embedding: the third positional argument is embeddings_initializer "
                            "(as in Keras); pass mask_zero=... by keyword")
        if init not in (None, "keras", "torch"):
            raise ValueError(f"init must be None, 'keras' or 'torch', got {init!r}")
        self.init = init
        self.embeddings_initializer = embeddings_initializer
        if embeddings_initializer is None:       # the scheme's default
            self._initializer = (initializers._TorchNormal() if init == "torch"
                                 else initializers.RandomUniform(-0.05, 0.05))
        else:
            self._initializer = initializers.get(embeddings_initializer,
                                                 torch_default=initializers._TorchNormal())
        self.input_dim = _positive_int(input_dim, "input_dim")
        self.output_dim = _positive_int(output_dim, "output_dim")
        self.mask_zero = bool(mask_zero)
        self._cache = None

    def build(self, input_shape=None):
        rng = self._rng()
        self.params["weight"] = initializers.draw(
            self._initializer, (self.input_dim, self.output_dim), self.dtype, rng,
            "Embedding embeddings_initializer")
        self._finish_build()

    def get_config(self):
        cfg = super().get_config()
        cfg.update(input_dim=self.input_dim, output_dim=self.output_dim, mask_zero=self.mask_zero)
        ser = initializers.serialize(self.embeddings_initializer)
        if ser is not None:
            cfg["embeddings_initializer"] = ser
        if self.init is not None:
            cfg["init"] = self.init
        return cfg

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def _ids(self, x):
        if not isinstance(x, np.ndarray):
            try:
                x = np.asarray(x)
            except Exception:
                raise TypeError(f"Embedding: x must be an array of integer ids, got "
                                f"{type(x).__name__}") from None
        if x.dtype.kind in "iu":
            ids = x.astype(np.int64, copy=False)
        elif x.dtype.kind == "f":
            if x.size and not (np.all(np.isfinite(x)) and np.all(x == np.floor(x))):
                raise TypeError("Embedding: x must hold integer ids; got a float array with "
                                "non-integer values")
            ids = x.astype(np.int64)
        else:
            raise TypeError(f"Embedding: x must be an array of integer ids, got dtype {x.dtype}")
        if ids.ndim < 1:
            raise ValueError(f"Embedding: x must have at least 1 dimension, got shape {ids.shape}")
        if ids.size:
            lo, hi = int(ids.min()), int(ids.max())
            if lo < 0 or hi >= self.input_dim:
                bad = lo if lo < 0 else hi
                pos = tuple(int(i) for i in np.argwhere(ids == bad)[0])
                raise ValueError(f"Embedding: input id {bad} at position {pos} is out of range; "
                                 f"expected 0 <= id < input_dim={self.input_dim}")
        return ids

    def forward(self, x, training=False, mask=None):
        ids = self._ids(x)
        if not self.built:
            self.build()
        out = self.params["weight"][ids]          # fancy indexing copies
        self._cache = ids if training else None
        return out

    def backward(self, d_out):
        if self._cache is None:
            raise RuntimeError("Embedding.backward needs a preceding forward(..., training=True)")
        ids = self._cache
        expected = ids.shape + (self.output_dim,)
        d_out = np.asarray(d_out)
        if d_out.shape != expected:
            raise ValueError(f"Embedding: d_out must have shape {expected}, got {d_out.shape}")
        g = np.zeros((self.input_dim, self.output_dim), dtype=self.dtype)
        np.add.at(g, ids.reshape(-1), d_out.reshape(-1, self.output_dim).astype(self.dtype, copy=False))
        self.grads["weight"] = g
        return None

    def compute_mask(self, x, mask=None):
        if not self.mask_zero:
            return mask
        m = np.asarray(x) != 0
        if mask is not None:
            m = m & np.asarray(mask, dtype=bool)
        return m
