"""The benchmark grid: cells, shapes, modes, FLOP counts and the shared random problem."""

import math

import numpy as np

__all__ = ["CELLS", "GATES", "SHAPES", "EXTRA_SHAPES", "DEFAULT_SHAPES", "QUICK_SHAPES",
           "MODES", "IMPLS", "STREAM_SIZE", "GRAD_NAMES", "forward_flops", "mode_flops",
           "make_data"]

CELLS = ("rnn", "gru", "lstm")
GATES = {"rnn": 1, "gru": 3, "lstm": 4}
#: name -> (B, T, I, H)
SHAPES = {
    "latency": (1, 100, 64, 128),
    "small": (16, 100, 64, 128),
    "medium": (32, 100, 128, 256),
    "large": (64, 50, 512, 512),
    "wide": (16, 50, 1024, 1024),
}
#: shapes usable by name but not part of the default grid (tests, smoke runs)
EXTRA_SHAPES = {"tiny": (2, 5, 8, 16)}
DEFAULT_SHAPES = tuple(SHAPES)
QUICK_SHAPES = ("latency", "small")
MODES = ("inference", "training", "streaming")
IMPLS = ("fastrnn", "numpy", "torch", "ort")
#: streaming step: B=1, (I, H)
STREAM_SIZE = (64, 256)


def forward_flops(cell, B, T, I, H):
    """Forward FLOPs of one call: 2*B*T*G*H*(I+H) (the GEMMs only)."""
    return 2.0 * B * T * GATES[cell] * H * (I + H)


def mode_flops(cell, B, T, I, H, mode):
    """FLOPs counted for one call of ``mode``: training (forward + backward) is 3x forward."""
    f = forward_flops(cell, B, T, I, H)
    return 3.0 * f if mode == "training" else f


def make_data(cell, B, T, I, H, seed=0):
    """Random float32 inputs and PyTorch-layout weights shared by every implementation."""
    rng = np.random.default_rng(seed)
    G = GATES[cell]
    k = 1.0 / math.sqrt(H)

    def u(*shape, scale=k):
        return rng.uniform(-scale, scale, size=shape).astype(np.float32)

    return {
        "cell": cell, "B": B, "T": T, "I": I, "H": H,
        "x": rng.standard_normal((T, B, I)).astype(np.float32),
        "h0": u(B, H, scale=0.5), "c0": u(B, H, scale=0.5),
        "weight_ih": u(G * H, I), "weight_hh": u(G * H, H),
        "bias_ih": u(G * H), "bias_hh": u(G * H),
        "dy": rng.standard_normal((T, B, H)).astype(np.float32),
        "dh_n": rng.standard_normal((B, H)).astype(np.float32),
        "dc_n": rng.standard_normal((B, H)).astype(np.float32),
    }


GRAD_NAMES = ("x", "h0", "c0", "weight_ih", "weight_hh", "bias_ih", "bias_hh")
