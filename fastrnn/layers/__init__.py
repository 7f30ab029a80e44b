"""fastrnn layers. LAYER_REGISTRY is the allowlist used to rebuild models from files."""

from .base import Layer
from .recurrent import GRU, LSTM, RecurrentLayer, SimpleRNN

LAYER_REGISTRY = {
    "SimpleRNN": SimpleRNN,
    "LSTM": LSTM,
    "GRU": GRU,
}

__all__ = ["Layer", "RecurrentLayer", "SimpleRNN", "LSTM", "GRU", "LAYER_REGISTRY"]
