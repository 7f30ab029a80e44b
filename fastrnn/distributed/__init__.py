"""Beyond one machine: batch inference on Dask, data-parallel training over MPI.

Two optional extras plug fastrnn into engines that CPU clusters already run; fastrnn has no
transport of its own.

* ``pip install "fastrnn[dask]"`` -- :func:`predict` scores a ``dask.array`` chunked along the
  batch axis on a Dask cluster (``LocalCluster`` or any ``Client``) and returns a lazy
  ``dask.array``; ``model.predict(dask_array)`` dispatches to it. The model travels as its
  safetensors bytes (``fastrnn.io``), never as a pickle of live objects. Token lists in a dask
  bag or dataframe column become a padded array with :func:`pad_token_lists`.
  See :mod:`fastrnn.distributed.dask`.
* ``pip install "fastrnn[mpi]"`` (plus an MPI: ``pip install mpich``) --
  ``model.fit(x_shard, y_shard, ..., distributed="mpi")`` and ``model.train_on_batch(...,
  distributed="mpi")`` train data-parallel under ``mpiexec``: one ``Allreduce`` of one flat
  gradient buffer per step, weighted by every rank's batch so the step equals one step on the
  concatenated batches. See :mod:`fastrnn.distributed.mpi`.

This package imports neither dask nor mpi4py until one of them is used, so ``import fastrnn``
stays numpy + scipy only.
"""

import functools

__all__ = ["predict", "pad_token_lists", "get_context", "is_dask_array", "entry_point"]


def is_dask_array(x):
    """True when ``x`` is a ``dask.array.Array`` (checked without importing dask)."""
    cls = type(x)
    return cls.__name__ == "Array" and cls.__module__.split(".")[:2] == ["dask", "array"]


def predict(model, x, batch_size=32, client=None, threads=None):
    """Lazy batch inference of ``model`` over a dask array; see
    :func:`fastrnn.distributed.dask.predict` (the full documentation)."""
    from . import dask as _dask
    return _dask.predict(model, x, batch_size=batch_size, client=client, threads=threads)


def pad_token_lists(sequences, maxlen, **kwargs):
    """Padding step from a dask bag / dataframe column of token lists to a dask array; see
    :func:`fastrnn.distributed.dask.pad_token_lists`."""
    from . import dask as _dask
    return _dask.pad_token_lists(sequences, maxlen, **kwargs)


def get_context(distributed):
    """The distributed-training context for the ``distributed=`` argument of ``fit`` and
    ``train_on_batch``.

    Parameters
    ----------
    distributed : "mpi", an mpi4py communicator, or a context returned by this function
        ``"mpi"`` trains over ``MPI.COMM_WORLD``; a communicator (e.g. from ``Split``) trains
        over that group of ranks.

    Returns
    -------
    fastrnn.distributed.mpi.MPIContext

    Example
    -------
    >>> ctx = get_context("mpi")                     # doctest: +SKIP
    >>> model.fit(x_shard, y_shard, distributed=ctx)  # doctest: +SKIP
    """
    from . import mpi as _mpi
    if isinstance(distributed, _mpi.MPIContext):
        return distributed
    if isinstance(distributed, str):
        if distributed.lower() != "mpi":
            raise ValueError(f"distributed must be 'mpi', an mpi4py communicator or None, got "
                             f"{distributed!r}")
        return _mpi.MPIContext.world()
    if hasattr(distributed, "Allreduce") and hasattr(distributed, "Get_rank"):
        return _mpi.MPIContext.for_comm(distributed)
    raise TypeError(f"distributed must be 'mpi', an mpi4py communicator or None, got "
                    f"{type(distributed).__name__}")


def entry_point(method):
    """Decorator for the model methods that take ``distributed=``: resolves the argument to a
    context (passed on as ``distributed=``) and runs the method under the context's guard,
    which aborts every rank when this one raises, so that no rank waits forever in a
    collective. Without ``distributed`` the method runs unchanged."""
    @functools.wraps(method)
    def wrapper(self, *args, distributed=None, **kwargs):
        if distributed is None:
            return method(self, *args, **kwargs)
        ctx = get_context(distributed)
        with ctx.guard():
            return method(self, *args, distributed=ctx, **kwargs)
    return wrapper
