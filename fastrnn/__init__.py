"""fastrnn: fast, exact recurrent networks (Elman RNN, LSTM, GRU) on the CPU.

The public API lives here; see the README for a tour.
"""

__version__ = "0.1.0"

from . import functional, reference
from ._config import show_config, set_num_threads, get_num_threads
from .layers import GRU, LSTM, SimpleRNN, Layer
from . import interop
from .layers import Bidirectional, Dense, Dropout, Embedding, Input, Masking
from .model import Sequential
from . import callbacks, losses, metrics
from . import io, optimizers
from .io import load_model, load_weights, save_model, save_weights, ModelFileError

__all__ = ["functional", "reference", "interop", "SimpleRNN", "LSTM", "GRU", "Layer", "__version__",
           "Sequential", "Dense", "Embedding", "Dropout", "Bidirectional", "Input", "Masking",
           "losses", "metrics", "callbacks",
           "io", "optimizers", "load_model", "save_model", "load_weights", "save_weights",
           "ModelFileError"]
