"""Callbacks: hook order, History, EarlyStopping, TerminateOnNaN, ModelCheckpoint."""

import math

import numpy as np
import pytest

import fastrnn as fr
from fastrnn import callbacks, optimizers

pytestmark = pytest.mark.filterwarnings("ignore:fastrnn's compiled kernels:RuntimeWarning")


class FakeModel:
    """Just what the callbacks touch: weights, stop flag, save."""

    def __init__(self):
        self.w = 0
        self.stop_training = False
        self.saved = []

    def get_weights(self):
        return [np.array(self.w)]

    def set_weights(self, ws):
        self.w = int(ws[0])

    def save(self, path):
        self.saved.append(path)


def drive(cb, values, key="val_loss", model=None):
    """Run epochs with the given monitor values; epoch e sets weights to e. Returns the epochs
    that ran."""
    model = model or FakeModel()
    cb.set_model(model)
    cb.on_train_begin()
    ran = []
    for epoch, v in enumerate(values):
        model.w = epoch
        cb.on_epoch_end(epoch, {key: v})
        ran.append(epoch)
        if model.stop_training:
            break
    cb.on_train_end()
    return ran, model


def data(n=40):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    return x, x[:, :2] * 0.5


def model():
    m = fr.Sequential([fr.Dense(4, activation="tanh"), fr.Dense(2)], seed=0)
    m.compile(optimizers.SGD(0.05), "mse", ["mae"])
    return m


def test_hook_order_and_logs():
    events = []

    class Rec(callbacks.Callback):
        def __getattribute__(self, name):
            if name.startswith("on_"):
                return lambda *a: events.append((name,) + tuple(
                    sorted(x) if isinstance(x, dict) else x for x in a))
            return object.__getattribute__(self, name)

    x, y = data()
    m = model()
    m.fit(x, y, batch_size=16, epochs=2, validation_split=0.25, verbose=0, callbacks=[Rec()])
    names = [e[0] for e in events]
    assert names[0] == "on_train_begin" and names[-1] == "on_train_end"
    per_epoch = ["on_epoch_begin"] + ["on_train_batch_begin", "on_train_batch_end"] * 2 + \
        ["on_epoch_end"]
    assert names[1:-1] == per_epoch * 2
    batch_end = [e for e in events if e[0] == "on_train_batch_end"]
    assert batch_end[0][1:] == (0, ["loss", "mae"])
    epoch_end = [e for e in events if e[0] == "on_epoch_end"]
    assert epoch_end[1][1:] == (1, ["loss", "mae", "val_loss", "val_mae"])
    events.clear()
    m.evaluate(x, y, batch_size=30, callbacks=[Rec()])
    assert [e[0] for e in events] == ["on_test_begin", "on_test_batch_begin", "on_test_batch_end",
                                      "on_test_batch_begin", "on_test_batch_end", "on_test_end"]
    events.clear()
    m.predict(x, batch_size=40, callbacks=[Rec()])
    assert [e[0] for e in events] == ["on_predict_begin", "on_predict_batch_begin",
                                      "on_predict_batch_end", "on_predict_end"]


def test_history_records_epoch_logs():
    h = callbacks.History()
    h.on_train_begin()
    h.on_epoch_end(0, {"loss": 2.0, "acc": 0.5})
    h.on_epoch_end(1, {"loss": 1.0, "acc": 0.7})
    assert h.history == {"loss": [2.0, 1.0], "acc": [0.5, 0.7]} and h.epoch == [0, 1]


def test_early_stopping_patience():
    ran, _ = drive(callbacks.EarlyStopping(patience=2), [1.0, 0.9, 0.95, 0.96, 0.97, 0.5])
    assert ran == [0, 1, 2, 3]
    ran, _ = drive(callbacks.EarlyStopping(patience=0), [1.0, 0.9, 0.95, 0.5])
    assert ran == [0, 1, 2]
    ran, _ = drive(callbacks.EarlyStopping(patience=1), [1.0, 0.9, 0.8, 0.7])
    assert ran == [0, 1, 2, 3]


def test_early_stopping_min_delta_and_modes():
    # improvements of 0.01 are below min_delta=0.05: not improvements
    ran, _ = drive(callbacks.EarlyStopping(patience=1, min_delta=0.05), [1.0, 0.99, 0.98, 0.97])
    assert ran == [0, 1]
    es = callbacks.EarlyStopping(monitor="val_accuracy", patience=0)
    assert es.mode == "max"
    ran, _ = drive(es, [0.5, 0.6, 0.55, 0.9], key="val_accuracy")
    assert ran == [0, 1, 2]
    es = callbacks.EarlyStopping(monitor="loss", mode="max", patience=0)
    ran, _ = drive(es, [1.0, 2.0, 1.5], key="loss")
    assert ran == [0, 1, 2]


def test_early_stopping_restore_best_weights():
    es = callbacks.EarlyStopping(patience=2, restore_best_weights=True)
    ran, m = drive(es, [1.0, 0.5, 0.7, 0.8, 0.9])
    assert ran == [0, 1, 2, 3] and m.w == 1 and es.best_epoch == 1
    es = callbacks.EarlyStopping(patience=5, restore_best_weights=False)
    ran, m = drive(es, [1.0, 0.5, 0.7])
    assert m.w == 2


def test_early_stopping_nan_is_not_an_improvement():
    ran, _ = drive(callbacks.EarlyStopping(patience=2), [1.0, math.nan, math.nan, 0.1])
    assert ran == [0, 1, 2]


def test_early_stopping_missing_monitor_warns():
    with pytest.warns(RuntimeWarning, match="val_loss"):
        ran, _ = drive(callbacks.EarlyStopping(), [1.0, 2.0], key="loss")
    assert ran == [0, 1]


def test_early_stopping_in_fit_restores_weights():
    x, y = data()
    m = model()
    m.compile(optimizers.SGD(0.05), "mse")
    snapshots = []
    rec = callbacks.LambdaCallback(on_epoch_end=lambda e, logs: snapshots.append(
        (logs["val_loss"], m.get_weights())))
    es = callbacks.EarlyStopping(patience=1, restore_best_weights=True)
    m.fit(x, y, epochs=4, validation_split=0.25, verbose=0, callbacks=[rec, es])
    best = min(snapshots, key=lambda s: s[0])[1]
    for a, b in zip(best, m.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_bad_args():
    with pytest.raises(ValueError, match="mode"):
        callbacks.EarlyStopping(mode="up")
    with pytest.raises(ValueError, match="patience"):
        callbacks.EarlyStopping(patience=-1)
    with pytest.raises(TypeError, match="monitor"):
        callbacks.EarlyStopping(monitor=3)


def test_terminate_on_nan(capsys):
    cb = callbacks.TerminateOnNaN()
    m = FakeModel()
    cb.set_model(m)
    cb.on_train_batch_end(0, {"loss": 1.0})
    assert not m.stop_training
    cb.on_train_batch_end(1, {"loss": float("inf")})
    assert m.stop_training and "Invalid loss" in capsys.readouterr().out
    cb = callbacks.TerminateOnNaN(raise_error=True)
    cb.set_model(FakeModel())
    with pytest.raises(RuntimeError, match="NaN or Inf loss"):
        cb.on_train_batch_end(3, {"loss": float("nan")})


def test_terminate_on_nan_keeps_last_finite_weights():
    x, y = data(16)
    m = model()
    m.compile(optimizers.SGD(0.01), "mse")
    m.fit(x, y, epochs=1, verbose=0)
    good = m.get_weights()
    y_bad = np.full_like(y, 3e38)
    hist = m.fit(x, y_bad, batch_size=4, epochs=3, verbose=0,
                 callbacks=[callbacks.TerminateOnNaN()])
    assert hist.epoch == [0] and not np.isfinite(hist.history["loss"][0])
    for a, b in zip(good, m.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_model_checkpoint_every_epoch(tmp_path):
    x, y = data()
    m = model()
    path = str(tmp_path / "ckpt-{epoch:02d}-{loss:.2f}.safetensors")
    m.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.ModelCheckpoint(path)])
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and files[0].startswith("ckpt-01-") and files[1].startswith("ckpt-02-")
    back = fr.io.load_model(str(tmp_path / files[1]))
    np.testing.assert_array_equal(back.predict(x), m.predict(x))


def test_model_checkpoint_save_best_only():
    cb = callbacks.ModelCheckpoint("best.safetensors", save_best_only=True)
    _, m = drive(cb, [1.0, 0.5, 0.7, 0.4, float("nan")])
    assert m.saved == ["best.safetensors"] * 3
    cb = callbacks.ModelCheckpoint("m-{epoch}.st", monitor="val_acc", save_best_only=True)
    _, m = drive(cb, [0.1, 0.3, 0.2], key="val_acc")
    assert m.saved == ["m-1.st", "m-2.st"]
    with pytest.raises(KeyError, match="val_mae"):
        drive(callbacks.ModelCheckpoint("{val_mae}.st"), [1.0])
    with pytest.raises(TypeError, match="filepath"):
        callbacks.ModelCheckpoint(3)


def test_callback_list_and_lambda_validation():
    with pytest.raises(TypeError, match="Callback"):
        callbacks.CallbackList([object()])
    with pytest.raises(ValueError, match="unknown hook"):
        callbacks.LambdaCallback(on_epoch_finish=print)
    with pytest.raises(TypeError, match="callable"):
        callbacks.LambdaCallback(on_epoch_end=3)


class LrModel(FakeModel):
    def __init__(self, lr):
        super().__init__()
        self.optimizer = optimizers.SGD(lr)


def test_reduce_lr_on_plateau():
    m = LrModel(1.0)
    cb = callbacks.ReduceLROnPlateau(factor=0.5, patience=2, min_lr=0.2)
    lrs = []
    cb.set_model(m)
    cb.on_train_begin()
    for e, v in enumerate([1.0, 0.9, 0.95, 0.96, 0.97, 0.98, 0.99, 1.0, 1.0]):
        logs = {"val_loss": v}
        cb.on_epoch_end(e, logs)
        lrs.append(m.optimizer.learning_rate)
        assert logs["learning_rate"] == (lrs[-2] if e else 1.0)
    assert lrs == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2]
    # cooldown: after a reduction, wait `cooldown` epochs before counting again
    m = LrModel(1.0)
    cb = callbacks.ReduceLROnPlateau(factor=0.5, patience=1, cooldown=2)
    cb.set_model(m)
    cb.on_train_begin()
    lrs = []
    for e, v in enumerate([1.0, 2.0, 2.0, 2.0, 2.0, 2.0]):
        cb.on_epoch_end(e, {"val_loss": v})
        lrs.append(m.optimizer.learning_rate)
    assert lrs == [1.0, 0.5, 0.5, 0.25, 0.25, 0.125]    # Keras counts the cooldown down first
    with pytest.raises(ValueError, match="factor"):
        callbacks.ReduceLROnPlateau(factor=1.0)


def test_reduce_lr_in_fit_and_csv_logger(tmp_path):
    x, y = data()
    m = model()
    path = tmp_path / "log.csv"
    hist = m.fit(x, y, epochs=3, validation_split=0.25, verbose=0, callbacks=[
        callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=10.0),
        callbacks.CSVLogger(str(path))])
    assert hist.history["learning_rate"] == [0.05, 0.05, 0.025]   # the rate used in the epoch
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch,loss,mae,val_loss,val_mae,learning_rate"
    assert len(lines) == 4 and lines[1].startswith("0,")
    assert float(lines[3].split(",")[1]) == hist.history["loss"][2]
    m.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.CSVLogger(str(path), append=True)])
    lines = path.read_text().splitlines()
    assert len(lines) == 5 and lines[4].startswith("0,")


def test_optimizer_raise_mode_raises_on_non_finite_loss():
    x, y = data(8)
    m = fr.Sequential([fr.Dense(2)], seed=0)
    m.compile(optimizers.SGD(0.1, on_nonfinite="raise"), "mse")
    before = m.get_weights() if m.built else None
    with pytest.raises(optimizers.NonFiniteGradientError):
        m.train_on_batch(x, np.full_like(y, 3e38))
    for a, b in zip(before or m.get_weights(), m.get_weights()):
        np.testing.assert_array_equal(a, b)


# ---- terminal behaviour of the progress bar ---------------------------------------------------
def _fit_small(verbose, epochs=2):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 5, 3)).astype("float32")
    y = rng.standard_normal((40, 1)).astype("float32")
    model = fr.Sequential([fr.SimpleRNN(4), fr.Dense(1)], seed=0)
    model.compile(optimizers.SGD(0.01), "mse", metrics=["mae"])
    model.fit(x, y, batch_size=10, epochs=epochs, validation_split=0.25, verbose=verbose)


def test_verbose_1_not_a_terminal_prints_one_line_per_epoch(capsys, monkeypatch):
    monkeypatch.setattr(callbacks, "_interactive", lambda stream: False)   # a log file or pipe
    monkeypatch.setattr(callbacks.Progbar, "interval", 0.0)
    _fit_small(verbose=1)
    out = capsys.readouterr().out
    assert "\r" not in out
    lines = out.rstrip("\n").split("\n")
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    for line in (lines[1], lines[3]):       # the verbose=2 format, with the validation values
        assert line.startswith("3/3 - ") and " - val_loss: " in line and " - val_mae: " in line


@pytest.mark.parametrize("columns", [40, 60, 80])
def test_redrawn_lines_fit_the_terminal(capsys, monkeypatch, columns):
    monkeypatch.setattr(callbacks, "_interactive", lambda stream: True)
    monkeypatch.setattr(callbacks.Progbar, "interval", 0.0)
    monkeypatch.setenv("COLUMNS", str(columns))      # shutil.get_terminal_size reads it first
    _fit_small(verbose=1, epochs=1)
    out = capsys.readouterr().out
    frames = out[len("Epoch 1/1\n"):].rstrip("\n").split("\r")[1:]
    assert len(frames) == 4                          # 3 batches + the final redraw
    for frame in frames[:-1]:                        # redrawn in place: must never wrap
        assert len(frame.rstrip(" ")) <= columns - 1 and len(frame) <= columns - 1, frame
        assert frame.split("/")[0].strip() in "123"
    assert "val_loss: " in frames[-1]                # the final line keeps every value


def test_wide_terminal_keeps_the_full_bar(capsys, monkeypatch):
    monkeypatch.setattr(callbacks, "_interactive", lambda stream: True)
    monkeypatch.setenv("COLUMNS", "200")
    bar = callbacks.Progbar(10, verbose=1, samples=100, batch_size=10)
    line = bar._line(5, {"loss": 0.5}, final=False, columns=199)
    assert " samples/s" in line and line.count(callbacks._bar_chars()[0]) == 10


def test_narrow_terminal_drops_the_rate_then_shortens_the_bar(monkeypatch):
    monkeypatch.setattr(callbacks, "_interactive", lambda stream: True)
    bar = callbacks.Progbar(10, verbose=1, samples=100, batch_size=10)
    logs = {"loss": 0.5, "mae": 0.25}
    wide = bar._line(5, logs, final=False, columns=199)
    narrow = bar._line(5, logs, final=False, columns=50)
    assert "samples/s" in wide and "samples/s" not in narrow
    assert len(narrow) <= 50 and "loss: 0.5000" in narrow


# ---------------------------------------------------------------- LearningRateScheduler

def test_learning_rate_scheduler_sets_rate_each_epoch_in_fit(capsys):
    x, y = data()
    m = model()
    seen = []

    def schedule(epoch, lr):
        seen.append((epoch, lr))
        return 0.1 / (epoch + 1)

    class Spy(callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            rates.append(m.optimizer.learning_rate)
    rates = []
    hist = m.fit(x, y, epochs=3, batch_size=8, verbose=0,
                 callbacks=[callbacks.LearningRateScheduler(schedule, verbose=1), Spy()])
    assert [e for e, _ in seen] == [0, 1, 2]
    assert seen[0][1] == pytest.approx(0.05)                 # the compiled rate comes in
    assert seen[1][1] == pytest.approx(0.1)                  # then the previous epoch's
    assert rates == pytest.approx([0.1, 0.05, 0.1 / 3])
    assert hist.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.1 / 3])
    assert "Epoch 2: LearningRateScheduler setting learning rate to 0.05." in \
        capsys.readouterr().out


def test_learning_rate_scheduler_one_argument_schedule_and_sgd_step():
    # with one-argument schedule(epoch); the weights move by exactly lr * gradient
    m = fr.Sequential([fr.Dense(1, use_bias=False)], seed=0)
    m.compile(optimizers.SGD(0.5), "mse")
    x = np.ones((1, 1), np.float32)
    y = np.zeros((1, 1), np.float32)
    m.fit(x, y, epochs=1, batch_size=1, verbose=0)            # builds; one step at 0.5
    w0 = float(m.get_weights()[0].ravel()[0])
    m.fit(x, y, epochs=1, batch_size=1, verbose=0,
          callbacks=[callbacks.LearningRateScheduler(lambda epoch: 0.25)])
    w1 = float(m.get_weights()[0].ravel()[0])
    # mse = (w x)^2, gradient 2 w: w1 = w0 - 0.25 * 2 w0
    assert w1 == pytest.approx(w0 * 0.5, rel=1e-6)


@pytest.mark.parametrize("bad", [lambda e, lr: "0.1", lambda e, lr: float("nan"),
                                 lambda e, lr: -1.0, lambda e, lr: None])
def test_learning_rate_scheduler_bad_schedule_output(bad):
    cb = callbacks.LearningRateScheduler(bad)
    m = model()
    cb.set_model(m)
    with pytest.raises(ValueError, match="schedule"):
        cb.on_epoch_begin(0)
    assert m.optimizer.learning_rate == 0.05


def test_learning_rate_scheduler_arguments():
    with pytest.raises(TypeError, match="callable"):
        callbacks.LearningRateScheduler(0.1)
    cb = callbacks.LearningRateScheduler(lambda e, lr: lr)
    cb.set_model(FakeModel())
    with pytest.raises(RuntimeError, match="learning_rate"):
        cb.on_epoch_begin(0)


# ---- ResetStates, TrainingBudget, RunProgress -------------------------------------------------

def _stateful_model(seed=0):
    m = fr.Sequential([fr.LSTM(3, input_size=2, stateful=True, return_sequences=True, seed=seed),
                       fr.Dense(1, seed=seed + 1)])
    m.compile(optimizers.SGD(learning_rate=0.05), "mse")
    return m


def _series(n=8, t=4, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, t, 2)).astype(np.float32),
            rng.standard_normal((n, t, 1)).astype(np.float32))


@pytest.mark.parametrize("reset", [False, True])
def test_reset_states_zeroes_the_carried_state_at_every_epoch(reset):
    x, y = _series()
    m = _stateful_model()
    seen = []
    probe = callbacks.LambdaCallback(
        on_epoch_begin=lambda e, logs: seen.append(m.layers[0].states is None))
    cbs = ([callbacks.ResetStates()] if reset else []) + [probe]
    m.fit(x, y, batch_size=4, shuffle=False, epochs=3, verbose=0, callbacks=cbs)
    assert seen == ([True, True, True] if reset else [True, False, False])


def test_reset_states_in_fit_equals_one_fit_per_epoch_with_reset():
    # what Keras users write by hand: for epoch: fit(epochs=1); model.reset_states()
    x, y = _series()
    a, b = _stateful_model(), _stateful_model()
    a.fit(x, y, batch_size=4, shuffle=False, epochs=3, verbose=0,
          callbacks=[callbacks.ResetStates()])
    for _ in range(3):
        b.fit(x, y, batch_size=4, shuffle=False, epochs=1, verbose=0)
        b.reset_states()
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_training_budget_steps_cut_an_epoch_and_count_over_epochs():
    x, y = data()                                  # 40 samples, batch 8: 5 batches per epoch
    m = model()
    budget = callbacks.TrainingBudget(steps=7)
    steps = []
    h = m.fit(x, y, batch_size=8, epochs=100, verbose=0,
              callbacks=[budget, callbacks.LambdaCallback(
                  on_train_batch_end=lambda b, logs: steps.append(b))])
    assert steps == [0, 1, 2, 3, 4, 0, 1] and budget.steps_done == 7
    assert budget.stopped == "steps" and len(h.history["loss"]) == 2


def test_training_budget_seconds(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: clock[0])
    x, y = data()
    budget = callbacks.TrainingBudget(seconds=2.5)

    def tick(batch, logs):
        clock[0] += 1.0                              # every step takes one "second"
    m = model()
    m.fit(x, y, batch_size=8, epochs=100, verbose=0,
          callbacks=[callbacks.LambdaCallback(on_train_batch_end=tick), budget])
    assert budget.steps_done == 3 and budget.stopped == "seconds"


@pytest.mark.parametrize("kwargs, match", [({}, "give seconds, steps or both"),
                                           ({"steps": 0}, "steps must be a positive int"),
                                           ({"steps": 2.5}, "steps must be a positive int"),
                                           ({"seconds": -1}, "seconds must be a positive"),
                                           ({"seconds": float("nan")}, "seconds"),
                                           ({"steps": True}, "steps")])
def test_training_budget_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        callbacks.TrainingBudget(**kwargs)


class _Stream:
    """A text stream; ``tty`` says whether it claims to be a terminal."""

    encoding = "utf-8"

    def __init__(self, tty):
        self.tty, self.parts = tty, []

    def isatty(self):
        return self.tty

    def write(self, s):
        self.parts.append(s)

    def flush(self):
        pass


def test_run_progress_in_a_log_prints_whole_lines_and_the_step_count():
    x, y = data()
    out = _Stream(tty=False)
    bar = callbacks.RunProgress(total_steps=10, stream=out,
                                format_logs=lambda logs: {"loss": f"{logs['loss']:.2f} u"})
    model().fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[bar])
    text = "".join(out.parts)
    assert "\r" not in text
    lines = text.splitlines()
    assert lines[0].split()[1:5] == ["10%", "0s", "step", "1"] and lines[0].endswith(" u")
    assert "100%" in lines[-1] and "step 10" in lines[-1]
    assert len(lines) == len(set(lines))           # the final line is not printed twice


def test_run_progress_line_fits_a_narrow_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "50")
    term = _Stream(tty=True)
    bar = callbacks.RunProgress(total_steps=100, stream=term,
                                format_logs=lambda logs: {"loss": "2.345 bits/char",
                                                          "speed": "12,345 chars/s",
                                                          "eta": "0:42"})
    bar.on_train_begin()
    bar.step = 9
    bar.on_train_batch_end(9, {})
    bar.step = 99
    bar.on_train_end()
    frames = "".join(term.parts).split("\r")[1:]
    assert len(frames) == 2
    for frame in frames:
        assert len(frame.rstrip("\n")) <= 49, frame
    assert frames[-1].endswith("\n")


def test_run_progress_fraction_from_time_budget(monkeypatch):
    clock = [10.0]
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: clock[0])
    bar = callbacks.RunProgress(seconds=40, stream=_Stream(tty=False))
    bar.on_train_begin()
    clock[0] += 10.0
    assert bar.fraction() == pytest.approx(0.25)
    clock[0] += 100.0
    assert bar.fraction() == 1.0
    with pytest.raises(TypeError, match="format_logs"):
        callbacks.RunProgress(format_logs="loss")
    with pytest.raises(ValueError, match="RunProgress: total_steps must be a positive int"):
        callbacks.RunProgress(total_steps=0)
