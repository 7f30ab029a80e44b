"""fastrnn layers. LAYER_REGISTRY is the allowlist used to rebuild models from files.

``serialize(layer)`` gives ``{"class_name": ..., "config": {...}}`` (JSON-able) and
``deserialize(d)`` rebuilds a layer from such a dict. Only the classes listed in
``LAYER_REGISTRY`` can be created that way: names are never resolved by import path.
"""

from .base import Layer
from .bidirectional import Bidirectional
from .core import Dense, Input, InputLayer, Masking
from .dropout import Dropout, SpatialDropout1D
from .embedding import Embedding
from .recurrent import GRU, LSTM, RecurrentLayer, SimpleRNN
from .activation import Activation
from .convolutional import Conv1D
from .normalization import LayerNormalization
from .pooling import GlobalAveragePooling1D, GlobalMaxPooling1D, MaxPooling1D
from .reshaping import Flatten, RepeatVector
from .wrappers import TimeDistributed
from .merge import Add, Average, Concatenate, Dot, Multiply, Subtract
from .attention import AdditiveAttention, Attention, MultiHeadAttention

LAYER_REGISTRY = {
    "SimpleRNN": SimpleRNN,
    "LSTM": LSTM,
    "GRU": GRU,
    "Dense": Dense,
    "Embedding": Embedding,
    "Dropout": Dropout,
    "Bidirectional": Bidirectional,
    "InputLayer": InputLayer,
    "Masking": Masking,
    "SpatialDropout1D": SpatialDropout1D,
    "Activation": Activation,
    "Conv1D": Conv1D,
    "LayerNormalization": LayerNormalization,
    "GlobalAveragePooling1D": GlobalAveragePooling1D,
    "GlobalMaxPooling1D": GlobalMaxPooling1D,
    "MaxPooling1D": MaxPooling1D,
    "Flatten": Flatten,
    "RepeatVector": RepeatVector,
    "TimeDistributed": TimeDistributed,
    "Concatenate": Concatenate,
    "Add": Add,
    "Subtract": Subtract,
    "Multiply": Multiply,
    "Average": Average,
    "Dot": Dot,
    "Attention": Attention,
    "AdditiveAttention": AdditiveAttention,
    "MultiHeadAttention": MultiHeadAttention,
}


def serialize(layer):
    """``{"class_name": <registered class name>, "config": layer.get_config()}``."""
    if not isinstance(layer, Layer):
        raise TypeError(f"serialize: expected a fastrnn Layer, got {type(layer).__name__}")
    name = type(layer).__name__
    if LAYER_REGISTRY.get(name) is not type(layer):
        raise ValueError(f"serialize: layer class {name!r} is not in LAYER_REGISTRY; "
                         f"registered: {sorted(LAYER_REGISTRY)}")
    return {"class_name": name, "config": layer.get_config()}


def deserialize(config):
    """Build a layer from ``{"class_name": ..., "config": {...}}``; the class must be in
    LAYER_REGISTRY. Bad input raises ValueError (unknown class, malformed dict) or TypeError
    (unexpected constructor arguments)."""
    if not isinstance(config, dict):
        raise ValueError(f"deserialize: expected a dict with 'class_name' and 'config', got "
                         f"{type(config).__name__}")
    name = config.get("class_name")
    if not isinstance(name, str) or name not in LAYER_REGISTRY:
        raise ValueError(f"deserialize: unknown layer class_name {name!r}; allowed: "
                         f"{sorted(LAYER_REGISTRY)}")
    cfg = config.get("config", {})
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, dict) or not all(isinstance(k, str) for k in cfg):
        raise ValueError(f"deserialize: 'config' of {name} must be a dict with str keys, got "
                         f"{type(cfg).__name__}")
    return LAYER_REGISTRY[name].from_config(dict(cfg))


__all__ = ["Layer", "RecurrentLayer", "SimpleRNN", "LSTM", "GRU", "Dense", "Embedding",
           "Dropout", "Bidirectional", "Masking", "Input", "InputLayer", "LAYER_REGISTRY", "serialize",
           "deserialize", "SpatialDropout1D", "Activation", "Conv1D", "LayerNormalization",
           "GlobalAveragePooling1D", "GlobalMaxPooling1D", "MaxPooling1D", "Flatten",
           "RepeatVector", "TimeDistributed", "Concatenate", "Add", "Subtract", "Multiply", "Average", "Dot",
           "Attention", "AdditiveAttention", "MultiHeadAttention"]
