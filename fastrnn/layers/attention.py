"""Attention layers with Keras's semantics: ``Attention`` (Luong, dot-product) and
``AdditiveAttention`` (Bahdanau).

Both are called on a list ``[query, value]`` or ``[query, value, key]`` (``key`` defaults to
``value``) of shapes ``(B, Tq, d)``, ``(B, Tv, dv)``, ``(B, Tv, d)`` and return
``(B, Tq, dv)``: for every query step the softmax-weighted sum of the values::

    scores  = score(query, key)                   (B, Tq, Tv)
    scores -= 1e9 * (1 - scores_mask)             value mask and/or causal mask
    weights = softmax(scores, axis=-1)
    out     = weights @ value,  out *= query_mask[..., None]

``Attention``: ``score = query @ key^T`` (times the learned scalar ``scale`` with
``use_scale=True``). ``AdditiveAttention``: ``score[i, j] = sum_f scale_f * tanh(query[i, f] +
key[j, f])`` (``scale`` a learned vector with ``use_scale=True``, the default, as Keras).
As in Keras there are no projection matrices: put ``Dense`` layers before if you want them.

Masks come as a list ``[query_mask, value_mask]`` (the model passes them along the graph);
the output mask is the query mask. ``use_causal_mask=True`` (a call argument, or
``causal=True`` at construction) lets query step i see value steps j <= i only.
``return_attention_scores=True`` makes the layer return ``[out, weights]``.

``step(query_t, value, ...)`` attends with one query step ``(B, d)``, for decoding one token
at a time. Parameters: ``scale`` (shape ``(1,)`` for Attention, Keras's scalar; ``(d,)`` for
AdditiveAttention) when ``use_scale``.
"""

import numpy as np

from ..linalg import bmm, matmul
from .base import Layer

__all__ = ["Attention", "AdditiveAttention", "MultiHeadAttention"]

_BIG = 1.0e9       # Keras subtracts this from masked scores (not -inf: rows stay finite)


def _softmax(s):
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class _BaseAttention(Layer):
    supports_masking = True

    def __init__(self, use_scale, causal=False, *, dtype="float32", seed=None, name=None):
        super().__init__(dtype=dtype, seed=seed, name=name)
        self.use_scale = bool(use_scale)
        self.causal = bool(causal)
        self._cache = None
        self.last_attention = None
        if not self.use_scale:
            self._finish_build()

    def get_config(self):
        cfg = super().get_config()
        cfg.update(use_scale=self.use_scale, causal=self.causal)
        return cfg

    # -- shapes -----------------------------------------------------------------------------
    def _split_shapes(self, input_shape):
        name = type(self).__name__
        if not isinstance(input_shape, (list, tuple)) or not input_shape or \
                not isinstance(input_shape[0], (list, tuple)):
            raise ValueError(f"{name}: must be called on a list [query, value] or "
                             f"[query, value, key]")
        if len(input_shape) not in (2, 3):
            raise ValueError(f"{name}: expects [query, value] or [query, value, key], got "
                             f"{len(input_shape)} inputs")
        q, v = tuple(input_shape[0]), tuple(input_shape[1])
        k = tuple(input_shape[2]) if len(input_shape) == 3 else v
        for what, s in (("query", q), ("value", v), ("key", k)):
            if len(s) != 3:
                raise ValueError(f"{name}: {what} must have 3 dimensions (batch, time, "
                                 f"features), got shape {s}")
        if k[1] is not None and v[1] is not None and k[1] != v[1]:
            raise ValueError(f"{name}: key and value must have the same number of steps, got "
                             f"{k[1]} and {v[1]}")
        if q[2] is not None and k[2] is not None and q[2] != k[2]:
            raise ValueError(f"{name}: query and key must have the same feature size, got "
                             f"{q[2]} and {k[2]}")
        return q, v, k

    def compute_output_shape(self, input_shape, return_attention_scores=False,
                             use_causal_mask=None):
        q, v, _ = self._split_shapes(input_shape)
        out = (q[0], q[1], v[2])
        if return_attention_scores:
            return [out, (q[0], q[1], v[1])]
        return out

    def compute_mask(self, x, mask=None):
        if mask is None or not isinstance(mask, (list, tuple)) or mask[0] is None:
            return None
        return np.asarray(mask[0], dtype=bool)

    # -- running ----------------------------------------------------------------------------
    def _inputs(self, x):
        name = type(self).__name__
        if not isinstance(x, (list, tuple)) or len(x) not in (2, 3):
            raise TypeError(f"{name}: expects a list [query, value] or [query, value, key], "
                            f"got {type(x).__name__}"
                            + (f" of length {len(x)}" if isinstance(x, (list, tuple)) else ""))
        arrs = []
        for what, a in zip(("query", "value", "key"), x):
            a = np.asarray(a)
            if a.dtype.kind not in "fiu":
                raise TypeError(f"{name}: {what} must be a real numeric array, got dtype "
                                f"{a.dtype}")
            arrs.append(a.astype(self.dtype, copy=False))
        q, v = arrs[0], arrs[1]
        k = arrs[2] if len(arrs) == 3 else v
        self._split_shapes([q.shape, v.shape, k.shape])
        if not (q.shape[0] == v.shape[0] == k.shape[0]):
            raise ValueError(f"{name}: query, value and key must have the same batch size, got "
                             f"{q.shape[0]}, {v.shape[0]}, {k.shape[0]}")
        return q, v, k, len(arrs) == 3

    def _masks(self, mask, q, v):
        if mask is None:
            return None, None
        if not isinstance(mask, (list, tuple)):
            raise TypeError(f"{type(self).__name__}: mask must be a list [query_mask, "
                            f"value_mask], got {type(mask).__name__}")
        qm = mask[0] if len(mask) > 0 else None
        vm = mask[1] if len(mask) > 1 else None
        out = []
        for what, m, ref in (("query_mask", qm, q), ("value_mask", vm, v)):
            if m is None:
                out.append(None)
                continue
            m = np.asarray(m)
            if m.shape != ref.shape[:2]:
                raise ValueError(f"{type(self).__name__}: {what} must have shape "
                                 f"{ref.shape[:2]}, got {m.shape}")
            out.append(m.astype(bool))
        return out[0], out[1]

    def _scores_mask(self, Tq, Tv, vmask, causal):
        m = None
        if causal:
            m = (np.arange(Tq)[:, None] >= np.arange(Tv)[None, :])[None]
        if vmask is not None:
            vm = vmask[:, None, :]
            m = vm if m is None else (vm & m)
        return m

    def forward(self, x, training=False, mask=None, return_attention_scores=False,
                use_causal_mask=None):
        """``x = [query, value(, key)]`` -> ``(B, Tq, dv)`` (and the attention weights
        ``(B, Tq, Tv)`` with ``return_attention_scores=True``)."""
        q, v, k, has_key = self._inputs(x)
        if not self.built:
            self.build([q.shape, v.shape, k.shape])
        qmask, vmask = self._masks(mask, q, v)
        causal = self.causal if use_causal_mask is None else bool(use_causal_mask)
        raw, aux = self._raw_scores(q, k)
        s = raw * self.params["scale"] if self._scalar_scale() else raw
        smask = self._scores_mask(q.shape[1], k.shape[1], vmask, causal)
        if smask is not None:
            s = s - self.dtype.type(_BIG) * (~smask).astype(self.dtype)
        w = _softmax(s)
        out = bmm(w, v)                  # on the engine's threads (fastrnn.linalg)
        if qmask is not None:
            out = out * qmask[..., None].astype(self.dtype)
        self.last_attention = w
        self._cache = (q, v, k, has_key, raw, aux, w, qmask) if training else None
        if return_attention_scores:
            return [out, w]
        return out

    def backward(self, d_out, d_state=None):
        """Gradients ``[d_query, d_value(, d_key)]`` from the output gradient (and, when the
        weights were returned, their gradient as ``d_state=[d_weights]``); fills
        ``grads["scale"]``."""
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward needs a preceding "
                               f"forward(..., training=True)")
        q, v, k, has_key, raw, aux, w, qmask = self._cache
        shape = q.shape[:2] + (v.shape[2],)
        d = np.asarray(d_out)
        if d.shape != shape:
            raise ValueError(f"{type(self).__name__}: d_out must have shape {shape}, got "
                             f"{d.shape}")
        d = d.astype(self.dtype, copy=False)
        if qmask is not None:
            d = d * qmask[..., None].astype(self.dtype)
        dw = bmm(d, v, transpose_b=True)
        if d_state is not None:
            ds = d_state[0] if isinstance(d_state, (list, tuple)) else d_state
            if ds is not None:
                ds = np.asarray(ds)
                if ds.shape != w.shape:
                    raise ValueError(f"{type(self).__name__}: the gradient of the attention "
                                     f"weights must have shape {w.shape}, got {ds.shape}")
                dw = dw + ds.astype(self.dtype, copy=False)
        dv = bmm(w, d, transpose_a=True)
        dscores = w * (dw - np.sum(dw * w, axis=-1, keepdims=True))
        # the masked-score offset is a constant: its gradient is dscores unchanged
        if self._scalar_scale():
            self.grads["scale"] = np.full((1,), np.sum(dscores * raw), dtype=self.dtype)
            draw = dscores * self.params["scale"]
        else:
            draw = dscores
        dq, dk = self._raw_backward(q, k, aux, draw)
        if has_key:
            return [dq, dv, dk]
        return [dq, dv + dk]

    def step(self, query_t, value, key=None, value_mask=None):
        """Attend with one query step: ``query_t (B, d)`` over ``value (B, Tv, dv)``.

        Returns ``(context (B, dv), weights (B, Tv))``: the same numbers as the query's row
        of a full ``forward`` (causal masking does not apply to a single step).
        """
        q = np.asarray(query_t)
        if q.ndim != 2:
            raise ValueError(f"{type(self).__name__}.step: query_t must have 2 dimensions "
                             f"(batch, features), got shape {q.shape}")
        xs = [q[:, None, :], value] + ([key] if key is not None else [])
        mask = None if value_mask is None else [None, value_mask]
        out, w = self.forward(xs, training=False, mask=mask, return_attention_scores=True,
                              use_causal_mask=False)
        return out[:, 0], w[:, 0]


class Attention(_BaseAttention):
    """Dot-product (Luong) attention, ``keras.layers.Attention`` with ``score_mode="dot"``.

    Parameters
    ----------
    use_scale : bool
        Multiply the scores by a learned scalar ``scale`` (initialised to 1; stored with
        shape (1,)).
    causal : bool
        Default for the call argument ``use_causal_mask``.
    dtype, seed, name : as for every layer.

    Example
    -------
    >>> import numpy as np, fastrnn as fr
    >>> att = fr.Attention(use_scale=True)
    >>> q, v = np.ones((2, 3, 4)), np.ones((2, 5, 4))
    >>> att([q, v]).shape
    (2, 3, 4)
    """

    def __init__(self, use_scale=False, causal=False, *, dtype="float32", seed=None, name=None):
        super().__init__(use_scale, causal, dtype=dtype, seed=seed, name=name)

    def build(self, input_shape=None):
        if self.use_scale:
            # Keras's scalar, kept as shape (1,) so every optimizer and file path sees an
            # ordinary vector
            self.params["scale"] = np.ones((1,), dtype=self.dtype)
        self._finish_build()

    def _scalar_scale(self):
        return self.use_scale

    def _raw_scores(self, q, k):
        return bmm(q, k, transpose_b=True), None

    def _raw_backward(self, q, k, aux, draw):
        return bmm(draw, k), bmm(draw, q, transpose_a=True)


class AdditiveAttention(_BaseAttention):
    """Additive (Bahdanau) attention, ``keras.layers.AdditiveAttention``:
    ``score[b, i, j] = sum_f scale_f * tanh(query[b, i, f] + key[b, j, f])``.

    Parameters
    ----------
    use_scale : bool
        Learn the vector ``scale`` (d,), initialised glorot-uniform as in Keras (default True);
        without it the tanh terms are summed.
    causal : bool
        Default for the call argument ``use_causal_mask``.
    dtype, seed, name : as for every layer.

    Memory: the scores need a ``(B, Tq, Tv, d)`` intermediate.
    """

    def __init__(self, use_scale=True, causal=False, *, dtype="float32", seed=None, name=None):
        super().__init__(use_scale, causal, dtype=dtype, seed=seed, name=name)

    def build(self, input_shape=None):
        if self.use_scale:
            if input_shape is None:
                raise ValueError("AdditiveAttention: build needs the input shapes")
            q, _, _ = self._split_shapes(input_shape)
            dim = q[2]
            if dim is None:
                raise ValueError("AdditiveAttention: the query feature size must be known")
            limit = np.sqrt(6.0 / (2 * dim))      # glorot_uniform for a vector: fan_in=fan_out
            self.params["scale"] = self._rng().uniform(-limit, limit, (dim,)).astype(self.dtype)
        self._finish_build()

    def _scalar_scale(self):
        return False

    def _raw_scores(self, q, k):
        t = np.tanh(q[:, :, None, :] + k[:, None, :, :])          # (B, Tq, Tv, d)
        if self.use_scale:
            # (rows, d) @ (d, 1): NumPy on this thread only (fastrnn.linalg's size rule)
            return matmul(t, self.params["scale"][:, None])[..., 0], t
        return t.sum(axis=-1), t

    def _raw_backward(self, q, k, t, dscores):
        if self.use_scale:
            self.grads["scale"] = np.einsum("bij,bijf->f", dscores, t).astype(self.dtype)
            dt = dscores[..., None] * self.params["scale"]
        else:
            dt = np.broadcast_to(dscores[..., None], t.shape)
        du = dt * (1 - t * t)
        return du.sum(axis=2), du.sum(axis=1)


class MultiHeadAttention(Layer):
    """Multi-head dot-product attention, ``keras.layers.MultiHeadAttention`` (default
    ``attention_axes``, no dropout).

    Called as ``mha(query, value)``, ``mha(query, value, key)`` or on the list
    ``[query, value(, key)]`` with shapes ``(B, T, dq)``, ``(B, S, dv)``, ``(B, S, dk)``::

        Q = query @ query_kernel + query_bias                 (B, T, heads, key_dim)
        K = key @ key_kernel + key_bias,  V = value @ value_kernel + value_bias
        scores = (Q / sqrt(key_dim)) . K over key_dim          (B, heads, T, S)
        scores = where(mask, scores, -1e9);  weights = softmax(scores, axis=-1)
        out = (weights @ V) @ output_kernel + output_bias      (B, T, output_dim)

    ``mask`` (B, T, S) is the AND of the query mask (rows), the value mask (columns) and,
    with ``use_causal_mask=True``, the causal mask, as in Keras; the output mask is the query
    mask. ``return_attention_scores=True`` also returns ``weights``.

    Parameters
    ----------
    num_heads, key_dim : int
    value_dim : int, optional
        Defaults to ``key_dim``.
    use_bias : bool
    output_shape : int, optional
        The last axis of the output; defaults to the query's feature size.
    dtype, seed, name : as for every layer.

    Parameters (Keras's names and shapes): ``query_kernel (dq, heads, key_dim)``,
    ``query_bias (heads, key_dim)``, the same for ``key_`` and ``value_`` (``value_dim``),
    ``output_kernel (heads, value_dim, output_dim)``, ``output_bias (output_dim,)``; kernels
    glorot-uniform, biases zero.
    """

    supports_masking = True

    def __init__(self, num_heads, key_dim, value_dim=None, use_bias=True, output_shape=None,
                 *, dtype="float32", seed=None, name=None):
        super().__init__(dtype=dtype, seed=seed, name=name)
        for what, v in (("num_heads", num_heads), ("key_dim", key_dim)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
                raise ValueError(f"MultiHeadAttention: {what} must be a positive int, got {v!r}")
        self.num_heads, self.key_dim = int(num_heads), int(key_dim)
        if value_dim is not None and (isinstance(value_dim, bool) or
                                      not isinstance(value_dim, (int, np.integer)) or
                                      value_dim <= 0):
            raise ValueError(f"MultiHeadAttention: value_dim must be a positive int or None, "
                             f"got {value_dim!r}")
        self.value_dim = int(value_dim) if value_dim is not None else self.key_dim
        if output_shape is not None and (isinstance(output_shape, bool) or
                                         not isinstance(output_shape, (int, np.integer)) or
                                         output_shape <= 0):
            raise ValueError(f"MultiHeadAttention: output_shape must be a positive int or "
                             f"None, got {output_shape!r}")
        self.output_dim = None if output_shape is None else int(output_shape)
        self.use_bias = bool(use_bias)
        self.dims = None            # (dq, dv, dk) once built
        self._cache = None
        self.last_attention = None

    def __call__(self, query, value=None, key=None, **kw):
        if value is not None:
            query = [query, value] + ([key] if key is not None else [])
        return super().__call__(query, **kw)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(num_heads=self.num_heads, key_dim=self.key_dim, value_dim=self.value_dim,
                   use_bias=self.use_bias, output_shape=self.output_dim)
        if self.dims is not None:
            cfg["input_dims"] = list(self.dims)
        return cfg

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        dims = config.pop("input_dims", None)
        layer = cls(**config)
        if dims is not None:
            if not (isinstance(dims, list) and len(dims) == 3):
                raise ValueError(f"MultiHeadAttention: bad input_dims {dims!r}")
            layer.build([(None, None, dims[0]), (None, None, dims[1]), (None, None, dims[2])])
        return layer

    def _split_shapes(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) not in (2, 3) or \
                not isinstance(input_shape[0], (list, tuple)):
            raise ValueError("MultiHeadAttention: expects [query, value] or [query, value, key]")
        q, v = tuple(input_shape[0]), tuple(input_shape[1])
        k = tuple(input_shape[2]) if len(input_shape) == 3 else v
        for what, s in (("query", q), ("value", v), ("key", k)):
            if len(s) != 3:
                raise ValueError(f"MultiHeadAttention: {what} must have 3 dimensions (batch, "
                                 f"time, features), got shape {s}")
        if k[1] is not None and v[1] is not None and k[1] != v[1]:
            raise ValueError(f"MultiHeadAttention: key and value must have the same number of "
                             f"steps, got {k[1]} and {v[1]}")
        return q, v, k

    def build(self, input_shape):
        from .. import initializers
        q, v, k = self._split_shapes(input_shape)
        dq, dv, dk = q[2], v[2], k[2]
        if None in (dq, dv, dk):
            raise ValueError("MultiHeadAttention: the feature sizes of query, value and key "
                             "must be known")
        N, H, Hv = self.num_heads, self.key_dim, self.value_dim
        out = self.output_dim or dq
        rng = self._rng()
        glorot = initializers.get("glorot_uniform")
        shapes = {"query": ((dq, N, H), (N, H)), "key": ((dk, N, H), (N, H)),
                  "value": ((dv, N, Hv), (N, Hv)), "output": ((N, Hv, out), (out,))}
        for part, (ks, bs) in shapes.items():
            self.params[f"{part}_kernel"] = initializers.draw(glorot, ks, self.dtype, rng,
                                                              f"MultiHeadAttention {part}")
            if self.use_bias:
                self.params[f"{part}_bias"] = np.zeros(bs, dtype=self.dtype)
        self.dims = (int(dq), int(dv), int(dk))
        self._finish_build()

    def compute_output_shape(self, input_shape, return_attention_scores=False,
                             use_causal_mask=False):
        q, v, _ = self._split_shapes(input_shape)
        out = (q[0], q[1], self.output_dim or q[2])
        if return_attention_scores:
            return [out, (q[0], self.num_heads, q[1], v[1])]
        return out

    def compute_mask(self, x, mask=None):
        if mask is None or not isinstance(mask, (list, tuple)) or mask[0] is None:
            return None
        return np.asarray(mask[0], dtype=bool)

    def _proj(self, x, part):
        kern = self.params[f"{part}_kernel"]                      # (d, heads, dim)
        y = matmul(x, kern.reshape(kern.shape[0], -1)).reshape(x.shape[:2] + kern.shape[1:])
        if self.use_bias:
            y = y + self.params[f"{part}_bias"]
        return y

    def forward(self, x, training=False, mask=None, return_attention_scores=False,
                use_causal_mask=False):
        if not isinstance(x, (list, tuple)) or len(x) not in (2, 3):
            raise TypeError("MultiHeadAttention: expects query and value (and key)")
        arrs = [np.asarray(a) for a in x]
        for what, a in zip(("query", "value", "key"), arrs):
            if a.dtype.kind not in "fiu":
                raise TypeError(f"MultiHeadAttention: {what} must be a real numeric array, got "
                                f"dtype {a.dtype}")
        arrs = [a.astype(self.dtype, copy=False) for a in arrs]
        q, v = arrs[0], arrs[1]
        k = arrs[2] if len(arrs) == 3 else v
        self._split_shapes([q.shape, v.shape, k.shape])
        if not self.built:
            self.build([q.shape, v.shape, k.shape])
        if (q.shape[2], v.shape[2], k.shape[2]) != self.dims:
            raise ValueError(f"MultiHeadAttention: feature sizes (query, value, key) must be "
                             f"{self.dims}, got {(q.shape[2], v.shape[2], k.shape[2])}")
        B, T, S = q.shape[0], q.shape[1], k.shape[1]
        m = np.ones((B, T, S), dtype=bool)
        if mask is not None:
            masks = list(mask) + [None] * (3 - len(mask))
            qm, vm, km = masks[:3]
            for what, mm, shape in (("query", qm, (B, T)), ("value", vm, (B, S)),
                                    ("key", km, (B, S))):
                if mm is not None:
                    mm = np.asarray(mm)
                    if mm.shape != shape:
                        raise ValueError(f"MultiHeadAttention: the {what} mask must have shape "
                                         f"{shape}, got {mm.shape}")
                    mm = mm.astype(bool)
                    m &= mm[:, :, None] if what == "query" else mm[:, None, :]
        if use_causal_mask:
            m &= np.arange(T)[:, None] >= np.arange(S)[None, :]
        scale = self.dtype.type(1.0 / np.sqrt(self.key_dim))
        Q, K, V = self._proj(q, "query"), self._proj(k, "key"), self._proj(v, "value")
        s = np.einsum("bsnh,btnh->bnts", K, Q * scale)
        s = np.where(m[:, None], s, self.dtype.type(-1e9))
        w = np.exp(s - s.max(axis=-1, keepdims=True))
        w /= w.sum(axis=-1, keepdims=True)
        O = np.einsum("bnts,bsnv->btnv", w, V)
        ok = self.params["output_kernel"]                         # (heads, dim_v, out)
        out = matmul(O.reshape(B, T, -1), ok.reshape(-1, ok.shape[2]))
        if self.use_bias:
            out = out + self.params["output_bias"]
        self.last_attention = w
        self._cache = (q, v, k, len(arrs) == 3, Q, K, V, w, O, m, scale) if training else None
        if return_attention_scores:
            return [out, w]
        return out

    def backward(self, d_out, d_state=None):
        """``[d_query, d_value(, d_key)]``; the weights' gradient (when they were returned)
        comes as ``d_state=[d_weights]``. Fills every parameter's gradient."""
        if self._cache is None:
            raise RuntimeError("MultiHeadAttention.backward needs a preceding "
                               "forward(..., training=True)")
        q, v, k, has_key, Q, K, V, w, O, m, scale = self._cache
        p = self.params
        d = np.asarray(d_out).astype(self.dtype, copy=False)
        shape = q.shape[:2] + (p["output_kernel"].shape[2],)
        if d.shape != shape:
            raise ValueError(f"MultiHeadAttention: d_out must have shape {shape}, got {d.shape}")
        g = {}
        ok = p["output_kernel"]
        B, T = d.shape[:2]
        g["output_kernel"] = matmul(O.reshape(B, T, -1), d, transpose_a=True).reshape(ok.shape)
        if self.use_bias:
            g["output_bias"] = d.sum(axis=(0, 1))
        dO = matmul(d, ok.reshape(-1, ok.shape[2]), transpose_b=True).reshape(O.shape)
        dw = np.einsum("btnv,bsnv->bnts", dO, V)
        if d_state is not None:
            ds = d_state[0] if isinstance(d_state, (list, tuple)) else d_state
            if ds is not None:
                dw = dw + np.asarray(ds, dtype=self.dtype)
        dV = np.einsum("bnts,btnv->bsnv", w, dO)
        ds_ = w * (dw - np.sum(dw * w, axis=-1, keepdims=True))
        ds_ = np.where(m[:, None], ds_, 0)            # masked scores are constants
        dQ = np.einsum("bnts,bsnh->btnh", ds_, K) * scale
        dK = np.einsum("bnts,btnh->bsnh", ds_, Q * scale)
        grads_x = []
        for part, X, dY in (("query", q, dQ), ("value", v, dV), ("key", k, dK)):
            kern = p[f"{part}_kernel"]
            dY2 = dY.reshape(dY.shape[:2] + (-1,))                  # (B, T, heads * dim)
            g[f"{part}_kernel"] = matmul(X, dY2, transpose_a=True).reshape(kern.shape)
            if self.use_bias:
                g[f"{part}_bias"] = dY.sum(axis=(0, 1))
            grads_x.append(matmul(dY2, kern.reshape(kern.shape[0], -1), transpose_b=True))
        for name in self.params:
            self.grads[name] = g[name].astype(self.dtype, copy=False)
        dq, dv, dk = grads_x
        if has_key:
            return [dq, dv, dk]
        return [dq, dv + dk]
