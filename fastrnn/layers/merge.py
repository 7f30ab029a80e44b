"""Merge layers: combine a list of tensors (Keras semantics).

``Concatenate(axis=-1)``, ``Add``, ``Subtract``, ``Multiply``, ``Average`` and ``Dot(axes,
normalize=False)`` take a list of arrays in ``forward`` and return one array; ``backward``
takes the output gradient and returns the list of input gradients. They have no parameters; float32/float64 inputs keep their precision (the layer's ``dtype``
applies to integer inputs).

Masks: the (B, T) masks of the inputs are combined with a logical AND (an input without a
mask counts as all True); the result is None when no input has a mask. ``Dot`` drops masks.

Example
-------
>>> import fastrnn as fr
>>> a, b = fr.Input((None, 4)), fr.Input((None, 4))
>>> s = fr.Add()([a, b])                      # (None, None, 4)
>>> c = fr.Concatenate()([a, b])              # (None, None, 8)
"""

import numpy as np

from ..linalg import bmm
from .base import Layer

__all__ = ["Concatenate", "Add", "Subtract", "Multiply", "Average", "Dot"]


def _as_float_list(xs, layer, dtype, n=None):
    if not isinstance(xs, (list, tuple)):
        raise TypeError(f"{layer}: expects a list of arrays, got {type(xs).__name__}")
    if len(xs) < 2 or (n is not None and len(xs) != n):
        want = f"exactly {n}" if n is not None else "at least 2"
        raise ValueError(f"{layer}: expects a list of {want} arrays, got {len(xs)}")
    out = []
    for i, x in enumerate(xs):
        a = np.asarray(x)
        if a.dtype.kind not in "fiu":
            raise TypeError(f"{layer}: input {i} must be a real numeric array, got dtype "
                            f"{a.dtype}")
        if a.ndim < 2:
            raise ValueError(f"{layer}: input {i} must have a batch axis and at least one "
                             f"more, got shape {a.shape}")
        out.append(a)
    # no parameters: float inputs keep their (common) precision, integers become ``dtype``
    if all(a.dtype.kind == "f" and a.dtype.itemsize >= 4 for a in out):
        dtype = np.result_type(*out)
    return [a.astype(dtype, copy=False) for a in out]


def _and_masks(masks):
    if masks is None:
        return None
    if not isinstance(masks, (list, tuple)):
        return masks
    present = [np.asarray(m, dtype=bool) for m in masks if m is not None]
    if not present:
        return None
    out = present[0]
    for m in present[1:]:
        if m.shape != out.shape:
            raise ValueError(f"merge: input masks have different shapes {out.shape} and "
                             f"{m.shape}")
        out = out & m
    return out


def _shapes_equal(shapes, layer):
    first = tuple(shapes[0])
    for s in shapes[1:]:
        s = tuple(s)
        if len(s) != len(first) or any(a is not None and b is not None and a != b
                                       for a, b in zip(first, s)):
            raise ValueError(f"{layer}: inputs must all have the same shape, got "
                             f"{[tuple(x) for x in shapes]}")


class _Merge(Layer):
    """Shared machinery of the elementwise merges: same-shape inputs, one output."""

    supports_masking = True
    n_inputs = None

    def __init__(self, *, dtype="float32", name=None):
        super().__init__(dtype=dtype, name=name)
        self._cache = None
        self.built = True

    def build(self, input_shape=None):
        if input_shape is not None:
            if not isinstance(input_shape, (list, tuple)) or not input_shape or \
                    not isinstance(input_shape[0], (list, tuple)):
                raise ValueError(f"{type(self).__name__}: must be called on a list of tensors")
            self._check_shapes(input_shape)
        self.built = True

    def _check_shapes(self, shapes):
        if len(shapes) < 2 or (self.n_inputs is not None and len(shapes) != self.n_inputs):
            want = f"exactly {self.n_inputs}" if self.n_inputs else "at least 2"
            raise ValueError(f"{type(self).__name__}: expects a list of {want} inputs, got "
                             f"{len(shapes)}")
        _shapes_equal(shapes, type(self).__name__)

    def compute_output_shape(self, input_shape):
        self._check_shapes(input_shape)
        out = list(input_shape[0])
        for s in input_shape[1:]:
            out = [a if a is not None else b for a, b in zip(out, s)]
        return tuple(out)

    def compute_mask(self, x, mask=None):
        return _and_masks(mask)

    def _inputs(self, xs):
        xs = _as_float_list(xs, type(self).__name__, self.dtype, self.n_inputs)
        self._check_shapes([x.shape for x in xs])
        return xs

    def forward(self, x, training=False, mask=None):
        xs = self._inputs(x)
        out = self._combine(xs)
        self._cache = (xs, out.shape) if training else None
        return out

    def backward(self, d_out):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward needs a preceding "
                               f"forward(..., training=True)")
        xs, shape = self._cache
        d = np.asarray(d_out)
        if d.shape != shape:
            raise ValueError(f"{type(self).__name__}: d_out must have shape {shape}, got "
                             f"{d.shape}")
        return self._split_grad(xs, d.astype(xs[0].dtype, copy=False))


class Add(_Merge):
    """Elementwise sum of a list of same-shape inputs.

    Parameters
    ----------
    dtype : str
        The dtype integer inputs are cast to (float inputs keep theirs).
    name : str, optional

    Example
    -------
    >>> import numpy as np, fastrnn as fr
    >>> float(fr.Add()([np.ones((2, 3)), np.ones((2, 3))])[0, 0])
    2.0
    """

    def _combine(self, xs):
        out = xs[0].copy()
        for x in xs[1:]:
            out += x
        return out

    def _split_grad(self, xs, d):
        return [d.copy() for _ in xs]


class Subtract(_Merge):
    """``x0 - x1`` for a list of exactly two same-shape inputs."""

    n_inputs = 2

    def _combine(self, xs):
        return xs[0] - xs[1]

    def _split_grad(self, xs, d):
        return [d.copy(), -d]


class Multiply(_Merge):
    """Elementwise product of a list of same-shape inputs."""

    def _combine(self, xs):
        out = xs[0].copy()
        for x in xs[1:]:
            out *= x
        return out

    def _split_grad(self, xs, d):
        grads = []
        for i in range(len(xs)):
            g = d.copy()
            for j, x in enumerate(xs):
                if j != i:
                    g *= x          # the product of the others (no division: zeros are fine)
            grads.append(g)
        return grads


class Average(_Merge):
    """Elementwise mean of a list of same-shape inputs."""

    def _combine(self, xs):
        out = xs[0].copy()
        for x in xs[1:]:
            out += x
        return out / out.dtype.type(len(xs))

    def _split_grad(self, xs, d):
        g = d / d.dtype.type(len(xs))
        return [g.copy() for _ in xs]


class Concatenate(_Merge):
    """Concatenate a list of inputs along ``axis`` (default -1, the features); the other axes
    must agree. ``axis`` counts the batch axis as 0, as in Keras.

    Parameters
    ----------
    axis : int
        Not 0 (the batch axis). Concatenating sequences along time (``axis=1``) concatenates
        their masks; along the features the masks are combined with AND.
    dtype, name : as for :class:`Add`.

    Example
    -------
    >>> import numpy as np, fastrnn as fr
    >>> fr.Concatenate()([np.ones((2, 5, 3)), np.ones((2, 5, 4))]).shape
    (2, 5, 7)
    """

    def __init__(self, axis=-1, *, dtype="float32", name=None):
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"Concatenate: axis must be an int, got {axis!r}")
        if axis == 0:
            raise ValueError("Concatenate: axis 0 is the batch axis and cannot be concatenated")
        self.axis = int(axis)
        super().__init__(dtype=dtype, name=name)

    def get_config(self):
        cfg = super().get_config()
        cfg["axis"] = self.axis
        return cfg

    def _norm_axis(self, ndim):
        ax = self.axis if self.axis >= 0 else ndim + self.axis
        if not 1 <= ax < ndim:
            raise ValueError(f"Concatenate: axis {self.axis} is out of range for inputs of "
                             f"{ndim} dimensions")
        return ax

    def _check_shapes(self, shapes):
        if len(shapes) < 2:
            raise ValueError(f"Concatenate: expects a list of at least 2 inputs, got "
                             f"{len(shapes)}")
        nd = len(shapes[0])
        if any(len(s) != nd for s in shapes):
            raise ValueError(f"Concatenate: inputs must have the same number of dimensions, "
                             f"got {[tuple(s) for s in shapes]}")
        ax = self._norm_axis(nd)
        _shapes_equal([tuple(s[:ax]) + tuple(s[ax + 1:]) for s in shapes],
                      "Concatenate (all axes but the concatenated one)")

    def compute_output_shape(self, input_shape):
        self._check_shapes(input_shape)
        ax = self._norm_axis(len(input_shape[0]))
        out = list(input_shape[0])
        for s in input_shape[1:]:
            out = [a if a is not None else b for a, b in zip(out, s)]
        sizes = [s[ax] for s in input_shape]
        out[ax] = None if any(v is None for v in sizes) else int(sum(sizes))
        return tuple(out)

    def compute_mask(self, x, mask=None):
        if mask is None or not isinstance(mask, (list, tuple)):
            return mask
        if all(m is None for m in mask):
            return None
        xs = [np.asarray(v) for v in x]
        ax = self._norm_axis(xs[0].ndim)
        if ax == xs[0].ndim - 1:
            return _and_masks(mask)
        if ax == 1 and xs[0].ndim == 3:
            # concatenating along time: the masks are concatenated too
            parts = [np.ones(v.shape[:2], bool) if m is None else np.asarray(m, bool)
                     for v, m in zip(xs, mask)]
            return np.concatenate(parts, axis=1)
        return _and_masks(mask)

    def _combine(self, xs):
        return np.concatenate(xs, axis=self._norm_axis(xs[0].ndim))

    def _split_grad(self, xs, d):
        ax = self._norm_axis(d.ndim)
        cuts = np.cumsum([x.shape[ax] for x in xs])[:-1]
        return [np.ascontiguousarray(g) for g in np.split(d, cuts, axis=ax)]


class Dot(_Merge):
    """Batched dot product of two inputs along ``axes`` (Keras ``Dot``).

    ``axes``: an int (the same axis of both inputs) or a pair ``(axis_of_x0, axis_of_x1)``,
    counting the batch axis as 0. For inputs ``(B, n)`` and ``(B, n)`` with ``axes=1`` the
    output is ``(B, 1)``; for ``(B, T, d)`` and ``(B, S, d)`` with ``axes=2`` it is
    ``(B, T, S)``: the output keeps the non-contracted axes of x0 then of x1.
    ``normalize=True`` L2-normalises both inputs along the contracted axes first (cosine
    similarity), with Keras's ``x / sqrt(max(sum(x**2), 1e-12))``.
    """

    n_inputs = 2
    supports_masking = True

    def __init__(self, axes, normalize=False, *, dtype="float32", name=None):
        if isinstance(axes, (list, tuple)):
            if len(axes) != 2:
                raise ValueError(f"Dot: axes must be an int or a pair of ints, got {axes!r}")
            axes = [a for a in axes]
        else:
            axes = [axes, axes]
        for a in axes:
            if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
                raise TypeError(f"Dot: axes must be ints, got {axes!r}")
            if a == 0:
                raise ValueError("Dot: axis 0 is the batch axis and cannot be contracted")
        self.axes = [int(a) for a in axes]
        self.normalize = bool(normalize)
        super().__init__(dtype=dtype, name=name)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(axes=list(self.axes), normalize=self.normalize)
        return cfg

    def _norm_axes(self, nd0, nd1):
        a0 = self.axes[0] if self.axes[0] >= 0 else nd0 + self.axes[0]
        a1 = self.axes[1] if self.axes[1] >= 0 else nd1 + self.axes[1]
        if not 1 <= a0 < nd0 or not 1 <= a1 < nd1:
            raise ValueError(f"Dot: axes {self.axes} are out of range for inputs of {nd0} and "
                             f"{nd1} dimensions")
        return a0, a1

    def _check_shapes(self, shapes):
        if len(shapes) != 2:
            raise ValueError(f"Dot: expects a list of exactly 2 inputs, got {len(shapes)}")
        s0, s1 = tuple(shapes[0]), tuple(shapes[1])
        a0, a1 = self._norm_axes(len(s0), len(s1))
        if s0[a0] is not None and s1[a1] is not None and s0[a0] != s1[a1]:
            raise ValueError(f"Dot: the contracted axes must have the same size, got "
                             f"{s0[a0]} (axis {a0} of {s0}) and {s1[a1]} (axis {a1} of {s1})")

    def compute_output_shape(self, input_shape):
        self._check_shapes(input_shape)
        s0, s1 = tuple(input_shape[0]), tuple(input_shape[1])
        a0, a1 = self._norm_axes(len(s0), len(s1))
        out = (s0[0],) + s0[1:a0] + s0[a0 + 1:] + s1[1:a1] + s1[a1 + 1:]
        return out if len(out) > 1 else out + (1,)

    def compute_mask(self, x, mask=None):
        return None

    def _inputs(self, xs):
        xs = _as_float_list(xs, "Dot", self.dtype, 2)
        self._check_shapes([x.shape for x in xs])
        if xs[0].shape[0] != xs[1].shape[0]:
            raise ValueError(f"Dot: inputs must have the same batch size, got "
                             f"{xs[0].shape[0]} and {xs[1].shape[0]}")
        return xs

    @staticmethod
    def _l2n(x, axis):
        ss = np.sum(x * x, axis=axis, keepdims=True)
        norm = np.sqrt(np.maximum(ss, x.dtype.type(1e-12)))
        return x / norm, norm, ss

    def forward(self, x, training=False, mask=None):
        x0, x1 = self._inputs(x)
        a0, a1 = self._norm_axes(x0.ndim, x1.ndim)
        n0 = n1 = None
        if self.normalize:
            y0, nrm0, ss0 = self._l2n(x0, a0)
            y1, nrm1, ss1 = self._l2n(x1, a1)
            n0, n1 = (y0, nrm0, ss0), (y1, nrm1, ss1)
        else:
            y0, y1 = x0, x1
        m0 = np.moveaxis(y0, a0, -1)                  # (B, P..., k)
        m1 = np.moveaxis(y1, a1, 1)                   # (B, k, Q...)
        B, k = m0.shape[0], m0.shape[-1]
        p_shape, q_shape = m0.shape[1:-1], m1.shape[2:]
        out = bmm(m0.reshape(B, -1, k), m1.reshape(B, k, -1))     # engine threads (linalg)
        out = out.reshape((B,) + p_shape + q_shape)
        if out.ndim == 1:
            out = out[:, None]
        self._cache = (y0, y1, n0, n1, a0, a1, p_shape, q_shape, out.shape) if training else None
        return out

    def backward(self, d_out):
        if self._cache is None:
            raise RuntimeError("Dot.backward needs a preceding forward(..., training=True)")
        y0, y1, n0, n1, a0, a1, p_shape, q_shape, shape = self._cache
        d = np.asarray(d_out)
        if d.shape != shape:
            raise ValueError(f"Dot: d_out must have shape {shape}, got {d.shape}")
        d = d.astype(y0.dtype, copy=False)
        m0 = np.moveaxis(y0, a0, -1)
        m1 = np.moveaxis(y1, a1, 1)
        B, k = m0.shape[0], m0.shape[-1]
        P = int(np.prod(p_shape, dtype=np.int64))
        Q = int(np.prod(q_shape, dtype=np.int64))
        d3 = d.reshape(B, P, Q)
        dm0 = bmm(d3, m1.reshape(B, k, Q), transpose_b=True)             # (B, P, k)
        dm1 = bmm(m0.reshape(B, P, k), d3, transpose_a=True)             # (B, k, Q)
        dy0 = np.moveaxis(dm0.reshape(m0.shape), -1, a0)
        dy1 = np.moveaxis(dm1.reshape(m1.shape), 1, a1)
        grads = []
        for dy, nrm, ax in ((dy0, n0, a0), (dy1, n1, a1)):
            if nrm is not None:
                y, norm, ss = nrm
                # d(x / norm): the normalising factor is constant where the 1e-12 floor holds
                radial = np.sum(dy * y, axis=ax, keepdims=True)
                live = ss > y.dtype.type(1e-12)
                dy = (dy - y * radial * live) / norm
            grads.append(np.ascontiguousarray(dy))
        return grads
