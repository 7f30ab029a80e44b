"""Sequential: training, History, validation split, verbose output, seeds, summary, batching,
weights, config, non-finite steps and bad arguments."""

import re

import numpy as np
import pytest

import fastrnn as fr
from fastrnn import callbacks, optimizers

pytestmark = pytest.mark.filterwarnings("ignore:fastrnn's compiled kernels:RuntimeWarning")


def regression_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    w = rng.standard_normal((4, 2)).astype(np.float32)
    return x, np.tanh(x @ w)


def sequence_data(n=48, T=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, T, 3)).astype(np.float32)
    y = (x[:, :, 0].sum(1) > 0).astype(np.int64)
    return x, y


def mlp(seed=0, **kw):
    return fr.Sequential([fr.Dense(8, activation="tanh"), fr.Dense(2)], seed=seed, **kw)


def test_fit_reduces_loss_dense():
    x, y = regression_data()
    model = mlp()
    model.compile(optimizers.Adam(0.02), "mse")
    before = model.evaluate(x, y)
    hist = model.fit(x, y, batch_size=16, epochs=15, verbose=0)
    after = model.evaluate(x, y)
    assert after < 0.3 * before
    assert hist.history["loss"][-1] < hist.history["loss"][0]


def test_fit_reduces_loss_lstm_classifier():
    x, y = sequence_data()
    model = fr.Sequential([fr.LSTM(8), fr.Dense(2, activation="softmax")], seed=1)
    model.compile(optimizers.Adam(0.02), "sparse_categorical_crossentropy", ["accuracy"])
    hist = model.fit(x, y, batch_size=16, epochs=12, verbose=0)
    assert hist.history["loss"][-1] < 0.7 * hist.history["loss"][0]
    assert hist.history["accuracy"][-1] > 0.8


def test_history_keys_epochs_params():
    x, y = regression_data()
    model = mlp()
    model.compile("sgd", "mse", metrics=["mae"])
    hist = model.fit(x, y, batch_size=20, epochs=3, validation_split=0.25, verbose=0)
    assert isinstance(hist, callbacks.History) and model.history is hist
    assert set(hist.history) == {"loss", "mae", "val_loss", "val_mae"}
    assert all(len(v) == 3 for v in hist.history.values())
    assert hist.epoch == [0, 1, 2]
    assert hist.params == {"verbose": 0, "epochs": 3, "steps": 3}    # 48 training samples / 20
    assert all(isinstance(v, float) for v in hist.history["loss"])
    # initial_epoch
    hist = model.fit(x, y, epochs=5, initial_epoch=3, verbose=0)
    assert hist.epoch == [3, 4]


def test_validation_split_takes_the_tail_before_shuffling():
    x, y = regression_data(n=50)
    model = mlp()
    model.compile("sgd", "mse")
    seen = []
    original = model._train_step

    def spy(xb, yb):
        seen.append(xb.copy())
        return original(xb, yb)

    model._train_step = spy
    hist = model.fit(x, y, batch_size=8, epochs=2, validation_split=0.2, shuffle=True, verbose=0)
    rows = np.concatenate(seen)
    assert rows.shape[0] == 2 * 40
    head = {r.tobytes() for r in x[:40]}
    assert {r.tobytes() for r in rows} == head          # only the first 80% is trained on
    assert not np.array_equal(seen[0], x[:8])           # and it was shuffled
    # validation values are the tail evaluated with the weights at the end of the epoch
    np.testing.assert_allclose(hist.history["val_loss"][-1], model.evaluate(x[40:], y[40:]),
                               rtol=1e-6)


def test_validation_data_overrides_split():
    x, y = regression_data(n=40)
    xv, yv = regression_data(n=10, seed=5)
    model = mlp()
    model.compile("sgd", "mse", ["mse"])
    hist = model.fit(x, y, epochs=1, validation_data=(xv, yv), validation_split=0.5, verbose=0)
    assert hist.params["steps"] == 2        # all 40 samples trained on (batch 32)
    np.testing.assert_allclose(hist.history["val_loss"][0], model.evaluate(xv, yv)[0], rtol=1e-6)
    np.testing.assert_allclose(hist.history["val_mse"][0], hist.history["val_loss"][0], rtol=1e-6)


def test_verbose_2_one_line_per_epoch(capsys):
    x, y = regression_data(n=48)
    model = mlp()
    model.compile("sgd", "mse", ["mae"])
    model.fit(x, y, batch_size=16, epochs=2, validation_split=0.25, verbose=2)
    out = capsys.readouterr().out
    lines = out.strip("\n").split("\n")
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    pat = (r"^3/3 - \d+s - \d+(us|ms|s)/step - loss: [0-9.e+-]+ - mae: [0-9.e+-]+ - "
           r"val_loss: [0-9.e+-]+ - val_mae: [0-9.e+-]+$")
    assert re.match(pat, lines[1]), lines[1]
    assert re.match(pat, lines[3]), lines[3]
    assert "\r" not in out


def test_verbose_1_progress_bar(capsys, monkeypatch):
    monkeypatch.setattr(callbacks.Progbar, "interval", 0.0)     # draw every step
    monkeypatch.setattr(callbacks, "_interactive", lambda stream: True)   # as on a terminal
    monkeypatch.setenv("COLUMNS", "120")
    x, y = regression_data(n=40)
    model = mlp()
    model.compile("sgd", "mse")
    model.fit(x, y, batch_size=10, epochs=1, validation_split=0.25, verbose=1)
    out = capsys.readouterr().out
    assert out.startswith("Epoch 1/1\n")
    frames = out[len("Epoch 1/1\n"):].rstrip("\n").split("\r")[1:]
    assert len(frames) == 4                     # 3 batches + the final redraw with val values
    for k, frame in enumerate(frames[:3], start=1):
        m = re.match(r"^(\d)/3 (\S{20}) \d+s \d+(us|ms|s)/step - \d+ samples/s - loss: \S+", frame)
        assert m, frame
        assert int(m.group(1)) == k
    assert "val_loss: " in frames[-1] and out.endswith("\n")
    bar = re.match(r"^3/3 (\S{20}) ", frames[-1]).group(1)
    assert len(set(bar)) == 1                   # a full bar at the end


def test_verbose_0_prints_nothing(capsys):
    x, y = regression_data(n=20)
    model = mlp()
    model.compile("sgd", "mse")
    model.fit(x, y, epochs=2, verbose=0)
    model.evaluate(x, y)
    model.predict(x)
    assert capsys.readouterr().out == ""


def test_seed_makes_training_reproducible():
    x, y = sequence_data(n=40)

    def run(seed):
        model = fr.Sequential([fr.GRU(6, return_sequences=True), fr.Dropout(0.3), fr.LSTM(5),
                               fr.Dense(2, activation="softmax")], seed=seed)
        model.compile(optimizers.Adam(0.01), "sparse_categorical_crossentropy")
        hist = model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=True)
        return hist.history["loss"], model.get_weights()

    l1, w1 = run(7)
    l2, w2 = run(7)
    l3, w3 = run(8)
    assert l1 == l2
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    assert l1 != l3


def test_summary_counts(capsys):
    model = fr.Sequential([fr.Input((5, 3)), fr.LSTM(8, return_sequences=True), fr.GRU(4),
                           fr.Dense(2)])
    lines = []
    assert model.summary(print_fn=lines.append) is None
    text = "\n".join(lines)
    lstm, gru, dense = 4 * (3 * 8 + 8 * 8 + 2 * 8), 3 * (8 * 4 + 4 * 4 + 2 * 4), 4 * 2 + 2
    assert re.search(rf"lstm \(LSTM\)\s+\(None, 5, 8\)\s+{lstm}\b", text)
    assert re.search(rf"gru \(GRU\)\s+\(None, 4\)\s+{gru}\b", text)
    assert re.search(rf"dense \(Dense\)\s+\(None, 2\)\s+{dense}\b", text)
    assert f"Total params: {lstm + gru + dense:,}" in text
    assert model.count_params() == lstm + gru + dense
    model.summary()
    assert "Total params" in capsys.readouterr().out


def test_summary_unbuilt_and_duplicate_names():
    model = fr.Sequential([fr.Dense(3), fr.Dense(2)])
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "dense (Dense)" in text and "dense_1 (Dense)" in text and "unbuilt" in text


def test_embedding_first_builds_without_data():
    model = fr.Sequential([fr.Embedding(20, 4), fr.LSTM(3)])
    assert model.built
    assert model.count_params() == 80 + 4 * (4 * 3 + 9 + 6)


@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_predict_batching_equals_one_shot(batch_size):
    x, _ = sequence_data(n=23)
    model = fr.Sequential([fr.LSTM(5, return_sequences=True, dtype="float64"),
                           fr.Dense(3, dtype="float64")], seed=0)
    full = model(x)
    pred = model.predict(x, batch_size=batch_size)
    assert pred.shape == (23, 5, 3) and pred.dtype == np.float64
    np.testing.assert_allclose(pred, full, rtol=1e-12, atol=1e-14)


def test_get_set_weights_and_params_names():
    model = fr.Sequential([fr.Input((4,)), fr.Dense(3), fr.Dense(2, use_bias=False)], seed=1)
    names = [n for n, _ in model.params()]
    assert names == ["layers.0.weight", "layers.0.bias", "layers.1.weight"]
    w = model.get_weights()
    w[0][...] = 5            # copies
    assert not (model.layers[0].params["weight"] == 5).any()
    new = [np.full_like(a, i + 1.0) for i, a in enumerate(w)]
    model.set_weights(new)
    for a, (_, b) in zip(new, model.params()):
        np.testing.assert_array_equal(a, b)
    before = model.get_weights()
    with pytest.raises(ValueError, match="expected 3 arrays"):
        model.set_weights(new[:2])
    bad = [new[0], np.zeros((9,)), new[2]]
    with pytest.raises(ValueError, match=r"weights\[1\].*shape \(3,\)"):
        model.set_weights(bad)
    for a, b in zip(before, model.get_weights()):     # nothing changed
        np.testing.assert_array_equal(a, b)


def test_config_roundtrip_gives_same_predictions():
    x, _ = sequence_data(n=6)
    model = fr.Sequential([fr.Bidirectional(fr.GRU(4, return_sequences=True)), fr.Dropout(0.2),
                           fr.LSTM(3), fr.Dense(2, activation="sigmoid")], name="net", seed=4)
    y = model.predict(x)
    cfg = model.get_config()
    import json
    clone = fr.Sequential.from_config(json.loads(json.dumps(cfg)))
    assert clone.name == "net" and clone.built
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone.predict(x), y)
    with pytest.raises(ValueError, match="unknown keys"):
        fr.Sequential.from_config(dict(cfg, evil=1))
    with pytest.raises(ValueError, match="unknown layer class_name"):
        fr.Sequential.from_config({"layers": [{"class_name": "Lambda", "config": {}}]})


def test_save_and_load(tmp_path):
    x, y = regression_data(n=20)
    model = mlp()
    model.compile("adam", "mse", ["mae"])
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "m.safetensors"
    model.save(str(path))
    back = fr.io.load_model(str(path))
    np.testing.assert_array_equal(back.predict(x), model.predict(x))
    assert [m.name for m in back.compiled_metrics] == ["mae"]


def test_train_and_test_on_batch():
    x, y = regression_data(n=16)
    model = mlp()
    model.compile(optimizers.SGD(0.1), "mse", ["mae"])
    l0 = model.test_on_batch(x, y)
    losses = [model.train_on_batch(x, y) for _ in range(5)]
    assert isinstance(losses[0], float) and losses[0] == pytest.approx(l0, rel=1e-6)
    assert losses[-1] < losses[0]
    d = model.test_on_batch(x, y, return_dict=True)
    assert set(d) == {"loss", "mae"}
    assert model.train_on_batch(x, y, return_dict=True).keys() == {"loss", "mae"}


def test_evaluate_return_forms():
    x, y = regression_data(n=30)
    model = mlp()
    model.compile("sgd", "mse")
    assert isinstance(model.evaluate(x, y), float)
    model.compile("sgd", "mse", ["mae", "mse"])
    res = model.evaluate(x, y, batch_size=7)
    assert isinstance(res, list) and len(res) == 3
    np.testing.assert_allclose(res[0], res[2], rtol=1e-6)
    # batch-size-weighted mean over batches == one big batch
    np.testing.assert_allclose(res[0], model.evaluate(x, y, batch_size=30)[0], rtol=1e-5)
    assert set(model.evaluate(x, y, return_dict=True)) == {"loss", "mae", "mse"}


def test_non_finite_loss_is_never_applied():
    x, y = regression_data(n=16)
    model = mlp()
    model.compile(optimizers.SGD(0.1), "mse")
    model.fit(x, y, epochs=1, verbose=0)
    before = model.get_weights()
    y_huge = np.full_like(y, 3e38)               # (pred - y)^2 overflows float32 -> inf
    loss = model.train_on_batch(x, y_huge)
    assert not np.isfinite(loss)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.skipped_steps == 1


def test_huge_learning_rate_with_terminate_on_nan():
    x, y = sequence_data(n=32)
    model = fr.Sequential([fr.SimpleRNN(4, activation="relu"), fr.Dense(1)], seed=0)
    model.compile(optimizers.SGD(1e12), "mse")
    hist = model.fit(x, y * 1e3, batch_size=4, epochs=3, verbose=0,
                     callbacks=[callbacks.TerminateOnNaN()])
    for w in model.get_weights():
        assert np.isfinite(w).all()
    assert len(hist.epoch) == 1                   # stopped during the first epoch
    assert model.predict(x).shape == (32, 1)       # the model still runs


def test_fused_softmax_crossentropy_uses_logits():
    # logits of -60 underflow softmax in float32 (exp(-60-max) ~ 1e-26 -> clipped to 1e-7);
    # the fused path gives the exact cross-entropy
    model = fr.Sequential([fr.Dense(2, activation="softmax", input_size=1, dtype="float32")])
    model.layers[0].params["weight"] = np.array([[60.0], [-60.0]])
    model.layers[0].params["bias"] = np.zeros(2)
    model.compile(optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    loss = model.test_on_batch(np.ones((1, 1)), np.array([1]))
    np.testing.assert_allclose(loss, 120.0, rtol=1e-5)
    loss = model.train_on_batch(np.ones((1, 1)), np.array([1]))
    np.testing.assert_allclose(loss, 120.0, rtol=1e-5)
    g = model.layers[0].grads["weight"]
    np.testing.assert_allclose(g, [[1.0], [-1.0]], rtol=1e-6)   # softmax - onehot


def test_fused_equals_unfused_in_float64():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 3))
    y = rng.integers(0, 4, 10)
    a = fr.Sequential([fr.Dense(4, activation="softmax", dtype="float64")], seed=3)
    a.compile(optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    la = a.train_on_batch(x, y)
    ga = a.layers[0].grads["weight"].copy()
    b = fr.Sequential([fr.Dense(4, activation="softmax", dtype="float64")], seed=3)
    b.compile(optimizers.SGD(0.1), fr.losses.SparseCategoricalCrossentropy())
    b._fused_loss = lambda: None                 # force the probability path
    lb = b.train_on_batch(x, y)
    np.testing.assert_allclose(la, lb, rtol=1e-12)
    np.testing.assert_allclose(ga, b.layers[0].grads["weight"], rtol=1e-9)


def test_stop_training_from_callback():
    x, y = regression_data(n=40)
    model = mlp()
    model.compile("sgd", "mse")

    class Stop(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.stop_training = True

    hist = model.fit(x, y, batch_size=10, epochs=5, verbose=0, callbacks=[Stop()])
    assert hist.epoch == [0]


def test_float64_model_and_int_inputs():
    model = fr.Sequential([fr.Dense(2, dtype="float64")], seed=0)
    model.compile("sgd", "mse")
    model.fit(np.arange(12).reshape(6, 2), np.zeros((6, 2)), verbose=0)
    assert model.dtype == "float64"
    assert model.predict(np.ones((2, 2), np.float32)).dtype == np.float64


def test_add_pop_and_structure_errors():
    model = fr.Sequential()
    model.add(fr.Dense(3, input_size=4))
    d = fr.Dense(2)
    model.add(d)
    assert model.pop() is d and len(model.layers) == 1
    with pytest.raises(TypeError, match="layer"):
        model.add("dense")
    with pytest.raises(ValueError, match="return_state"):
        model.add(fr.LSTM(3, return_state=True))
    with pytest.raises(ValueError, match="Embedding must be the first"):
        model.add(fr.Embedding(4, 2))
    with pytest.raises(ValueError, match="Input"):
        model.add(fr.Input((3,)))
    with pytest.raises(ValueError, match=r"layer 1 \(Dense\) takes 5 input features.*gives 3"):
        model.add(fr.Dense(2, input_size=5))
    assert len(model.layers) == 1             # the failed add changed nothing
    assert model.get_layer(index=0) is model.layers[0]
    assert model.get_layer("dense") is model.layers[0]
    with pytest.raises(ValueError, match="no layer named"):
        model.get_layer("lstm")
    with pytest.raises(ValueError, match="pop"):
        fr.Sequential().pop()
    with pytest.raises(ValueError, match="seed"):
        fr.Sequential(seed=-1)
    with pytest.raises(TypeError, match="layers"):
        fr.Sequential(layers="dense")


def test_bad_fit_arguments():
    x, y = regression_data(n=10)
    model = mlp()
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(x, y)
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"y must have the same number of samples as x \(10\)"):
        model.fit(x, y[:9])
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(x, y, validation_split=1.0)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(x, y, validation_split=0.95)     # empty training set
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(x, y, batch_size=0)
    with pytest.raises(ValueError, match="epochs"):
        model.fit(x, y, epochs=-1)
    with pytest.raises(ValueError, match="verbose"):
        model.fit(x, y, verbose=3)
    with pytest.raises(ValueError, match="validation_data"):
        model.fit(x, y, validation_data=(x,))
    xn = x.copy()
    xn[3, 1] = np.nan
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"x must be finite.*\(3, 1\)"):
        model.fit(xn, y, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match="callbacks"):
        model.fit(x, y, callbacks=[print], verbose=0)


def test_bad_compile_arguments():
    model = mlp()
    with pytest.raises(ValueError, match="loss is required"):
        model.compile("sgd")
    with pytest.raises(ValueError, match="unknown loss"):
        model.compile("sgd", "hinge")
    with pytest.raises(ValueError):
        model.compile("nadam_typo", "mse")
    with pytest.raises(TypeError, match="optimizer"):
        model.compile(3.0, "mse")
    with pytest.raises(ValueError, match="unique"):
        model.compile("sgd", "mse", ["mae", "mae"])
    with pytest.raises(TypeError, match="metrics"):
        model.compile("sgd", "mse", metrics=3)


def test_seed_also_covers_layers_built_at_construction():
    def make():
        return fr.Sequential([fr.LSTM(4, input_size=3, return_sequences=True),
                              fr.Bidirectional(fr.GRU(2, input_size=4)),
                              fr.Dense(2, input_size=4)], seed=5)

    for a, b in zip(make().get_weights(), make().get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(make().get_weights()[0],
                              fr.Sequential([fr.LSTM(4, input_size=3)], seed=6).get_weights()[0])


def test_seed_never_overwrites_assigned_weights():
    lstm = fr.LSTM(4, input_size=3)
    w = np.random.default_rng(0).standard_normal((16, 3))
    lstm.params["weight_ih"] = w
    bi = fr.Bidirectional(fr.GRU(2, input_size=3))
    bi.params["backward_weight_hh"] = np.ones((6, 2))
    own = fr.Dense(2, input_size=3, seed=9)
    own_w = own.params["weight"].copy()
    fr.Sequential([lstm], seed=1)
    fr.Sequential([bi], seed=1)
    fr.Sequential([own], seed=1)
    np.testing.assert_allclose(lstm.params["weight_ih"], w, rtol=1e-7)
    np.testing.assert_array_equal(bi.params["backward_weight_hh"], np.ones((6, 2)))
    np.testing.assert_array_equal(own.params["weight"], own_w)


def test_design_doc_workflow_char_model(tmp_path):
    # Embedding -> LSTM(return_sequences) -> Dense(vocab): learn a periodic token stream
    vocab, T = 5, 8
    stream = np.tile(np.arange(1, vocab), 40)
    starts = np.arange(0, len(stream) - T - 1, 2)
    x = np.stack([stream[s:s + T] for s in starts])
    y = np.stack([stream[s + 1:s + T + 1] for s in starts])
    model = fr.Sequential([fr.Embedding(vocab, 8), fr.LSTM(16, return_sequences=True),
                           fr.Dense(vocab)], seed=0)
    model.compile(optimizer=optimizers.Adam(0.03),
                  loss=fr.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    hist = model.fit(x, y, batch_size=16, epochs=6, validation_split=0.1, verbose=0)
    assert hist.history["val_accuracy"][-1] > 0.9
    assert hist.history["loss"][-1] < 0.3 * hist.history["loss"][0]
    path = str(tmp_path / "charlm.safetensors")
    model.save(path)
    back = fr.load_model(path)
    np.testing.assert_array_equal(back.predict(x), model.predict(x))
    np.testing.assert_allclose(back.evaluate(x, y), model.evaluate(x, y), rtol=1e-6)


def test_verbose_1_redraws_are_throttled(capsys, monkeypatch):
    monkeypatch.setattr(callbacks.Progbar, "interval", 3600.0)
    monkeypatch.setattr(callbacks, "_interactive", lambda stream: True)   # as on a terminal
    x, y = regression_data(n=64)
    model = mlp()
    model.compile("sgd", "mse")
    model.fit(x, y, batch_size=4, epochs=1, verbose=1)
    frames = capsys.readouterr().out.split("\r")[1:]
    assert [f.split("/")[0].strip() for f in frames] == ["1", "16", "16"]   # first, last, final


def test_any_input_layout_gives_the_same_predictions():
    x, y = sequence_data(n=10)
    model = fr.Sequential([fr.Bidirectional(fr.GRU(4)), fr.Dropout(0.2), fr.Dense(2)], seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    ref = model.predict(x)
    ro = x.copy()
    ro.flags.writeable = False
    for v in (ro, np.asfortranarray(x), np.repeat(x, 2, axis=-1)[..., ::2], x.astype(">f4"),
              x.astype(np.float64), x.tolist()):
        np.testing.assert_array_equal(model.predict(v), ref)
    yr = y.copy()
    yr.flags.writeable = False
    model.fit(ro, yr, epochs=1, verbose=0)


def test_fuzz_fit_and_predict_give_clear_errors():
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import given, settings, strategies as st
    from hypothesis.extra import numpy as hnp

    model = fr.Sequential([fr.LSTM(3), fr.Dense(2, activation="softmax")], seed=0)
    model.compile(optimizers.SGD(0.01), "sparse_categorical_crossentropy", ["accuracy"])
    model.build((None, None, 2))
    dtypes = st.sampled_from([np.float32, np.float64, np.int64, np.bool_, np.float16,
                              np.complex64, np.uint8])
    arrays = dtypes.flatmap(lambda dt: hnp.arrays(
        dt, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=3)))

    @settings(max_examples=80, deadline=None, derandomize=True)
    @given(x=arrays, y=arrays)
    def check(x, y):
        before = model.get_weights()
        try:
            model.fit(x, y, epochs=1, verbose=0)
        except (ValueError, TypeError):
            for a, b in zip(before, model.get_weights()):
                np.testing.assert_array_equal(a, b)
        try:
            out = model.predict(x)
        except (ValueError, TypeError):
            return
        assert out.shape == (x.shape[0], 2)

    check()
    assert hypothesis is not None


# ------------------------------------------------------------------------------------------
# issue 9, defect 4: predict in one thread never breaks fit in another

def test_predict_in_another_thread_never_breaks_fit():
    import threading
    rng = np.random.default_rng(40)
    x = rng.standard_normal((256, 6, 3)).astype(np.float32)
    y = rng.integers(0, 4, 256)
    m = fr.Sequential([fr.LSTM(16, return_sequences=True, seed=1), fr.GRU(8, seed=2),
                       fr.Dense(4, activation="softmax", seed=3)])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    m.build((None, 6, 3))
    errors, done = [], threading.Event()

    def predictor():
        try:
            while not done.is_set():
                out = m.predict(x[:40], batch_size=8, verbose=0)
                assert out.shape == (40, 4) and np.isfinite(out).all()
        except BaseException as e:          # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=predictor) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        hist = m.fit(x, y, batch_size=8, epochs=2, verbose=0)
    finally:
        done.set()
        for t in threads:
            t.join()
    assert not errors, errors
    assert len(hist.history["loss"]) == 2 and np.isfinite(hist.history["loss"]).all()
    assert m.skipped_steps == 0


def test_concurrent_predict_equals_serial():
    import threading
    rng = np.random.default_rng(41)
    m = fr.Sequential([fr.GRU(12, seed=4, input_size=5), fr.Dense(3, seed=5)])
    xs = [rng.standard_normal((20, 7, 5)).astype(np.float32) for _ in range(8)]
    serial = [m.predict(x, batch_size=4, verbose=0) for x in xs]
    got = [None] * 8

    def run(i):
        got[i] = m.predict(xs[i], batch_size=4, verbose=0)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(got, serial):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------------------
# issue 9, defect 7: an overflowing intermediate layer is named; fit skips the step

def _overflowing_model():
    m = fr.Sequential([fr.Dense(8, input_size=4, seed=1), fr.LSTM(3, seed=2, name="rec"),
                       fr.Dense(1, seed=3)])
    m.build((None, 5, 4))
    m.compile(loss="mse", optimizer="sgd")
    return m


def test_overflow_inside_the_model_names_the_layer_with_a_batch_first_index():
    m = _overflowing_model()
    x = np.ones((3, 5, 4), np.float32)
    m.layers[0].params["weight"][...] = 1e38          # Dense output: inf from sample 0 on
    m.layers[0].params["bias"][...] = 0
    x[:2] = 0.0                                       # ... but only samples 2.. overflow
    x[2, :3] = 0.0                                    # ... from time step 3 on
    with np.errstate(over="ignore"), pytest.raises(ValueError) as info:
        m.predict(x, verbose=0)
    msg = str(info.value)
    assert isinstance(info.value, fr.functional.NonFiniteError)
    assert msg.startswith("rec:") and "(batch 2, time 3, feature 0)" in msg
    assert "model's input is finite" in msg and "check_finite" not in msg


def test_fit_skips_an_overflowing_step_and_terminate_on_nan_fires():
    m = _overflowing_model()
    x = np.ones((8, 5, 4), np.float32)
    y = np.zeros((8, 1), np.float32)
    m.fit(x, y, batch_size=4, epochs=1, verbose=0)
    m.layers[0].params["weight"][...] = 1e38
    before = m.get_weights()
    with np.errstate(over="ignore"):
        hist = m.fit(x, y, batch_size=4, epochs=5, verbose=0,
                     callbacks=[fr.callbacks.TerminateOnNaN()])
    assert m.stop_training and m.skipped_steps == 1
    assert len(hist.history["loss"]) == 1 and np.isnan(hist.history["loss"][0])
    for a, b in zip(before, m.get_weights()):       # nothing applied
        np.testing.assert_array_equal(a, b)
    with np.errstate(over="ignore"):
        assert np.isnan(m.train_on_batch(x, y))


def test_fit_raises_on_overflow_when_the_optimizer_says_so():
    from fastrnn.optimizers import NonFiniteGradientError
    m = _overflowing_model()
    m.compile(loss="mse", optimizer=fr.optimizers.SGD(0.1, on_nonfinite="raise"))
    m.layers[0].params["weight"][...] = 1e38
    with np.errstate(over="ignore"), pytest.raises(NonFiniteGradientError, match="rec:"):
        m.fit(np.ones((4, 5, 4), np.float32), np.zeros((4, 1), np.float32), verbose=0)


# ------------------------------------------------------------------------------------------
# issue 9, "Also": SIGTERM during fit is handled like SIGINT; clear TypeErrors

SIGTERM_FIT = r"""
import os, signal, sys
import numpy as np
import fastrnn as fr

class Kill(fr.callbacks.Callback):
    def on_train_batch_end(self, step, logs=None):
        if step == 2 and self.params.get("epochs") and not hasattr(self, "sent"):
            self.sent = True
            os.kill(os.getpid(), getattr(signal, sys.argv[2]))

rng = np.random.default_rng(0)
x = rng.standard_normal((64, 5, 3)).astype(np.float32)
y = rng.standard_normal((64, 1)).astype(np.float32)
m = fr.Sequential([fr.GRU(8, seed=1), fr.Dense(1, seed=2)])
m.compile(optimizer="adam", loss="mse")
try:
    m.fit(x, y, batch_size=4, epochs=1000, verbose=0, callbacks=[Kill()])
except KeyboardInterrupt as e:
    m.save(sys.argv[1])
    print("saved", type(e).__name__, getattr(e, "signal", None), m.optimizer.iterations)
"""


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_signal_during_fit_lets_the_caller_save(tmp_path, sig):
    import os
    import signal
    import subprocess
    import sys
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(fr.__file__)))
    path = tmp_path / "m.safetensors"
    proc = subprocess.run([sys.executable, "-c", SIGTERM_FIT, str(path), sig], timeout=120,
                          capture_output=True, text=True, env=dict(os.environ,
                                                                   PYTHONPATH=pkg_parent))
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-1500:])
    words = proc.stdout.split()
    assert words[:2] == ["saved", "TrainingInterrupted"]
    assert int(words[2]) == getattr(signal, sig)
    assert int(words[3]) == 3                 # the step running at the signal was completed
    m = fr.load_model(path)
    assert m.optimizer.iterations == 3


def test_empty_model_and_bad_callbacks_are_type_errors():
    x, y = np.zeros((2, 3, 4), np.float32), np.zeros((2, 1), np.float32)
    empty = fr.Sequential([])
    empty.compile(loss="mse")
    for call in (lambda: empty.predict(x), lambda: empty.fit(x, y, verbose=0),
                 lambda: empty.evaluate(x, y)):
        with pytest.raises(TypeError, match="has no layers"):
            call()
    m = fr.Sequential([fr.LSTM(4, seed=0), fr.Dense(1, seed=1)])
    m.compile(loss="mse", optimizer="adam")
    for call in (lambda: m.fit(x, y, verbose=0, callbacks=5),
                 lambda: m.predict(x, callbacks=5), lambda: m.evaluate(x, y, callbacks=5)):
        with pytest.raises(TypeError, match="callbacks must be a list"):
            call()
