"""Model fit / evaluate / train_on_batch options with Keras semantics, checked by hand:
class_weight, sample_weight, validation_batch_size, initial_epoch, steps_per_epoch,
Sequence and generator batch sources, predict_on_batch, weights, save/load_weights, to_json."""

import warnings

import numpy as np
import pytest

import fastrnn as fr
from fastrnn import optimizers
from fastrnn.models import model_from_json
from fastrnn.utils import Sequence


def classifier(seed=0, lr=0.1):
    m = fr.Sequential([fr.Dense(3, activation="softmax")], seed=seed)
    m.compile(optimizers.SGD(learning_rate=lr), "sparse_categorical_crossentropy")
    m.build((None, 4))
    return m


def regressor(seed=0, lr=0.1):
    m = fr.Sequential([fr.Dense(1)], seed=seed)
    m.compile(optimizers.SGD(learning_rate=lr), "mse")
    m.build((None, 3))
    return m


def class_data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4))
    y = rng.integers(0, 3, n)
    y[:3] = [0, 1, 2]
    return x, y


def per_sample_ce(model, x, y):
    w, b = model.get_weights()
    z = x @ w.T.astype(np.float64) + b
    z = z - z.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return -logp[np.arange(len(y)), y]


# ---------------------------------------------------------------- weights vs hand computation

def test_train_on_batch_sample_weight_loss_and_step_by_hand():
    m = regressor()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3)).astype(np.float32)
    y = rng.standard_normal((5, 1)).astype(np.float32)
    sw = np.array([1.0, 0.0, 2.0, 0.5, 3.0])
    w, b = [a.astype(np.float64) for a in m.get_weights()]
    r = (x @ w.T + b - y)[:, 0]                       # residuals
    want = np.sum(sw * r * r) / 5                     # Keras: sum(w * loss) / n
    assert m.train_on_batch(x, y, sample_weight=sw) == pytest.approx(want, rel=1e-5)
    # one SGD step on the weighted loss
    dw = (2 / 5) * (sw * r) @ x
    db = (2 / 5) * np.sum(sw * r)
    w1, b1 = m.get_weights()
    np.testing.assert_allclose(w1, w - 0.1 * dw[None], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b1, b - 0.1 * db, rtol=1e-5, atol=1e-6)


def test_fit_class_weight_loss_by_hand():
    m = classifier()
    x, y = class_data()
    cw = {0: 1.0, 1: 5.0, 2: 0.25}
    per = per_sample_ce(m, x, y)
    want = np.sum(np.array([cw[int(c)] for c in y]) * per) / len(y)
    h = m.fit(x, y, batch_size=len(y), epochs=1, shuffle=False, verbose=0, class_weight=cw)
    assert h.history["loss"][0] == pytest.approx(want, rel=1e-5)


def test_fit_sample_weight_equals_class_weight_and_unweighted_is_default():
    x, y = class_data()
    cw = {0: 2.0, 1: 0.5, 2: 1.5}
    a, b, c = classifier(), classifier(), classifier()
    ha = a.fit(x, y, batch_size=4, epochs=2, verbose=0, class_weight=cw)
    hb = b.fit(x, y, batch_size=4, epochs=2, verbose=0,
               sample_weight=np.array([cw[int(k)] for k in y]))
    hc = c.fit(x, y, batch_size=4, epochs=2, verbose=0, sample_weight=np.ones(len(y)))
    d = classifier()
    hd = d.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert ha.history["loss"] == pytest.approx(hb.history["loss"], rel=1e-6)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6)
    assert hc.history["loss"] == pytest.approx(hd.history["loss"], rel=1e-6)
    assert ha.history["loss"] != pytest.approx(hd.history["loss"], rel=1e-3)


def test_evaluate_and_test_on_batch_sample_weight_by_hand():
    m = classifier()
    x, y = class_data()
    sw = np.linspace(0.0, 2.0, len(y))
    per = per_sample_ce(m, x, y)
    # evaluate in batches of 5: the batch-size-weighted mean of sum(w*l)/n_batch is
    # sum(w*l)/n overall
    want = np.sum(sw * per) / len(y)
    assert m.evaluate(x, y, batch_size=5, sample_weight=sw) == pytest.approx(want, rel=1e-5)
    assert m.test_on_batch(x, y, sample_weight=sw) == pytest.approx(want, rel=1e-5)
    assert m.evaluate(x, y) == pytest.approx(per.mean(), rel=1e-5)


def test_temporal_sample_weight_on_sequence_output():
    m = fr.Sequential([fr.LSTM(4, return_sequences=True), fr.Dense(2)], seed=0)
    m.compile(optimizers.SGD(learning_rate=0.1), "mse")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 5, 2)).astype(np.float32)
    y = rng.standard_normal((3, 5, 2)).astype(np.float32)
    sw = rng.uniform(0, 2, (3, 5))
    out = m.predict(x).astype(np.float64)
    per = np.mean((out - y) ** 2, axis=-1)
    assert m.evaluate(x, y, sample_weight=sw) == pytest.approx(np.sum(sw * per) / 15, rel=1e-5)
    assert m.evaluate(x, y, sample_weight=sw[:, 0]) == \
        pytest.approx(np.sum(sw[:, :1] * per) / 15, rel=1e-5)


def test_validation_data_with_sample_weight():
    m = classifier()
    x, y = class_data()
    sw = np.arange(len(y), dtype=float)
    per = per_sample_ce(m, x, y)
    m.optimizer.learning_rate = 0.0        # keep the weights: val loss is computable by hand
    h = m.fit(x, y, epochs=1, verbose=0, validation_data=(x, y, sw))
    assert h.history["val_loss"][0] == pytest.approx(np.sum(sw * per) / len(y), rel=1e-5)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"class_weight": {0: 1.0}, "sample_weight": np.ones(12)}, ValueError, "not both"),
    ({"sample_weight": np.ones(11)}, ValueError, "sample_weight"),
    ({"sample_weight": -np.ones(12)}, ValueError, "sample_weight"),
    ({"class_weight": [1.0, 2.0]}, TypeError, "class_weight"),
    ({"class_weight": {0: -1.0}}, ValueError, "class_weight"),
    ({"validation_batch_size": 0}, ValueError, "validation_batch_size"),
    ({"steps_per_epoch": 0}, ValueError, "steps_per_epoch"),
])
def test_bad_fit_options_change_nothing(kwargs, exc, match):
    m = classifier()
    x, y = class_data()
    before = m.get_weights()
    with pytest.raises(exc, match=match):
        m.fit(x, y, epochs=1, verbose=0, **kwargs)
    for a, b in zip(before, m.get_weights()):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- batching options

def _spy_forward(model):
    calls = []
    orig = model._forward

    def spy(x, training):
        calls.append((training, int(np.shape(x)[0])))
        return orig(x, training)
    model._forward = spy
    return calls


def test_validation_batch_size():
    m = classifier()
    x, y = class_data(n=10)
    calls = _spy_forward(m)
    m.fit(x, y, batch_size=4, epochs=1, verbose=0, validation_data=(x[:7], y[:7]),
          validation_batch_size=3)
    assert [n for t, n in calls if t] == [4, 4, 2]
    assert [n for t, n in calls if not t] == [3, 3, 1]


def test_initial_epoch():
    m = classifier()
    x, y = class_data()
    seen = []
    cb = fr.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: seen.append(e))
    h = m.fit(x, y, epochs=5, initial_epoch=3, verbose=0, callbacks=[cb])
    assert seen == [3, 4] and len(h.history["loss"]) == 2


def test_steps_per_epoch_continues_through_the_data():
    m = regressor()
    x = np.arange(10, dtype=np.float32)[:, None].repeat(3, 1)
    y = np.zeros((10, 1), np.float32)
    calls = []
    orig = m._train_step

    def spy(xb, yb, *a):
        calls.append([int(v) for v in xb[:, 0]])
        return orig(xb, yb, *a)
    m._train_step = spy
    h = m.fit(x, y, batch_size=4, epochs=3, steps_per_epoch=2, shuffle=False, verbose=0)
    # 2 batches per epoch; the stream goes on where it stopped, a new pass when used up
    assert calls == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9], [0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert len(h.history["loss"]) == 3 and h.params["steps"] == 2


# ---------------------------------------------------------------- Sequence and generators

class Batches(Sequence):
    def __init__(self, x, y, batch_size, sw=None):
        self.x, self.y, self.batch_size, self.sw = x, y, batch_size, sw
        self.epochs_ended = 0

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, i):
        s = slice(i * self.batch_size, (i + 1) * self.batch_size)
        if self.sw is not None:
            return self.x[s], self.y[s], self.sw[s]
        return self.x[s], self.y[s]

    def on_epoch_end(self):
        self.epochs_ended += 1


def test_fit_on_sequence_equals_fit_on_arrays_without_shuffle():
    x, y = class_data()
    a, b = classifier(), classifier()
    seq = Batches(x, y, 5)
    ha = a.fit(seq, epochs=3, verbose=0)
    hb = b.fit(x, y, batch_size=5, epochs=3, shuffle=False, verbose=0)
    assert ha.history["loss"] == pytest.approx(hb.history["loss"], rel=1e-6)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6)
    assert seq.epochs_ended == 3
    assert a.evaluate(seq) == pytest.approx(b.evaluate(x, y), rel=1e-6)
    np.testing.assert_allclose(a.predict(seq), b.predict(x), rtol=1e-6)


def test_sequence_batches_with_sample_weight_and_class_weight():
    x, y = class_data()
    sw = np.linspace(0.5, 1.5, len(y))
    a, b = classifier(), classifier()
    ha = a.fit(Batches(x, y, 4, sw), epochs=2, verbose=0)
    hb = b.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, sample_weight=sw)
    assert ha.history["loss"] == pytest.approx(hb.history["loss"], rel=1e-6)
    cw = {0: 3.0}
    c, d = classifier(), classifier()
    hc = c.fit(Batches(x, y, 4), epochs=1, verbose=0, class_weight=cw)
    hd = d.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0, class_weight=cw)
    assert hc.history["loss"] == pytest.approx(hd.history["loss"], rel=1e-6)


def test_fit_on_generator_with_steps_and_validation_sequence():
    x, y = class_data()

    def gen():
        while True:
            for i in range(0, 12, 4):
                yield x[i:i + 4], y[i:i + 4]

    a, b = classifier(), classifier()
    ha = a.fit(gen(), steps_per_epoch=3, epochs=2, verbose=0,
               validation_data=Batches(x, y, 6))
    hb = b.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0,
               validation_data=(x, y))
    assert ha.history["loss"] == pytest.approx(hb.history["loss"], rel=1e-6)
    assert ha.history["val_loss"] == pytest.approx(hb.history["val_loss"], rel=1e-6)


def test_generator_running_out_stops_training_with_a_warning():
    x, y = class_data()
    m = classifier()
    batches = ((x[i:i + 4], y[i:i + 4]) for i in range(0, 12, 4))     # 3 batches in all
    with pytest.warns(UserWarning, match="ran out of data"):
        h = m.fit(batches, steps_per_epoch=2, epochs=5, verbose=0)
    assert len(h.history["loss"]) == 2          # epoch 2 got one batch, then training stopped
    # a finite generator without steps_per_epoch: one epoch, then it has nothing left
    m2 = classifier()
    batches = ((x[i:i + 4], y[i:i + 4]) for i in range(0, 12, 4))
    with pytest.warns(UserWarning, match="ran out of data"):
        h2 = m2.fit(batches, epochs=3, verbose=0)
    assert len(h2.history["loss"]) == 1


def test_source_errors():
    x, y = class_data()
    m = classifier()
    with pytest.raises(ValueError, match="y=None"):
        m.fit(Batches(x, y, 4), y, verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        m.fit(Batches(x, y, 4), validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match=r"\(x, y\)"):
        m.fit(iter([x[:4]]), verbose=0)
    with pytest.raises(ValueError, match="no batches"):
        m.fit(iter([]), verbose=0)
    with pytest.raises(ValueError, match="tuple"):
        m.fit(iter([(x, y, None, None)]), verbose=0)


# ---------------------------------------------------------------- model-level shortcuts

def test_predict_on_batch_weights_save_load_weights(tmp_path):
    m = classifier()
    x, _ = class_data()
    np.testing.assert_array_equal(m.predict_on_batch(x), m.predict(x))
    ws = m.weights
    assert [w.shape for w in ws] == [(3, 4), (3,)]
    assert ws[0] is dict(m.params())["layers.0.weight"]          # live arrays, not copies
    path = tmp_path / "w.safetensors"
    m.save_weights(path)
    other = classifier(seed=5)
    assert not np.array_equal(other.predict(x), m.predict(x))
    other.load_weights(path)
    np.testing.assert_array_equal(other.predict(x), m.predict(x))


def test_to_json_roundtrip():
    m = fr.Sequential([fr.Embedding(20, 4), fr.LSTM(5), fr.Dense(2, activation="softmax")],
                      seed=0)
    m.build((None, 7))
    text = m.to_json()
    import json
    spec = json.loads(text)
    assert spec["class_name"] == "Sequential"
    m2 = model_from_json(text)
    assert type(m2) is fr.Sequential and m2.to_json() == text
    m2.set_weights(m.get_weights())
    x = np.random.default_rng(0).integers(0, 20, (3, 7))
    np.testing.assert_array_equal(m2.predict(x), m.predict(x))
    for bad in ("{", '{"class_name": "os.system", "config": {}}', "[]"):
        with pytest.raises(ValueError):
            model_from_json(bad)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fr.models.model_from_json is model_from_json


@pytest.mark.parametrize("verbose", [1, 2])
def test_progress_for_a_generator_of_unknown_length(verbose, capsys):
    x, y = class_data()
    m = classifier()
    m.fit(((x[i:i + 4], y[i:i + 4]) for i in range(0, 12, 4)), epochs=1, verbose=verbose)
    out = capsys.readouterr().out
    assert "None" not in out and "3 - " in out and "loss" in out


def test_class_weight_applies_to_training_not_to_validation_split():
    x, y = class_data(n=16)
    cw = {0: 4.0, 1: 0.5, 2: 2.0}
    m = classifier()
    m.optimizer.learning_rate = 0.0        # weights fixed: both losses computable by hand
    per = per_sample_ce(m, x, y)
    h = m.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, class_weight=cw,
              validation_split=0.25)
    w = np.array([cw[int(c)] for c in y])
    assert h.history["loss"][0] == pytest.approx(np.sum(w[:12] * per[:12]) / 12, rel=1e-5)
    assert h.history["val_loss"][0] == pytest.approx(per[12:].mean(), rel=1e-5)


class ShrinkingBatches(Batches):
    """Drops its first sample after every epoch: len() changes between epochs."""

    def on_epoch_end(self):
        super().on_epoch_end()
        self.x, self.y = self.x[1:], self.y[1:]


def test_a_sequence_whose_length_changes_between_epochs_is_read_in_full():
    def run(seq, epochs):
        seen = []
        cb = fr.callbacks.LambdaCallback(
            on_train_batch_end=lambda b, logs: seen.append((len(seq.x), b)))
        classifier().fit(seq, epochs=epochs, verbose=0, callbacks=[cb])
        return seen
    x, y = class_data(n=12)
    # 12, 11, 10, 9 samples: 3 batches every epoch
    assert run(ShrinkingBatches(x, y, 4), 4) == [(n, b) for n in (12, 11, 10, 9)
                                                 for b in range(3)]
    # 9 samples (3 batches), then 8 (2 batches): no IndexError, no batch read twice
    assert run(ShrinkingBatches(x[:9], y[:9], 4), 2) == [(9, 0), (9, 1), (9, 2), (8, 0), (8, 1)]
