"""Safe saving and loading of models: the safetensors file layout, no pickle.

File layout (the safetensors format, readable by any safetensors reader)::

    8 bytes     N, the header length, little-endian unsigned 64-bit
    N bytes     UTF-8 JSON object:
                  {"__metadata__": {str: str, ...},
                   "<tensor name>": {"dtype": "F32", "shape": [d0, d1, ...],
                                     "data_offsets": [begin, end]}, ...}
                padded with spaces to a multiple of 8 bytes
    rest        the tensors' raw little-endian C-order bytes; offsets are relative to the
                start of this section, contiguous, non-overlapping and cover it exactly

A fastrnn model file stores the weights as ``layers.{i}.{param}``, the optimizer slots as
``optimizer.{slot}.{param_name}`` and, in ``__metadata__`` (all values strings):
``format`` ("fastrnn"), ``format_version``, ``fastrnn_version``, ``kind`` ("model" or
"weights"), ``architecture`` (``model.get_config()`` as JSON), ``optimizer`` (serialized
optimizer config as JSON, when saved), ``compile`` (loss/metrics as JSON, when the model
provides them) and ``checksum`` ("sha256:<hex>" over the canonical header and the data).

Loading is defensive: the whole header is validated before any tensor is allocated (header
length bound, UTF-8 JSON object without duplicate keys, known dtypes, non-negative integer
shapes, offsets contiguous and covering exactly the data section, sizes matching the file),
the architecture is rebuilt only from the layer allowlist (``fastrnn.layers.LAYER_REGISTRY``)
and the model classes registered in :data:`MODEL_REGISTRY` (nothing named in a file is ever
imported or evaluated; this module never imports the training loop: the models register
themselves), every parameter name, shape and dtype
must match the rebuilt model, and the checksum must match.  Memory is bounded by the file
size: at most ``MAX_TENSORS`` tensors (counted before the JSON is parsed), a budget of JSON
structure per declared tensor for the header and every JSON document in the metadata; for
Sequential models of the core layers every weight the architecture will allocate must be in
the file with exactly its shape and dtype *before* any layer is built, and for every model
the layers are built without computing initial values (they are overwritten from the file)
within a parameter budget of a small multiple of the file's weight bytes, refused before an
over-budget array is allocated.  A file whose metadata says ``format: fastrnn`` must carry
its checksum (fastrnn always writes one: a missing one means the file was altered).
Optimizer step counters above ``MAX_STEP_COUNT`` are refused.  Every problem with the file
content raises :class:`ModelFileError` (a ``ValueError``) saying what was wrong, what was
expected and what was found; OS errors (missing file, permissions) propagate unchanged.

Saving is atomic: the file is written to a temporary file in the same folder, flushed,
``fsync``-ed and moved over the target with ``os.replace``; on any failure the temporary file
is removed and a previous file at ``path`` is left untouched.  Temp files are named
``.{name}.fastrnn-tmp-{pid}-{random}.tmp``; one left behind by a killed process (kill -9) is
removed by the next save of the same path.
"""

import hashlib
import json
import math
import os
import re
import tempfile

import numpy as np

__all__ = [
    "ModelFileError",
    "FormatError",
    "save_model",
    "load_model",
    "save_weights",
    "load_weights",
    "write_tensors",
    "read_tensors",
    "read_header",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_HEADER_BYTES",
    "MAX_TENSORS",
    "MODEL_REGISTRY",
    "register_model",
]

FORMAT_NAME = "fastrnn"
FORMAT_VERSION = "1"
MAX_HEADER_BYTES = 100 * 1024 * 1024   # the reference safetensors reader's bound
# At most this many tensors in one file: a fastrnn model with 1000 recurrent layers and Adam
# state holds about 12,000. Checked on the raw header bytes before the JSON is parsed, so a
# legal-looking header of millions of empty tensors costs nothing to refuse.
MAX_TENSORS = 16384
# JSON structure (objects, arrays, ':' and ',' outside strings) allowed per tensor, plus a
# fixed allowance: a tensor entry needs about 12 (43 with 32 dimensions). Parsing costs up to
# ~75 bytes of Python objects per structural token, so this bounds the parser's memory before
# it runs, for the header and for every JSON document in the metadata.
_JSON_TOKENS_PER_TENSOR = 48
_JSON_TOKENS_BASE = 65536
# Step counters (optimizer iterations) above this are refused: they cannot come from real
# training, and 2**63 - 1 overflowed int64 at the next save.
MAX_STEP_COUNT = 2 ** 53
_CHECKSUM_KEY = "checksum"

# safetensors dtype names <-> little-endian numpy dtypes
_DTYPES = {
    "F16": np.dtype("<f2"), "F32": np.dtype("<f4"), "F64": np.dtype("<f8"),
    "I8": np.dtype("i1"), "I16": np.dtype("<i2"), "I32": np.dtype("<i4"), "I64": np.dtype("<i8"),
    "U8": np.dtype("u1"), "U16": np.dtype("<u2"), "U32": np.dtype("<u4"), "U64": np.dtype("<u8"),
}
_NAMES = {(dt.kind, dt.itemsize): name for name, dt in _DTYPES.items()}


class ModelFileError(ValueError):
    """A model or tensor file is malformed, corrupted, or does not match the model."""


FormatError = ModelFileError


# ==========================================================================================
# lower layer: tensors + string metadata <-> file
# ==========================================================================================

def _dtype_name(arr, name):
    dt = arr.dtype
    key = (dt.kind, dt.itemsize)
    if dt.kind not in "fiu" or key not in _NAMES:
        raise TypeError(f"tensor {name!r}: dtype {dt} cannot be stored; expected one of "
                        "float16/32/64, int8/16/32/64, uint8/16/32/64")
    return _NAMES[key]


def _canonical(header):
    """The header without the checksum entry, as canonical JSON bytes (hashed)."""
    h = dict(header)
    meta = dict(h.get("__metadata__") or {})
    meta.pop(_CHECKSUM_KEY, None)
    h["__metadata__"] = meta
    return json.dumps(h, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _prepare(tensors, metadata):
    """Validate inputs and return (header dict without checksum, list of LE C-order arrays)."""
    if not isinstance(tensors, dict):
        raise TypeError(f"tensors must be a dict name -> ndarray, got {type(tensors).__name__}")
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict str -> str, got {type(metadata).__name__}")
    for k, v in metadata.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"metadata keys and values must be strings (safetensors), got "
                            f"{k!r}: {type(v).__name__}")
    header = {"__metadata__": dict(metadata)}
    arrays = []
    offset = 0
    for name, arr in tensors.items():
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ValueError(f"tensor names must be non-empty strings other than "
                             f"'__metadata__', got {name!r}")
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"tensor {name!r} must be a numpy ndarray, got {type(arr).__name__}")
        dname = _dtype_name(arr, name)
        le = np.ascontiguousarray(arr, dtype=_DTYPES[dname])
        header[name] = {"dtype": dname, "shape": [int(d) for d in arr.shape],
                        "data_offsets": [offset, offset + le.nbytes]}
        offset += le.nbytes
        arrays.append(le)
    return header, arrays


def _encode_header(header):
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode("utf-8")
    raw += b" " * (-len(raw) % 8)   # align the data section to 8 bytes, like safetensors
    return len(raw).to_bytes(8, "little") + raw


_TMP_TAG = ".fastrnn-tmp-"


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True            # exists (someone else's) or cannot tell: leave its file alone
    return True


def _remove_stale_temps(folder, base):
    """Delete temp files an earlier save of ``base`` left behind when its process was killed
    (kill -9, power loss). Temp names are ``.{base}.fastrnn-tmp-{pid}-{random}``: a file whose
    writer process no longer runs is stale; files of running processes (a concurrent save)
    are kept."""
    prefix = f".{base}{_TMP_TAG}"
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if not name.startswith(prefix):
            continue
        pid = name[len(prefix):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or _pid_alive(int(pid)):
            continue
        try:
            full = os.path.join(folder, name)
            if os.path.isfile(full) and not os.path.islink(full):
                os.unlink(full)
        except OSError:
            pass


def _atomic_write(path, write):
    """Call ``write(fileobj)`` on a temp file next to ``path``, then move it into place.
    Stale temp files of earlier killed saves of the same path are removed first."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    if not base:
        raise ValueError(f"path must name a file, got {path!r}")
    _remove_stale_temps(folder, base)
    try:
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{base}{_TMP_TAG}{os.getpid()}-",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:   # make the rename itself durable (POSIX); not possible everywhere
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def write_tensors(path, tensors, metadata=None, *, checksum=True):
    """Write ``tensors`` (dict name -> ndarray) and ``metadata`` (dict str -> str) to
    ``path`` in the safetensors layout, atomically.  With ``checksum`` a SHA-256 of the
    canonical header and the data is added to the metadata under ``"checksum"``."""
    header, arrays = _prepare(tensors, metadata)
    if checksum:
        h = hashlib.sha256(_canonical(header))
        for a in arrays:
            if a.nbytes:
                h.update(memoryview(a.reshape(-1)).cast("B"))
        header["__metadata__"][_CHECKSUM_KEY] = "sha256:" + h.hexdigest()
    head = _encode_header(header)

    def write(f):
        f.write(head)
        for a in arrays:
            if a.nbytes:
                f.write(memoryview(a.reshape(-1)).cast("B"))

    _atomic_write(path, write)


# -- reading -------------------------------------------------------------------------------

def _reject_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ModelFileError(f"file header: duplicate key {k!r:.100}")
        out[k] = v
    return out


def _reject_constant(name):
    raise ModelFileError(f"file header: non-standard JSON constant {name}")


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


def _json_tokens(raw):
    """Structural tokens ({, [, :, ,) outside strings: what the parse will cost."""
    stripped = _STRING.sub(b"", raw)
    return sum(stripped.count(c) for c in (b"{", b"[", b":", b","))


def _parse_json(raw, what, max_tokens=None):
    if max_tokens is not None:
        b = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
        n = _json_tokens(b)
        if n > max_tokens:
            raise ModelFileError(f"{what} has {n} JSON objects/arrays/entries, more than the "
                                 f"{max_tokens} its declared tensors allow; refusing to parse")
    if isinstance(raw, (bytes, bytearray)):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ModelFileError(f"{what} is not valid UTF-8 ({e.reason} at byte {e.start})") \
                from None
    try:
        return json.loads(raw, object_pairs_hook=_reject_duplicates,
                          parse_constant=_reject_constant)
    except ModelFileError:
        raise
    except (ValueError, RecursionError) as e:
        raise ModelFileError(f"{what} is not valid JSON: {str(e)[:200]}") from None


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


class _Header:
    """A validated header: ``entries`` name -> (dtype name, shape tuple, begin, end),
    ``metadata`` dict, ``data_start`` and ``data_size``; ``raw`` the parsed JSON."""

    def __init__(self, entries, metadata, data_start, data_size, raw, json_budget):
        self.entries = entries
        self.metadata = metadata
        self.data_start = data_start
        self.data_size = data_size
        self.raw = raw
        self.json_budget = json_budget   # structural JSON tokens allowed per metadata document


def _json_budget(n_tensors):
    return _JSON_TOKENS_BASE + _JSON_TOKENS_PER_TENSOR * n_tensors


def _validate_header(prefix8, read_header_bytes, file_size, source):
    """Validate everything about the header; nothing proportional to declared sizes is
    allocated.  ``read_header_bytes(n)`` returns the n header bytes."""
    if file_size < 8:
        raise ModelFileError(f"{source}: file too short: {file_size} bytes, expected at least "
                             "8 (header length) + header")
    n = int.from_bytes(prefix8, "little")
    if n > MAX_HEADER_BYTES:
        # any other kind of file (text, pickle, zip...) lands here: say that first
        raise ModelFileError(f"{source}: not a fastrnn/safetensors model file (header length "
                             f"{n} exceeds the limit of {MAX_HEADER_BYTES} bytes)")
    if n > file_size - 8:
        raise ModelFileError(f"{source}: header length {n} is larger than the rest of the "
                             f"file ({file_size - 8} bytes); the file is truncated or corrupt")
    if n < 2:
        raise ModelFileError(f"{source}: header length {n} is too small for a JSON object")
    raw = read_header_bytes(n)
    if len(raw) != n:
        raise ModelFileError(f"{source}: could read only {len(raw)} of {n} header bytes")
    n_decl = raw.count(b'"data_offsets"')
    if n_decl > MAX_TENSORS:
        raise ModelFileError(f"{source}: header declares {n_decl} tensors, more than the limit "
                             f"of {MAX_TENSORS}")
    budget = _json_budget(n_decl)
    header = _parse_json(raw, f"{source}: header", budget)
    if not isinstance(header, dict):
        raise ModelFileError(f"{source}: header must be a JSON object, got "
                             f"{type(header).__name__}")
    data_start = 8 + n
    data_size = file_size - data_start
    metadata = header.get("__metadata__", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ModelFileError(f"{source}: '__metadata__' must be an object of string values")
    check = metadata.get(_CHECKSUM_KEY)
    if check is not None and not (check.startswith("sha256:") and len(check) == 71 and all(
            c in "0123456789abcdef" for c in check[7:])):
        raise ModelFileError(f"{source}: malformed checksum {check[:80]!r}; expected "
                             "'sha256:' + 64 lowercase hex digits")
    entries = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        where = f"{source}: tensor {name!r:.100}"
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise ModelFileError(f"{where}: expected an object with exactly 'dtype', 'shape' and "
                                 f"'data_offsets', got {str(info)[:100]}")
        dname, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dname, str) or dname not in _DTYPES:
            raise ModelFileError(f"{where}: unknown dtype {str(dname)[:20]!r}; expected one of "
                                 f"{sorted(_DTYPES)}")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise ModelFileError(f"{where}: shape must be a list of non-negative integers, got "
                                 f"{str(shape)[:100]}")
        if len(shape) > 32:
            raise ModelFileError(f"{where}: {len(shape)} dimensions, at most 32 are supported")
        if (not isinstance(offs, list) or len(offs) != 2 or not all(_is_int(o) for o in offs)
                or not 0 <= offs[0] <= offs[1]):
            raise ModelFileError(f"{where}: data_offsets must be [begin, end] with "
                                 f"0 <= begin <= end, got {str(offs)[:100]}")
        nbytes = math.prod(shape) * _DTYPES[dname].itemsize   # Python int: no overflow
        if nbytes != offs[1] - offs[0]:
            raise ModelFileError(f"{where}: shape {str(shape)[:100]} of {dname} needs {nbytes} "
                                 f"bytes but data_offsets {offs} span {offs[1] - offs[0]}")
        if offs[1] > data_size:
            raise ModelFileError(f"{where}: data_offsets end {offs[1]} is beyond the data "
                                 f"section ({data_size} bytes); the file is truncated or "
                                 "corrupt")
        entries[name] = (dname, tuple(shape), offs[0], offs[1])
    pos = 0
    for name, (_, _, b, e) in sorted(entries.items(), key=lambda kv: (kv[1][2], kv[1][3])):
        if b != pos:
            kind = "overlaps the previous tensor" if b < pos else "leaves a gap"
            raise ModelFileError(f"{source}: tensor {name!r:.100} starts at {b}, expected {pos} "
                                 f"(it {kind}); offsets must be contiguous")
        pos = e
    if pos != data_size:
        raise ModelFileError(f"{source}: tensors cover {pos} bytes but the data section has "
                             f"{data_size} bytes (file size {file_size}); the file is "
                             "truncated, padded or corrupt")
    if len(entries) > MAX_TENSORS:
        raise ModelFileError(f"{source}: {len(entries)} tensors, more than the limit of "
                             f"{MAX_TENSORS}")
    if metadata.get("format") == FORMAT_NAME and _CHECKSUM_KEY not in metadata:
        raise ModelFileError(f"{source}: the file says it was written by fastrnn but has no "
                             f"{_CHECKSUM_KEY!r} entry (fastrnn always writes one): it was "
                             "altered; refusing to load it unverified")
    return _Header(entries, metadata, data_start, data_size, header, budget)


def _open_header(f, source):
    size = os.fstat(f.fileno()).st_size
    prefix = f.read(8)
    if len(prefix) < 8:
        raise ModelFileError(f"{source}: file too short: {len(prefix)} bytes, expected at "
                             "least 8 (header length) + header")
    return _validate_header(prefix, f.read, size, source)


def _read_data(f, hdr, source, names=None):
    """Read the tensors (all, or ``names``) after validation; verify the checksum."""
    check = hdr.metadata.get(_CHECKSUM_KEY)
    hasher = None
    if check is not None:
        hasher = hashlib.sha256(_canonical(hdr.raw))
    f.seek(hdr.data_start)
    out = {}
    for name, (dname, shape, b, e) in sorted(hdr.entries.items(), key=lambda kv: kv[1][2]):
        buf = bytearray(e - b)
        got = f.readinto(buf) if buf else 0
        if got != len(buf):
            raise ModelFileError(f"{source}: tensor {name!r}: expected {len(buf)} bytes, the "
                                 f"file ended after {got}")
        if hasher is not None:
            hasher.update(buf)
        if names is None or name in names:
            arr = np.frombuffer(buf, dtype=_DTYPES[dname]).reshape(shape)
            out[name] = arr.astype(arr.dtype.newbyteorder("="), copy=False)
    if hasher is not None and "sha256:" + hasher.hexdigest() != check:
        raise ModelFileError(f"{source}: checksum mismatch: the file is corrupt (header says "
                             f"{check}, content hashes to sha256:{hasher.hexdigest()})")
    return out


def read_header(path):
    """Validate a file's header; return ``(tensor_info, metadata)`` with ``tensor_info``
    name -> ``{"dtype": ..., "shape": (...)}``.  No tensor data is read."""
    source = os.fspath(path)
    with open(source, "rb") as f:
        hdr = _open_header(f, source)
    info = {k: {"dtype": d, "shape": s} for k, (d, s, _, _) in hdr.entries.items()}
    return info, dict(hdr.metadata)


def read_tensors(path):
    """Read a safetensors-layout file: ``(tensors dict name -> ndarray, metadata dict)``.
    The header is validated completely before anything is allocated, and the checksum (when
    present) is verified; problems raise :class:`ModelFileError`."""
    source = os.fspath(path)
    with open(source, "rb") as f:
        hdr = _open_header(f, source)
        tensors = _read_data(f, hdr, source)
    return tensors, dict(hdr.metadata)


# ==========================================================================================
# upper layer: models
# ==========================================================================================

#: model class name -> class with ``get_config()`` / ``from_config()``; filled by
#: :mod:`fastrnn.models` when it is imported. The architecture of a "Sequential" is stored as
#: its bare config (the original layout); other classes as ``{"class_name", "config"}``.
MODEL_REGISTRY = {}


def register_model(name, cls):
    """Allow ``cls`` (a model class with ``get_config``/``from_config``) to be saved and
    rebuilt by :func:`load_model` under ``name``."""
    if not isinstance(name, str) or not callable(getattr(cls, "from_config", None)):
        raise TypeError("register_model(name, cls): name must be a str and cls a model class "
                        "with from_config")
    MODEL_REGISTRY[name] = cls
    return cls


def _model_class_name(model):
    for name, cls in MODEL_REGISTRY.items():
        if type(model) is cls:
            return name
    return None


def _version():
    from . import __version__
    return __version__


def _model_tensors(model):
    out = {}
    for name, arr in model.params():
        if name in out:
            raise ValueError(f"model has two parameters named {name!r}")
        out[name] = arr
    return out


def _compile_config(model):
    """{"loss": serialized loss, "metrics": [...]} of a compiled model, else None."""
    getter = getattr(model, "get_compile_config", None)
    if callable(getter):
        return getter()
    from . import losses as _losses
    from . import metrics as _metrics
    loss = getattr(model, "loss", None)
    if loss is None or not isinstance(loss, _losses.Loss):
        return None
    names = []
    for m in getattr(model, "compiled_metrics", []) or []:
        name = getattr(m, "name", None)
        try:
            ok = isinstance(name, str) and type(_metrics.get(name, loss=loss)) is type(m)
        except (ValueError, TypeError):
            ok = False
        if ok:
            names.append(name)
    return {"loss": _losses.serialize(loss), "metrics": names}


def _architecture(model):
    cfg = model.get_config()
    name = _model_class_name(model)
    if name is not None and name != "Sequential":
        cfg = {"class_name": name, "config": cfg}
    return cfg


def _architecture_json(model):
    try:
        return json.dumps(_architecture(model), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"model.get_config() is not JSON-serializable: {e}") from None


_RESERVED_META = ("format", "format_version", "fastrnn_version", "kind", "architecture",
                  "optimizer", "compile", _CHECKSUM_KEY)


def save_model(model, path: "str | os.PathLike", include_optimizer: bool = True,
               metadata: "dict | None" = None) -> None:
    """Save architecture, weights and (optionally) optimizer state to ``path``, atomically.

    The file is a safetensors file: weights ``layers.{i}.{param}``, optimizer slots
    ``optimizer.{slot}.{param_name}``, architecture and configs as JSON strings in the
    metadata.  With ``include_optimizer`` (and a compiled model) the optimizer config and
    state and the loss/metrics are saved too, so :func:`load_model` returns a compiled model
    that resumes training exactly; without it the loaded model is not compiled.

    Parameters
    ----------
    model : Sequential or Model
        A built model.
    path : str or os.PathLike
        Destination; written to a temporary file, synced, then renamed over ``path``.
    include_optimizer : bool, default True
        Also save the optimizer state and compile settings.
    metadata : dict of str -> str, optional
        Application entries added to the file's metadata (for example a character model's
        vocabulary), written in the same atomic write as the weights; the keys fastrnn uses
        itself (``format``, ``architecture``, ...) are refused.

    Examples
    --------
    >>> import os, tempfile, numpy as np, fastrnn as fr
    >>> model = fr.Sequential([fr.GRU(4, input_size=3), fr.Dense(1)], seed=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "m.safetensors")
    >>> fr.save_model(model, path)
    >>> x = np.ones((2, 5, 3), dtype="float32")
    >>> np.array_equal(fr.load_model(path).predict(x), model.predict(x))
    True
    """
    from . import optimizers as _opt
    extra = {} if metadata is None else metadata
    if not isinstance(extra, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in extra.items()):
        raise TypeError("metadata must be a dict of str -> str")
    clash = sorted(set(extra) & set(_RESERVED_META))
    if clash:
        raise ValueError(f"metadata keys {clash} are reserved by fastrnn; use other names")
    tensors = dict(_model_tensors(model))
    meta = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
            "fastrnn_version": _version(), "kind": "model",
            "architecture": _architecture_json(model)}
    opt = getattr(model, "optimizer", None)
    if include_optimizer and isinstance(opt, _opt.Optimizer):
        compile_cfg = _compile_config(model)
        if compile_cfg is not None:
            meta["compile"] = json.dumps(compile_cfg, allow_nan=False)
        config, slots = opt.get_state()
        meta["optimizer"] = json.dumps(config, allow_nan=False)
        for key, arr in slots.items():
            tensors[f"optimizer.{key}"] = arr
    meta.update(extra)
    write_tensors(path, tensors, meta)


def save_weights(model, path: "str | os.PathLike") -> None:
    """Save only the weights (``layers.{i}.{param}``) to ``path``, atomically.

    Parameters
    ----------
    model : Sequential or Model
        A built model.
    path : str or os.PathLike
        Destination (safetensors layout; read back with :func:`load_weights`).
    """
    meta = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
            "fastrnn_version": _version(), "kind": "weights",
            "architecture": _architecture_json(model)}
    write_tensors(path, _model_tensors(model), meta)


def _check_format(meta, source, kinds):
    fmt = meta.get("format")
    if fmt != FORMAT_NAME:
        raise ModelFileError(f"{source}: not a fastrnn file (metadata 'format' is "
                             f"{str(fmt)[:40]!r}, expected {FORMAT_NAME!r})")
    ver = meta.get("format_version")
    if ver != FORMAT_VERSION:
        raise ModelFileError(f"{source}: unsupported format_version {str(ver)[:40]!r}; this "
                             f"fastrnn ({_version()}) reads version {FORMAT_VERSION!r}")
    kind = meta.get("kind")
    if kind not in kinds:
        raise ModelFileError(f"{source}: file kind {str(kind)[:40]!r}, expected one of {kinds}")


def _check_allowlisted(cfg, source):
    """Every ``class_name`` anywhere in the architecture must be an allowlisted layer (or
    Sequential): names from a file are never resolved any other way."""
    from .layers import LAYER_REGISTRY
    stack = [cfg]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "class_name" in node:
                cn = node["class_name"]
                if not isinstance(cn, str) or (cn not in LAYER_REGISTRY and
                                               cn not in MODEL_REGISTRY and cn != "InputLayer"):
                    raise ModelFileError(f"{source}: architecture names an unknown layer class "
                                         f"{str(cn)[:100]!r}; allowed: "
                                         f"{sorted(LAYER_REGISTRY)}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


_UNBUILT_DIM_LIMIT = 1024


def _ints(node, skip=("seed", "mask_value", "strides", "dilation_rate", "pool_size")):
    """All integers (not bools) anywhere in a config, except under keys in ``skip`` (seeds,
    mask values and window steps: they size no array)."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, dict):
            stack.extend(v for k, v in n.items() if k not in skip)
        elif isinstance(n, list):
            stack.extend(n)
        elif _is_int(n):
            yield n


def _check_dimensions(arch, hdr, source):
    """Bound the sizes an architecture asks for by the tensors the file actually holds,
    so that a tiny file cannot make the rebuild allocate huge arrays.  Every integer in
    layer i's config (units, input sizes, vocabulary, ...; seeds and mask values excepted)
    must be at most the largest dimension of the file's ``layers.{i}.*`` tensors; a layer
    without tensors may only use integers up to _UNBUILT_DIM_LIMIT (it is not built, or
    holds no weights)."""
    layers = arch.get("layers")
    if not isinstance(layers, list):
        return   # from_config reports the malformed structure
    max_dim = {}
    for name, (_, shape, _, _) in hdr.entries.items():
        parts = name.split(".")
        if len(parts) >= 3 and parts[0] == "layers" and parts[1].isdigit():
            i = int(parts[1])
            max_dim[i] = max(max_dim.get(i, 0), max(shape, default=1))
    overall = max(max_dim.values(), default=_UNBUILT_DIM_LIMIT)
    for i, layer_cfg in enumerate(layers):
        limit = max_dim.get(i, _UNBUILT_DIM_LIMIT)
        if isinstance(layer_cfg, dict) and "calls" in layer_cfg:
            # a functional model's entry: its call references are indices, not sizes; an
            # Input's shape is bounded like a Sequential's build_input_shape
            if layer_cfg.get("class_name") == "InputLayer":
                limit = overall
            layer_cfg = {k: v for k, v in layer_cfg.items() if k != "calls"}
        for v in _ints(layer_cfg):
            if v > limit:
                raise ModelFileError(f"{source}: layer {i} of the architecture uses the size {v}, "
                                     f"larger than any of its weights in the file (at most "
                                     f"{limit}); the architecture does not match the weights")
    shape = arch.get("build_input_shape")
    first = layers[0] if layers and isinstance(layers[0], dict) else {}
    if isinstance(shape, list) and shape and first.get("class_name") != "Embedding":
        f = shape[-1]
        limit = max(max_dim.values(), default=_UNBUILT_DIM_LIMIT)
        if _is_int(f) and f > limit:
            raise ModelFileError(f"{source}: build_input_shape feature size {f} is larger than "
                                 f"any weight dimension in the file ({limit})")


_BUILD_BUDGET_FACTOR = 4
_CELL_GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}
_DT_NAMES = {"float32": "F32", "float64": "F64"}
_NO_PARAMS = ("Dropout", "Masking", "InputLayer", "SpatialDropout1D", "Activation")


class _Unknown(Exception):
    """The parameter shapes of a layer config cannot be computed here."""


def _pos(cfg, key, default=None):
    v = cfg.get(key, default)
    if v is None:
        return None
    if not _is_int(v) or v <= 0:
        raise _Unknown        # the layer constructor rejects it before allocating anything
    return v


def _layer_params(cn, cfg, feat, builds):
    """Parameter name -> (dtype name, shape) a layer config will allocate, and the feature
    size it outputs. ``feat`` is the incoming feature size (None if unknown) and ``builds``
    whether the model builds its layers on construction."""
    if not isinstance(cfg, dict):
        raise _Unknown
    dt = _DT_NAMES.get(cfg.get("dtype", "float32"))
    if cn in _CELL_GATES:
        if dt is None:
            raise _Unknown
        G, U = _CELL_GATES[cn], _pos(cfg, "units")
        own = _pos(cfg, "input_size")
        I = own if own is not None else (feat if builds else None)
        if U is None:
            raise _Unknown
        if I is None:
            return {}, U
        out = {"weight_ih": (dt, (G * U, I)), "weight_hh": (dt, (G * U, U))}
        if cfg.get("use_bias", True):
            out.update(bias_ih=(dt, (G * U,)), bias_hh=(dt, (G * U,)))
        return out, U
    if cn == "Bidirectional":
        inner = cfg.get("layer")
        if not isinstance(inner, dict) or inner.get("class_name") not in _CELL_GATES:
            raise _Unknown
        one, U = _layer_params(inner["class_name"], inner.get("config"), feat, builds)
        out = {f"{d}_{k}": v for d in ("forward", "backward") for k, v in one.items()}
        return out, 2 * U if cfg.get("merge_mode", "concat") == "concat" else U
    if cn == "Dense":
        if dt is None:
            raise _Unknown
        U, own = _pos(cfg, "units"), _pos(cfg, "input_size")
        I = own if own is not None else (feat if builds else None)
        if U is None:
            raise _Unknown
        if I is None:
            return {}, U
        out = {"weight": (dt, (U, I))}
        if cfg.get("use_bias", True):
            out["bias"] = (dt, (U,))
        return out, U
    if cn == "Embedding":
        if dt is None:
            raise _Unknown
        n, d = _pos(cfg, "input_dim"), _pos(cfg, "output_dim")
        if n is None or d is None:
            raise _Unknown
        return ({"weight": (dt, (n, d))} if builds else {}), d
    if cn in _NO_PARAMS:
        if cn == "InputLayer":
            shape = cfg.get("shape")
            if isinstance(shape, list) and shape:
                return {}, shape[-1] if _is_int(shape[-1]) else None
        return {}, feat
    raise _Unknown


def _expected_params(arch):
    """``layers.{i}.{name}`` -> (dtype name, shape) that rebuilding ``arch`` (a Sequential
    config) allocates, computed from the config alone; None when a layer class is not known
    here (then only the coarser dimension bound applies)."""
    layers = arch.get("layers")
    if not isinstance(layers, list) or not all(isinstance(l, dict) for l in layers):
        return None
    bis = arch.get("build_input_shape")
    feat = bis[-1] if isinstance(bis, list) and bis and _is_int(bis[-1]) else None
    builds = isinstance(bis, list)
    if layers and not builds:      # Sequential._infer_input_shape: the first layer decides
        first, cfg = layers[0].get("class_name"), layers[0].get("config")
        cfg = cfg if isinstance(cfg, dict) else {}
        if first == "Bidirectional" and isinstance(cfg.get("layer"), dict):
            cfg = cfg["layer"].get("config") if isinstance(cfg["layer"].get("config"), dict) \
                else {}
        if first == "Embedding":
            builds = True
        elif first in ("Dense", "Bidirectional", *_CELL_GATES) and _is_int(cfg.get("input_size")):
            builds, feat = True, cfg["input_size"]
    out = {}
    for i, layer in enumerate(layers):
        try:
            params, feat = _layer_params(layer.get("class_name"), layer.get("config"), feat,
                                         builds)
        except _Unknown:
            return None
        out.update({f"layers.{i}.{k}": v for k, v in params.items()})
    return out


def _check_expected(expected, hdr, source):
    """Every weight the architecture will allocate is in the file with exactly that dtype and
    shape (so its bytes are there: the model can be no larger than the file), and no other
    weight is; checked before any layer is built."""
    weights = {k: v for k, v in hdr.entries.items() if not k.startswith("optimizer.")}
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        raise ModelFileError(f"{source}: weights do not match the architecture: missing "
                             f"{missing[:10]}{'...' if len(missing) > 10 else ''}, unexpected "
                             f"{[e[:80] for e in extra[:10]]}{'...' if len(extra) > 10 else ''}")
    for name, (dname, shape) in expected.items():
        fd, fshape = weights[name][0], weights[name][1]
        if fshape != shape or fd != dname:
            raise ModelFileError(f"{source}: weight {name!r} has shape {fshape} ({fd}) in "
                                 f"the file, the architecture needs shape {shape} ({dname})")


def _rebuild(meta, source, hdr):
    if "architecture" not in meta:
        raise ModelFileError(f"{source}: metadata has no 'architecture'")
    arch = _parse_json(meta["architecture"], f"{source}: architecture", hdr.json_budget)
    if not isinstance(arch, dict):
        raise ModelFileError(f"{source}: architecture must be a JSON object, got "
                             f"{type(arch).__name__}")
    _check_allowlisted(arch, source)
    if "class_name" in arch:
        cname, arch = arch["class_name"], arch.get("config")
        if cname not in MODEL_REGISTRY or not isinstance(arch, dict):
            raise ModelFileError(f"{source}: architecture names an unknown model class "
                                 f"{str(cname)[:100]!r} or has no config object; allowed: "
                                 f"{sorted(MODEL_REGISTRY)}")
    else:
        cname = "Sequential"
    if cname not in MODEL_REGISTRY:
        raise ModelFileError(f"{source}: model class {cname!r} is not registered (import "
                             f"fastrnn.models)")
    # a Sequential's weights can be listed from its config alone: every one must be in the
    # file with its exact shape before anything is built (other models: the dimension cap)
    expected = _expected_params(arch) if cname == "Sequential" else None
    if expected is None:
        _check_dimensions(arch, hdr, source)
    else:
        _check_expected(expected, hdr, source)
    from .layers.base import ParameterBudgetError, skip_initialization
    weight_bytes = sum(e - b for k, (_, _, b, e) in hdr.entries.items()
                       if not k.startswith("optimizer."))
    try:
        # every parameter is overwritten from the file next: allocate, never initialise, and
        # refuse an architecture that asks for more than a small multiple of the file's
        # weights (wrappers such as Bidirectional build their wrapped layer once more)
        with skip_initialization(budget=_BUILD_BUDGET_FACTOR * weight_bytes + (1 << 20)):
            model = MODEL_REGISTRY[cname].from_config(arch)
    except ParameterBudgetError as e:
        raise ModelFileError(f"{source}: the architecture needs more parameters than the file "
                             f"holds: {e}") from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError,
            MemoryError, OverflowError) as e:
        raise ModelFileError(f"{source}: the architecture could not be rebuilt: "
                             f"{type(e).__name__}: {str(e)[:300]}") from None
    return model


def _match_weights(hdr, expected, source, allow_extra_prefix=None):
    """Check that the file's weight tensors are exactly the model's: names, shapes, dtypes."""
    weights = {k: v for k, v in hdr.entries.items()
               if allow_extra_prefix is None or not k.startswith(allow_extra_prefix)}
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        raise ModelFileError(f"{source}: weights do not match the model: missing {missing[:10]}"
                             f"{'...' if len(missing) > 10 else ''}, unexpected "
                             f"{[e[:80] for e in extra[:10]]}{'...' if len(extra) > 10 else ''}")
    for name, arr in expected.items():
        dname, shape, _, _ = weights[name]
        if shape != arr.shape:
            raise ModelFileError(f"{source}: weight {name!r} has shape {shape} in the file, the "
                                 f"model expects {arr.shape}")
        want = _dtype_name(arr, name)
        if dname != want:
            raise ModelFileError(f"{source}: weight {name!r} is {dname} in the file, the model "
                                 f"expects {want}")


def _check_optimizer_entries(hdr, opt, expected, source):
    """Validate ``optimizer.*`` tensor names/shapes/dtypes before reading any data."""
    slots_ok = set(opt._slots())
    for key, (dname, shape, _, _) in hdr.entries.items():
        if not key.startswith("optimizer."):
            continue
        rest = key[len("optimizer."):]
        if rest == "iterations":
            want_shape, want_dt = (), "I64"
        else:
            slot, _, pname = rest.partition(".")
            if pname not in expected or (slot != "step" and slot not in slots_ok):
                raise ModelFileError(f"{source}: unexpected optimizer tensor {key[:120]!r} for "
                                     f"{type(opt).__name__} and this model")
            if slot == "step":
                want_shape, want_dt = (), "I64"
            else:
                want_shape = expected[pname].shape
                want_dt = _dtype_name(expected[pname], pname)
        if shape != want_shape or dname != want_dt:
            raise ModelFileError(f"{source}: optimizer tensor {key!r} is {dname} {shape}, "
                                 f"expected {want_dt} {want_shape}")


def load_model(path: "str | os.PathLike", compile: bool = True):
    """Load a model saved by :func:`save_model` (or ``model.save``).

    Rebuilds the architecture from the layer allowlist, checks every weight against it,
    restores the weights and, when the file has them and ``compile`` is true, the
    optimizer state and compile settings.  Raises :class:`ModelFileError` for any problem
    with the file's content.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save_model`.
    compile : bool, default True
        Restore the optimizer and compile settings when the file has them.

    Returns
    -------
    Sequential or Model
        The rebuilt model (compiled when the file holds an optimizer and ``compile``).

    Raises
    ------
    ModelFileError
        The file is not a fastrnn/safetensors model file, or is damaged or inconsistent.
    """
    from . import optimizers as _opt
    source = os.fspath(path)
    with open(source, "rb") as f:
        hdr = _open_header(f, source)
        meta = hdr.metadata
        _check_format(meta, source, ("model", "weights"))
        model = _rebuild(meta, source, hdr)
        expected = _model_tensors(model)
        _match_weights(hdr, expected, source, allow_extra_prefix="optimizer.")
        opt = None
        if "optimizer" in meta:
            ocfg = _parse_json(meta["optimizer"], f"{source}: optimizer config",
                               hdr.json_budget)
            try:
                opt = _opt.deserialize(ocfg)
            except (ValueError, TypeError) as e:
                raise ModelFileError(f"{source}: bad optimizer config: {e}") from None
            _check_optimizer_entries(hdr, opt, expected, source)
        elif any(k.startswith("optimizer.") for k in hdr.entries):
            raise ModelFileError(f"{source}: optimizer tensors present but no optimizer config")
        compile_cfg = None
        if "compile" in meta:
            compile_cfg = _parse_json(meta["compile"], f"{source}: compile config",
                                      hdr.json_budget)
            if not isinstance(compile_cfg, dict):
                raise ModelFileError(f"{source}: compile config must be a JSON object")
        data = _read_data(f, hdr, source)
    for key, arr in data.items():
        if key == "optimizer.iterations" or key.startswith("optimizer.step."):
            v = int(arr)
            if not 0 <= v <= MAX_STEP_COUNT:
                raise ModelFileError(f"{source}: optimizer step counter {key!r} is {v}, "
                                     f"expected 0 <= count <= {MAX_STEP_COUNT}")
    for name, arr in expected.items():
        np.copyto(arr, data[name])
    if opt is not None:
        slots = {k[len("optimizer."):]: v for k, v in data.items() if k.startswith("optimizer.")}
        try:
            opt.set_state(None, slots, params=expected)
        except (ValueError, TypeError) as e:
            raise ModelFileError(f"{source}: bad optimizer state: {e}") from None
    if compile and compile_cfg is not None:
        kwargs = {"loss": compile_cfg.get("loss"), "metrics": compile_cfg.get("metrics") or None}
        if compile_cfg.get("loss_weights") is not None:
            kwargs["loss_weights"] = compile_cfg["loss_weights"]
        if opt is not None:
            kwargs["optimizer"] = opt
        try:
            model.compile(**kwargs)
        except (ValueError, TypeError, KeyError) as e:
            raise ModelFileError(f"{source}: could not compile the loaded model: "
                                 f"{str(e)[:300]}") from None
    elif compile and opt is not None:
        model.optimizer = opt
    return model


def load_weights(model, path: "str | os.PathLike") -> None:
    """Load weights saved by :func:`save_weights` or :func:`save_model` into ``model``.
    The names, shapes and dtypes must match ``model`` exactly; nothing changes on error.

    Parameters
    ----------
    model : Sequential or Model
        A built model with the same architecture.
    path : str or os.PathLike
        A file written by :func:`save_weights` or :func:`save_model`.
    """
    source = os.fspath(path)
    expected = _model_tensors(model)
    with open(source, "rb") as f:
        hdr = _open_header(f, source)
        meta = hdr.metadata
        if meta.get("format") == FORMAT_NAME:
            _check_format(meta, source, ("model", "weights"))
        _match_weights(hdr, expected, source, allow_extra_prefix="optimizer.")
        data = _read_data(f, hdr, source, names=set(expected))
    for name, arr in expected.items():
        np.copyto(arr, data[name])
    return model
