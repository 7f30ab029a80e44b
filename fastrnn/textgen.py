"""Character-level language models: data, model, training set-up, sampling and files.

The model is an ordinary :class:`fastrnn.Sequential`::

    Embedding(V, E) -> (LSTM | GRU | SimpleRNN)(H, return_sequences=True, stateful=True) x L
                    -> Dense(V)                                           (logits)

trained by ``model.fit`` with ``sparse_categorical_crossentropy(from_logits=True)``. The text
is cut into ``batch_size`` contiguous streams walked in windows of ``seq_len`` characters
(:class:`CharWindows`, a :class:`fastrnn.utils.Sequence`): row ``b`` of consecutive batches
continues stream ``b``, so the state the stateful layers carry from one batch to the next is
the state of the same stretch of text (truncated backpropagation through time: the network
sees context longer than one window, gradients stop at the window boundary), and
:class:`fastrnn.callbacks.ResetStates` starts every epoch from zero states.

Generation steps the stateful model one character at a time through each recurrent layer's
compiled single-step path (``layer.step``), its state carried in the layer.

Typical use::

    from fastrnn import textgen, datasets
    text = datasets.pydoc_topics_text()
    lm = textgen.CharLM.from_text(text, hidden=256)
    result = textgen.train(lm, text, minutes=1.0)
    print(textgen.generate(lm, prime="The ", length=200, temperature=0.5))
    textgen.save(lm, "charlm.safetensors")      # lm.model.save with the vocabulary inside
"""

from __future__ import annotations

import collections
import json
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from . import callbacks as _callbacks
from .datasets import CharVocab, make_streams, split_text
from .io import ModelFileError
from .utils import Sequence

__all__ = ["CharLM", "CharWindows", "TrainResult", "build_model", "train", "evaluate",
           "generate", "save", "load", "ModelFileError", "CELLS"]

CELLS = ("lstm", "gru", "rnn")
LN2 = math.log(2.0)
FORMAT = "fastrnn.charlm"
# version 1: the model's recurrent layers were not stateful (the old CharLM carried the state
# itself); version 2: the saved Sequential is the stateful model. load() reads both.
FORMAT_VERSION = 2
_NO_EPOCH_LIMIT = 2 ** 62


def _api():
    """The public names this module builds on (imported late: fastrnn imports this module's
    package first)."""
    import types
    import fastrnn as fr
    return types.SimpleNamespace(
        Embedding=fr.Embedding, Dense=fr.Dense, LSTM=fr.LSTM, GRU=fr.GRU,
        SimpleRNN=fr.SimpleRNN, Sequential=fr.Sequential, Adam=fr.optimizers.Adam,
        load_model=fr.load_model, losses=fr.losses)


def _cell_class(cell):
    fr = _api()
    return {"lstm": fr.LSTM, "gru": fr.GRU, "rnn": fr.SimpleRNN}[cell]


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


# ----------------------------------------------------------------------------
# Model


def build_model(vocab_size: int, *, hidden: int = 256, layers: int = 1, cell: str = "lstm",
                embed_dim: int | None = None, seed: int | None = 0):
    """The character model as a built :class:`fastrnn.Sequential`.

    Parameters
    ----------
    vocab_size : int
        Characters in the vocabulary (V): embedding rows and output logits.
    hidden : int, default 256
        Units of each recurrent layer.
    layers : int, default 1
        Stacked recurrent layers.
    cell : {"lstm", "gru", "rnn"}, default "lstm"
        The recurrent layer (``"rnn"``: Elman, tanh).
    embed_dim : int, optional
        Embedding width (default ``min(64, vocab_size)``).
    seed : int, optional
        Seed of the initial weights (each layer gets its own seed derived from it).

    Returns
    -------
    fastrnn.Sequential
        ``Embedding -> cell(stateful=True, return_sequences=True) x layers -> Dense(V)``;
        input ``(B, T)`` int ids, output ``(B, T, V)`` logits.

    Example
    -------
    >>> from fastrnn import textgen
    >>> model = textgen.build_model(30, hidden=16, cell="gru")
    >>> [type(layer).__name__ for layer in model.layers]
    ['Embedding', 'GRU', 'Dense']
    """
    fr = _api()
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
    V = _positive_int(vocab_size, "vocab_size")
    hidden = _positive_int(hidden, "hidden")
    layers = _positive_int(layers, "layers")
    embed_dim = _positive_int(embed_dim, "embed_dim") if embed_dim else min(64, V)
    # the same per-layer seeds as the CharLM of earlier versions: same seed, same weights
    seeds = np.random.SeedSequence(seed).generate_state(layers + 2).tolist()
    cls = _cell_class(cell)
    stack = [fr.Embedding(V, embed_dim, seed=int(seeds[0]))]
    in_size = embed_dim
    for k in range(layers):
        stack.append(cls(hidden, input_size=in_size, return_sequences=True, stateful=True,
                         seed=int(seeds[1 + k])))
        in_size = hidden
    stack.append(fr.Dense(V, input_size=hidden, seed=int(seeds[-1])))
    model = fr.Sequential(stack)
    model.build((None, None))
    return model


class CharLM:
    """A character vocabulary and the :class:`fastrnn.Sequential` that models it.

    Parameters
    ----------
    vocab : CharVocab
    hidden : int, default 256
        Units of each recurrent layer.
    layers : int, default 1
        Stacked recurrent layers.
    cell : {"lstm", "gru", "rnn"}, default "lstm"
    embed_dim : int, optional
        Embedding width (default ``min(64, len(vocab))``).
    seed : int, optional
        Seed of the initial weights.

    Attributes
    ----------
    model : fastrnn.Sequential
        The model (see :func:`build_model`); train it with :func:`train` or ``model.fit``
        over :class:`CharWindows`.
    vocab : CharVocab

    Example
    -------
    >>> from fastrnn import textgen
    >>> lm = textgen.CharLM.from_text("hello world\\n" * 50, hidden=16)
    >>> lm.model.predict(lm.vocab.encode("hello")[None]).shape
    (1, 5, 9)
    """

    def __init__(self, vocab: CharVocab, *, hidden: int = 256, layers: int = 1,
                 cell: str = "lstm", embed_dim: int | None = None, seed: int | None = 0,
                 _model=None):
        if not isinstance(vocab, CharVocab):
            raise TypeError(f"vocab must be a CharVocab, got {type(vocab).__name__}")
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
        self.vocab = vocab
        self.cell = cell
        self.seed = seed
        self.model = _model if _model is not None else build_model(
            len(vocab), hidden=hidden, layers=layers, cell=cell, embed_dim=embed_dim, seed=seed)
        self.hidden = self.rnns[0].units
        self.num_layers = len(self.rnns)
        self.embed_dim = self.embedding.output_dim

    @classmethod
    def from_text(cls, text: str, **kw) -> "CharLM":
        """A model over the characters of ``text`` (keywords as for the constructor)."""
        return cls(CharVocab.from_text(text), **kw)

    # -- structure ----------------------------------------------------------------------------
    @property
    def layers(self):
        return self.model.layers

    @property
    def embedding(self):
        return self.model.layers[0]

    @property
    def rnns(self):
        return self.model.layers[1:-1]

    @property
    def dense(self):
        return self.model.layers[-1]

    def count_params(self) -> int:
        return int(self.model.count_params())

    def config(self) -> dict:
        return {"hidden": self.hidden, "layers": self.num_layers, "cell": self.cell,
                "embed_dim": self.embed_dim, "vocab_size": len(self.vocab)}

    def describe(self) -> str:
        return (f"{self.cell.upper()} char model: embed {self.embed_dim}, "
                f"{self.num_layers} x {self.hidden} hidden, vocab {len(self.vocab)}, "
                f"{self.count_params():,} parameters")

    def compile(self, optimizer=None, *, learning_rate: float = 2e-3, clipnorm: float = 1.0):
        """Compile ``self.model`` for training with the cross-entropy of its logits.

        Parameters
        ----------
        optimizer : fastrnn optimizer, optional
            Default ``Adam(learning_rate, clipnorm=clipnorm)`` (per-tensor norm clipping).
        learning_rate, clipnorm : float
            Adam's settings when ``optimizer`` is not given.

        Returns
        -------
        fastrnn.Sequential
            The compiled model.
        """
        fr = _api()
        opt = optimizer or fr.Adam(learning_rate=learning_rate, clipnorm=clipnorm)
        self.model.compile(optimizer=opt,
                           loss=fr.losses.SparseCategoricalCrossentropy(from_logits=True))
        return self.model


# ----------------------------------------------------------------------------
# Data


class CharWindows(Sequence):
    """Aligned truncated-BPTT batches of one long id sequence, for ``fit`` / ``evaluate``.

    ``ids`` is cut into ``batch_size`` contiguous streams (:func:`fastrnn.datasets.
    make_streams`); batch ``k`` is ``(x, y)`` with ``x = streams[:, s:e]`` and the
    next-character targets ``y = streams[:, s+1:e+1]``, ``s = offset + k * seq_len``, the last
    window of an epoch possibly shorter. Row ``b`` of batch ``k + 1`` continues row ``b`` of
    batch ``k``: a ``stateful=True`` model carries the right state from one to the next.

    Parameters
    ----------
    ids : 1-D int array
        The text as ids.
    batch_size : int
        Streams, i.e. rows of every batch.
    seq_len : int
        Characters per window.
    shift : bool, default False
        After every epoch, start the next one at a random offset in ``[0, seq_len)`` so the
        truncation points move (the first epoch starts at 0).
    seed : int, optional
        Seed of the offsets.

    Example
    -------
    >>> import numpy as np
    >>> w = CharWindows(np.arange(22), batch_size=2, seq_len=4)
    >>> len(w), w[0][0].tolist(), w[0][1].tolist()
    (3, [[0, 1, 2, 3], [11, 12, 13, 14]], [[1, 2, 3, 4], [12, 13, 14, 15]])
    """

    def __init__(self, ids, batch_size: int, seq_len: int, *, shift: bool = False,
                 seed: int | None = None):
        self.batch_size = _positive_int(batch_size, "batch_size")
        self.seq_len = _positive_int(seq_len, "seq_len")
        self.streams = make_streams(np.asarray(ids), self.batch_size)
        self.shift = bool(shift)
        self._rng = np.random.default_rng(seed)
        self.offset = 0

    @property
    def n_cols(self) -> int:
        return self.streams.shape[1]

    def __len__(self):
        return math.ceil((self.n_cols - 1 - self.offset) / self.seq_len)

    def window(self, k: int) -> tuple[int, int]:
        """Columns ``[start, stop)`` of the inputs of batch ``k``."""
        start = self.offset + k * self.seq_len
        return start, min(start + self.seq_len, self.n_cols - 1)

    def chars(self, k: int) -> int:
        """Characters predicted in batch ``k`` (rows x window length)."""
        a, b = self.window(k)
        return self.batch_size * (b - a)

    def __getitem__(self, k):
        if not 0 <= k < len(self):
            raise IndexError(f"window {k} out of range for {len(self)} windows")
        a, b = self.window(k)
        return self.streams[:, a:b], self.streams[:, a + 1:b + 1]

    def on_epoch_end(self):
        if self.shift:
            self.offset = int(self._rng.integers(0, max(1, min(self.seq_len, self.n_cols - 2))))


# ----------------------------------------------------------------------------
# Training (model.fit with callbacks)


@dataclass
class TrainResult:
    steps: int = 0
    epochs_done: float = 0.0
    train_chars: int = 0
    train_seconds: float = 0.0
    chars_per_second: float = 0.0
    first_loss_bpc: float = float("nan")
    last_loss_bpc: float = float("nan")
    val_bpc: float = float("nan")
    interrupted: bool = False
    stop_signal: int | None = None      # the signal that interrupted training (SIGINT/SIGTERM)
    history: list = field(default_factory=list)   # (step, seconds, smoothed train bpc)


class _CharStats(_callbacks.Callback):
    """Per-batch loss in bits per character, its mean over the last 20 batches (the progress
    line's loss), characters trained and their rate, recorded from ``fit``'s batch logs."""

    def __init__(self, windows: CharWindows):
        super().__init__()
        self.windows = windows
        self.recent = collections.deque(maxlen=20)
        self.res = TrainResult()
        self.smooth = None
        self._prev = 0.0
        self._t0 = time.perf_counter()

    def on_train_begin(self, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._prev = 0.0

    def on_train_batch_end(self, batch, logs=None):
        # fit logs the running mean of the epoch's batch losses; every batch has batch_size
        # rows, so the batch's own loss is the difference of consecutive running sums
        mean = float((logs or {}).get("loss", float("nan")))
        loss = mean * (batch + 1) - self._prev * batch
        self._prev = mean
        res = self.res
        res.steps += 1
        res.train_chars += self.windows.chars(batch)
        bpc = loss / LN2
        if res.steps == 1:
            res.first_loss_bpc = bpc
        self.recent.append(bpc)
        self.smooth = sum(self.recent) / len(self.recent)
        if res.steps % 5 == 0 or res.steps == 1:
            res.history.append((res.steps, time.perf_counter() - self._t0, self.smooth))

    def progress_logs(self, logs=None):
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        return {"loss": f"{self.smooth:.3f} bpc",
                "speed": f"{self.res.train_chars / elapsed:,.0f} chars/s"}


def evaluate(lm: CharLM, text_or_ids, *, batch_size: int = 32, seq_len: int = 256) -> float:
    """Bits per character of ``lm`` on a text (state carried across windows).

    Parameters
    ----------
    lm : CharLM
    text_or_ids : str or 1-D int array
        Characters outside the vocabulary are dropped.
    batch_size : int, default 32
        Streams (fewer for a short text).
    seq_len : int, default 256
        Window length.

    Returns
    -------
    float
        Mean cross-entropy in bits per character. The model's carried states are reset
        before and after.
    """
    fr = _api()
    ids = (lm.vocab.encode(text_or_ids, errors="ignore") if isinstance(text_or_ids, str)
           else np.asarray(text_or_ids))
    B = max(1, min(batch_size, len(ids) // (2 * seq_len) or 1))
    if len(ids) < 2 * B:
        raise ValueError(f"validation text too short: {len(ids)} characters")
    windows = CharWindows(ids, B, seq_len)
    xent = fr.losses.SparseCategoricalCrossentropy(from_logits=True)
    model = lm.model
    model.reset_states()
    total, count = 0.0, 0
    try:
        for k in range(len(windows)):
            x, y = windows[k]
            logits = model.predict_on_batch(x)
            total += float(xent.loss(y, logits)) * y.size
            count += y.size
    finally:
        model.reset_states()
    return total / count / LN2


def train(lm: CharLM, text: str, *, seq_len: int = 100, batch_size: int = 32,
          epochs: int | None = None, minutes: float | None = None, max_steps: int | None = None,
          learning_rate: float = 2e-3, clipnorm: float = 1.0, val_fraction: float = 0.05,
          seed: int | None = 0, verbose: int = 1, stream=None, optimizer=None,
          callbacks=None) -> TrainResult:
    """Train ``lm`` on ``text`` with truncated BPTT: ``lm.model.fit`` over
    :class:`CharWindows`.

    Stops after ``epochs`` passes, ``minutes`` of wall time or ``max_steps`` updates,
    whichever comes first (at least one must be given). Ctrl-C or SIGTERM stops training
    cleanly after the current step (``fit``'s signal handling): the result has
    ``interrupted=True``, ``stop_signal`` and the weights learned so far. The last
    ``val_fraction`` of the text is held out and the final validation bits/char is measured
    (skipped when interrupted or when too short).

    Parameters
    ----------
    lm : CharLM
    text : str
    seq_len, batch_size : int
        Window length and number of parallel streams.
    epochs, minutes, max_steps : optional
        The budget.
    learning_rate, clipnorm : float
        Adam's settings (when ``optimizer`` is not given).
    val_fraction : float, default 0.05
    seed : int, optional
        Seed of the per-epoch window offsets.
    verbose : int, default 1
        1 prints a progress line (:class:`fastrnn.callbacks.RunProgress`) to ``stream``.
    optimizer : optional
        An optimizer instead of Adam.
    callbacks : list of fastrnn.callbacks.Callback, optional
        More callbacks for ``fit``.

    Returns
    -------
    TrainResult
    """
    from .models.model import TrainingInterrupted
    seq_len = _positive_int(seq_len, "seq_len")
    batch_size = _positive_int(batch_size, "batch_size")
    if epochs is None and minutes is None and max_steps is None:
        raise ValueError("give at least one of epochs, minutes, max_steps")
    if epochs is not None:
        epochs = _positive_int(epochs, "epochs")
    if max_steps is not None:
        max_steps = _positive_int(max_steps, "max_steps")
    if minutes is not None and not (isinstance(minutes, (int, float)) and minutes > 0
                                    and math.isfinite(minutes)):
        raise ValueError(f"minutes must be a positive number, got {minutes!r}")
    train_text, val_text = split_text(text, val_fraction)
    ids = lm.vocab.encode(train_text, errors="ignore")
    if len(ids) < 2 * batch_size + 1:
        raise ValueError(f"text too short to train: need more than {2 * batch_size} characters "
                         f"for batch_size={batch_size}, got {len(ids)}")
    windows = CharWindows(ids, batch_size, seq_len, shift=True, seed=seed)
    steps_per_epoch = len(windows)
    seconds = None if minutes is None else 60.0 * minutes
    total_steps = None
    if epochs is not None:
        total_steps = epochs * steps_per_epoch
    if max_steps is not None:
        total_steps = max_steps if total_steps is None else min(total_steps, max_steps)
    stats = _CharStats(windows)
    cbs = [_callbacks.ResetStates(), stats]
    if seconds is not None or max_steps is not None:
        cbs.append(_callbacks.TrainingBudget(seconds=seconds, steps=max_steps))
    bar = None
    if verbose:
        bar = _callbacks.RunProgress(total_steps, seconds, format_logs=stats.progress_logs,
                                     stream=stream)
        cbs.append(bar)
    cbs += list(callbacks or [])
    lm.compile(optimizer, learning_rate=learning_rate, clipnorm=clipnorm)
    res = stats.res
    t0 = time.perf_counter()
    try:
        lm.model.fit(windows, epochs=epochs or _NO_EPOCH_LIMIT, verbose=0, shuffle=False,
                     callbacks=cbs)
    except TrainingInterrupted as exc:     # the step in progress was completed
        res.interrupted, res.stop_signal = True, int(exc.signal)
    except KeyboardInterrupt:              # a second Ctrl-C: at once
        import signal
        res.interrupted, res.stop_signal = True, int(signal.SIGINT)
        if bar is not None:
            bar.on_train_end()
    res.train_seconds = time.perf_counter() - t0
    res.epochs_done = res.train_chars / max(1, windows.streams.size - batch_size)
    res.chars_per_second = res.train_chars / max(res.train_seconds, 1e-9)
    res.last_loss_bpc = stats.smooth if stats.smooth is not None else float("nan")
    if not res.interrupted and len(val_text) > 4:
        try:
            res.val_bpc = evaluate(lm, val_text, batch_size=min(32, batch_size), seq_len=256)
        except (ValueError, KeyboardInterrupt):
            pass
    return res


# ----------------------------------------------------------------------------
# Sampling


def _sample(logits, temperature, rng):
    """Sample one id per row of logits (B, V); temperature 0 = greedy."""
    if temperature == 0:
        return logits.argmax(axis=1)
    z = logits.astype(np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    cum = np.cumsum(p, axis=1)
    u = rng.random((logits.shape[0], 1)) * cum[:, -1:]
    return np.minimum((cum < u).sum(axis=1), logits.shape[1] - 1)


class _Stepper:
    """The stateful model advanced one character per stream: the embedding row, each
    recurrent layer's compiled single-step path (``layer.step``) from and back into the
    state the layer carries, and the output layer. The same numbers as ``predict`` on one
    time step at a fraction of its per-call cost: for the demo's 256-unit LSTM, one stream,
    11.7k steps/s against 4.5k through ``model.predict_on_batch`` (one thread, shared
    2-core machine)."""

    def __init__(self, model):
        self.table = model.layers[0].params["weight"]
        self.rnns = model.layers[1:-1]
        self.dense = model.layers[-1]

    def __call__(self, ids):
        x = self.table[ids]
        for layer in self.rnns:
            st = layer.states
            state = None if st is None else (tuple(st) if len(st) > 1 else st[0])
            x, new = layer.step(x, state)
            layer.states = list(new) if isinstance(new, tuple) else [new]
        return self.dense.forward(x)


def generate(lm: CharLM, *, prime: str = "", length: int = 200, temperature: float = 1.0,
             num_samples: int = 1, seed: int | None = None, stream=None):
    """Sample ``num_samples`` continuations of ``prime`` (one list of strings).

    Characters of ``prime`` outside the vocabulary are dropped; an empty prime
    starts from a newline (or the first vocabulary character). With ``stream``
    the first sample is also written there character by character. The model's carried
    states are reset before and after.
    """
    length = int(length)
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature)
            and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
    num_samples = _positive_int(num_samples, "num_samples")
    rng = np.random.default_rng(seed)
    vocab = lm.vocab
    ids = vocab.encode(prime, errors="ignore")
    if len(ids) == 0:
        start = "\n" if "\n" in vocab else vocab.chars[0]
        ids = vocab.encode(start)
    B = num_samples
    model = lm.model
    model.reset_states()
    out = np.empty((B, length), dtype=np.int64)
    try:
        # the prime up to its last character in one pass (the layers keep the state), then
        # one character at a time
        if len(ids) > 1:
            model.predict_on_batch(np.tile(ids[:-1], (B, 1)))
        step = _Stepper(model)
        cur = np.full(B, ids[-1], dtype=np.int64)
        for t in range(length):
            logits = step(cur)
            cur = _sample(logits, temperature, rng)
            out[:, t] = cur
            if stream is not None:
                stream.write(vocab.chars[int(cur[0])])
                if vocab.chars[int(cur[0])] == "\n":
                    stream.flush()
    finally:
        model.reset_states()
    if stream is not None:
        stream.flush()
    return [vocab.decode(row) for row in out]


# ----------------------------------------------------------------------------
# Saving and loading


def _sidecar(path):
    return os.fspath(path) + ".json"


def save(lm: CharLM, path, *, extra: dict | None = None) -> list:
    """Save ``lm.model`` with ``model.save`` (atomic), its vocabulary and settings in the
    file's own metadata: one file, so a model can never be paired with another model's
    vocabulary. The file loads with :func:`fastrnn.load_model` as the plain Sequential.
    Returns ``[path]``. (Files from older versions kept the vocabulary in a sidecar
    ``<path>.json``; :func:`load` still reads those.)
    """
    path = os.fspath(path)
    meta = {"format": FORMAT, "version": FORMAT_VERSION, "vocab": lm.vocab.to_json(),
            "config": lm.config(), "extra": extra or {}}
    # without the optimizer state: the file stays the size of the weights, as before
    lm.model.save(path, include_optimizer=False, metadata={FORMAT: json.dumps(meta)})
    return [path]


def load(path) -> CharLM:
    """Load a model written by :func:`save` (or by older versions, converted to the stateful
    model); raises :class:`ModelFileError` on a bad file."""
    fr = _api()
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelFileError(f"model file not found: {path!r}")
    if os.path.isdir(path):
        raise ModelFileError(f"expected a model file, got a directory: {path!r}")
    try:
        from . import io as fio
        _, file_meta = fio.read_header(path)
    except OSError as exc:
        raise ModelFileError(f"cannot read {path!r}: {exc.strerror or exc}") from None
    except Exception as exc:  # any parse failure is a bad model file
        raise ModelFileError(f"not a fastrnn model file: {path!r} ({_short(exc)})") from None
    meta = None
    if FORMAT in file_meta:
        try:
            meta = json.loads(file_meta[FORMAT])
        except ValueError as exc:
            raise ModelFileError(f"bad character-model metadata in {path!r}: {exc}") from None
    elif os.path.exists(_sidecar(path)):
        try:
            with open(_sidecar(path), encoding="utf-8") as fh:
                meta = json.load(fh)
        except (OSError, ValueError) as exc:
            raise ModelFileError(f"bad vocabulary file {_sidecar(path)!r}: {exc}") from None
    try:
        model = fr.load_model(path, compile=False)
    except OSError as exc:
        raise ModelFileError(f"cannot read {path!r}: {exc.strerror or exc}") from None
    except Exception as exc:
        raise ModelFileError(f"not a valid fastrnn model file: {path!r} ({_short(exc)})") \
            from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path!r} is a fastrnn model but not a character model (no "
                             f"vocabulary{'' if FORMAT in file_meta else ' in ' + repr(_sidecar(path))}); "
                             "train one with `fastrnn train-text`")
    return _from_sequential(model, meta, path)


def _short(exc, n=300):
    msg = str(exc)
    return msg if len(msg) <= n else msg[:n] + "..."


def _stateful_copy(model):
    """The same model with stateful, sequence-returning recurrent layers and the same weights:
    the conversion of a version-1 file (its layers did not carry state themselves)."""
    fr = _api()
    layers = []
    for layer in model.layers:
        cfg = layer.get_config()
        if isinstance(layer, (fr.LSTM, fr.GRU, fr.SimpleRNN)):
            cfg = dict(cfg, stateful=True, return_sequences=True)
        layers.append(type(layer).from_config(cfg))
    new = fr.Sequential(layers)
    new.build((None, None))
    new.set_weights(model.get_weights())
    return new


def _from_sequential(model, meta, path):
    fr = _api()
    try:
        vocab = CharVocab.from_json(meta["vocab"])
        cell = meta["config"]["cell"]
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}")
        layers = list(model.layers)
        emb, rnns, dense = layers[0], layers[1:-1], layers[-1]
        cls = _cell_class(cell)
        if not rnns or not all(isinstance(r, cls) for r in rnns):
            raise ValueError(f"expected {cell} layers between the embedding and the output")
        if not isinstance(emb, fr.Embedding) or not isinstance(dense, fr.Dense):
            raise ValueError("expected Embedding first and Dense last")
        if dense.units != len(vocab) or emb.input_dim != len(vocab):
            raise ValueError(f"layers sized for {emb.input_dim}/{dense.units} characters, "
                             f"vocabulary has {len(vocab)}")
        if not all(r.stateful and r.return_sequences for r in rnns):
            model = _stateful_copy(model)
        lm = CharLM(vocab, cell=cell, _model=model)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise ModelFileError(f"inconsistent character model in {path!r}: {exc}") from None
    return lm
