"""The API documentation: every documented example runs, the public classes and functions
carry numpydoc sections, and the package declares its type hints (PEP 561)."""

import doctest
import importlib
import inspect
import os

import numpy as np
import pytest

import fastrnn as fr

# modules whose docstring examples must run as written (examples that need torch say SKIP)
DOCTEST_MODULES = [
    "fastrnn.layers.recurrent", "fastrnn.layers.core", "fastrnn.layers.embedding",
    "fastrnn.layers.dropout", "fastrnn.layers.bidirectional", "fastrnn.models.sequential",
    "fastrnn.functional", "fastrnn.interop", "fastrnn.io", "fastrnn._engine.config",
    "fastrnn._ngram",
]

# the public API a user meets first: each needs Parameters and an example
DOCUMENTED = [fr.SimpleRNN, fr.LSTM, fr.GRU, fr.Dense, fr.Embedding, fr.Dropout, fr.Masking,
              fr.Bidirectional, fr.Sequential, fr.Model, fr.functional.rnn_forward,
              fr.functional.lstm_forward, fr.functional.gru_forward, fr.save_model,
              fr.interop.load_keras_weights, fr.interop.load_torch_weights,
              fr.interop.from_torch, fr.set_num_threads, fr.show_config]


@pytest.mark.parametrize("name", DOCTEST_MODULES)
def test_docstring_examples_run(name):
    mod = importlib.import_module(name)
    state = np.random.get_state()
    try:
        res = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS,
                              verbose=False)
    finally:
        np.random.set_state(state)
        fr.set_num_threads(None)
    assert res.failed == 0, f"{res.failed} docstring example(s) failed in {name}"


@pytest.mark.parametrize("obj", DOCUMENTED, ids=lambda o: o.__qualname__)
def test_public_docstrings_have_parameters_and_an_example(obj):
    doc = inspect.getdoc(obj) or ""
    assert "Parameters\n----------" in doc, obj
    assert "Example" in doc and ">>>" in doc, obj


@pytest.mark.parametrize("obj", [fr.SimpleRNN.__init__, fr.LSTM.forward, fr.LSTM.backward,
                                 fr.Dense.__init__, fr.Sequential.__init__,
                                 fr.functional.lstm_forward, fr.load_model,
                                 fr.set_num_threads, fr.interop.from_torch],
                         ids=lambda o: o.__qualname__)
def test_public_signatures_are_annotated(obj):
    assert obj.__annotations__, obj


def test_simple_rnn_signature_shows_its_options():
    params = inspect.signature(fr.SimpleRNN).parameters
    for name in ("activation", "return_sequences", "return_state", "go_backwards", "use_bias",
                 "dtype", "seed", "input_size"):
        assert name in params, name


def test_package_declares_type_hints():
    assert os.path.isfile(os.path.join(os.path.dirname(fr.__file__), "py.typed"))
