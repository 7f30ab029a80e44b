"""Where ``fit`` / ``evaluate`` / ``predict`` get their batches from (Keras semantics).

* arrays ``x, y`` (+ ``sample_weight`` / ``class_weight``), cut into ``batch_size`` batches,
  shuffled per pass; with ``steps_per_epoch`` an epoch is that many batches and the next
  epoch continues where the previous one stopped (a new shuffled pass starts when the data
  is used up);
* a :class:`fastrnn.utils.Sequence`: batch ``i`` is ``seq[i]``; an epoch is ``len(seq)``
  batches (or ``steps_per_epoch``, continuing cyclically), ``seq.on_epoch_end()`` runs
  after every training epoch (``len(seq)`` is read again after it); the batch order is not
  shuffled (shuffle inside the Sequence);
* a Python generator or iterator: batches are drawn with ``next``; an epoch is
  ``steps_per_epoch`` batches, or everything until ``StopIteration`` without it.  A source
  that runs out early ends training with a warning (as in Keras).

A batch from a source is ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``; a list is
read as a tuple, so several inputs are written ``((x1, x2), y)``.
"""

import math
import types
import warnings
from collections.abc import Iterator

import numpy as np

from .. import losses as losses_module
from ..utils import Sequence

__all__ = ["is_source", "check_sample_weight", "with_class_weight", "ArrayBatches",
           "SourceBatches"]


def is_source(x):
    """True for a :class:`~fastrnn.utils.Sequence`, a generator or another iterator."""
    return isinstance(x, (Sequence, types.GeneratorType)) or (
        isinstance(x, Iterator) and not isinstance(x, np.ndarray))


def unpack(batch, what):
    """``(x, y, sample_weight)`` of one batch (missing parts None)."""
    if isinstance(batch, list):
        batch = tuple(batch)
    if not isinstance(batch, tuple):
        return batch, None, None
    if len(batch) == 1:
        return batch[0], None, None
    if len(batch) == 2:
        return batch[0], batch[1], None
    if len(batch) == 3:
        return batch
    raise ValueError(f"{what}: a batch must be x, (x,), (x, y) or (x, y, sample_weight), got a "
                     f"tuple of {len(batch)} items")


def check_sample_weight(sample_weight, n, name="sample_weight"):
    """``sample_weight`` as float64 of shape ``(n,)`` or ``(n, T)`` (``(n, 1)`` is read as
    ``(n,)``), finite and >= 0; None stays None."""
    if sample_weight is None:
        return None
    sw = np.asarray(sample_weight)
    if sw.dtype == object or sw.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a numeric array, got dtype {sw.dtype}")
    sw = sw.astype(np.float64)
    if sw.ndim == 2 and sw.shape[1] == 1:
        sw = sw[:, 0]
    if sw.ndim not in (1, 2) or sw.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) (one weight per sample) or ({n}, T) "
                         f"(one per time step), got {np.shape(sample_weight)}")
    if sw.size and not (np.isfinite(sw).all() and sw.min() >= 0):
        raise ValueError(f"{name} must hold finite values >= 0")
    return sw


def with_class_weight(model, y, sample_weight, class_weight):
    """Sample weights for targets ``y`` with ``class_weight`` folded in (Keras: one or the
    other, one output only)."""
    if class_weight is None:
        return sample_weight
    if sample_weight is not None:
        raise ValueError("pass either class_weight or sample_weight, not both")
    losses = [loss for loss in model._losses if loss is not None]
    if len(model._losses) != 1 or not losses:
        raise ValueError("class_weight needs a model with one output and a loss; for several "
                         "outputs pass sample_weight")
    return losses_module.class_weight_to_sample_weight(class_weight, y, losses[0])


def _steps_arg(steps, name):
    if steps is None:
        return None
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps <= 0:
        raise ValueError(f"{name} must be a positive int or None, got {steps!r}")
    return int(steps)


class ArrayBatches:
    """Batches of prepared arrays: yields ``(x, y, sample_weight, n)``."""

    def __init__(self, model, x, y, sample_weight, batch_size, shuffle=False, rng=None,
                 steps=None, name="steps_per_epoch"):
        self.model, self.x, self.y, self.sw = model, x, y, sample_weight
        self.n = model._n_samples(x)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.rng = rng
        self.steps_per_epoch = _steps_arg(steps, name)
        self._order, self._pos = None, 0

    @property
    def steps(self):
        """Batches per epoch."""
        if self.steps_per_epoch is not None:
            return self.steps_per_epoch
        return math.ceil(self.n / self.batch_size)

    def _cut(self, idx):
        m = self.model
        return (m._take(self.x, idx), None if self.y is None else m._take(self.y, idx),
                None if self.sw is None else self.sw[idx])

    def epoch(self):
        if self.steps_per_epoch is None:
            # one pass over the data (the RNG is drawn exactly as before steps_per_epoch)
            order = self.rng.permutation(self.n) if self.shuffle else None
            for a in range(0, self.n, self.batch_size):
                b = min(a + self.batch_size, self.n)
                idx = order[a:b] if order is not None else slice(a, b)
                yield self._cut(idx) + (b - a,)
            return
        for _ in range(self.steps_per_epoch):
            if self._order is None or self._pos >= self.n:
                self._order = self.rng.permutation(self.n) if self.shuffle else \
                    np.arange(self.n)
                self._pos = 0
            idx = self._order[self._pos:self._pos + self.batch_size]
            self._pos += idx.size
            yield self._cut(idx) + (idx.size,)

    def on_epoch_end(self):
        pass


class SourceBatches:
    """Batches drawn from a Sequence or an iterator, prepared and checked like arrays:
    yields ``(x, y, sample_weight, n)`` (``y`` and ``sample_weight`` None for prediction)."""

    def __init__(self, model, source, steps=None, what="x", targets=True, class_weight=None,
                 name="steps_per_epoch"):
        self.model, self.source, self.what = model, source, what
        self.targets = targets
        self.class_weight = class_weight
        self.steps_per_epoch = _steps_arg(steps, name)
        self.is_sequence = isinstance(source, Sequence)
        self.length = None
        if self.is_sequence:
            self._read_length()
        self._cursor = 0
        self._pending = None          # a generator batch read ahead by peek()
        self.exhausted = False

    def _read_length(self):
        length = len(self.source)
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) \
                or length < 1:
            raise ValueError(f"{self.what}: len() of the Sequence must be a positive int, got "
                             f"{length!r}")
        self.length = int(length)

    @property
    def steps(self):
        """Batches per epoch (None: until the generator stops)."""
        return self.steps_per_epoch if self.steps_per_epoch is not None else self.length

    def _next_raw(self):
        if self.is_sequence:
            batch = self.source[self._cursor % self.length]
            self._cursor += 1
            return batch
        if self._pending is not None:
            batch, self._pending = self._pending, None
            return batch
        return next(self.source)

    def _prepare(self, batch):
        m = self.model
        xb, yb, swb = unpack(batch, self.what)
        xb = m._prepare_x(xb, f"{self.what} (batch x)")
        n = m._n_samples(xb)
        if not self.targets:
            return xb, None, None, n
        if yb is None:
            raise ValueError(f"{self.what}: batches must be (x, y) or (x, y, sample_weight) "
                             "for training and evaluation, got x alone")
        yb = m._prepare_y(yb, n, f"{self.what} (batch y)")
        swb = check_sample_weight(swb, n, f"{self.what} (batch sample_weight)")
        swb = with_class_weight(m, yb, swb, self.class_weight)
        return xb, yb, swb, n

    def peek_x(self):
        """The first batch's x (prepared), without consuming it: ``fit`` builds the model
        from it before the first step."""
        if self.is_sequence:
            return self._prepare(self.source[self._cursor % self.length])[0]
        if self._pending is None:
            try:
                self._pending = next(self.source)
            except StopIteration:
                raise ValueError(f"{self.what}: the generator yields no batches") from None
        return self._prepare(self._pending)[0]

    def epoch(self):
        if self.is_sequence:
            if self.steps_per_epoch is None:
                self._cursor = 0
            for _ in range(self.steps):
                yield self._prepare(self._next_raw())
            return
        count = 0
        while self.steps_per_epoch is None or count < self.steps_per_epoch:
            try:
                batch = self._next_raw()
            except StopIteration:
                if self.steps_per_epoch is not None or count == 0:
                    self.exhausted = True
                break
            count += 1
            yield self._prepare(batch)

    def on_epoch_end(self):
        if self.is_sequence:
            self.source.on_epoch_end()
            # a Sequence may change its length between epochs (e.g. windows cut at a new
            # offset); without steps_per_epoch the next epoch reads all of it
            self._read_length()


def ran_out_warning(what):
    warnings.warn(f"{what} ran out of data; training stops. Make sure the generator can "
                  "yield steps_per_epoch * epochs batches (or pass a Sequence)", UserWarning,
                  stacklevel=3)
