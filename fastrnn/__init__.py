"""fastrnn: fast, exact recurrent networks (Elman RNN, LSTM, GRU) on the CPU.

The public API lives here; see the README for a tour.
"""

__version__ = "0.1.0"


def _load_kernels():
    """Load the compiled kernels with OpenMP's idle threads spinning only briefly.

    libgomp reads its wait settings once, when it is loaded. Its default lets idle threads spin
    for a long while after every parallel region; on a machine whose other cores are busy
    (another pool, another process) a spinning thread steals the very core the next step needs:
    measured 10x slower training steps on 2 cores. Sleeping at once (OMP_WAIT_POLICY=PASSIVE,
    what this did before) costs the other way: every region then starts by waking a sleeping
    worker, which the kernel tends to place on the caller's own core, so the 2-thread kernels
    ran no faster than one thread on the small and medium shapes (LSTM inference B=32,H=256:
    26.1 ms passive, 19.6 ms with the short spin below; ONNX Runtime 16.6 ms). GOMP_SPINCOUNT
    = 10000 spins for tens of microseconds: back-to-back regions (projection, recurrence, the
    next call) find the team awake, an idle process stops spinning almost at once. The
    setting applies to fastrnn's OpenMP runtime only: the environment is restored right after
    loading, so other libraries loaded later (PyTorch ships its own libgomp) keep their
    defaults. A user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT is respected.
    """
    import os
    own = "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ
    if not own:
        os.environ["GOMP_SPINCOUNT"] = "10000"
    try:
        from ._engine import kernels  # noqa: F401  (loads every kernel module and libgomp)
    except ImportError:
        # functional falls back to the NumPy reference, with a warning; the one case worth a
        # word now: Python started in an unbuilt source checkout shadows the installed copy
        from ._install_check import build_hint, shadowed_checkout
        if shadowed_checkout() is not None:
            import warnings
            warnings.warn(build_hint(), RuntimeWarning, stacklevel=3)
    finally:
        if not own:
            del os.environ["GOMP_SPINCOUNT"]


_load_kernels()

from . import functional, reference
from ._engine.config import show_config, set_num_threads, get_num_threads, release_memory
from .layers import GRU, LSTM, SimpleRNN, Layer
from . import interop
from .layers import Bidirectional, Dense, Dropout, Embedding, Masking
from .models import Sequential, Model, Input
from .layers import (Concatenate, Add, Subtract, Multiply, Average, Dot, Attention,
                     AdditiveAttention, MultiHeadAttention)
from . import callbacks, losses, metrics
from . import io, optimizers
from . import datasets
from . import utils
from .io import load_model, load_weights, save_model, save_weights, ModelFileError
from . import initializers
from .layers import (Activation, Conv1D, Flatten, GlobalAveragePooling1D, GlobalMaxPooling1D,
                     LayerNormalization, MaxPooling1D, RepeatVector, SpatialDropout1D,
                     TimeDistributed)
from . import distributed
from . import onnx          # imports the onnx package only when used

__all__ = ["functional", "reference", "interop", "SimpleRNN", "LSTM", "GRU", "Layer", "__version__",
           "Sequential", "Dense", "Embedding", "Dropout", "Bidirectional", "Input", "Masking",
           "losses", "metrics", "callbacks",
           "io", "optimizers", "load_model", "save_model", "load_weights", "save_weights",
           "ModelFileError", "datasets", "show_config", "set_num_threads", "get_num_threads",
           "release_memory",
           "Model",
           "initializers", "Activation", "Conv1D", "Flatten", "GlobalAveragePooling1D",
           "GlobalMaxPooling1D", "LayerNormalization", "MaxPooling1D", "RepeatVector",
           "SpatialDropout1D", "TimeDistributed", "distributed", "Concatenate", "Add", "Subtract",
           "Multiply", "Average", "Dot", "Attention", "AdditiveAttention", "utils", "onnx",
           "MultiHeadAttention"]
