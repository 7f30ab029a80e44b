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
    "fastrnn._ngram", "fastrnn.textgen", "fastrnn.callbacks", "fastrnn.linalg",
]

# the public API a user meets first: each needs Parameters and an example
DOCUMENTED = [fr.SimpleRNN, fr.LSTM, fr.GRU, fr.Dense, fr.Embedding, fr.Dropout, fr.Masking,
              fr.Bidirectional, fr.Sequential, fr.Model, fr.functional.rnn_forward,
              fr.functional.lstm_forward, fr.functional.gru_forward, fr.save_model,
              fr.interop.load_keras_weights, fr.interop.load_torch_weights,
              fr.interop.from_torch, fr.set_num_threads, fr.show_config,
              fr.linalg.matmul, fr.linalg.bmm]


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
                                 fr.LSTM.step, fr.Sequential.__init__,
                                 fr.functional.lstm_forward, fr.load_model,
                                 fr.set_num_threads],
                         ids=lambda o: o.__qualname__)
def test_public_signatures_are_annotated(obj):
    assert obj.__annotations__, obj


@pytest.mark.parametrize("cls", [fr.SimpleRNN, fr.LSTM, fr.GRU])
def test_recurrent_docstrings_list_the_options_behind_kw(cls):
    # the cells take most options through **kw: the docstring must name every one of them
    doc = inspect.getdoc(cls)
    params = doc.split("Parameters\n----------")[1].split("Attributes\n----------")[0]
    hidden = inspect.signature(fr.layers.RecurrentLayer.__init__).parameters
    for name in hidden:
        if name != "self":
            assert name in params, (cls.__name__, name)


def test_package_declares_type_hints():
    assert os.path.isfile(os.path.join(os.path.dirname(fr.__file__), "py.typed"))
