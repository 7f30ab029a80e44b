"""Finite-difference helpers shared by the layer gradient tests (float64)."""

import numpy as np


def numeric_grad(f, a, eps=1e-6):
    """Central differences of the scalar function f() with respect to the array a (in place)."""
    g = np.zeros_like(a, dtype=np.float64)
    it = np.nditer(a, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = a[i].copy()
        a[i] = old + eps
        fp = f()
        a[i] = old - eps
        fm = f()
        a[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


def check_layer_grads(layer, xs, rng, fwd_kw=None, rtol=1e-6, atol=1e-8, multi=False):
    """Compare ``layer.backward`` with finite differences of ``sum(out * R)`` for every input
    in the list ``xs`` and every parameter. With ``multi`` the layer returns several outputs
    and each gets its own random weights (the extra ones through ``d_state``)."""
    fwd_kw = fwd_kw or {}
    out = layer.forward(xs, training=True, **fwd_kw)
    outs = out if multi else [out]
    Rs = [rng.standard_normal(np.shape(o)) for o in outs]

    def f():
        o = layer.forward(xs, training=False, **fwd_kw)
        o = o if multi else [o]
        return float(sum(np.sum(a * r) for a, r in zip(o, Rs)))

    layer.forward(xs, training=True, **fwd_kw)
    if multi:
        dxs = layer.backward(Rs[0], d_state=Rs[1:])
    else:
        dxs = layer.backward(Rs[0])
    for i, x in enumerate(xs):
        np.testing.assert_allclose(dxs[i], numeric_grad(f, x), rtol=rtol, atol=atol,
                                   err_msg=f"input {i}")
    for k, p in layer.params.items():
        np.testing.assert_allclose(layer.grads[k], numeric_grad(f, p), rtol=rtol, atol=atol,
                                   err_msg=f"param {k}")
