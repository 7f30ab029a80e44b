"""Optimizers (Keras's update rules by default, ``torch.optim``'s on request) and
learning-rate schedules (:mod:`fastrnn.optimizers.schedules`).

See :mod:`fastrnn.optimizers.core` for the two conventions, clipping, the all-or-nothing
step and the saved state.
"""

from . import schedules
from .core import (OPTIMIZER_REGISTRY, SGD, Adagrad, Adam, AdamW, NonFiniteGradientError,
                   Optimizer, RMSprop, deserialize, from_config, get, serialize)
from .core import __doc__ as _core_doc

__doc__ = (__doc__ or "") + "\n" + (_core_doc or "")

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad",
           "NonFiniteGradientError", "get", "serialize", "deserialize", "from_config",
           "schedules", "OPTIMIZER_REGISTRY"]
