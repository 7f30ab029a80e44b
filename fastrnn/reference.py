"""Pure NumPy forward and backward (BPTT) for Elman RNN, LSTM and GRU: the specification.

Everything the compiled kernels compute is defined here, step by step, in the plainest NumPy we
could write. The tests check this module against finite differences, then check the kernels
against this module.

Conventions (shared with ``fastrnn._engine``, which has exactly the same signatures):

* time-major: ``x`` is ``(T, B, I)``, states ``h0``/``c0`` are ``(B, H)``;
* PyTorch parameter layout: ``weight_ih (G*H, I)``, ``weight_hh (G*H, H)``, ``bias_ih``,
  ``bias_hh (G*H,)`` with G = 1 (Elman), 4 (LSTM, gates i, f, g, o), 3 (GRU, gates r, z, n);
* GRU in PyTorch's "linear before reset" form: ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``;
* ``mask`` is ``None`` or a ``(T, B)`` bool array, True where the step is real. At a padded
  step the state is carried unchanged and the output repeats it; in backward such a step gets no
  gate gradient and the incoming ``dh`` passes straight to ``h_{t-1}``;
* ``recurrent_mask`` is ``None`` or a ``(B, H)`` array (recurrent dropout, Gal & Ghahramani /
  Keras semantics: one mask per sequence, already scaled by ``1 / (1 - rate)``). It multiplies
  ``h_{t-1}`` where it enters the recurrent product ``W_hh h_{t-1}`` only; the GRU's carry term
  ``z * h_{t-1}``, the LSTM's cell state and the state carried over a padded step use the
  unmasked state. In backward the product's gradient ``dG_t W_hh`` reaches ``h_{t-1}`` through
  the same mask and ``dW_hh`` is summed against the masked states;
* ``cache`` is ``None`` unless ``training=True``; ``dy``, ``dh_n``, ``dc_n`` may be ``None``
  (zeros);
* every array of one call has one dtype (float32 or float64) and results keep it.

Equations (sigma is the logistic function, * is elementwise)::

    Elman  h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),  act = tanh | relu
    LSTM   i, f, g, o = sigma, sigma, tanh, sigma of (W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
           c_t = f * c_{t-1} + i * g;   h_t = o * tanh(c_t)
    GRU    r, z = sigma(W_i{r,z} x_t + b_i{r,z} + W_h{r,z} h_{t-1} + b_h{r,z})
           n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn));  h_t = (1 - z) * n + z * h_{t-1}
"""

import numpy as np

__all__ = [
    "sigmoid",
    "rnn_forward", "rnn_backward",
    "lstm_forward", "lstm_backward",
    "gru_forward", "gru_backward",
]


def sigmoid(a):
    """Logistic function without overflow warnings: 0.5 * (1 + tanh(a / 2)) is exact in the tails."""
    return (0.5 * (1.0 + np.tanh(0.5 * a))).astype(a.dtype, copy=False)


def _valid(mask, t, shape_b):
    """(B, 1) bool column saying which rows really step at time t (all of them without a mask)."""
    if mask is None:
        return None
    return np.asarray(mask[t], dtype=bool).reshape(shape_b, 1)


def _zeros_like_or(a, like):
    return np.zeros_like(like) if a is None else a


# --------------------------------------------------------------------------------------------
# Elman RNN
# --------------------------------------------------------------------------------------------

def _rec_in(h, rmask):
    """h_{t-1} as the recurrent product sees it (recurrent dropout applied)."""
    return h if rmask is None else h * rmask


def rnn_forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, activation="tanh", mask=None,
                training=False, recurrent_mask=None):
    T, B, _ = x.shape
    H = weight_hh.shape[1]
    y = np.empty((T, B, H), dtype=x.dtype)
    h = h0.copy()
    rm = recurrent_mask
    for t in range(T):
        a = x[t] @ weight_ih.T + bias_ih + _rec_in(h, rm) @ weight_hh.T + bias_hh
        h_new = np.tanh(a) if activation == "tanh" else np.maximum(a, 0).astype(x.dtype)
        keep = _valid(mask, t, B)
        h = h_new if keep is None else np.where(keep, h_new, h)
        y[t] = h
    cache = None
    if training:
        cache = dict(cell="rnn", x=x, h0=h0, y=y, weight_ih=weight_ih, weight_hh=weight_hh,
                     activation=activation, mask=mask, rmask=rm)
    return y, h.copy(), cache


def rnn_backward(cache, dy, dh_n):
    if cache is None:
        raise ValueError("rnn_backward needs the cache of a forward call made with training=True")
    x, h0, y, W_ih, W_hh = cache["x"], cache["h0"], cache["y"], cache["weight_ih"], cache["weight_hh"]
    mask, rm = cache["mask"], cache.get("rmask")
    T, B, _ = x.shape
    dy = _zeros_like_or(dy, y)
    dh = _zeros_like_or(dh_n, h0).copy()
    dx = np.zeros_like(x)
    dW_ih, dW_hh = np.zeros_like(W_ih), np.zeros_like(W_hh)
    db = np.zeros(W_hh.shape[0], dtype=x.dtype)
    for t in reversed(range(T)):
        dh = dh + dy[t]
        h_prev = h0 if t == 0 else y[t - 1]
        if cache["activation"] == "tanh":
            da = dh * (1 - y[t] ** 2)
        else:
            da = dh * (y[t] > 0)
        keep = _valid(mask, t, B)
        if keep is not None:
            da = np.where(keep, da, 0)
        dx[t] = da @ W_ih
        dW_ih += da.T @ x[t]
        dW_hh += da.T @ _rec_in(h_prev, rm)
        db += da.sum(axis=0)
        dh_prev = _rec_in(da @ W_hh, rm)
        dh = dh_prev if keep is None else np.where(keep, dh_prev, dh)
    return dict(x=dx, h0=dh, weight_ih=dW_ih, weight_hh=dW_hh, bias_ih=db, bias_hh=db.copy())


# --------------------------------------------------------------------------------------------
# LSTM
# --------------------------------------------------------------------------------------------

def lstm_forward(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, mask=None, training=False,
                 recurrent_mask=None):
    T, B, _ = x.shape
    rm = recurrent_mask
    H = weight_hh.shape[1]
    y = np.empty((T, B, H), dtype=x.dtype)
    gates = np.empty((T, B, 4 * H), dtype=x.dtype)   # post-activation i, f, g, o
    cs = np.empty((T, B, H), dtype=x.dtype)
    h, c = h0.copy(), c0.copy()
    for t in range(T):
        a = x[t] @ weight_ih.T + bias_ih + _rec_in(h, rm) @ weight_hh.T + bias_hh
        i = sigmoid(a[:, 0 * H:1 * H])
        f = sigmoid(a[:, 1 * H:2 * H])
        g = np.tanh(a[:, 2 * H:3 * H])
        o = sigmoid(a[:, 3 * H:4 * H])
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        keep = _valid(mask, t, B)
        if keep is not None:
            c_new = np.where(keep, c_new, c)
            h_new = np.where(keep, h_new, h)
        h, c = h_new, c_new
        y[t], cs[t] = h, c
        gates[t] = np.concatenate([i, f, g, o], axis=1)
    cache = None
    if training:
        cache = dict(cell="lstm", x=x, h0=h0, c0=c0, y=y, c=cs, gates=gates,
                     weight_ih=weight_ih, weight_hh=weight_hh, mask=mask, rmask=rm)
    return y, h.copy(), c.copy(), cache


def lstm_backward(cache, dy, dh_n, dc_n):
    if cache is None:
        raise ValueError("lstm_backward needs the cache of a forward call made with training=True")
    x, h0, c0, y, cs, gates = (cache[k] for k in ("x", "h0", "c0", "y", "c", "gates"))
    W_ih, W_hh, mask = cache["weight_ih"], cache["weight_hh"], cache["mask"]
    rm = cache.get("rmask")
    T, B, _ = x.shape
    H = W_hh.shape[1]
    dy = _zeros_like_or(dy, y)
    dh = _zeros_like_or(dh_n, h0).copy()
    dc = _zeros_like_or(dc_n, c0).copy()
    dx = np.zeros_like(x)
    dW_ih, dW_hh = np.zeros_like(W_ih), np.zeros_like(W_hh)
    db = np.zeros(4 * H, dtype=x.dtype)
    for t in reversed(range(T)):
        dh = dh + dy[t]
        h_prev = h0 if t == 0 else y[t - 1]
        c_prev = c0 if t == 0 else cs[t - 1]
        i, f, g, o = (gates[t][:, k * H:(k + 1) * H] for k in range(4))
        tc = np.tanh(cs[t])
        do = dh * tc
        dct = dc + dh * o * (1 - tc ** 2)
        di, df, dg = dct * g, dct * c_prev, dct * i
        dc_prev = dct * f
        da = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g ** 2),
                             do * o * (1 - o)], axis=1)
        keep = _valid(mask, t, B)
        if keep is not None:
            da = np.where(keep, da, 0)
        dx[t] = da @ W_ih
        dW_ih += da.T @ x[t]
        dW_hh += da.T @ _rec_in(h_prev, rm)
        db += da.sum(axis=0)
        dh_prev = _rec_in(da @ W_hh, rm)
        if keep is None:
            dh, dc = dh_prev, dc_prev
        else:
            dh, dc = np.where(keep, dh_prev, dh), np.where(keep, dc_prev, dc)
    return dict(x=dx, h0=dh, c0=dc, weight_ih=dW_ih, weight_hh=dW_hh, bias_ih=db,
                bias_hh=db.copy())


# --------------------------------------------------------------------------------------------
# GRU (linear before reset)
# --------------------------------------------------------------------------------------------

def gru_forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask=None, training=False,
                recurrent_mask=None):
    T, B, _ = x.shape
    rm = recurrent_mask
    H = weight_hh.shape[1]
    y = np.empty((T, B, H), dtype=x.dtype)
    gates = np.empty((T, B, 3 * H), dtype=x.dtype)   # post-activation r, z, n
    hn = np.empty((T, B, H), dtype=x.dtype)          # W_hn h_{t-1} + b_hn, needed for dr
    h = h0.copy()
    for t in range(T):
        ai = x[t] @ weight_ih.T + bias_ih
        ah = _rec_in(h, rm) @ weight_hh.T + bias_hh
        r = sigmoid(ai[:, :H] + ah[:, :H])
        z = sigmoid(ai[:, H:2 * H] + ah[:, H:2 * H])
        n = np.tanh(ai[:, 2 * H:] + r * ah[:, 2 * H:])
        h_new = (1 - z) * n + z * h
        keep = _valid(mask, t, B)
        h = h_new if keep is None else np.where(keep, h_new, h)
        y[t] = h
        gates[t] = np.concatenate([r, z, n], axis=1)
        hn[t] = ah[:, 2 * H:]
    cache = None
    if training:
        cache = dict(cell="gru", x=x, h0=h0, y=y, gates=gates, hn=hn,
                     weight_ih=weight_ih, weight_hh=weight_hh, mask=mask, rmask=rm)
    return y, h.copy(), cache


def gru_backward(cache, dy, dh_n):
    if cache is None:
        raise ValueError("gru_backward needs the cache of a forward call made with training=True")
    x, h0, y, gates, hn = (cache[k] for k in ("x", "h0", "y", "gates", "hn"))
    W_ih, W_hh, mask = cache["weight_ih"], cache["weight_hh"], cache["mask"]
    rm = cache.get("rmask")
    T, B, _ = x.shape
    H = W_hh.shape[1]
    dy = _zeros_like_or(dy, y)
    dh = _zeros_like_or(dh_n, h0).copy()
    dx = np.zeros_like(x)
    dW_ih, dW_hh = np.zeros_like(W_ih), np.zeros_like(W_hh)
    db_ih = np.zeros(3 * H, dtype=x.dtype)
    db_hh = np.zeros(3 * H, dtype=x.dtype)
    for t in reversed(range(T)):
        dh = dh + dy[t]
        h_prev = h0 if t == 0 else y[t - 1]
        r, z, n = (gates[t][:, k * H:(k + 1) * H] for k in range(3))
        dn = dh * (1 - z)
        dz = dh * (h_prev - n)
        dan = dn * (1 - n ** 2)           # gradient of the n pre-activation
        dr = dan * hn[t]
        dar = dr * r * (1 - r)
        daz = dz * z * (1 - z)
        dai = np.concatenate([dar, daz, dan], axis=1)          # input-side pre-activations
        dah = np.concatenate([dar, daz, dan * r], axis=1)      # recurrent-side pre-activations
        keep = _valid(mask, t, B)
        if keep is not None:
            dai = np.where(keep, dai, 0)
            dah = np.where(keep, dah, 0)
        dx[t] = dai @ W_ih
        dW_ih += dai.T @ x[t]
        dW_hh += dah.T @ _rec_in(h_prev, rm)
        db_ih += dai.sum(axis=0)
        db_hh += dah.sum(axis=0)
        dh_prev = _rec_in(dah @ W_hh, rm) + dh * z
        dh = dh_prev if keep is None else np.where(keep, dh_prev, dh)
    return dict(x=dx, h0=dh, weight_ih=dW_ih, weight_hh=dW_hh, bias_ih=db_ih, bias_hh=db_hh)
