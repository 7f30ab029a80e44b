"""Data-parallel training over MPI (mpi4py), the Horovod design.

Run one process per core group or node with ``mpiexec -n N python train.py``; every rank builds
the same model, loads ITS OWN shard of the data and calls::

    model.fit(x_shard, y_shard, batch_size=b, epochs=e, distributed="mpi")

What happens (``fit`` asks an :class:`MPIContext` at a few fixed points):

* **Start**: the ranks check that they agree on the model's parameters (names, shapes, dtypes),
  the number of steps per epoch, the epochs and whether there is validation data (a mismatch
  raises on every rank); rank 0 broadcasts its weights and its optimizer state (slots, step
  counts, hyperparameters), so every rank starts from rank 0's model even when only rank 0
  loaded a checkpoint. Dropout layers get one random stream per rank (rank 0 keeps the stream a
  single process would use, rank r > 0 a stream derived from the seed and r).
* **Every step**: each rank runs forward and backward on its local batch; the gradients go into
  ONE flat contiguous buffer together with the rank's loss, both multiplied by the rank's loss
  weight ``w_r`` (the number of positions its loss averages over: samples, or valid time steps
  of a masked sequence output), and the buffer is summed with one in-place ``Allreduce``
  (split into buckets of ``bucket_bytes`` when larger). Dividing by ``sum(w_r)`` gives exactly
  the gradient and loss of one step on the concatenation of the ranks' batches, however uneven
  the batches are (a model with several outputs sums the per-output counts first, in a tiny
  Allreduce before backward, because its losses count positions differently; see
  :meth:`MPIContext.before_backward`). Every rank then applies the same optimizer step (clipping such as
  ``global_clipnorm`` acts on the averaged gradient; a non-finite loss or gradient on any rank
  makes every rank skip the step). Rank 0's learning rate is broadcast before the step, so a
  callback may change it.
* **Callbacks run on rank 0 only** (progress printing, checkpoints, CSV logs, early stopping);
  the other ranks train silently with their History. Rank 0's ``stop_training`` (set by
  ``EarlyStopping``, ``TerminateOnNaN``...) is broadcast after every batch and every epoch, and
  rank 0's weights once more at the end (``restore_best_weights``).
* **Logs**: the epoch loss and metrics, and the validation loss and metrics (each rank
  evaluates its own validation shard), are summed over the ranks, so ``History`` holds the
  values a single process would log for the concatenated data.
* **Errors**: an exception on any rank prints its traceback and calls ``Abort`` on the
  communicator, so every rank exits non-zero instead of waiting forever in a collective.

Every rank must run the same number of steps per epoch: choose per-rank ``batch_size`` values
(they may differ) or trim the shards so that ``ceil(len(shard) / batch_size)`` agrees.
"""

import contextlib
import math
import os
import sys
import time
import traceback
import weakref

import numpy as np

__all__ = ["MPIContext", "loss_weight", "broadcast_model", "DEFAULT_BUCKET_BYTES"]

#: Allreduce message size above which the flat gradient buffer is reduced in several buckets
#: (Horovod's default fusion buffer is 64 MiB). ``FASTRNN_MPI_BUCKET_BYTES`` overrides it.
DEFAULT_BUCKET_BYTES = 64 * 1024 * 1024


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError("distributed='mpi' needs mpi4py and an MPI library: "
                          "pip install 'fastrnn[mpi]' mpich (or use your cluster's MPI)") from None
    return MPI


def loss_weight(output, mask=None):
    """The number of positions a fastrnn loss averages over for one batch.

    A loss is the mean over every position of ``output.shape[:-1]`` (batch, and time for
    sequence outputs), or over the valid steps only when a (B, T) ``mask`` reaches a sequence
    output. Weighting each rank's mean by this count and dividing the sum by the total makes
    the average over ranks equal the loss of the concatenated batches.

    Parameters
    ----------
    output : ndarray, shape (B, C) or (B, T, C)
        The model output of the batch.
    mask : ndarray of bool, shape (B, T), optional

    Returns
    -------
    float
    """
    shape = np.shape(output)
    if mask is not None and len(shape) >= 3:
        return float(np.count_nonzero(mask))
    return float(math.prod(shape[:-1])) if len(shape) >= 2 else 1.0


def _param_signature(model):
    return tuple((name, tuple(a.shape), a.dtype.str) for name, a in model.params())


def _iter_layers(model):
    """Every layer, including those wrapped by other layers (Bidirectional...)."""
    stack = list(getattr(model, "layers", []))
    seen = set()
    while stack:
        layer = stack.pop(0)
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        yield layer
        for attr in ("layer", "forward_layer", "backward_layer"):
            inner = getattr(layer, attr, None)
            if inner is not None and hasattr(inner, "params"):
                stack.append(inner)


class MPIContext:
    """What the training loop asks when it runs data-parallel over an MPI communicator.

    Obtain it with ``fastrnn.distributed.get_context("mpi")`` (or pass ``distributed="mpi"``);
    one context exists per communicator.

    Attributes
    ----------
    comm : mpi4py.MPI.Comm
    rank, size : int
    is_chief : bool
        True on rank 0, the rank that prints, runs callbacks and writes checkpoints.
    bucket_bytes : int
        Largest ``Allreduce`` message; a bigger gradient buffer is reduced in several buckets.
    stats : dict
        Running totals: ``steps``, ``allreduce_calls``, ``allreduce_bytes``,
        ``allreduce_seconds`` (time inside Allreduce, including waiting for slower ranks),
        ``control_seconds`` (the small broadcasts of the learning rate and stop flag).
    """

    _instances = {}

    def __init__(self, comm):
        self.MPI = _mpi()
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        env = os.environ.get("FASTRNN_MPI_BUCKET_BYTES")
        self.bucket_bytes = int(env) if env else DEFAULT_BUCKET_BYTES
        if self.bucket_bytes < 8:
            raise ValueError(f"FASTRNN_MPI_BUCKET_BYTES must be >= 8, got {self.bucket_bytes}")
        self._buffers = {}
        self._synced = weakref.WeakKeyDictionary()   # models whose state was broadcast once
        self.reset_stats()

    @classmethod
    def world(cls):
        """The context over ``MPI.COMM_WORLD``."""
        return cls.for_comm(_mpi().COMM_WORLD)

    @classmethod
    def for_comm(cls, comm):
        """The context over ``comm`` (one per communicator)."""
        key = id(comm)
        ctx = cls._instances.get(key)
        if ctx is None or ctx.comm is not comm:
            ctx = cls._instances[key] = cls(comm)
        return ctx

    @property
    def is_chief(self):
        return self.rank == 0

    def reset_stats(self):
        """Zero the counters in :attr:`stats`."""
        self.stats = {"steps": 0, "allreduce_calls": 0, "allreduce_bytes": 0,
                      "allreduce_seconds": 0.0, "control_seconds": 0.0}

    def __repr__(self):
        return f"MPIContext(rank={self.rank}, size={self.size})"

    # ---- errors -------------------------------------------------------------------------
    @contextlib.contextmanager
    def guard(self):
        """Run a block; if it raises on this rank, print the traceback and ``Abort`` the
        communicator so that the other ranks, possibly waiting in a collective, exit too.
        With a single rank the exception simply propagates."""
        try:
            yield self
        except GeneratorExit:
            raise
        except BaseException:
            if self.size == 1:
                raise
            sys.stdout.flush()
            sys.stderr.write(f"fastrnn: rank {self.rank} of {self.size} failed; aborting all "
                             f"ranks\n{traceback.format_exc()}")
            sys.stderr.flush()
            self.comm.Abort(1)
            raise            # not reached: Abort does not return

    # ---- state ----------------------------------------------------------------------------
    def _bcast_arrays(self, arrays):
        """Broadcast rank 0's values of ``arrays`` into every rank's arrays, one message per
        dtype."""
        by_dtype = {}
        for a in arrays:
            by_dtype.setdefault(a.dtype.str, []).append(a)
        for dt, group in by_dtype.items():
            n = sum(a.size for a in group)
            buf = np.empty(n, dtype=np.dtype(dt))
            if self.rank == 0:
                np.concatenate([a.ravel() for a in group], out=buf)
            self.comm.Bcast(buf, root=0)
            if self.rank != 0:
                off = 0
                for a in group:
                    a[...] = buf[off:off + a.size].reshape(a.shape)
                    off += a.size

    def check_agreement(self, what, value):
        """Raise the same ValueError on every rank unless every rank passed an equal
        ``value``."""
        values = self.comm.allgather(value)
        if any(v != values[0] for v in values[1:]):
            raise ValueError(f"distributed: the ranks disagree on {what}: "
                             + ", ".join(f"rank {r}: {v}" for r, v in enumerate(values)))

    def broadcast_model(self, model):
        """Make every rank's weights and optimizer state equal rank 0's."""
        self.check_agreement("the model parameters (name, shape, dtype)",
                             _param_signature(model))
        self._bcast_arrays([a for _, a in model.params()])
        opt = getattr(model, "optimizer", None)
        if opt is not None and callable(getattr(opt, "get_state", None)):
            # hyperparameters (JSON-able) and slot arrays: plain data, pickled by mpi4py
            state = self.comm.bcast(opt.get_state() if self.rank == 0 else None, root=0)
            if self.rank != 0:
                opt.set_state(state[0], state[1], params=dict(model.params()))
        model.stop_training = False

    def _seed_dropout(self, model):
        """One random stream per rank for every dropout draw (Dropout layers, recurrent layers'
        ``dropout`` / ``recurrent_dropout``): identical masks on every rank would make the
        data-parallel step differ from a step on the concatenated batch in a way no single
        process ever produces. Rank 0 keeps its own streams."""
        if self.rank == 0:
            return
        from ..layers.dropout import Dropout
        base_seed = getattr(model, "seed", None)
        for i, layer in enumerate(_iter_layers(model)):
            seed = layer.seed if getattr(layer, "seed", None) is not None else base_seed

            def stream(tag):
                entropy = None if seed is None else [int(seed), i, self.rank, tag]
                return np.random.default_rng(np.random.SeedSequence(entropy))
            if isinstance(layer, Dropout):
                layer._gen = stream(0xD0)
            elif hasattr(layer, "_drop_gen") and (getattr(layer, "dropout", 0)
                                                  or getattr(layer, "recurrent_dropout", 0)):
                layer._drop_gen = stream(0xD12)

    def ensure_synced(self, model):
        """Broadcast rank 0's model the first time this context trains ``model``."""
        if model not in self._synced:
            self.broadcast_model(model)
            self._seed_dropout(model)
            self._synced[model] = True

    # ---- fit lifecycle ----------------------------------------------------------------------
    def begin_fit(self, model, steps, epochs, initial_epoch, has_validation, verbose, callbacks):
        """Called by ``fit`` before the first epoch. Checks that the ranks agree, broadcasts
        rank 0's model, and returns the ``(verbose, callbacks)`` this rank runs with: rank 0
        keeps them, the other ranks run silently without user callbacks."""
        self.check_agreement("(steps per epoch, epochs, initial_epoch, validation data given)",
                             (int(steps), int(epochs), int(initial_epoch), bool(has_validation)))
        self.broadcast_model(model)
        if model not in self._synced:
            self._seed_dropout(model)
            self._synced[model] = True
        if self.rank == 0:
            return verbose, callbacks
        return 0, None

    def sync_control(self, model):
        """Broadcast rank 0's ``stop_training`` flag and learning rate to every rank."""
        if self.size == 1:
            return model.stop_training
        t0 = time.perf_counter()
        opt = self._settable_optimizer(model)
        buf = np.zeros(2, dtype=np.float64)
        if self.rank == 0:
            buf[0] = 1.0 if model.stop_training else 0.0
            if opt is not None:
                buf[1] = float(opt.learning_rate)
        self.comm.Bcast(buf, root=0)
        if self.rank != 0:
            model.stop_training = bool(buf[0])
            if opt is not None and float(opt.learning_rate) != buf[1]:
                opt.learning_rate = float(buf[1])
        self.stats["control_seconds"] += time.perf_counter() - t0
        return model.stop_training

    @staticmethod
    def _settable_optimizer(model):
        """The model's optimizer when its learning rate is a plain number rank 0 may change
        (a schedule gives the same value on every rank: same step count)."""
        opt = getattr(model, "optimizer", None)
        if opt is None or getattr(opt, "learning_rate_schedule", None) is not None:
            return None
        return opt

    def _sync_learning_rate(self, model):
        opt = self._settable_optimizer(model)
        if opt is None or self.size == 1:
            return
        t0 = time.perf_counter()
        buf = np.array([float(opt.learning_rate) if self.rank == 0 else 0.0])
        self.comm.Bcast(buf, root=0)
        if self.rank != 0 and float(opt.learning_rate) != buf[0]:
            opt.learning_rate = float(buf[0])
        self.stats["control_seconds"] += time.perf_counter() - t0

    def _buffer(self, dtype, n):
        key = (np.dtype(dtype).str, n)
        buf = self._buffers.get(key)
        if buf is None:
            self._buffers.clear()          # a model changes size rarely: keep one buffer
            buf = self._buffers[key] = np.empty(n, dtype=dtype)
        return buf

    def allreduce_(self, buf):
        """Sum ``buf`` (1-D, contiguous) over the ranks in place, in buckets of at most
        :attr:`bucket_bytes`."""
        MPI = self.MPI
        step = max(1, self.bucket_bytes // buf.itemsize)
        t0 = time.perf_counter()
        for a in range(0, buf.size, step):
            self.comm.Allreduce(MPI.IN_PLACE, buf[a:a + step], op=MPI.SUM)
            self.stats["allreduce_calls"] += 1
        self.stats["allreduce_seconds"] += time.perf_counter() - t0
        self.stats["allreduce_bytes"] += buf.nbytes

    def _outputs_with_loss(self, model, output, mask):
        """[(k, output_k, mask_k)] of the outputs that have a loss."""
        outs = output if isinstance(output, list) else [output]
        masks = mask if isinstance(mask, list) else [mask] * len(outs)
        losses = getattr(model, "_losses", None) or [True] * len(outs)
        return [(k, o, m) for k, (o, m) in enumerate(zip(outs, masks))
                if k >= len(losses) or losses[k] is not None]

    def before_backward(self, model, d_outputs, output, mask):
        """The hook between the loss and backward.

        With one output nothing happens here: :meth:`reduce` weights the gradients after
        backward. With several outputs each loss has its own count of positions, mixed
        together in the parameter gradients, so the counts are summed over the ranks first (a
        small Allreduce) and each output gradient is scaled by ``n_k,rank / N_k``; backward
        then yields this rank's share of the global gradient and :meth:`reduce` only sums.
        """
        active = self._outputs_with_loss(model, output, mask)
        if not isinstance(d_outputs, list) or len(active) <= 1:
            self._counts = None
            return d_outputs
        local = np.array([loss_weight(o, m) for _, o, m in active], dtype=np.float64)
        total = local.copy()
        if self.size > 1:
            self.comm.Allreduce(self.MPI.IN_PLACE, total, op=self.MPI.SUM)
        d = list(d_outputs)
        for (k, _, _), n, tot in zip(active, local, total):
            if d[k] is not None:
                scale = d[k].dtype.type(n / tot) if tot > 0 else d[k].dtype.type(0)
                d[k] = d[k] * scale
        self._counts = (active, local, total)
        return d

    def reduce(self, model, items, parts, output, mask):
        """Average one step's gradients over the ranks (the hook between backward and the
        optimizer step).

        Parameters
        ----------
        model : the model being trained (its optimizer's learning rate is synchronised)
        items : list of (name, param, grad)
            This rank's gradients of its local loss.
        parts : list of float or None
            This rank's mean loss per output on its local batch (may be non-finite).
        output, mask : the batch's model output(s) and output mask(s)

        Returns
        -------
        (items, loss, parts)
            The same names and parameters with the gradients of the loss of the concatenated
            batches (views into one flat buffer, valid until the next step), that total loss
            and its per-output parts.
        """
        self._sync_learning_rate(model)
        active = self._outputs_with_loss(model, output, mask)
        parts = list(parts)
        counts = getattr(self, "_counts", None)
        presummed = counts is not None
        if presummed:
            w = 1.0                               # gradients already scaled in before_backward
            local = counts[1]
        else:
            w = loss_weight(active[0][1], active[0][2]) if active else 1.0
            local = np.array([w])
        dtype = np.result_type(*[g.dtype for _, _, g in items]) if items else np.float64
        n = sum(g.size for _, _, g in items)
        K = len(local)
        buf = self._buffer(dtype, n + 2 * K)
        off = 0
        for _, _, g in items:
            if w == 1.0:
                buf[off:off + g.size] = np.ravel(g)
            else:
                np.multiply(np.ravel(g), w, out=buf[off:off + g.size])
            off += g.size
        part_idx = [k for k, _, _ in active] if presummed else [active[0][0] if active else 0]
        with np.errstate(invalid="ignore", over="ignore"):
            for j, (k, nk) in enumerate(zip(part_idx, local)):
                value = parts[k] if k < len(parts) and parts[k] is not None else 0.0
                buf[n + 2 * j] = nk * value
                buf[n + 2 * j + 1] = nk
        self.allreduce_(buf)
        sums = buf[n:].astype(np.float64)
        if not presummed:
            total = float(sums[1])
            if total > 0:
                np.divide(buf[:n], buf.dtype.type(total), out=buf[:n])
            else:                 # no valid position anywhere (all masked): loss 0, no push
                buf[:n] = 0
        new_parts = list(parts)
        for j, k in enumerate(part_idx):
            s, c = float(sums[2 * j]), float(sums[2 * j + 1])
            new_parts[k] = s / c if c > 0 else (s if not math.isfinite(s) else 0.0)
        if presummed:
            lw = getattr(model, "_loss_weights", None) or [1.0] * len(new_parts)
            loss = sum(lw[k] * new_parts[k] for k in part_idx)
        else:
            loss = new_parts[0]
        out, off = [], 0
        for name, p, g in items:
            out.append((name, p, buf[off:off + g.size].reshape(np.shape(g))))
            off += g.size
        self.stats["steps"] += 1
        return out, float(loss), new_parts

    def _reduce_sums(self, values):
        buf = np.asarray(values, dtype=np.float64)
        if self.size > 1:
            self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        return buf

    def global_logs(self, model, logs, n):
        """Logs over all ranks from this rank's ``logs`` over its ``n`` samples: loss entries
        (running means over the samples) become sample-weighted means over the ranks, metrics
        are recomputed from their summed running states (and left in that global state).
        Called at the end of each epoch for the training and the validation logs."""
        slots = getattr(model, "_metric_slots", None)
        if slots is None:
            slots = [(0, m, m.name) for m in getattr(model, "compiled_metrics", [])]
        metrics = {log: m for _, m, log in slots
                   if hasattr(m, "_total") and hasattr(m, "_count")}
        loss_keys = [k for k in logs if k not in metrics]
        vals = [float(n)] + [float(logs[k]) * n for k in loss_keys]
        for m in metrics.values():
            vals += [float(m._total), float(m._count)]
        s = self._reduce_sums(vals)
        seen = s[0]
        out = {}
        for i, k in enumerate(loss_keys):
            out[k] = float(s[1 + i] / seen) if seen else 0.0
        base = 1 + len(loss_keys)
        for i, (log, m) in enumerate(metrics.items()):
            m._total, m._count = float(s[base + 2 * i]), int(round(s[base + 2 * i + 1]))
            out[log] = m.result()
        return {k: out.get(k, v) for k, v in logs.items()}

    def end_fit(self, model):
        """Called after the last epoch: every rank ends with rank 0's weights (callbacks such
        as ``EarlyStopping(restore_best_weights=True)`` change them on rank 0 only)."""
        if self.size > 1:
            self._bcast_arrays([a for _, a in model.params()])


def broadcast_model(model, distributed="mpi"):
    """Copy rank 0's weights and optimizer state to every rank (call it on every rank).

    ``fit(..., distributed=...)`` does this at its start and ``train_on_batch`` on its first
    call for a model; call it yourself after changing the weights of a model between
    distributed ``train_on_batch`` calls.

    Parameters
    ----------
    model : a fastrnn model
    distributed : "mpi", an mpi4py communicator or an :class:`MPIContext`
    """
    from . import get_context
    ctx = get_context(distributed)
    with ctx.guard():
        ctx.broadcast_model(model)
        ctx._synced[model] = True
