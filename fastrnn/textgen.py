"""Character-level language models: truncated-BPTT training and sampling.

The model is ``Embedding -> (LSTM | GRU | SimpleRNN) x layers -> Dense(vocab)``
with a softmax cross-entropy on the logits, the same layers a user would put in
a :class:`fastrnn.Sequential`. Training walks ``batch_size`` parallel streams of
one long text in windows of ``seq_len`` characters and carries the recurrent
state from one window to the next (truncated backpropagation through time), so
the network sees context longer than one window while gradients stop at the
window boundary.

Generation streams one character at a time through ``layer.step``.

Typical use::

    from fastrnn import textgen, datasets
    text = datasets.pydoc_topics_text()
    lm = textgen.CharLM.from_text(text, hidden=256)
    result = textgen.train(lm, text, minutes=1.0)
    print(textgen.generate(lm, prime="The ", length=200, temperature=0.5))
    textgen.save(lm, "charlm.safetensors")
"""

from __future__ import annotations

import collections
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .datasets import CharVocab, iter_bptt_windows, make_streams, split_text

__all__ = ["CharLM", "TrainResult", "train", "evaluate", "generate", "save", "load",
           "ModelFileError", "CELLS"]

CELLS = ("lstm", "gru", "rnn")
LN2 = math.log(2.0)
FORMAT = "fastrnn.charlm"


class ModelFileError(ValueError):
    """A model file is missing, unreadable or not a fastrnn character model."""


def _api():
    """The public names this module builds on (imported late: fastrnn imports this module's
    package first)."""
    import types
    import fastrnn as fr
    return types.SimpleNamespace(
        Embedding=fr.Embedding, Dense=fr.Dense, LSTM=fr.LSTM, GRU=fr.GRU,
        SimpleRNN=fr.SimpleRNN, Sequential=fr.Sequential, Adam=fr.optimizers.Adam,
        save_model=fr.save_model, load_model=fr.load_model)


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


# ----------------------------------------------------------------------------
# Model


class CharLM:
    """Embedding -> recurrent layers (return_sequences) -> Dense(vocab) logits.

    Parameters
    ----------
    vocab : CharVocab
    hidden : units of each recurrent layer
    layers : number of stacked recurrent layers
    cell : "lstm", "gru" or "rnn" (Elman, tanh)
    embed_dim : embedding width (default min(64, vocab size))
    seed : int seed for the initial weights
    """

    def __init__(self, vocab: CharVocab, *, hidden: int = 256, layers: int = 1,
                 cell: str = "lstm", embed_dim: int | None = None, seed: int | None = 0,
                 _build: bool = True):
        fr = _api()
        if not isinstance(vocab, CharVocab):
            raise TypeError(f"vocab must be a CharVocab, got {type(vocab).__name__}")
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
        self.vocab = vocab
        self.hidden = _positive_int(hidden, "hidden")
        self.num_layers = _positive_int(layers, "layers")
        self.cell = cell
        V = len(vocab)
        self.embed_dim = _positive_int(embed_dim, "embed_dim") if embed_dim else min(64, V)
        self.seed = seed
        if not _build:
            return
        seeds = np.random.SeedSequence(seed).generate_state(self.num_layers + 2).tolist()
        self.embedding = fr.Embedding(V, self.embed_dim, seed=int(seeds[0]))
        cls = {"lstm": fr.LSTM, "gru": fr.GRU, "rnn": fr.SimpleRNN}[cell]
        self.rnns = []
        in_size = self.embed_dim
        for k in range(self.num_layers):
            self.rnns.append(cls(self.hidden, input_size=in_size, return_sequences=True,
                                 seed=int(seeds[1 + k])))
            in_size = self.hidden
        self.dense = fr.Dense(V, input_size=self.hidden, seed=int(seeds[-1]))
        self._build_embedding()

    def _build_embedding(self):
        if not self.embedding.built:
            self.embedding.forward(np.zeros((1, 1), dtype=np.int64))

    @classmethod
    def from_text(cls, text: str, **kw) -> "CharLM":
        return cls(CharVocab.from_text(text), **kw)

    # -- structure ----------------------------------------------------------------------------
    @property
    def layers(self):
        return [self.embedding, *self.rnns, self.dense]

    def named_params(self):
        """[(name, param, grad)] for the optimizer; names are stable across save/load."""
        out = []
        for i, layer in enumerate(self.layers):
            for k, p in layer.params.items():
                out.append((f"layers.{i}.{k}", p, layer.grads.get(k)))
        return out

    def count_params(self) -> int:
        return int(sum(p.size for _, p, _ in self.named_params()))

    def config(self) -> dict:
        return {"hidden": self.hidden, "layers": self.num_layers, "cell": self.cell,
                "embed_dim": self.embed_dim, "vocab_size": len(self.vocab)}

    def describe(self) -> str:
        return (f"{self.cell.upper()} char model: embed {self.embed_dim}, "
                f"{self.num_layers} x {self.hidden} hidden, vocab {len(self.vocab)}, "
                f"{self.count_params():,} parameters")

    def zero_state(self, batch_size: int):
        dt = self.dense.params[next(iter(self.dense.params))].dtype
        z = lambda: np.zeros((batch_size, self.hidden), dtype=dt)
        return [(z(), z()) if self.cell == "lstm" else z() for _ in self.rnns]

    # -- running ------------------------------------------------------------------------------
    @staticmethod
    def _rnn_forward(layer, x, state, training):
        # The saved layers are plain return_sequences layers (so a Sequential built from them
        # predicts normally); for truncated BPTT we also need the final state of each window.
        saved = layer.return_state
        layer.return_state = True
        try:
            out = layer.forward(x, initial_state=state, training=training)
        finally:
            layer.return_state = saved
        y, *finals = out
        return y, (tuple(finals) if len(finals) > 1 else finals[0])

    def forward(self, ids, state=None, training=False):
        """ids (B, T) int -> (logits (B, T, V), new_state)."""
        ids = np.asarray(ids)
        B = ids.shape[0]
        if state is None:
            state = self.zero_state(B)
        h = self.embedding.forward(ids, training=training)
        new_state = []
        for layer, s in zip(self.rnns, state):
            h, s2 = self._rnn_forward(layer, h, s, training)
            new_state.append(s2)
        logits = self.dense.forward(h, training=training)
        return logits, new_state

    def backward(self, d_logits):
        d = self.dense.backward(d_logits)
        for layer in reversed(self.rnns):
            d = layer.backward(d)
        self.embedding.backward(d)

    def step(self, ids_t, state):
        """ids_t (B,) int -> (logits (B, V), new_state), one character per stream."""
        x = self.embedding.forward(np.asarray(ids_t).reshape(-1, 1))[:, 0, :]
        new_state = []
        for layer, s in zip(self.rnns, state):
            x, s2 = layer.step(x, s)
            new_state.append(s2)
        return self.dense.forward(x), new_state

    def to_sequential(self):
        fr = _api()
        model = fr.Sequential(self.layers)
        # the layers are built already; building the model records its input shape so that
        # the saved architecture rebuilds every layer on load
        model.build((None, None))
        return model


# ----------------------------------------------------------------------------
# Loss


def _xent_from_logits(logits, targets):
    """Mean softmax cross-entropy (nats) and its gradient w.r.t. logits."""
    V = logits.shape[-1]
    flat = logits.reshape(-1, V)
    idx = np.asarray(targets).reshape(-1)
    m = flat.max(axis=1, keepdims=True)
    e = np.exp(flat - m)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(idx.size)
    logp_true = (flat[rows, idx] - m[:, 0]) - np.log(s[:, 0])
    loss = -float(np.mean(logp_true, dtype=np.float64))
    e /= s
    e[rows, idx] -= 1.0
    e *= 1.0 / idx.size
    return loss, e.reshape(logits.shape)


# ----------------------------------------------------------------------------
# Progress line


class _Progress:
    """A one-line progress bar for a run bounded by epochs and/or a time budget."""

    width = 24

    def __init__(self, total_steps=None, seconds=None, stream=None, verbose=1):
        self.total_steps = total_steps
        self.seconds = seconds
        self.stream = stream or sys.stdout
        self.verbose = verbose
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self._last = -1.0
        self._last_frac_printed = -1.0
        self._last_step = None
        self._len = 0
        enc = getattr(self.stream, "encoding", None) or "ascii"
        try:
            "\u2501\u2500".encode(enc)
            self.chars = ("\u2501", "\u2500")
        except (UnicodeEncodeError, LookupError):
            self.chars = ("=", ".")

    def fraction(self, step):
        fr = []
        if self.total_steps:
            fr.append(step / self.total_steps)
        if self.seconds:
            fr.append((time.perf_counter() - self.start) / self.seconds)
        return min(1.0, max(fr)) if fr else 0.0

    def update(self, step, logs, final=False):
        if not self.verbose:
            return
        now = time.perf_counter()
        frac = self.fraction(step)
        if self.tty:
            if not final and now - self._last < 0.1:
                return
        elif final and step == self._last_step:
            return
        elif not final and frac - self._last_frac_printed < 0.1 and now - self._last < 15:
            return
        self._last_step = step
        self._last = now
        self._last_frac_printed = frac
        n = int(round(self.width * frac))
        bar = self.chars[0] * n + self.chars[1] * (self.width - n)
        elapsed = now - self.start
        total = ""
        if self.seconds and not self.total_steps:
            total = f"/{self.seconds:.0f}s"
        line = f"{bar} {100 * frac:3.0f}% {elapsed:.0f}s{total} step {step}"
        line += "".join(f" - {k}: {v}" for k, v in logs.items())
        if self.tty:
            # a redrawn line longer than the terminal wraps and every redraw then adds a row
            cols = max(20, shutil.get_terminal_size(fallback=(80, 24)).columns - 1)
            line = line[:cols]
            pad = " " * max(0, min(self._len, cols) - len(line))
            self._len = len(line)
            self.stream.write("\r" + line + pad + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


# ----------------------------------------------------------------------------
# Training


class _StopFlag:
    """Ctrl-C (SIGINT) or SIGTERM (a service manager, `kill`) during training: the first one
    asks the loop to stop after the current step (so the weights are never half-updated); a
    second one interrupts at once. ``signum`` records which signal stopped it. Only in the
    main thread; elsewhere the signals are left alone."""

    def __init__(self):
        self.requested = False
        self.signum = None
        self._old = {}

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.signum = signum

    def install(self):
        import signal
        import threading
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, getattr(signal, "SIGTERM", None)):
            if sig is None:
                continue
            try:
                self._old[sig] = signal.signal(sig, self._handler)
            except (ValueError, OSError):
                pass

    def uninstall(self):
        import signal
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}


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


def evaluate(lm: CharLM, text_or_ids, *, batch_size: int = 32, seq_len: int = 256) -> float:
    """Bits per character of ``lm`` on a text (state carried across windows)."""
    ids = (lm.vocab.encode(text_or_ids, errors="ignore") if isinstance(text_or_ids, str)
           else np.asarray(text_or_ids))
    B = max(1, min(batch_size, len(ids) // (2 * seq_len) or 1))
    if len(ids) < 2 * B:
        raise ValueError(f"validation text too short: {len(ids)} characters")
    streams = make_streams(ids, B)
    state = lm.zero_state(B)
    total, count = 0.0, 0
    for x, y in iter_bptt_windows(streams, seq_len):
        logits, state = lm.forward(x, state)
        loss, _ = _xent_from_logits(logits, y)
        total += loss * y.size
        count += y.size
    return total / count / LN2


def train(lm: CharLM, text: str, *, seq_len: int = 100, batch_size: int = 32,
          epochs: int | None = None, minutes: float | None = None, max_steps: int | None = None,
          learning_rate: float = 2e-3, clipnorm: float = 1.0, val_fraction: float = 0.05,
          seed: int | None = 0, verbose: int = 1, stream=None,
          optimizer=None) -> TrainResult:
    """Train ``lm`` on ``text`` with truncated BPTT.

    Stops after ``epochs`` passes, ``minutes`` of wall time or ``max_steps`` updates,
    whichever comes first (at least one must be given). Ctrl-C stops training
    cleanly: the result has ``interrupted=True`` and the weights learned so far.
    The last ``val_fraction`` of the text is held out and the final validation
    bits/char is measured (skipped when interrupted or when too short).
    """
    fr = _api()
    seq_len = _positive_int(seq_len, "seq_len")
    batch_size = _positive_int(batch_size, "batch_size")
    if epochs is None and minutes is None and max_steps is None:
        raise ValueError("give at least one of epochs, minutes, max_steps")
    if epochs is not None:
        epochs = _positive_int(epochs, "epochs")
    if minutes is not None and not (isinstance(minutes, (int, float)) and minutes > 0
                                    and math.isfinite(minutes)):
        raise ValueError(f"minutes must be a positive number, got {minutes!r}")
    train_text, val_text = split_text(text, val_fraction)
    ids = lm.vocab.encode(train_text, errors="ignore")
    if len(ids) < 2 * batch_size + 1:
        raise ValueError(f"text too short to train: need more than {2 * batch_size} characters "
                         f"for batch_size={batch_size}, got {len(ids)}")
    streams = make_streams(ids, batch_size)
    n_cols = streams.shape[1]
    steps_per_epoch = math.ceil((n_cols - 1) / seq_len)
    rng = np.random.default_rng(seed)
    opt = optimizer or fr.Adam(learning_rate=learning_rate, clipnorm=clipnorm)
    seconds = None if minutes is None else 60.0 * minutes
    total_steps = None
    if epochs is not None:
        total_steps = epochs * steps_per_epoch
    if max_steps is not None:
        total_steps = max_steps if total_steps is None else min(total_steps, max_steps)
    bar = _Progress(total_steps, seconds, stream=stream, verbose=verbose)
    res = TrainResult()
    smooth = None
    recent = collections.deque(maxlen=20)   # the progress loss: mean of the last 20 batches
    t0 = time.perf_counter()
    step = 0
    epoch = 0
    stop = _StopFlag()
    try:
        stop.install()
        done = False
        while not done:
            state = lm.zero_state(batch_size)
            # a random start offset per epoch (after the first) moves the truncation points
            offset = 0 if epoch == 0 else int(rng.integers(0, min(seq_len, n_cols - 2)))
            for x, y in iter_bptt_windows(streams, seq_len, offset=offset):
                logits, state = lm.forward(x, state, training=True)
                loss, d_logits = _xent_from_logits(logits, y)
                lm.backward(d_logits)
                opt.apply(lm.named_params())
                step += 1
                res.train_chars += y.size
                bpc = loss / LN2
                if step == 1:
                    res.first_loss_bpc = bpc
                recent.append(bpc)
                smooth = sum(recent) / len(recent)
                elapsed = time.perf_counter() - t0
                if step % 5 == 0 or step == 1:
                    res.history.append((step, elapsed, smooth))
                bar.update(step, {"loss": f"{smooth:.3f} bpc",
                                  "speed": f"{res.train_chars / max(elapsed, 1e-9):,.0f} chars/s"})
                if stop.requested:
                    res.interrupted = True
                    done = True
                    break
                if ((seconds is not None and elapsed >= seconds)
                        or (max_steps is not None and step >= max_steps)):
                    done = True
                    break
            else:
                epoch += 1
                if epochs is not None and epoch >= epochs:
                    done = True
    except KeyboardInterrupt:
        res.interrupted = True
    finally:
        stop.uninstall()
    if res.interrupted:
        import signal
        res.stop_signal = stop.signum or signal.SIGINT
    res.train_seconds = time.perf_counter() - t0
    res.steps = step
    res.epochs_done = res.train_chars / max(1, streams.size - batch_size)
    res.chars_per_second = res.train_chars / max(res.train_seconds, 1e-9)
    res.last_loss_bpc = smooth if smooth is not None else float("nan")
    if smooth is not None:
        bar.update(step, {"loss": f"{smooth:.3f} bpc",
                          "speed": f"{res.chars_per_second:,.0f} chars/s"}, final=True)
    elif verbose and bar.tty:
        bar.stream.write("\n")
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


def generate(lm: CharLM, *, prime: str = "", length: int = 200, temperature: float = 1.0,
             num_samples: int = 1, seed: int | None = None, stream=None):
    """Sample ``num_samples`` continuations of ``prime`` (one list of strings).

    Characters of ``prime`` outside the vocabulary are dropped; an empty prime
    starts from a newline (or the first vocabulary character). With ``stream``
    the first sample is also written there character by character.
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
    state = lm.zero_state(B)
    # feed the prime up to its last character in one pass, then stream
    if len(ids) > 1:
        _, state = lm.forward(np.tile(ids[:-1], (B, 1)), state)
    cur = np.full(B, ids[-1], dtype=np.int64)
    out = np.empty((B, length), dtype=np.int64)
    for t in range(length):
        logits, state = lm.step(cur, state)
        cur = _sample(logits, temperature, rng)
        out[:, t] = cur
        if stream is not None:
            stream.write(vocab.chars[int(cur[0])])
            if vocab.chars[int(cur[0])] == "\n":
                stream.flush()
    if stream is not None:
        stream.flush()
    return [vocab.decode(row) for row in out]


# ----------------------------------------------------------------------------
# Saving and loading


def _sidecar(path):
    return os.fspath(path) + ".json"


def save(lm: CharLM, path, *, extra: dict | None = None) -> list:
    """Save the model (a Sequential of its layers, through fastrnn's save_model) with its
    vocabulary and settings in the file's own metadata: one file, written atomically, so a
    model can never be paired with another model's vocabulary. Returns ``[path]``.
    (Files from older versions kept the vocabulary in a sidecar ``<path>.json``; :func:`load`
    still reads those.)
    """
    fr = _api()
    path = os.fspath(path)
    meta = {"format": FORMAT, "version": 1, "vocab": lm.vocab.to_json(),
            "config": lm.config(), "extra": extra or {}}
    model = lm.to_sequential()
    fr.save_model(model, path, metadata={FORMAT: json.dumps(meta)})
    return [path]


def load(path) -> CharLM:
    """Load a model written by :func:`save`; raises :class:`ModelFileError` on a bad file."""
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


def _from_sequential(model, meta, path):
    fr = _api()
    try:
        vocab = CharVocab.from_json(meta["vocab"])
        cfg = meta["config"]
        layers = list(model.layers)
        emb, rnns, dense = layers[0], layers[1:-1], layers[-1]
        cell = cfg["cell"]
        cls = {"lstm": fr.LSTM, "gru": fr.GRU, "rnn": fr.SimpleRNN}[cell]
        if not rnns or not all(isinstance(r, cls) for r in rnns):
            raise ValueError(f"expected {cell} layers between the embedding and the output")
        if not isinstance(emb, fr.Embedding) or not isinstance(dense, fr.Dense):
            raise ValueError("expected Embedding first and Dense last")
        lm = CharLM(vocab, hidden=rnns[0].units, layers=len(rnns), cell=cell,
                    embed_dim=emb.output_dim, _build=False)
        lm.embedding, lm.rnns, lm.dense = emb, rnns, dense
        if dense.units != len(vocab) or emb.input_dim != len(vocab):
            raise ValueError(f"layers sized for {emb.input_dim}/{dense.units} characters, "
                             f"vocabulary has {len(vocab)}")
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise ModelFileError(f"inconsistent character model in {path!r}: {exc}") from None
    return lm
