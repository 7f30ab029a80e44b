"""Models: containers of layers with compile / fit / evaluate / predict / save.

``graph`` holds the layer graph (Input, symbolic tensors, topological forward/backward),
``model`` the Model class and its training loop, ``sequential`` the chain special case.
"""
from .graph import Input, SymbolicTensor
from .model import Model, model_from_json
from .sequential import Sequential
from .. import io as _io

# the file format rebuilds models through this registry (io never imports the training loop)
_io.register_model("Sequential", Sequential)
_io.register_model("Model", Model)
# Keras's names: keras.models.load_model / save_model
load_model, save_model = _io.load_model, _io.save_model

__all__ = ["Model", "Sequential", "Input", "SymbolicTensor", "model_from_json", "load_model",
           "save_model"]
