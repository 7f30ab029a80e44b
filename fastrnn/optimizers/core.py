"""Optimizers: SGD, Adam, AdamW, RMSprop, Adagrad.

Two conventions
---------------
Every optimizer follows one of two sets of update rules, chosen when it is built and kept
in its config (``opt.convention``):

* ``"keras"`` (the default, and what ``compile(optimizer="rmsprop")`` and
  :func:`get` build): Keras 3's update rules and defaults (``keras.optimizers``), with
  Keras's argument names ``learning_rate``, ``rho``, ``epsilon``, ``beta_1``, ``beta_2``,
  ``momentum``, ``nesterov``, ``amsgrad``, ``centered``, ``initial_accumulator_value`` and
  ``weight_decay`` as *decoupled* decay (``p <- p - p * weight_decay * lr`` before each
  step, as in Keras 3).  A Keras script gets the steps it got in Keras.
* ``"torch"``: ``torch.optim``'s update rules and defaults exactly, in the same order of
  operations as PyTorch's CPU implementation (``weight_decay`` is then PyTorch's: an L2
  term added to the gradient, except AdamW).  PyTorch's own argument names (``lr``,
  ``betas``, ``eps``, ``alpha``, ``dampening``, ``lr_decay``) select it, or pass
  ``convention="torch"`` with the Keras spellings.  A model trained so and its PyTorch twin
  take the same steps.

Each class docstring writes out both rules.  The per-parameter step ``t`` counts that
parameter's updates (Keras counts the optimizer's iterations: the same number when every
parameter is updated on every step).  Every update is computed in the dtype of the
parameter (float32 parameters stay float32).  ``learning_rate`` may be a
:mod:`fastrnn.optimizers.schedules` schedule, read at ``opt.iterations`` on each step.

Usage
-----
An optimizer updates parameter arrays **in place**::

    opt = fastrnn.optimizers.Adam(learning_rate=1e-3, clipnorm=1.0)      # Keras rules
    twin = fastrnn.optimizers.Adam(lr=1e-3)                              # torch.optim rules
    applied = opt.apply([("layers.0.weight_ih", w, dw), ("layers.0.bias_ih", b, db)])

``apply`` takes a list of ``(name, param, grad)`` triples (recommended: the
per-parameter state is keyed by the name, so it survives saving and loading),
a dict ``{name: (param, grad)}``, or a list of ``(param, grad)`` pairs (then
keyed by position ``"0"``, ``"1"``, ...).  It returns ``True`` when the step
was applied and ``False`` when it was skipped.

Safety
------
* Gradient clipping (at most one of, each a finite number > 0):
  ``clipnorm`` (each gradient tensor rescaled to L2 norm <= clipnorm),
  ``clipvalue`` (each element clipped to [-clipvalue, clipvalue]),
  ``global_clipnorm`` (all gradients rescaled together so that their joint L2
  norm <= global_clipnorm).  Clipping happens before weight decay, as with
  ``torch.nn.utils.clip_grad_norm_`` followed by ``optimizer.step()``.
* A step is all-or-nothing.  If any gradient contains NaN or Inf, or if the
  update would make any parameter or optimizer slot non-finite, nothing is
  changed (parameters, slots and step counters keep their values), the step
  is counted in ``opt.skipped_steps`` and ``apply`` returns ``False``
  (``on_nonfinite="raise"`` raises :class:`NonFiniteGradientError` instead).
* All inputs are checked before anything is modified; errors name the
  argument, the expected and the actual value.

State
-----
``opt.get_state()`` returns ``(serialize(opt), slots)`` where ``slots`` maps
``"{slot}.{param_name}"`` to an array (``step`` slots are int64 scalars) plus
``"iterations"``; ``opt.set_state(config, slots)`` restores it (step counters above 2**53
are rejected).
``opt.get_config()`` returns the constructor keyword arguments;
``serialize(opt)`` / ``from_config(d)`` (alias ``deserialize``) convert to and
from ``{"class_name": ..., "config": ...}`` using an allowlist of classes.
"""

import inspect
import math
import numbers

import numpy as np

from . import schedules as _schedules

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "Adagrad",
    "NonFiniteGradientError",
    "get",
    "serialize",
    "deserialize",
    "from_config",
]


class NonFiniteGradientError(ValueError):
    """Raised by ``apply`` with ``on_nonfinite="raise"`` when a step would be non-finite."""


# --------------------------------------------------------------------------
# argument checking
# --------------------------------------------------------------------------

def _check_number(name, value, *, low=None, low_inclusive=True, high=None,
                  high_inclusive=True):
    """Return ``value`` as a Python float after checking it is a finite real in range."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} "
                        f"(type {type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None:
        if (value < low) if low_inclusive else (value <= low):
            op = ">=" if low_inclusive else ">"
            raise ValueError(f"Invalid {name}: expected {name} {op} {low}, got {value!r}")
    if high is not None:
        if (value > high) if high_inclusive else (value >= high):
            op = "<=" if high_inclusive else "<"
            raise ValueError(f"Invalid {name}: expected {name} {op} {high}, got {value!r}")
    return value


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r} (type {type(value).__name__})")
    return bool(value)


def _check_clip(clipnorm, clipvalue, global_clipnorm):
    given = [f"{n}={v!r}" for n, v in (("clipnorm", clipnorm), ("clipvalue", clipvalue),
                                       ("global_clipnorm", global_clipnorm)) if v is not None]
    if len(given) > 1:
        raise ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be "
                         f"set; got {', '.join(given)}")
    out = []
    for name, v in (("clipnorm", clipnorm), ("clipvalue", clipvalue),
                    ("global_clipnorm", global_clipnorm)):
        out.append(None if v is None else _check_number(name, v, low=0.0, low_inclusive=False))
    return out


def _l2_norm(g):
    """L2 norm of an array, accumulated in float64 (pairwise summation, no BLAS), robust
    against overflow or underflow of the squares."""
    if g.size == 0:
        return 0.0
    a = g.astype(np.float64).ravel()
    with np.errstate(over="ignore", under="ignore"):
        np.square(a, out=a)
        ss = float(a.sum())
    if math.isfinite(ss) and ss > 1e-290:
        return math.sqrt(ss)
    # squares overflowed or underflowed: rescale by the largest magnitude first
    a = np.abs(g.astype(np.float64).ravel())
    m = float(a.max())
    if m == 0.0 or not math.isfinite(m):
        return m
    a /= m
    with np.errstate(under="ignore"):
        np.square(a, out=a)
    return m * math.sqrt(float(a.sum()))


def _lerp(start, end, weight):
    """PyTorch's ``lerp``: ``start + weight*(end-start)`` (|weight| < 0.5) else
    ``end - (end-start)*(1-weight)``, with ``weight`` in the array dtype."""
    w = start.dtype.type(weight)
    diff = end - start
    if abs(float(w)) < 0.5:
        diff *= w
        diff += start
        return diff
    diff *= start.dtype.type(1) - w
    return np.subtract(end, diff, out=diff)


_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_CONVENTIONS = ("keras", "torch")
_MAX_COUNT = 2 ** 53


# --------------------------------------------------------------------------
# base class
# --------------------------------------------------------------------------

class Optimizer:
    """Base class.  Subclasses define ``_hyper`` (names of constructor
    hyperparameters, in order), ``_slots()`` and ``_update()``.

    Attributes
    ----------
    convention : {"keras", "torch"}
        Which update rules the optimizer follows (see the module docstring).
    iterations : int
        Number of applied steps.
    skipped_steps : int
        Number of steps skipped because of non-finite values.
    """

    _hyper = ()
    _torch_only_hyper = ()
    _registry_name = None

    def __init__(self, learning_rate, *, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 on_nonfinite="skip", convention="keras"):
        if convention not in _CONVENTIONS:
            raise ValueError(f"convention must be 'keras' or 'torch', got {convention!r}")
        self.convention = convention
        self._schedule = None
        self.learning_rate = learning_rate
        self.clipnorm, self.clipvalue, self.global_clipnorm = _check_clip(
            clipnorm, clipvalue, global_clipnorm)
        if on_nonfinite not in ("skip", "raise"):
            raise ValueError(f"on_nonfinite must be 'skip' or 'raise', got {on_nonfinite!r}")
        self.on_nonfinite = on_nonfinite
        self._state = {}        # name -> {"step": int, slot: ndarray}
        self.iterations = 0     # number of applied steps
        self.skipped_steps = 0  # number of skipped (non-finite) steps

    # -- learning rate is settable (callbacks) and always validated; a schedule is
    # evaluated at the number of steps applied so far (Keras: 0 on the first step)
    @property
    def learning_rate(self):
        """The learning rate of the next step (a float; a schedule's value at
        ``iterations``)."""
        if self._schedule is not None:
            return _check_number("learning_rate (from the schedule)",
                                 self._schedule(self.iterations), low=0.0)
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(value, _schedules.LearningRateSchedule):
            self._schedule = value
            self._learning_rate = None
            return
        if isinstance(value, dict):       # a serialized schedule (from get_config)
            self._schedule = _schedules.deserialize(value)
            self._learning_rate = None
            return
        if self._schedule is not None:
            raise TypeError("this optimizer's learning_rate is a LearningRateSchedule "
                            f"({type(self._schedule).__name__}); it cannot be set to a number")
        self._learning_rate = _check_number("learning_rate", value, low=0.0)

    @property
    def learning_rate_schedule(self):
        """The :class:`~fastrnn.optimizers.schedules.LearningRateSchedule`, or None."""
        return self._schedule

    # -- configuration ------------------------------------------------------
    def get_config(self):
        """Constructor keyword arguments (JSON-able): ``type(opt)(**opt.get_config())``
        builds an equivalent optimizer without state."""
        lr = _schedules.serialize(self._schedule) if self._schedule is not None \
            else self._learning_rate
        cfg = {"learning_rate": lr}
        for name in self._hyper_names():
            cfg[name] = getattr(self, name)
        cfg.update(clipnorm=self.clipnorm, clipvalue=self.clipvalue,
                   global_clipnorm=self.global_clipnorm, on_nonfinite=self.on_nonfinite,
                   convention=self.convention)
        return cfg

    def _hyper_names(self):
        """Hyperparameters of this convention (PyTorch-only ones are left out of a Keras
        optimizer's config)."""
        torch_only = self._torch_only_hyper if self.convention == "keras" else ()
        return tuple(n for n in self._hyper if n not in torch_only)

    @classmethod
    def from_config(cls, config):
        """Build an optimizer from :meth:`get_config`'s dict.  A config without
        ``convention`` (written before conventions existed) gets ``"torch"``, the only
        update rules fastrnn had then."""
        if not isinstance(config, dict):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        allowed = set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}
        allowed |= {"clipnorm", "clipvalue", "global_clipnorm", "on_nonfinite"}
        unknown = sorted(set(config) - allowed)
        if unknown:
            raise ValueError(f"Unknown {cls.__name__} config keys {unknown}; "
                             f"expected a subset of {sorted(allowed)}")
        if "convention" not in config:
            config = {**config, "convention": "torch"}
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items()
                         if v is not None and not (k == "on_nonfinite" and v == "skip"))
        return f"{type(self).__name__}({args})"

    # -- state ----------------------------------------------------------------
    def _slots(self):
        """Names of the array slots this configuration keeps per parameter."""
        raise NotImplementedError

    def _new_state(self, p):
        """Initial slot arrays for parameter ``p`` (before its first step)."""
        raise NotImplementedError

    def reset(self):
        """Forget all per-parameter state and the step counters."""
        self._state = {}
        self.iterations = 0
        self.skipped_steps = 0

    def get_state(self):
        """Return ``(serialize(self), slots)``.

        ``slots`` maps ``"{slot}.{param_name}"`` to a fresh array: the slot
        arrays (parameter shape and dtype) and ``"step.{param_name}"`` (int64
        scalar, number of updates of that parameter), plus ``"iterations"``
        (int64 scalar, number of applied steps)."""
        slots = {"iterations": np.array(self.iterations, dtype=np.int64)}
        for name, st in self._state.items():
            slots[f"step.{name}"] = np.array(st["step"], dtype=np.int64)
            for s in self._slots():
                if s in st:
                    slots[f"{s}.{name}"] = st[s].copy()
        return serialize(self), slots

    def set_state(self, config, slots=None, params=None):
        """Restore what :meth:`get_state` returned (``set_state(opt.get_state())``
        or ``set_state(config, slots)``).

        ``config`` (``{"class_name", "config"}`` or ``None`` to keep the current
        hyperparameters) must name this optimizer's class.  ``params`` (optional
        dict name -> array) lets the slots be checked against the parameters
        they belong to (same names, shapes and dtypes).  Nothing changes unless
        everything is valid."""
        if slots is None and isinstance(config, tuple) and len(config) == 2:
            config, slots = config
        if slots is None:
            slots = {}
        if not isinstance(slots, dict):
            raise TypeError(f"slots must be a dict name -> array, got {type(slots).__name__}")
        new_hyper = None
        if config is not None:
            other = deserialize(config)
            if type(other) is not type(self):
                raise ValueError(f"optimizer state is for {type(other).__name__}, "
                                 f"cannot load it into {type(self).__name__}")
            new_hyper = other
        probe = new_hyper if new_hyper is not None else self
        slot_names = probe._slots()
        iterations = 0
        per_param = {}
        for key, value in slots.items():
            if not isinstance(key, str):
                raise TypeError(f"slot names must be strings, got {key!r}")
            if key == "iterations":
                iterations = _as_count("iterations", value)
                continue
            slot, sep, name = key.partition(".")
            if not sep or not name:
                raise ValueError(f"bad optimizer slot name {key!r}: expected '<slot>.<param_name>'")
            if slot != "step" and slot not in slot_names:
                raise ValueError(f"unexpected optimizer slot {slot!r} in {key!r} for "
                                 f"{type(self).__name__} with this configuration; "
                                 f"expected one of {['step', *slot_names]}")
            per_param.setdefault(name, {})[slot] = value
        new_state = {}
        for name, entries in per_param.items():
            missing = [s for s in ("step", *slot_names) if s not in entries]
            if missing:
                raise ValueError(f"optimizer state for parameter {name!r} is missing slots "
                                 f"{missing}")
            step = _as_count(f"step.{name}", entries["step"])
            if step < 1:
                raise ValueError(f"step.{name} must be >= 1 for a parameter with state, got {step}")
            st = {"step": step}
            ref = None
            for s in slot_names:
                arr = entries[s]
                if not isinstance(arr, np.ndarray) or arr.dtype not in _FLOAT_DTYPES:
                    raise TypeError(f"optimizer slot {s}.{name} must be a float32/float64 "
                                    f"ndarray, got {getattr(arr, 'dtype', type(arr).__name__)}")
                if ref is None:
                    ref = arr
                elif arr.shape != ref.shape or arr.dtype != ref.dtype:
                    raise ValueError(f"optimizer slot {s}.{name} has shape {arr.shape} "
                                     f"{arr.dtype}, expected {ref.shape} {ref.dtype} like "
                                     f"the other slots of {name!r}")
                if not np.isfinite(arr).all():
                    raise ValueError(f"optimizer slot {s}.{name} contains NaN or Inf")
                st[s] = np.array(arr, dtype=arr.dtype, order="C", copy=True)
            if params is not None:
                if name not in params:
                    raise ValueError(f"optimizer state refers to unknown parameter {name!r}; "
                                     f"known: {sorted(params)}")
                p = params[name]
                if ref is not None and (ref.shape != p.shape or ref.dtype != p.dtype):
                    raise ValueError(f"optimizer state for {name!r} has shape {ref.shape} "
                                     f"{ref.dtype}, parameter has {p.shape} {p.dtype}")
            new_state[name] = st
        if new_hyper is not None:
            self.__dict__.update({k: v for k, v in new_hyper.__dict__.items()
                                  if k not in ("_state", "iterations", "skipped_steps")})
        self._state = new_state
        self.iterations = iterations

    # -- the step -------------------------------------------------------------
    def _normalize(self, items):
        if isinstance(items, dict):
            raw = []
            for k, v in items.items():
                if not isinstance(v, (tuple, list)) or len(v) != 2:
                    raise TypeError(f"apply(dict): value for {k!r} must be a (param, grad) "
                                    f"pair, got {type(v).__name__}")
                raw.append((k, v[0], v[1]))
        else:
            try:
                items = list(items)
            except TypeError:
                raise TypeError("apply() expects a list of (name, param, grad) triples, "
                                "(param, grad) pairs or a dict name -> (param, grad); got "
                                f"{type(items).__name__}") from None
            raw = []
            kinds = set()
            for i, it in enumerate(items):
                if not isinstance(it, (tuple, list)) or len(it) not in (2, 3):
                    raise TypeError(f"apply(): item {i} must be a (name, param, grad) triple "
                                    f"or a (param, grad) pair, got {it!r:.80}")
                kinds.add(len(it))
                raw.append((str(i), it[0], it[1]) if len(it) == 2 else tuple(it))
            if len(kinds) > 1:
                raise TypeError("apply(): do not mix (param, grad) pairs and "
                                "(name, param, grad) triples")
        entries = []
        seen = set()
        for name, p, g in raw:
            if not isinstance(name, str) or not name:
                raise TypeError(f"parameter names must be non-empty strings, got {name!r}")
            if name in seen:
                raise ValueError(f"parameter name {name!r} appears twice")
            seen.add(name)
            if not isinstance(p, np.ndarray):
                raise TypeError(f"parameter {name!r} must be a numpy ndarray, "
                                f"got {type(p).__name__}")
            if p.dtype not in _FLOAT_DTYPES:
                raise TypeError(f"parameter {name!r} must be float32 or float64, got {p.dtype}")
            if not p.flags.writeable:
                raise ValueError(f"parameter {name!r} is read-only; it must be updated in place")
            g = np.asarray(g)
            if g.dtype.kind not in "fiu":
                raise TypeError(f"gradient for {name!r} must be a real numeric array, "
                                f"got {g.dtype}")
            if g.shape != p.shape:
                raise ValueError(f"gradient for {name!r} has shape {g.shape}, expected the "
                                 f"parameter shape {p.shape}")
            g = np.ascontiguousarray(g, dtype=p.dtype)
            st = self._state.get(name)
            if st is not None:
                for s in self._slots():
                    a = st.get(s)
                    if a is not None and (a.shape != p.shape or a.dtype != p.dtype):
                        raise ValueError(
                            f"optimizer state for {name!r} has shape {a.shape} {a.dtype}, but "
                            f"the parameter is {p.shape} {p.dtype}; call reset() or use a new "
                            "optimizer for a different model")
            entries.append((name, p, g))
        return entries

    def _clip(self, entries):
        if self.clipvalue is not None:
            c = self.clipvalue
            return [(n, p, np.clip(g, -c, c).astype(g.dtype, copy=False)) for n, p, g in entries]
        if self.clipnorm is not None:
            c = self.clipnorm
            out = []
            for n, p, g in entries:
                norm = _l2_norm(g)
                out.append((n, p, g * (c / norm) if norm > c else g))
            return out
        if self.global_clipnorm is not None:
            c = self.global_clipnorm
            norms = [_l2_norm(g) for _, _, g in entries]
            m = max(norms, default=0.0)
            total = 0.0 if m == 0.0 else m * math.sqrt(sum((x / m) ** 2 for x in norms))
            if total > c:
                scale = c / total
                return [(n, p, g * scale) for n, p, g in entries]
        return entries

    def _skip(self, why):
        self.skipped_steps += 1
        if self.on_nonfinite == "raise":
            raise NonFiniteGradientError(why)
        return False

    def apply(self, items):
        """Apply one update step in place; return True if applied, False if skipped.

        ``items``: list of ``(name, param, grad)`` triples, dict
        ``{name: (param, grad)}``, or list of ``(param, grad)`` pairs (state
        keyed by position).  Params must be writable float32/float64 arrays;
        gradients are cast to the param dtype.  Nothing is changed if the
        gradients or the result are not all finite (see module docstring)."""
        entries = self._normalize(items)
        for name, _, g in entries:
            if not np.isfinite(g).all():
                return self._skip(f"gradient for {name!r} contains NaN or Inf; step skipped")
        entries = self._clip(entries)
        lr = self.learning_rate       # once per step (a schedule is read at `iterations`)
        staged = []
        for name, p, g in entries:
            st = self._state.get(name)
            if st is None:
                st = {"step": 0, **self._new_state(p)}
            elif any(s not in st for s in self._slots()):
                # a hyperparameter was changed (e.g. amsgrad switched on): new slots start
                # as they would on a first step
                st = {**self._new_state(p), **st}
            step = st["step"] + 1
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                new_p, new_slots = self._update(p, g, st, step, lr)
            if not np.isfinite(new_p).all():
                return self._skip(f"update of {name!r} is not finite; step skipped")
            for s, a in new_slots.items():
                if not np.isfinite(a).all():
                    return self._skip(f"optimizer slot {s}.{name} would become non-finite; "
                                      "step skipped")
            staged.append((name, p, new_p, {"step": step, **new_slots}))
        for name, p, new_p, st in staged:
            np.copyto(p, new_p)
            self._state[name] = st
        self.iterations += 1
        return True

    def _update(self, p, g, state, step, lr):
        """Return ``(new_param, new_slots)`` without modifying anything."""
        raise NotImplementedError

    def _keras_decay(self, p, lr):
        """Keras 3's decoupled weight decay, applied before the update:
        ``p <- p - p * weight_decay * lr`` (in the parameter's dtype)."""
        wd = getattr(self, "weight_decay", 0.0)
        if not wd:
            return p
        t = p.dtype.type
        return p - p * t(wd) * t(lr)


def _as_count(name, value):
    arr = np.asarray(value)
    if arr.shape != () or arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer scalar, got {arr.dtype} array of shape "
                        f"{arr.shape}")
    v = int(arr)
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {v}")
    if v > _MAX_COUNT:
        # beyond 2**53 the count is no longer exact as a float (bias corrections, schedules)
        # and no real run gets there: a file claiming it is corrupt or hostile
        raise ValueError(f"{name} must be <= 2**53, got {v}")
    return v


# --------------------------------------------------------------------------
# conventions: Keras's rules by default, PyTorch's when asked for (or by PyTorch's names)
# --------------------------------------------------------------------------

def _alias(cls_name, name, value, alias, alias_value):
    """``value`` (Keras spelling) or ``alias_value`` (PyTorch spelling), never both."""
    if alias_value is None:
        return value
    if value is not None:
        raise TypeError(f"{cls_name}: pass either {name}= or {alias}= (PyTorch's name for "
                        f"it), not both; got {name}={value!r}, {alias}={alias_value!r}")
    return alias_value


def _resolve_convention(cls_name, convention, torch_names):
    """The convention asked for; PyTorch-only argument names select "torch"."""
    if convention is None:
        return "torch" if torch_names else "keras"
    if convention not in _CONVENTIONS:
        raise ValueError(f"{cls_name}: convention must be 'keras' or 'torch', got {convention!r}")
    if convention == "keras" and torch_names:
        verb = "is a PyTorch argument name" if len(torch_names) == 1 else \
            "are PyTorch argument names"
        raise ValueError(f"{cls_name}: {', '.join(torch_names)} {verb} (they select "
                         "convention='torch'), but convention='keras' was given")
    return convention


def _given(**named):
    return [n for n, v in named.items() if v is not None]


def _betas(cls_name, betas):
    if betas is None:
        return None, None
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"{cls_name}: betas must be a pair (beta_1, beta_2), got {betas!r}")
    return betas[0], betas[1]


def _default(value, convention, keras, torch):
    if value is not None:
        return value
    return keras if convention == "keras" else torch


# --------------------------------------------------------------------------
# optimizers
# --------------------------------------------------------------------------

class SGD(Optimizer):
    r"""Stochastic gradient descent with optional momentum.

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default 0.01 (PyTorch convention 0.001)
        ``lr`` is PyTorch's name for it.
    momentum : float, default 0
    nesterov : bool, default False
    weight_decay : float, default 0
        Keras convention: decoupled (``p <- p - p * weight_decay * lr`` before the step);
        PyTorch convention: L2 added to the gradient.
    dampening : float, PyTorch only, default 0
    convention : {"keras", "torch"}, optional
        Default "keras"; PyTorch names (``lr``, ``dampening``) select "torch".
    clipnorm, clipvalue, global_clipnorm, on_nonfinite
        See the module docstring.

    Notes
    -----
    Update rules, gradient ``g``, learning rate ``lr``, momentum ``mu``:

    Keras (``keras.optimizers.SGD``)::

        p = p - p * weight_decay * lr                       (weight_decay != 0)
        momentum == 0:  p = p - lr * g
        otherwise:      m = mu * m - lr * g            (m starts at 0)
                        p = p + m                 or   p = p + mu * m - lr * g   (nesterov)

    PyTorch (``torch.optim.SGD``; dampening ``tau``)::

        g = g + weight_decay * p                            (weight_decay != 0)
        b = g                                               (first step)
        b = mu * b + (1 - tau) * g                          (later steps, momentum != 0)
        g = g + mu * b  (nesterov)   or   g = b  (otherwise; momentum != 0)
        p = p - lr * g

    With a constant learning rate and no weight decay the two agree; they differ when the
    learning rate changes (Keras keeps ``lr`` inside the buffer) and in weight decay.
    Slots: ``momentum_buffer`` (m or b, only when momentum != 0).  PyTorch's Nesterov
    requires momentum > 0 and zero dampening.

    Example
    -------
    >>> opt = SGD(learning_rate=0.1, momentum=0.9)
    """

    _hyper = ("momentum", "nesterov", "weight_decay", "dampening")
    _torch_only_hyper = ("dampening",)
    _registry_name = "sgd"

    def __init__(self, learning_rate=None, momentum=0.0, nesterov=False, weight_decay=None,
                 dampening=None, *, lr=None, convention=None, **kwargs):
        conv = _resolve_convention("SGD", convention, _given(lr=lr, dampening=dampening))
        learning_rate = _alias("SGD", "learning_rate", learning_rate, "lr", lr)
        super().__init__(_default(learning_rate, conv, 0.01, 0.001), convention=conv, **kwargs)
        self.momentum = _check_number("momentum", momentum, low=0.0)
        self.nesterov = _check_bool("nesterov", nesterov)
        self.weight_decay = _check_number("weight_decay", _default(weight_decay, conv, 0.0, 0.0),
                                          low=0.0)
        self.dampening = _check_number("dampening", 0.0 if dampening is None else dampening)
        if conv == "torch" and self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum > 0 and zero dampening; "
                             f"got momentum={self.momentum}, dampening={self.dampening}")

    def _slots(self):
        return ("momentum_buffer",) if self.momentum != 0 else ()

    def _new_state(self, p):
        return {}

    def _update(self, p, g, state, step, lr):
        if self.convention == "keras":
            p = self._keras_decay(p, lr)
            if self.momentum == 0:
                return p - g * p.dtype.type(lr), {}
            t = p.dtype.type
            m = state.get("momentum_buffer")
            if m is None:
                m = np.zeros_like(p)
            m = (-g) * t(lr) + m * t(self.momentum)
            if self.nesterov:
                return p + ((-g) * t(lr) + m * t(self.momentum)), {"momentum_buffer": m}
            return p + m, {"momentum_buffer": m}
        if self.weight_decay != 0:
            g = g + self.weight_decay * p
        slots = {}
        if self.momentum != 0:
            if "momentum_buffer" not in state:
                buf = g.copy()
            else:
                buf = state["momentum_buffer"] * self.momentum + (1 - self.dampening) * g
            slots["momentum_buffer"] = buf
            g = g + self.momentum * buf if self.nesterov else buf
        return p + (-lr) * g, slots


class Adam(Optimizer):
    r"""Adam (AdamW with decoupled weight decay under the PyTorch convention).

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default 0.001
        ``lr`` is PyTorch's name.
    beta_1, beta_2 : float, default 0.9, 0.999
        ``betas=(beta_1, beta_2)`` is PyTorch's spelling.
    epsilon : float, default 1e-7 (PyTorch convention 1e-8)
        ``eps`` is PyTorch's name.
    amsgrad : bool, default False
    weight_decay : float, default 0
        Keras convention: decoupled (``p <- p - p * weight_decay * lr`` before the step);
        PyTorch convention: ``torch.optim.Adam``'s L2 term added to the gradient.
    convention : {"keras", "torch"}, optional
        Default "keras"; PyTorch names (``lr``, ``betas``, ``eps``) select "torch".

    Notes
    -----
    Update rules at step ``t`` (per parameter, from 1); both keep
    ``m = m + (1 - beta_1) * (g - m)``, ``v = beta_2 * v + (1 - beta_2) * g * g`` and, with
    amsgrad, ``v_hat = max(v_hat_prev, v)`` (else ``v_hat = v``).

    Keras (``keras.optimizers.Adam``)::

        p = p - p * weight_decay * lr                             (weight_decay != 0)
        a = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
        p = p - a * m / (sqrt(v_hat) + epsilon)          (epsilon on the uncorrected sqrt(v))

    PyTorch (``torch.optim.Adam``)::

        g = g + weight_decay * p                                  (weight_decay != 0)
        denom = sqrt(v_hat) / sqrt(1 - beta_2**t) + eps           (eps after the correction)
        p = p - (lr / (1 - beta_1**t)) * m / denom

    Slots: ``exp_avg`` (m), ``exp_avg_sq`` (v), ``max_exp_avg_sq`` (amsgrad).

    Example
    -------
    >>> opt = Adam(learning_rate=1e-3)              # Keras's rule and defaults
    >>> twin = Adam(lr=1e-3)                        # torch.optim.Adam's rule and defaults
    """

    _hyper = ("beta_1", "beta_2", "epsilon", "weight_decay", "amsgrad")
    _registry_name = "adam"
    _decoupled = False
    _wd_default = (0.0, 0.0)

    def __init__(self, learning_rate=None, beta_1=None, beta_2=None, epsilon=None,
                 amsgrad=False, weight_decay=None, *, lr=None, betas=None, eps=None,
                 convention=None, **kwargs):
        name = type(self).__name__
        conv = _resolve_convention(name, convention, _given(lr=lr, betas=betas, eps=eps))
        learning_rate = _alias(name, "learning_rate", learning_rate, "lr", lr)
        b1, b2 = _betas(name, betas)
        beta_1 = _alias(name, "beta_1", beta_1, "betas", b1)
        beta_2 = _alias(name, "beta_2", beta_2, "betas", b2)
        epsilon = _alias(name, "epsilon", epsilon, "eps", eps)
        super().__init__(_default(learning_rate, conv, 0.001, 0.001), convention=conv,
                         **kwargs)
        self.beta_1 = _check_number("beta_1", _default(beta_1, conv, 0.9, 0.9), low=0.0,
                                    high=1.0, high_inclusive=False)
        self.beta_2 = _check_number("beta_2", _default(beta_2, conv, 0.999, 0.999), low=0.0,
                                    high=1.0, high_inclusive=False)
        self.epsilon = _check_number("eps" if eps is not None else "epsilon",
                                     _default(epsilon, conv, 1e-7, 1e-8), low=0.0)
        self.weight_decay = _check_number(
            "weight_decay", _default(weight_decay, conv, *self._wd_default), low=0.0)
        self.amsgrad = _check_bool("amsgrad", amsgrad)

    def _slots(self):
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if self.amsgrad else ())

    def _new_state(self, p):
        st = {"exp_avg": np.zeros_like(p), "exp_avg_sq": np.zeros_like(p)}
        if self.amsgrad:
            st["max_exp_avg_sq"] = np.zeros_like(p)
        return st

    def _update(self, p, g, state, step, lr):
        if self.convention == "keras":
            return self._update_keras(p, g, state, step, lr)
        if self.weight_decay != 0:
            if self._decoupled:
                p = p * (1 - lr * self.weight_decay)
            else:
                g = g + self.weight_decay * p
        m = _lerp(state["exp_avg"], g, 1 - self.beta_1)
        v = (1 - self.beta_2) * g
        v *= g
        v += state["exp_avg_sq"] * self.beta_2
        bias_correction1 = 1 - self.beta_1 ** step
        bias_correction2 = 1 - self.beta_2 ** step
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2 ** 0.5
        slots = {"exp_avg": m, "exp_avg_sq": v}
        if self.amsgrad:
            vmax = np.maximum(state["max_exp_avg_sq"], v)
            slots["max_exp_avg_sq"] = vmax
            denom = np.sqrt(vmax)
        else:
            denom = np.sqrt(v)
        denom /= bias_correction2_sqrt
        denom += self.epsilon
        upd = (-step_size) * m
        upd /= denom
        upd += p
        return upd, slots

    def _update_keras(self, p, g, state, step, lr):
        t = p.dtype.type
        p = self._keras_decay(p, lr)
        m = state["exp_avg"] + (g - state["exp_avg"]) * t(1 - self.beta_1)
        v = state["exp_avg_sq"] + (g * g - state["exp_avg_sq"]) * t(1 - self.beta_2)
        slots = {"exp_avg": m, "exp_avg_sq": v}
        if self.amsgrad:
            v = np.maximum(state["max_exp_avg_sq"], v)
            slots["max_exp_avg_sq"] = v
        alpha = lr * math.sqrt(1 - self.beta_2 ** step) / (1 - self.beta_1 ** step)
        return p - (m * t(alpha)) / (np.sqrt(v) + t(self.epsilon)), slots


class AdamW(Adam):
    r"""AdamW: Adam with decoupled weight decay (default 0.004 as in Keras; 0.01 under the
    PyTorch convention, as in ``torch.optim.AdamW``).

    Keras: ``p <- p - p * weight_decay * lr`` then the Keras Adam step.  PyTorch:
    ``p <- p * (1 - lr * weight_decay)`` then the PyTorch Adam step.  See :class:`Adam`
    for the arguments and the rest of the formulas.
    """

    _registry_name = "adamw"
    _decoupled = True
    _wd_default = (0.004, 0.01)


class RMSprop(Optimizer):
    r"""RMSprop.

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default 0.001 (PyTorch convention 0.01)
        ``lr`` is PyTorch's name.
    rho : float, default 0.9 (PyTorch convention 0.99)
        Discount of the squared-gradient average; ``alpha`` is PyTorch's name.
    momentum : float, default 0
    epsilon : float, default 1e-7 (PyTorch convention 1e-8)
        ``eps`` is PyTorch's name.
    centered : bool, default False
    weight_decay : float, default 0
        Keras convention: decoupled; PyTorch convention: L2 added to the gradient.
    convention : {"keras", "torch"}, optional
        Default "keras"; PyTorch names (``lr``, ``alpha``, ``eps``) select "torch".

    Notes
    -----
    Both keep ``v = rho * v + (1 - rho) * g * g`` and, centered,
    ``a = rho * a + (1 - rho) * g``.

    Keras (``keras.optimizers.RMSprop``; epsilon *inside* the square root)::

        p = p - p * weight_decay * lr                       (weight_decay != 0)
        den = v - a * a + epsilon   (centered)   or   v + epsilon
        inc = lr * g / sqrt(den)
        momentum > 0:  b = mu * b + inc;  p = p - b      otherwise  p = p - inc

    PyTorch (``torch.optim.RMSprop``; eps *outside* the square root)::

        g = g + weight_decay * p                            (weight_decay != 0)
        s = sqrt(v - a * a) + eps   (centered)   or   sqrt(v) + eps
        momentum > 0:  b = mu * b + g / s;  p = p - lr * b   otherwise  p = p - lr * g / s

    Slots: ``square_avg`` (v), ``momentum_buffer`` (momentum > 0), ``grad_avg`` (a,
    centered).  Buffers start at zero.

    Example
    -------
    >>> opt = RMSprop()           # what compile(optimizer="rmsprop") builds
    """

    _hyper = ("rho", "epsilon", "weight_decay", "momentum", "centered")
    _registry_name = "rmsprop"

    def __init__(self, learning_rate=None, rho=None, momentum=0.0, epsilon=None,
                 centered=False, weight_decay=None, *, lr=None, alpha=None, eps=None,
                 convention=None, **kwargs):
        conv = _resolve_convention("RMSprop", convention, _given(lr=lr, alpha=alpha, eps=eps))
        learning_rate = _alias("RMSprop", "learning_rate", learning_rate, "lr", lr)
        rho = _alias("RMSprop", "rho", rho, "alpha", alpha)
        epsilon = _alias("RMSprop", "epsilon", epsilon, "eps", eps)
        super().__init__(_default(learning_rate, conv, 0.001, 0.01), convention=conv, **kwargs)
        self.rho = _check_number("alpha" if alpha is not None else "rho",
                                 _default(rho, conv, 0.9, 0.99), low=0.0)
        self.epsilon = _check_number("eps" if eps is not None else "epsilon",
                                     _default(epsilon, conv, 1e-7, 1e-8), low=0.0)
        self.weight_decay = _check_number("weight_decay", _default(weight_decay, conv, 0.0, 0.0),
                                          low=0.0)
        self.momentum = _check_number("momentum", momentum, low=0.0)
        self.centered = _check_bool("centered", centered)

    @property
    def alpha(self):
        """PyTorch's name for :attr:`rho`."""
        return self.rho

    def _slots(self):
        s = ("square_avg",)
        if self.momentum > 0:
            s += ("momentum_buffer",)
        if self.centered:
            s += ("grad_avg",)
        return s

    def _new_state(self, p):
        return {s: np.zeros_like(p) for s in self._slots()}

    def _update(self, p, g, state, step, lr):
        if self.convention == "keras":
            return self._update_keras(p, g, state, lr)
        if self.weight_decay != 0:
            g = g + self.weight_decay * p
        v = state["square_avg"] * self.rho + ((1 - self.rho) * g) * g
        slots = {"square_avg": v}
        if self.centered:
            a = _lerp(state["grad_avg"], g, 1 - self.rho)
            slots["grad_avg"] = a
            with np.errstate(invalid="ignore"):
                avg = np.sqrt(v + (-1.0 * a) * a)
        else:
            avg = np.sqrt(v)
        avg = avg + self.epsilon
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.momentum > 0:
                buf = state["momentum_buffer"] * self.momentum + g / avg
                slots["momentum_buffer"] = buf
                return p + (-lr) * buf, slots
            return p + ((-lr) * g) / avg, slots

    def _update_keras(self, p, g, state, lr):
        t = p.dtype.type
        rho = t(self.rho)
        p = self._keras_decay(p, lr)
        v = rho * state["square_avg"] + t(1 - self.rho) * (g * g)
        slots = {"square_avg": v}
        if self.centered:
            a = rho * state["grad_avg"] + t(1 - self.rho) * g
            slots["grad_avg"] = a
            den = v - a * a + t(self.epsilon)
        else:
            den = v + t(self.epsilon)
        with np.errstate(divide="ignore", invalid="ignore"):
            inc = (t(lr) * g) / np.sqrt(den)
        if self.momentum > 0:
            b = t(self.momentum) * state["momentum_buffer"] + inc
            slots["momentum_buffer"] = b
            return p - b, slots
        return p - inc, slots


class Adagrad(Optimizer):
    r"""Adagrad.

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default 0.001 (PyTorch convention 0.01)
        ``lr`` is PyTorch's name.
    initial_accumulator_value : float, default 0.1 (PyTorch convention 0)
    epsilon : float, default 1e-7 (PyTorch convention 1e-10)
        ``eps`` is PyTorch's name.
    weight_decay : float, default 0
        Keras convention: decoupled; PyTorch convention: L2 added to the gradient.
    lr_decay : float, PyTorch only, default 0
    convention : {"keras", "torch"}, optional
        Default "keras"; PyTorch names (``lr``, ``eps``, ``lr_decay``) select "torch".

    Both keep ``s = s + g * g`` (``s`` starts at ``initial_accumulator_value``).

    Keras (``keras.optimizers.Adagrad``; epsilon inside the square root)::

        p = p - p * weight_decay * lr                       (weight_decay != 0)
        p = p - lr * g / sqrt(s + epsilon)

    PyTorch (``torch.optim.Adagrad``; eps outside)::

        g = g + weight_decay * p                            (weight_decay != 0)
        clr = lr / (1 + (t - 1) * lr_decay)
        p = p - clr * g / (sqrt(s) + eps)

    Slot: ``sum`` (s).
    """

    _hyper = ("lr_decay", "weight_decay", "initial_accumulator_value", "epsilon")
    _torch_only_hyper = ("lr_decay",)
    _registry_name = "adagrad"

    def __init__(self, learning_rate=None, initial_accumulator_value=None, epsilon=None,
                 weight_decay=None, *, lr=None, eps=None, lr_decay=None, convention=None,
                 **kwargs):
        conv = _resolve_convention("Adagrad", convention,
                                   _given(lr=lr, eps=eps, lr_decay=lr_decay))
        learning_rate = _alias("Adagrad", "learning_rate", learning_rate, "lr", lr)
        epsilon = _alias("Adagrad", "epsilon", epsilon, "eps", eps)
        super().__init__(_default(learning_rate, conv, 0.001, 0.01), convention=conv, **kwargs)
        self.lr_decay = _check_number("lr_decay", 0.0 if lr_decay is None else lr_decay,
                                      low=0.0)
        self.weight_decay = _check_number("weight_decay", _default(weight_decay, conv, 0.0, 0.0),
                                          low=0.0)
        self.initial_accumulator_value = _check_number(
            "initial_accumulator_value", _default(initial_accumulator_value, conv, 0.1, 0.0),
            low=0.0)
        self.epsilon = _check_number("eps" if eps is not None else "epsilon",
                                     _default(epsilon, conv, 1e-7, 1e-10), low=0.0)

    def _slots(self):
        return ("sum",)

    def _new_state(self, p):
        return {"sum": np.full_like(p, self.initial_accumulator_value)}

    def _update(self, p, g, state, step, lr):
        if self.convention == "keras":
            t = p.dtype.type
            p = self._keras_decay(p, lr)
            s = state["sum"] + g * g
            with np.errstate(divide="ignore", invalid="ignore"):
                return p - (t(lr) * g) / np.sqrt(s + t(self.epsilon)), {"sum": s}
        if self.weight_decay != 0:
            g = g + self.weight_decay * p
        clr = lr / (1 + (step - 1) * self.lr_decay)
        s = state["sum"] + (1.0 * g) * g
        std = np.sqrt(s) + self.epsilon
        with np.errstate(divide="ignore", invalid="ignore"):
            return p + ((-clr) * g) / std, {"sum": s}


# --------------------------------------------------------------------------
# lookup and (de)serialization: allowlist only
# --------------------------------------------------------------------------

OPTIMIZER_REGISTRY = {cls.__name__: cls for cls in (SGD, Adam, AdamW, RMSprop, Adagrad)}
_BY_LOWER = {name.lower(): cls for name, cls in OPTIMIZER_REGISTRY.items()}


def serialize(optimizer):
    """``{"class_name": "Adam", "config": optimizer.get_config()}``."""
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"expected an Optimizer, got {type(optimizer).__name__}")
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config):
    """Build an optimizer from ``{"class_name": ..., "config": {...}}`` (allowlisted
    class names only: SGD, Adam, AdamW, RMSprop, Adagrad)."""
    if not isinstance(config, dict) or set(config) - {"class_name", "config"} \
            or "class_name" not in config:
        raise ValueError("optimizer config must be a dict {'class_name': str, 'config': dict}, "
                         f"got {config!r:.200}")
    name = config["class_name"]
    cls = OPTIMIZER_REGISTRY.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"Unknown optimizer class {name!r:.100}; expected one of "
                         f"{sorted(OPTIMIZER_REGISTRY)}")
    return cls.from_config(config.get("config", {}))


from_config = deserialize


def get(identifier):
    """Return an optimizer from a name, a serialized dict, or an Optimizer instance.

    Parameters
    ----------
    identifier : str, dict or Optimizer
        A name (``"sgd"``, ``"adam"``, ``"adamw"``, ``"rmsprop"``, ``"adagrad"``;
        case-insensitive) builds the optimizer with Keras's defaults and update rules (so
        ``compile(optimizer="rmsprop")`` trains as in Keras: RMSprop lr 0.001, rho 0.9,
        epsilon 1e-7); a dict is :func:`deserialize`'d; an instance is returned as is.

    Example
    -------
    >>> get("rmsprop").get_config()["rho"]
    0.9
    """
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = _BY_LOWER.get(identifier.lower())
        if cls is None:
            raise ValueError(f"Unknown optimizer {identifier!r}; expected one of "
                             f"{sorted(_BY_LOWER)} or an Optimizer instance")
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise TypeError("optimizer must be a string, a dict or an Optimizer instance, "
                    f"got {type(identifier).__name__}")
