"""Batch inference on Dask: score a dask array of sequences on a cluster, lazily.

::

    from dask.distributed import Client, LocalCluster
    import dask.array as da
    import fastrnn as fr

    client = Client(LocalCluster(n_workers=2, threads_per_worker=1))   # or Client("tcp://...")
    model = fr.load_model("model.safetensors")
    x = da.from_zarr("sequences.zarr")            # (N, T, F), chunked along N only
    y = model.predict(x)                          # lazy dask array (N, ...), nothing runs yet
    y.to_zarr("scores.zarr")                      # or y.compute() for a NumPy array

How it works:

* The model is serialised ONCE, on the client, as its safetensors bytes (``fastrnn.io``:
  architecture + weights, no optimizer) and scattered to every worker with
  ``client.scatter(..., broadcast=True)``. No live Python object is pickled: a worker rebuilds
  the model from the bytes (``fastrnn.load_model``, which only instantiates allow-listed layers)
  the first time it needs it and caches it for later chunks.
* Each chunk of ``x`` (a slice of the batch axis) becomes one task that runs
  ``model.predict(chunk, batch_size)`` on the worker. One level of parallelism: a worker runs
  one chunk at a time per model copy and gives the engine as many threads as the worker has
  cores (its ``nthreads``), unless ``threads=`` says otherwise. For a machine with C cores,
  ``LocalCluster(n_workers=C, threads_per_worker=1)`` or ``n_workers=1, threads_per_worker=C``
  both use every core once.
* The result is a dask array chunked along the batch axis like ``x`` (boundaries moved to
  multiples of ``batch_size``), in order, with the dtype a single-process ``model.predict``
  returns and the same values bit for bit: every batch the kernels see is one that the
  single-process call would run.

Token lists (a dask bag, or a dask dataframe column of lists) are not an array yet: pad them
first with :func:`pad_token_lists`, then predict::

    ids = pad_token_lists(bag_of_token_lists, maxlen=200)     # (N, 200) int32, 0 = padding
    y = model.predict(ids)                # with Embedding(mask_zero=True) padding is masked
"""

import hashlib
import os
import tempfile
import threading

import numpy as np

__all__ = ["predict", "pad_token_lists", "model_to_bytes", "model_from_bytes"]


def _dask_array():
    try:
        import dask.array as da
    except ImportError:
        raise ImportError("fastrnn.distributed.predict needs dask: "
                          "pip install 'fastrnn[dask]' (dask[distributed])") from None
    return da


def model_to_bytes(model):
    """The model's safetensors file (architecture and weights, no optimizer) as bytes.

    Parameters
    ----------
    model : fastrnn model

    Returns
    -------
    bytes
        What ``fastrnn.save_model(model, path, include_optimizer=False)`` writes.
    """
    from .. import io
    with tempfile.TemporaryDirectory(prefix="fastrnn-") as tmp:
        path = os.path.join(tmp, "model.safetensors")
        io.save_model(model, path, include_optimizer=False)
        with open(path, "rb") as f:
            return f.read()


def model_from_bytes(data):
    """Rebuild a model from :func:`model_to_bytes` output (validated like any model file).

    Parameters
    ----------
    data : bytes

    Returns
    -------
    fastrnn model (not compiled)
    """
    from .. import io
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    with tempfile.TemporaryDirectory(prefix="fastrnn-") as tmp:
        path = os.path.join(tmp, "model.safetensors")
        with open(path, "wb") as f:
            f.write(data)
        return io.load_model(path, compile=False)


# Worker-side cache: (model key, worker id) -> [model, lock]. One model copy per worker, so
# workers sharing a process (LocalCluster(processes=False)) do not share a model's per-call
# state; the lock serialises the chunks a multi-threaded worker would run at once on it.
_CACHE = {}
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 8          # model copies kept per process; the oldest is dropped first


def _current_worker():
    """(worker id, its nthreads) inside a dask.distributed task, else (None, None)."""
    try:
        from distributed import get_worker
        w = get_worker()
    except (ImportError, ValueError):
        return None, None
    state = getattr(w, "state", None)
    nthreads = getattr(state, "nthreads", None) or getattr(w, "nthreads", None)
    return getattr(w, "address", id(w)), nthreads


def _cached_model(key, payload, worker_id):
    with _CACHE_LOCK:
        entry = _CACHE.get((key, worker_id))
        if entry is None:
            while len(_CACHE) >= _CACHE_SIZE:
                _CACHE.pop(next(iter(_CACHE)))
            entry = _CACHE[(key, worker_id)] = [model_from_bytes(payload), threading.Lock()]
        return entry


def _predict_block(block, payload, key, batch_size, threads, out_tail, out_dtype):
    """One task: predict on one chunk of the batch axis (runs on a worker)."""
    if block.shape[0] == 0:
        return np.empty((0,) + tuple(out_tail), dtype=out_dtype)
    worker_id, nthreads = _current_worker()
    model, lock = _cached_model(key, payload, worker_id)
    n = threads if threads is not None else nthreads
    with lock:
        if n is not None:
            from .._engine.config import set_num_threads
            set_num_threads(int(n))
        return model.predict(np.asarray(block), batch_size=batch_size)


def _aligned_chunks(chunks, batch_size):
    """Batch-axis chunks whose inner boundaries are moved to the nearest multiple of
    ``batch_size``, so that each chunk's batches are the ones a single-process ``predict``
    runs (the kernels' rounding depends on the batch: batch 1 takes a matrix-vector path).
    Unknown sizes (nan) are left alone."""
    if any(np.isnan(c) for c in chunks):
        return chunks
    n = int(sum(chunks))
    cuts = {min(n, max(0, int(round(b / batch_size)) * batch_size))
            for b in np.cumsum(chunks[:-1])}
    bounds = [0] + sorted(cuts - {0, n}) + [n]
    return tuple(int(b - a) for a, b in zip(bounds[:-1], bounds[1:]))


def _client(client):
    if client is False:
        return None
    if client is not None:
        if not callable(getattr(client, "scatter", None)):
            raise TypeError(f"client must be a dask.distributed.Client, None or False, got "
                            f"{type(client).__name__}")
        return client
    try:
        from distributed import default_client
        return default_client()
    except (ImportError, ValueError):
        return None            # no cluster: dask's local scheduler runs the tasks


def predict(model, x, batch_size=32, client=None, threads=None):
    """Lazy inference of ``model`` over a dask array chunked along the batch axis.

    Parameters
    ----------
    model : fastrnn model
        Built (or buildable from ``x``'s shape); its current weights are what the workers use.
    x : dask.array.Array, shape (N, ...) as ``model.predict`` takes it
        Chunked along axis 0; other axes are merged into single chunks if they are split.
        Chunk boundaries that are not multiples of ``batch_size`` are moved to the nearest
        multiple (a rechunk), so that every batch is the one ``model.predict(x.compute(),
        batch_size)`` runs and the values are identical. Unknown chunk sizes (e.g. from
        :func:`pad_token_lists`) are kept as they are: values then agree to rounding.
    batch_size : int
        ``model.predict``'s batch size inside each chunk.
    client : dask.distributed.Client, None or False
        None (default): the current client (``distributed.default_client()``) if there is
        one, else dask's local schedulers run the tasks in this process; False: the local
        schedulers even when a client exists. Compute the result where it was made: the
        scattered model lives on that client's cluster.
    threads : int, optional
        Engine threads per task. Default: the worker's ``nthreads`` (its cores).

    Returns
    -------
    dask.array.Array, shape (N, ...) of the model output, dtype of ``model.predict``
        Lazy, in the order of ``x``.

    Example
    -------
    >>> y = fastrnn.distributed.predict(model, da.from_array(x, chunks=(1000, -1, -1)))
    >>> y.compute()                                            # doctest: +SKIP
    """
    da = _dask_array()
    if not isinstance(x, da.Array):
        raise TypeError(f"x must be a dask.array.Array, got {type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(f"x must have a batch axis and at least one more, got shape {x.shape}")
    if any(np.isnan(s) for s in x.shape[1:]):
        raise ValueError(f"x must have known sizes on every axis but the batch axis, got shape "
                         f"{x.shape}")
    if x.dtype.kind not in "biuf":
        raise TypeError(f"x must be a numeric array, got dtype {x.dtype}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(
            threads, (int, np.integer)) or threads <= 0):
        raise ValueError(f"threads must be a positive int or None, got {threads!r}")
    if any(len(c) > 1 for c in x.chunks[1:]):
        x = x.rechunk({i: -1 for i in range(1, x.ndim)})
    aligned = _aligned_chunks(x.chunks[0], int(batch_size))
    if aligned != x.chunks[0]:
        x = x.rechunk({0: aligned})
    # output shape and dtype from one zero sample, locally (this also builds an unbuilt model)
    probe = model.predict(np.zeros((1,) + tuple(int(s) for s in x.shape[1:]), dtype=x.dtype))
    out_tail, out_dtype = probe.shape[1:], probe.dtype
    payload = model_to_bytes(model)
    key = hashlib.sha256(payload).hexdigest()
    client = _client(client)
    if client is not None:
        payload = client.scatter(payload, broadcast=True, hash=False)
    ndim_out = 1 + len(out_tail)
    kw = {}
    if ndim_out < x.ndim:
        kw["drop_axis"] = list(range(ndim_out, x.ndim))
    elif ndim_out > x.ndim:
        kw["new_axis"] = list(range(x.ndim, ndim_out))
    return da.map_blocks(_predict_block, x, payload, key, int(batch_size), threads,
                         tuple(out_tail), out_dtype,
                         chunks=(x.chunks[0],) + tuple((int(s),) for s in out_tail),
                         dtype=out_dtype, meta=np.empty((0,) * ndim_out, dtype=out_dtype),
                         token="fastrnn-predict", **kw)


def _pad_partition(seqs, maxlen, dtype, padding, truncating, value):
    seqs = list(seqs)
    out = np.full((len(seqs), maxlen), value, dtype=dtype)
    for i, s in enumerate(seqs):
        s = np.asarray(s if s is not None else [], dtype=dtype).ravel()
        s = s[:maxlen] if truncating == "post" else s[max(0, s.size - maxlen):]
        if padding == "post":
            out[i, :s.size] = s
        else:
            out[i, maxlen - s.size:] = s
    return out


def pad_token_lists(sequences, maxlen, dtype="int32", padding="post", truncating="post",
                    value=0):
    """Padding step: a dask bag (or dask dataframe column) of token-id lists -> dask array.

    Every sequence is cut or padded to ``maxlen`` ids, Keras ``pad_sequences`` style, one
    partition per chunk (the chunk sizes stay unknown until computed; nothing is read now).
    With the default post-padding by 0 and ``Embedding(mask_zero=True)`` as the first layer,
    the padding is masked and each row's prediction equals that of its unpadded sequence.

    Parameters
    ----------
    sequences : dask.bag.Bag or dask.dataframe.Series
        Elements are sequences of integer token ids (lists, tuples, 1-D arrays).
    maxlen : int
        Length of every output row.
    dtype : str or numpy dtype
    padding, truncating : "post" or "pre"
        Where padding is added and where long sequences are cut.
    value : int
        The padding id.

    Returns
    -------
    dask.array.Array, shape (N, maxlen)
        One chunk per partition (sizes ``nan`` until computed; ``.compute_chunk_sizes()``
        makes them known).

    Example
    -------
    >>> import dask.bag as db
    >>> ids = pad_token_lists(db.from_sequence([[3, 4], [5]], npartitions=1), maxlen=3)
    >>> ids.compute()
    array([[3, 4, 0],
           [5, 0, 0]], dtype=int32)
    """
    da = _dask_array()
    import dask
    if isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)) or maxlen <= 0:
        raise ValueError(f"maxlen must be a positive int, got {maxlen!r}")
    if padding not in ("post", "pre"):
        raise ValueError(f"padding must be 'post' or 'pre', got {padding!r}")
    if truncating not in ("post", "pre"):
        raise ValueError(f"truncating must be 'post' or 'pre', got {truncating!r}")
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu":
        raise TypeError(f"dtype must be an integer dtype, got {dtype}")
    if not hasattr(sequences, "to_delayed") or not hasattr(sequences, "npartitions"):
        raise TypeError(f"sequences must be a dask bag or dask dataframe column, got "
                        f"{type(sequences).__name__}")
    # a bag partition is a list of sequences, a dataframe column partition a pandas Series:
    # both iterate over the sequences
    pad = dask.delayed(_pad_partition, pure=True)
    parts = [da.from_delayed(pad(p, int(maxlen), dtype, padding, truncating, value),
                             shape=(np.nan, int(maxlen)), dtype=dtype)
             for p in sequences.to_delayed()]
    return da.concatenate(parts, axis=0)
