"""Learning-rate schedules with Keras's semantics (``keras.optimizers.schedules``).

A schedule is a callable ``schedule(step) -> float`` of the optimizer's step counter (the
number of steps applied before the current one: 0 on the first step).  Pass one as an
optimizer's ``learning_rate``::

    sched = fastrnn.optimizers.schedules.ExponentialDecay(1e-2, decay_steps=1000,
                                                           decay_rate=0.9)
    opt = fastrnn.optimizers.Adam(learning_rate=sched)

``opt.learning_rate`` then reads the value for the next step.  Schedules are saved with the
optimizer (``get_config`` / ``serialize`` / ``deserialize``, allowlisted classes only).
"""

import bisect
import math
import numbers

import numpy as np

__all__ = ["LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay",
           "CosineDecay", "InverseTimeDecay", "serialize", "deserialize"]


def _real(name, value, *, low=None, low_inclusive=True):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} "
                        f"(type {type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (value < low if low_inclusive else value <= low):
        raise ValueError(f"{name} must be {'>=' if low_inclusive else '>'} {low}, got {value!r}")
    return value


def _flag(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def _step(step):
    """The step as a float >= 0 (an int, a NumPy integer or an integral float)."""
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, numbers.Real):
        raise TypeError(f"step must be a non-negative number, got {step!r}")
    s = float(step)
    if not math.isfinite(s) or s < 0:
        raise ValueError(f"step must be a finite number >= 0, got {step!r}")
    return s


class LearningRateSchedule:
    """Base class: subclasses define ``__call__(step)`` and ``get_config()``."""

    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        """Build the schedule from :meth:`get_config`'s dict."""
        if not isinstance(config, dict):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        return cls(**config)

    def __repr__(self):
        return f"{type(self).__name__}(" + ", ".join(
            f"{k}={v!r}" for k, v in self.get_config().items()) + ")"


class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``.

    With ``staircase=True`` the exponent is ``floor(step / decay_steps)`` (the rate drops
    in steps every ``decay_steps``).

    Parameters
    ----------
    initial_learning_rate : float
        Value at step 0 (>= 0).
    decay_steps : float
        > 0.
    decay_rate : float
        >= 0.
    staircase : bool, default False

    Example
    -------
    >>> ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)(20)
    0.025
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        self.initial_learning_rate = _real("initial_learning_rate", initial_learning_rate,
                                           low=0.0)
        self.decay_steps = _real("decay_steps", decay_steps, low=0.0, low_inclusive=False)
        self.decay_rate = _real("decay_rate", decay_rate, low=0.0)
        self.staircase = _flag("staircase", staircase)

    def __call__(self, step):
        p = _step(step) / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        try:
            return self.initial_learning_rate * self.decay_rate ** p
        except OverflowError:       # decay_rate > 1 far out: the optimizer rejects inf
            return math.inf

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase}


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while
    ``boundaries[i-1] < step <= boundaries[i]``, ``values[-1]`` after ``boundaries[-1]``.

    Parameters
    ----------
    boundaries : sequence of float
        Strictly increasing.
    values : sequence of float
        One more than ``boundaries``, each >= 0.

    Example
    -------
    >>> s = PiecewiseConstantDecay([100, 200], [1.0, 0.5, 0.1])
    >>> s(100), s(101), s(201)
    (1.0, 0.5, 0.1)
    """

    def __init__(self, boundaries, values):
        if not isinstance(boundaries, (list, tuple, np.ndarray)) or \
                not isinstance(values, (list, tuple, np.ndarray)):
            raise TypeError("boundaries and values must be lists of numbers, got "
                            f"{type(boundaries).__name__} and {type(values).__name__}")
        b = [_real(f"boundaries[{i}]", v) for i, v in enumerate(boundaries)]
        vals = [_real(f"values[{i}]", v, low=0.0) for i, v in enumerate(values)]
        if len(vals) != len(b) + 1:
            raise ValueError(f"values must have one more element than boundaries: expected "
                             f"{len(b) + 1} values, got {len(vals)}")
        if any(b2 <= b1 for b1, b2 in zip(b, b[1:])):
            raise ValueError(f"boundaries must be strictly increasing, got {b}")
        self.boundaries, self.values = b, vals

    def __call__(self, step):
        # bisect_left: a step equal to a boundary still belongs to the interval before it
        return self.values[bisect.bisect_left(self.boundaries, _step(step))]

    def get_config(self):
        return {"boundaries": list(self.boundaries), "values": list(self.values)}


class CosineDecay(LearningRateSchedule):
    """Cosine decay with optional linear warm-up (Keras 3).

    Without warm-up (``warmup_target=None``)::

        s = min(step, decay_steps)
        lr = initial_learning_rate * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha)

    With ``warmup_target``: for ``step < warmup_steps`` the rate rises linearly from
    ``initial_learning_rate`` to ``warmup_target``; afterwards the formula above runs from
    ``warmup_target`` with ``s = min(step - warmup_steps, decay_steps)``.

    Parameters
    ----------
    initial_learning_rate : float
    decay_steps : float
        > 0.
    alpha : float, default 0
        Final value as a fraction of the starting one.
    warmup_target : float, optional
    warmup_steps : float, default 0

    Example
    -------
    >>> CosineDecay(1.0, decay_steps=10)(5)
    0.5000000000000001
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, warmup_target=None,
                 warmup_steps=0):
        self.initial_learning_rate = _real("initial_learning_rate", initial_learning_rate,
                                           low=0.0)
        self.decay_steps = _real("decay_steps", decay_steps, low=0.0, low_inclusive=False)
        self.alpha = _real("alpha", alpha, low=0.0)
        self.warmup_target = None if warmup_target is None else _real(
            "warmup_target", warmup_target, low=0.0)
        self.warmup_steps = _real("warmup_steps", warmup_steps, low=0.0)

    def _decay(self, s, start):
        cos = 0.5 * (1.0 + math.cos(math.pi * s / self.decay_steps))
        return start * ((1.0 - self.alpha) * cos + self.alpha)

    def __call__(self, step):
        s = _step(step)
        if self.warmup_target is None:
            return self._decay(min(s, self.decay_steps), self.initial_learning_rate)
        s = min(s, self.decay_steps + self.warmup_steps)
        if s < self.warmup_steps:
            return (self.warmup_target - self.initial_learning_rate) * (
                s / self.warmup_steps) + self.initial_learning_rate
        return self._decay(s - self.warmup_steps, self.warmup_target)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


class InverseTimeDecay(LearningRateSchedule):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)``; with
    ``staircase=True`` ``step / decay_steps`` is floored.

    Example
    -------
    >>> InverseTimeDecay(0.5, decay_steps=1.0, decay_rate=0.5)(2)
    0.25
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        self.initial_learning_rate = _real("initial_learning_rate", initial_learning_rate,
                                           low=0.0)
        self.decay_steps = _real("decay_steps", decay_steps, low=0.0, low_inclusive=False)
        self.decay_rate = _real("decay_rate", decay_rate, low=0.0)
        self.staircase = _flag("staircase", staircase)

    def __call__(self, step):
        p = _step(step) / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate / (1.0 + self.decay_rate * p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase}


SCHEDULE_REGISTRY = {c.__name__: c for c in (ExponentialDecay, PiecewiseConstantDecay,
                                             CosineDecay, InverseTimeDecay)}


def serialize(schedule):
    """``{"class_name": ..., "config": schedule.get_config()}``."""
    if type(schedule).__name__ not in SCHEDULE_REGISTRY or \
            SCHEDULE_REGISTRY[type(schedule).__name__] is not type(schedule):
        raise TypeError(f"cannot serialize learning-rate schedule {type(schedule).__name__}; "
                        f"serializable: {sorted(SCHEDULE_REGISTRY)}")
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config):
    """Build a schedule from :func:`serialize`'s dict (allowlisted class names only)."""
    if not isinstance(config, dict) or "class_name" not in config or \
            set(config) - {"class_name", "config"}:
        raise ValueError("schedule config must be a dict {'class_name': str, 'config': dict}, "
                         f"got {config!r:.200}")
    cls = SCHEDULE_REGISTRY.get(config["class_name"]) if isinstance(
        config["class_name"], str) else None
    if cls is None:
        raise ValueError(f"Unknown learning-rate schedule {config['class_name']!r:.100}; "
                         f"expected one of {sorted(SCHEDULE_REGISTRY)}")
    cfg = config.get("config", {})
    if not isinstance(cfg, dict):
        raise TypeError(f"schedule config must be a dict, got {type(cfg).__name__}")
    return cls.from_config(cfg)
