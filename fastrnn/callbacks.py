"""Training callbacks (Keras hooks and semantics).

Hooks: ``on_{train,test,predict}_{begin,end}(logs)``, ``on_epoch_{begin,end}(epoch, logs)``,
``on_{train,test,predict}_batch_{begin,end}(batch, logs)``.  ``set_model`` / ``set_params`` are
called before training.  ``fit`` always adds a :class:`History` (returned, also stored as
``model.history``) and, when ``verbose > 0``, a :class:`ProgbarLogger`.  Setting
``model.stop_training = True`` from a callback ends training after the current batch's
callbacks (``on_epoch_end`` and ``on_train_end`` still run).
"""

import math
import os
import shutil
import sys
import time
import warnings

import numpy as np

__all__ = [
    "Callback", "CallbackList", "History", "ProgbarLogger", "EarlyStopping", "TerminateOnNaN",
    "ModelCheckpoint", "ReduceLROnPlateau", "LearningRateScheduler", "CSVLogger",
    "LambdaCallback", "ResetStates", "TrainingBudget", "RunProgress",
]


class Callback:
    """Base class: every hook is a no-op."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_train_batch_begin(self, batch, logs=None): pass
    def on_train_batch_end(self, batch, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass


_HOOKS = [
    "on_train_begin", "on_train_end", "on_test_begin", "on_test_end", "on_predict_begin",
    "on_predict_end", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin",
    "on_train_batch_end", "on_test_batch_begin", "on_test_batch_end", "on_predict_batch_begin",
    "on_predict_batch_end",
]


class CallbackList:
    """Calls each hook on every callback in order."""

    def __init__(self, callbacks=None, model=None, params=None):
        if isinstance(callbacks, Callback):
            callbacks = [callbacks]
        elif callbacks is not None and not isinstance(callbacks, (list, tuple)):
            raise TypeError(f"callbacks must be a list of fastrnn.callbacks.Callback instances, "
                            f"got {type(callbacks).__name__}")
        callbacks = [] if callbacks is None else list(callbacks)
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(
                    f"callbacks must be fastrnn.callbacks.Callback instances, got {type(cb).__name__}")
        self.callbacks = callbacks
        if model is not None:
            for cb in callbacks:
                cb.set_model(model)
        if params is not None:
            for cb in callbacks:
                cb.set_params(params)

    def append(self, cb):
        self.callbacks.append(cb)

    def __iter__(self):
        return iter(self.callbacks)

    def __getattr__(self, name):
        if name in _HOOKS:
            def call(*args):
                for cb in self.callbacks:
                    getattr(cb, name)(*args)
            return call
        raise AttributeError(name)


class History(Callback):
    """Records the epoch logs: ``history`` (key -> list per epoch), ``epoch``, ``params``."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []
        self.history = {}

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


# ---- progress output ----------------------------------------------------------------------------
def _format_value(v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    if abs(v) > 1e-3 or v == 0 or not math.isfinite(v):
        return f"{v:.4f}"
    return f"{v:.4e}"


def _format_time_per(t, unit):
    if t >= 1 or t == 0:
        return f"{t:.0f}s/{unit}"
    if t >= 1e-3:
        return f"{t * 1e3:.0f}ms/{unit}"
    return f"{t * 1e6:.0f}us/{unit}"


def _logs_str(logs):
    return "".join(f" - {k}: {_format_value(v)}" for k, v in (logs or {}).items())


def _bar_chars():
    enc = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "\u2501".encode(enc)
        return "\u2501", "\u2500"
    except (UnicodeEncodeError, LookupError):
        return "=", "."


def _interactive(stream):
    """True when `stream` redraws a line in place: a terminal, or a Jupyter/IPython kernel."""
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError, OSError):
        return False
    return "ipykernel" in sys.modules


def _columns():
    """Usable width of the terminal: one column less, so a full line never wraps."""
    return max(20, shutil.get_terminal_size(fallback=(80, 24)).columns - 1)


class Progbar:
    """One progress line per epoch (or evaluation / prediction run).

    verbose=1 on a terminal redraws the line in place with '\\r', cut to the terminal's width
    (``shutil.get_terminal_size``) so it never wraps. verbose=2, or verbose=1 when the output is
    not a terminal (a log file, a pipe), prints one line at the end and no '\\r'.
    """

    width = 20
    #: seconds between two redraws with verbose=1 (the first and last step always draw)
    interval = 0.05

    def __init__(self, target, verbose=1, unit="step", samples=None, batch_size=None):
        self.target = target
        # not a terminal: a redrawn line would leave every update in the log, joined by '\r'
        self.verbose = 2 if verbose == 1 and not _interactive(sys.stdout) else verbose
        self.unit = unit
        self.samples = samples
        self.batch_size = batch_size
        self.start = time.perf_counter()
        self._last_len = 0
        self._last_draw = None

    def _line(self, current, logs, final, columns=None):
        elapsed = time.perf_counter() - self.start
        per = elapsed / current if current else 0.0
        if self.target is None:     # a generator of unknown length: no total, no bar
            return (f"{current} - {elapsed:.0f}s - {_format_time_per(per, self.unit)}"
                    + _logs_str(logs))
        if self.verbose == 2:
            return (f"{current}/{self.target} - {elapsed:.0f}s - {_format_time_per(per, self.unit)}"
                    + _logs_str(logs))
        done, todo = _bar_chars()
        target = self.target or 1
        digits = len(str(self.target))
        head = f"{current:>{digits}}/{self.target}"
        tail = f" {elapsed:.0f}s {_format_time_per(per, self.unit)}"
        rate = ""
        if self.samples is not None and self.batch_size:
            seen = min(current * self.batch_size, self.samples)
            rate = f" - {seen / elapsed if elapsed > 0 else 0.0:.0f} samples/s"
        logs_s = _logs_str(logs)
        width = self.width
        if columns is not None:
            # narrow terminal: drop the rate first, then shorten the bar (never below 6)
            fixed = len(head) + 2 + len(tail) + len(logs_s)
            if fixed + width + len(rate) > columns:
                rate = ""
            width = max(6, min(width, columns - fixed))
        n = int(width * min(current, target) / target)
        line = f"{head} {done * n + todo * (width - n)}{tail}{rate}{logs_s}"
        if columns is not None and not final and len(line) > columns:
            line = line[:columns]      # a redrawn line must fit, or each redraw adds a row
        return line

    def update(self, current, logs=None, final=False):
        out = sys.stdout
        if self.verbose == 1:
            now = time.perf_counter()
            if not final and self._last_draw is not None and now - self._last_draw < self.interval \
                    and current != self.target:
                return
            self._last_draw = now
            line = self._line(current, logs, final, columns=_columns())
            # the final line (with the validation values) is printed whole: it may wrap once,
            # as it is never redrawn
            pad = " " * max(0, min(self._last_len, _columns()) - len(line))
            self._last_len = len(line)
            out.write("\r" + line + pad + ("\n" if final else ""))
            out.flush()
        elif self.verbose == 2 and final:
            out.write(self._line(current, logs, final) + "\n")
            out.flush()


class ProgbarLogger(Callback):
    """Prints training progress (added by ``fit`` when verbose > 0).

    verbose=1: ``Epoch 1/2`` then a 20-char bar redrawn with '\\r' per batch: step count,
    elapsed seconds, time per step, samples/s, loss and metrics (running means), ending with the
    validation values; the line is cut to the terminal's width. verbose=2, and verbose=1 when
    the output is not a terminal (as Keras does): ``Epoch 1/2`` then one line per epoch,
    ``3/3 - 1s - 463ms/step - loss: ... - val_loss: ...``, with no '\\r'.
    """

    def __init__(self, verbose=1):
        super().__init__()
        self.verbose = verbose
        self._bar = None
        self._seen = 0
        self._batch_logs = {}

    def on_epoch_begin(self, epoch, logs=None):
        if self.verbose:
            sys.stdout.write(f"Epoch {epoch + 1}/{self.params.get('epochs')}\n")
            sys.stdout.flush()
        self._bar = Progbar(self.params.get("steps"), self.verbose,
                            samples=self.params.get("samples"),
                            batch_size=self.params.get("batch_size"))
        self._seen = 0
        self._batch_logs = {}

    def on_train_batch_end(self, batch, logs=None):
        self._seen = batch + 1
        self._batch_logs = dict(logs or {})
        if self.verbose == 1 and self._bar is not None:
            self._bar.update(self._seen, self._batch_logs)

    def on_epoch_end(self, epoch, logs=None):
        if self._bar is not None:
            self._bar.update(self._seen, logs, final=True)
        self._bar = None


class EarlyStopping(Callback):
    """Stop when ``monitor`` stops improving (Keras semantics).

    mode "auto" maximises a monitor whose name contains "acc", minimises otherwise.
    An epoch improves when it beats the best by more than ``min_delta``. Training stops when
    ``patience`` epochs in a row did not improve (patience=0: the first one that does not).
    ``restore_best_weights`` puts back the best epoch's weights at the end of training.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be a str, got {type(monitor).__name__}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        if not isinstance(patience, (int, np.integer)) or isinstance(patience, bool) or patience < 0:
            raise ValueError(f"patience must be an int >= 0, got {patience!r}")
        try:
            min_delta = abs(float(min_delta))
        except (TypeError, ValueError):
            raise TypeError(f"min_delta must be a number, got {min_delta!r}") from None
        self.monitor = monitor
        self.min_delta = min_delta
        self.patience = int(patience)
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = int(start_from_epoch)
        if mode == "auto":
            mode = "max" if "acc" in monitor or monitor.endswith("auc") else "min"
        self.mode = mode

    def _better(self, value, reference):
        if reference is None:
            return True
        if self.mode == "min":
            return value < reference - self.min_delta
        return value > reference + self.min_delta

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = self.baseline
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(
                f"EarlyStopping: monitor {self.monitor!r} is not in the logs; available: "
                f"{sorted(logs or {})}", RuntimeWarning, stacklevel=2)
            return
        if epoch < self.start_from_epoch:
            return
        value = float(value)
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if math.isfinite(value) and self._better(value, self.best):
            self.best = value
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._better(value, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            sys.stdout.write(f"Epoch {self.stopped_epoch + 1}: early stopping\n")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                sys.stdout.write(f"Restoring model weights from the end of the best epoch: "
                                 f"{self.best_epoch + 1}.\n")
            self.model.set_weights(self.best_weights)


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch loss is NaN or infinite (``raise_error=True`` raises
    RuntimeError instead). The non-finite step itself is never applied to the weights."""

    def __init__(self, raise_error=False):
        super().__init__()
        self.raise_error = bool(raise_error)

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            if self.raise_error:
                raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}: loss = {loss}")
            sys.stdout.write(f"Batch {batch}: Invalid loss, terminating training\n")
            self.model.stop_training = True


class ModelCheckpoint(Callback):
    """Save the model (``model.save(path)``) at the end of every epoch, or only when
    ``monitor`` improved with ``save_best_only=True``. ``filepath`` may contain format fields
    ``{epoch}`` (1-based) and any log key, e.g. ``"ckpt-{epoch:02d}-{val_loss:.3f}.safetensors"``."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, mode="auto"):
        super().__init__()
        if not isinstance(filepath, (str, os.PathLike)):
            raise TypeError(f"filepath must be a str or path, got {type(filepath).__name__}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        if mode == "auto":
            mode = "max" if "acc" in monitor or monitor.endswith("auc") else "min"
        self.mode = mode
        self.best = None

    def on_train_begin(self, logs=None):
        self.best = None

    def _path(self, epoch, logs):
        try:
            return self.filepath.format(epoch=epoch + 1, **(logs or {}))
        except KeyError as exc:
            raise KeyError(f"ModelCheckpoint: filepath {self.filepath!r} uses {exc}, which is not "
                           f"in the logs {sorted(logs or {})}") from None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        path = self._path(epoch, logs)
        if self.save_best_only:
            value = logs.get(self.monitor)
            if value is None:
                warnings.warn(f"ModelCheckpoint: monitor {self.monitor!r} is not in the logs; "
                              f"skipping", RuntimeWarning, stacklevel=2)
                return
            value = float(value)
            if not math.isfinite(value):
                return
            better = (self.best is None or (value < self.best if self.mode == "min" else value > self.best))
            if not better:
                return
            if self.verbose > 0:
                sys.stdout.write(f"Epoch {epoch + 1}: {self.monitor} improved to "
                                 f"{_format_value(value)}, saving model to {path}\n")
            self.best = value
        elif self.verbose > 0:
            sys.stdout.write(f"Epoch {epoch + 1}: saving model to {path}\n")
        self.model.save(path)


class ReduceLROnPlateau(Callback):
    """Multiply the optimizer's ``learning_rate`` by ``factor`` when ``monitor`` has not
    improved (by more than ``min_delta``) for ``patience`` epochs; then wait ``cooldown``
    epochs before counting again; never go below ``min_lr`` (Keras semantics). The current
    rate is added to the epoch logs as ``learning_rate``."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__()
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be a str, got {type(monitor).__name__}")
        try:
            factor = float(factor)
        except (TypeError, ValueError):
            raise TypeError(f"factor must be a number, got {factor!r}") from None
        if not (0 < factor < 1):
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        for name, v in (("patience", patience), ("cooldown", cooldown)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"{name} must be an int >= 0, got {v!r}")
        self.monitor = monitor
        self.factor = factor
        self.patience = int(patience)
        self.verbose = verbose
        self.min_delta = abs(float(min_delta))
        self.cooldown = int(cooldown)
        self.min_lr = float(min_lr)
        if mode == "auto":
            mode = "max" if "acc" in monitor or monitor.endswith("auc") else "min"
        self.mode = mode

    def on_train_begin(self, logs=None):
        self.best = None
        self.wait = 0
        self.cooldown_counter = 0

    def _better(self, value):
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        opt = getattr(self.model, "optimizer", None)
        if opt is None or not hasattr(opt, "learning_rate"):
            raise RuntimeError("ReduceLROnPlateau needs a compiled model whose optimizer has a "
                               "learning_rate")
        logs["learning_rate"] = float(opt.learning_rate)
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(f"ReduceLROnPlateau: monitor {self.monitor!r} is not in the logs; "
                          f"available: {sorted(logs)}", RuntimeWarning, stacklevel=2)
            return
        value = float(value)
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if math.isfinite(value) and self._better(value):
            self.best = value
            self.wait = 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = float(opt.learning_rate)
                if old > self.min_lr:
                    new = max(old * self.factor, self.min_lr)
                    opt.learning_rate = new
                    if self.verbose > 0:
                        sys.stdout.write(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing "
                                         f"learning rate to {new}.\n")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate at the start of every epoch (Keras semantics).

    Parameters
    ----------
    schedule : callable
        ``schedule(epoch, lr) -> new lr`` (``epoch`` counts from 0, or from ``fit``'s
        ``initial_epoch``; ``lr`` is the current rate), or ``schedule(epoch)``.  The result
        must be a finite number >= 0.
    verbose : int, default 0
        > 0 prints the new rate at every epoch.

    Notes
    -----
    The rate in effect is added to the epoch logs as ``learning_rate``.  An optimizer whose
    learning rate is a :mod:`fastrnn.optimizers.schedules` schedule cannot be driven by this
    callback (its rate is not settable).

    Example
    -------
    >>> cb = LearningRateScheduler(lambda epoch, lr: lr if epoch < 10 else lr * 0.9)
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"schedule must be callable, got {type(schedule).__name__}")
        self.schedule = schedule
        self.verbose = verbose
        self._two_args = self._takes_two(schedule)

    @staticmethod
    def _takes_two(fn):
        import inspect
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):   # builtins without a signature: try (epoch, lr)
            return True
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY,
                                                       p.POSITIONAL_OR_KEYWORD)]
        return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)

    def _optimizer(self):
        opt = getattr(self.model, "optimizer", None)
        if opt is None or not hasattr(opt, "learning_rate"):
            raise RuntimeError("LearningRateScheduler needs a compiled model whose optimizer "
                               "has a learning_rate")
        return opt

    def on_epoch_begin(self, epoch, logs=None):
        opt = self._optimizer()
        if self._two_args:
            lr = self.schedule(epoch, float(opt.learning_rate))
        else:
            lr = self.schedule(epoch)
        if isinstance(lr, (bool, np.bool_)) or not isinstance(lr, (int, float, np.integer,
                                                                    np.floating)) \
                or not math.isfinite(float(lr)) or lr < 0:
            raise ValueError(f"LearningRateScheduler: schedule({epoch}) must return a finite "
                             f"number >= 0, got {lr!r}")
        opt.learning_rate = float(lr)
        if self.verbose > 0:
            sys.stdout.write(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning "
                             f"rate to {float(lr)}.\n")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self._optimizer().learning_rate)


class CSVLogger(Callback):
    """Write one CSV row per epoch: ``epoch`` then the log keys (the header is taken from the
    first epoch). ``append=True`` adds to an existing file without repeating the header."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        if not isinstance(filename, (str, os.PathLike)):
            raise TypeError(f"filename must be a str or path, got {type(filename).__name__}")
        self.filename = os.fspath(filename)
        self.sep = str(separator)
        self.append = bool(append)
        self._file = None
        self._keys = None

    def on_train_begin(self, logs=None):
        has_content = self.append and os.path.exists(self.filename) and \
            os.path.getsize(self.filename) > 0
        self._file = open(self.filename, "a" if self.append else "w", encoding="utf-8")
        self._keys = None
        self._header_done = has_content

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._keys is None:
            self._keys = list(logs)
            if not self._header_done:
                self._file.write(self.sep.join(["epoch"] + self._keys) + "\n")
        row = [str(epoch)] + [repr(float(logs[k])) if k in logs else "" for k in self._keys]
        self._file.write(self.sep.join(row) + "\n")
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None


class LambdaCallback(Callback):
    """Callback from plain functions, e.g. ``LambdaCallback(on_epoch_end=lambda e, logs: ...)``."""

    def __init__(self, **hooks):
        super().__init__()
        for name, fn in hooks.items():
            if name not in _HOOKS:
                raise ValueError(f"LambdaCallback: unknown hook {name!r}; expected one of {_HOOKS}")
            if not callable(fn):
                raise TypeError(f"LambdaCallback: {name} must be callable")
            setattr(self, name, fn)


# ---- stateful training, budgets, one progress line per run ---------------------------------------
class ResetStates(Callback):
    """Call ``model.reset_states()`` at the start of every epoch.

    For ``stateful=True`` recurrent layers trained by truncated backpropagation through time:
    row ``b`` of consecutive batches continues the same sequence, the carried state links
    the batches, and each pass over the data starts again from zero states (Keras users
    write the same reset in a loop around ``fit(epochs=1)``).

    Example
    -------
    >>> model.fit(windows, epochs=5, callbacks=[ResetStates()])   # doctest: +SKIP
    """

    def on_epoch_begin(self, epoch, logs=None):
        reset = getattr(self.model, "reset_states", None)
        if callable(reset):
            reset()


def _budget_number(value, name, integer, owner="TrainingBudget"):
    if value is None:
        return None
    ok = isinstance(value, (int, np.integer)) if integer else \
        isinstance(value, (int, float, np.integer, np.floating))
    if isinstance(value, (bool, np.bool_)) or not ok or not math.isfinite(float(value)) \
            or value <= 0:
        kind = "int" if integer else "number"
        raise ValueError(f"{owner}: {name} must be a positive {kind} or None, got {value!r}")
    return int(value) if integer else float(value)


class TrainingBudget(Callback):
    """Stop training after a wall-clock time or a number of batches, whichever comes first.

    Checked after every batch (so an epoch longer than the budget is cut short); the step
    that crosses the limit is completed, then ``model.stop_training`` is set and ``fit``
    ends as usual (``on_epoch_end`` and ``on_train_end`` still run).

    Parameters
    ----------
    seconds : float, optional
        Wall-clock seconds from the start of training (``on_train_begin``).
    steps : int, optional
        Optimizer steps (training batches) over all epochs.

    Attributes
    ----------
    steps_done : int
        Batches trained so far in this run.
    stopped : str or None
        ``"seconds"`` or ``"steps"`` when the budget ended training.

    Example
    -------
    >>> budget = TrainingBudget(seconds=60)
    >>> model.fit(x, y, epochs=1000, callbacks=[budget])   # doctest: +SKIP
    """

    def __init__(self, seconds=None, steps=None):
        super().__init__()
        self.seconds = _budget_number(seconds, "seconds", integer=False)
        self.steps = _budget_number(steps, "steps", integer=True)
        if self.seconds is None and self.steps is None:
            raise ValueError("TrainingBudget: give seconds, steps or both")
        self.steps_done = 0
        self.stopped = None
        self._start = None

    def on_train_begin(self, logs=None):
        self.steps_done = 0
        self.stopped = None
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.steps_done += 1
        if self.steps is not None and self.steps_done >= self.steps:
            self.stopped = "steps"
        elif self.seconds is not None and time.perf_counter() - self._start >= self.seconds:
            self.stopped = "seconds"
        if self.stopped is not None:
            self.model.stop_training = True


class RunProgress(Callback):
    """One progress line for a whole training run (not one per epoch).

    For runs bounded by a number of steps and/or a time budget rather than by epochs: the
    line shows the fraction done (the larger of steps done / ``total_steps`` and elapsed /
    ``seconds``), the elapsed seconds, the step count over all epochs and the logs. On a
    terminal it is redrawn in place with '\\r' (at most every 0.1 s, cut to the terminal's
    width so it never wraps); in a log file or a pipe a line is printed at the first step,
    then after every further 10 % or 15 seconds, and at the end.

    Parameters
    ----------
    total_steps : int, optional
        Steps the run is expected to take.
    seconds : float, optional
        The run's time budget.
    format_logs : callable, optional
        ``format_logs(logs) -> dict`` of name -> text shown after the step count (default:
        the batch logs, numbers formatted as ``fit``'s progress bar does).
    stream : file-like, optional
        Where to write (default ``sys.stdout``).

    Example
    -------
    >>> bar = RunProgress(seconds=60)
    >>> model.fit(x, y, epochs=100, verbose=0,
    ...           callbacks=[TrainingBudget(seconds=60), bar])   # doctest: +SKIP
    """

    width = 24

    def __init__(self, total_steps=None, seconds=None, format_logs=None, stream=None):
        super().__init__()
        self.total_steps = None if total_steps is None else \
            _budget_number(total_steps, "total_steps", integer=True, owner="RunProgress")
        self.seconds = None if seconds is None else \
            _budget_number(seconds, "seconds", integer=False, owner="RunProgress")
        if format_logs is not None and not callable(format_logs):
            raise TypeError(f"format_logs must be callable, got {type(format_logs).__name__}")
        self.format_logs = format_logs
        self._stream = stream
        self.step = 0
        self._start = time.perf_counter()
        self._last = -1.0
        self._last_frac = -1.0
        self._last_step = None
        self._len = 0
        self._logs = {}

    @property
    def stream(self):
        return self._stream if self._stream is not None else sys.stdout

    def _chars(self):
        enc = getattr(self.stream, "encoding", None) or "ascii"
        try:
            "\u2501\u2500".encode(enc)
            return "\u2501", "\u2500"
        except (UnicodeEncodeError, LookupError):
            return "=", "."

    def fraction(self):
        """Fraction of the run done, in [0, 1]."""
        parts = []
        if self.total_steps:
            parts.append(self.step / self.total_steps)
        if self.seconds:
            parts.append((time.perf_counter() - self._start) / self.seconds)
        return min(1.0, max(parts)) if parts else 0.0

    def on_train_begin(self, logs=None):
        self.step = 0
        self._start = time.perf_counter()
        self._last, self._last_frac, self._last_step, self._len = -1.0, -1.0, None, 0

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        self._logs = dict(logs or {})
        self.update()

    def on_train_end(self, logs=None):
        if self.step:
            self.update(final=True)
        elif self._tty():
            self.stream.write("\n")
            self.stream.flush()

    def _tty(self):
        return _interactive(self.stream)

    def _text(self):
        if self.format_logs is not None:
            return "".join(f" - {k}: {v}" for k, v in self.format_logs(self._logs).items())
        return _logs_str(self._logs)

    def update(self, final=False):
        """Draw the line now if it is due (always when ``final``)."""
        now = time.perf_counter()
        frac = self.fraction()
        tty = self._tty()
        if tty:
            if not final and now - self._last < 0.1:
                return
        elif final and self.step == self._last_step:
            return
        elif not final and frac - self._last_frac < 0.1 and now - self._last < 15:
            return
        self._last_step, self._last, self._last_frac = self.step, now, frac
        done, todo = self._chars()
        n = int(round(self.width * frac))
        elapsed = now - self._start
        total = f"/{self.seconds:.0f}s" if self.seconds and not self.total_steps else ""
        line = (f"{done * n}{todo * (self.width - n)} {100 * frac:3.0f}% {elapsed:.0f}s{total} "
                f"step {self.step}{self._text()}")
        out = self.stream
        if tty:
            cols = _columns()
            line = line[:cols]
            pad = " " * max(0, min(self._len, cols) - len(line))
            self._len = len(line)
            out.write("\r" + line + pad + ("\n" if final else ""))
        else:
            out.write(line + "\n")
        out.flush()
