"""Runtime configuration of the compiled kernels: thread count and a build /
runtime report (``fastrnn.show_config()``)."""
from __future__ import annotations

import os
import sys
from typing import Optional, TextIO

__all__ = ["show_config", "set_num_threads", "get_num_threads"]

# Kernel paths (fastrnn/_engine/src/fr_kern.c): index = level.
ISA_NAMES = ("baseline", "avx2", "avx2w16", "avx512")
_ISA_DOC = {"baseline": "portable 128-bit vectors", "avx2": "AVX2+FMA, 256-bit vectors",
            "avx2w16": "the AVX-512 tiling lowered to AVX2 (test path)",
            "avx512": "AVX-512, 512-bit vectors"}

_num_threads = None   # None: default (see get_num_threads)


def _runtime():
    try:
        from . import runtime as _runtime
        return _runtime
    except ImportError:   # kernels not compiled
        return None


_default_cache = None


def _default_threads():
    # computed once: the engine asks on every call, and the affinity query alone costs
    # ~20 us, as much as a whole streaming step's kernel work at small sizes
    global _default_cache
    if _default_cache is None:
        _default_cache = _compute_default_threads()
    return _default_cache


def _compute_default_threads():
    rt = _runtime()
    if rt is None or not rt.openmp_enabled():
        return 1
    n = rt.omp_max_threads()
    if "OMP_NUM_THREADS" not in os.environ:
        try:
            n = min(n, len(os.sched_getaffinity(0)))
        except (AttributeError, OSError):
            n = min(n, os.cpu_count() or 1)
    return max(1, int(n))


def set_num_threads(n: Optional[int]) -> None:
    """Set the number of threads the kernels may use (``None`` restores the default:
    OMP_NUM_THREADS if set, else the CPUs this process may run on). Without OpenMP in the
    build the kernels are single-threaded whatever is set here.

    Parameters
    ----------
    n : int or None
        A positive thread count, or None for the default.

    Examples
    --------
    >>> import fastrnn as fr
    >>> fr.set_num_threads(1)
    >>> fr.get_num_threads()
    1
    >>> fr.set_num_threads(None)
    """
    global _num_threads
    if n is None:
        _num_threads = None
        return
    if isinstance(n, bool) or not isinstance(n, (int,)) and not hasattr(n, "__index__"):
        raise TypeError(f"n: expected a positive int or None, got {type(n).__name__}")
    n = int(n.__index__())
    if n < 1:
        raise ValueError(f"n: expected a positive int or None, got {n}")
    _num_threads = n


def get_num_threads() -> int:
    """Number of threads the kernels use (1 when the build has no OpenMP).

    Returns
    -------
    int
        The count set by :func:`set_num_threads`, else OMP_NUM_THREADS, else the CPUs this
        process may run on.
    """
    if not _openmp():
        return 1
    return _num_threads if _num_threads is not None else _default_threads()


def release_memory() -> int:
    """Free the work buffers the calling thread keeps between kernel calls.

    To save page faults, each thread keeps the large temporaries of the recurrent kernels
    (at most 32 MiB each) and a pool of the buffers that outlive a call (training caches,
    outputs, gradients: at most 192 MiB, reused only once nothing refers to them). They
    are freed when the thread ends; call this to return them sooner, e.g. after training
    when the process goes on with something else. Arrays you still hold stay valid.

    Returns
    -------
    int
        Bytes the calling thread held in kept buffers (idle or still referenced) before
        the call.

    Example
    -------
    >>> import fastrnn as fr
    >>> held = fr.release_memory()
    >>> fr.release_memory()
    0
    """
    try:
        from . import kernels
    except ImportError:        # no compiled kernels: nothing is kept
        return 0
    held = kernels.kept_bytes()
    kernels.release_scratch()
    return held


_openmp_cache = None


def _openmp():
    # cached: the streaming stepper asks on every step (the import and the query cost
    # ~1 us, a tenth of a small step)
    global _openmp_cache
    if _openmp_cache is None:
        rt = _runtime()
        _openmp_cache = bool(rt is not None and rt.openmp_enabled())
    return _openmp_cache


def _blas_info():
    try:
        import scipy
        cfg = scipy.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        name = blas.get("name", "unknown")
        version = blas.get("version", "")
        extra = blas.get("openblas configuration", "")
        ilp64 = blas.get("has ilp64", False)
        s = f"{name} {version}".strip()
        if extra:
            s += f" ({extra})"
        s += f", {'ILP64' if ilp64 else 'LP64'} (scipy {scipy.__version__})"
        return s
    except Exception as exc:   # pragma: no cover - depends on the scipy build
        return f"unknown ({exc})"


def show_config(file: Optional[TextIO] = None) -> None:
    """Print how the kernels were built and what they use at run time.

    Versions, OpenMP, the instruction set the kernels dispatch to, the BLAS libraries and
    thread counts: the first thing to include in a bug report.

    Parameters
    ----------
    file : file-like, optional
        Where to print (default: ``sys.stdout``).

    Examples
    --------
    >>> import fastrnn as fr
    >>> fr.show_config()                     # doctest: +SKIP
    """
    import numpy as np
    from .. import __version__
    rt = _runtime()
    out = file if file is not None else sys.stdout
    lines = [f"fastrnn {__version__}",
             f"  python            {sys.version.split()[0]}",
             f"  numpy             {np.__version__}",
             f"  BLAS (scipy)      {_blas_info()}"]
    if rt is None:
        lines.append("  kernels           NOT COMPILED (only backend='numpy' is available)")
    else:
        lines += [f"  kernels           compiled (Cython + C helpers)",
                  f"  OpenMP            {'on' if rt.openmp_enabled() else 'off'}",
                  f"  threads           {get_num_threads()}",
                  f"  SIMD dispatched   {isa_info()}"]
    print("\n".join(lines), file=out)


# ---------------------------------------------------------------- BLAS threads
# The kernels call SciPy's BLAS only for the two weight-gradient GEMMs of a backward
# pass. OpenBLAS would otherwise use its own thread pool on its own terms (and wake it
# for small products, which is slow and oversubscribes the cores our OpenMP threads
# run on), so the engine sets OpenBLAS's *thread-local* thread count around those calls
# when the library offers it (OpenBLAS >= 0.3.27). Nothing else is changed.
_blas_local = None


def _blas_local_setters():
    global _blas_local
    if _blas_local is None:
        _blas_local = ()
        try:
            import ctypes
            import scipy.linalg.cython_blas  # noqa: F401  (makes sure the library is loaded)
            with open("/proc/self/maps") as fh:
                paths = sorted({ln.split()[-1] for ln in fh
                                if "openblas" in ln.lower() and "/" in ln})
            setters = []
            for p in paths:
                if "64_" in os.path.basename(p):      # numpy's ILP64 copy, not SciPy's
                    continue
                f = getattr(ctypes.CDLL(p), "openblas_set_num_threads_local", None)
                if f is not None:
                    f.restype = ctypes.c_int
                    f.argtypes = [ctypes.c_int]
                    setters.append(f)
            _blas_local = tuple(setters)
        except Exception:   # pragma: no cover - platform without /proc or OpenBLAS
            _blas_local = ()
    return _blas_local


class blas_threads:
    """Context manager: OpenBLAS threads for calls made from this thread (no-op when the
    BLAS has no thread-local control)."""
    __slots__ = ("n", "prev")

    def __init__(self, n):
        self.n = max(1, int(n))
        self.prev = None

    def __enter__(self):
        setters = _blas_local_setters()
        if setters:
            self.prev = [f(self.n) for f in setters]
        return self

    def __exit__(self, *exc):
        if self.prev is not None:
            for f, p in zip(_blas_local_setters(), self.prev):
                f(p)
        return False


def _blas_local_address():
    """Address of OpenBLAS's openblas_set_num_threads_local (0 when unavailable); the
    kernels call it in each of their threads around the BLAS calls they make."""
    global _blas_addr
    if _blas_addr is None:
        import ctypes
        setters = _blas_local_setters()
        _blas_addr = ctypes.cast(setters[0], ctypes.c_void_p).value or 0 if setters else 0
    return _blas_addr


_blas_addr = None


# ---------------------------------------------------------------- ISA path
_isa_level = None      # chosen once, at the first engine import (see init_isa)
_isa_modules = ()


def _isa_from_env(rt, value):
    """Level for a FASTRNN_ISA value: the best path when unset or 'auto'; a path the
    CPU lacks, or an unknown name, warns and falls back to the best supported one."""
    import warnings
    best = rt.isa_best()
    if value is None or value.strip().lower() in ("", "auto"):
        return best
    name = value.strip().lower()
    if name not in ISA_NAMES:
        warnings.warn(f"FASTRNN_ISA: expected one of {', '.join(ISA_NAMES)} or auto, got "
                      f"{value!r}; using {ISA_NAMES[best]}", RuntimeWarning, stacklevel=3)
        return best
    level = ISA_NAMES.index(name)
    if not rt.isa_supported(level):
        warnings.warn(f"FASTRNN_ISA={name}: this CPU does not support it; using "
                      f"{ISA_NAMES[best]}", RuntimeWarning, stacklevel=3)
        return best
    return level


def init_isa(modules):
    """Select the kernel path in every compiled module (each links its own copy of
    the C kernels): FASTRNN_ISA if set (read once, at import), else the best path
    this CPU supports."""
    global _isa_level, _isa_modules
    rt = _runtime()
    if rt is None:
        return
    _isa_modules = tuple(modules) + (rt,)
    if _isa_level is None:
        _isa_level = _isa_from_env(rt, os.environ.get("FASTRNN_ISA"))
    _apply_isa(_isa_level)


def _apply_isa(level):
    for m in _isa_modules:
        if m._set_isa(level) != 0:
            raise RuntimeError(f"kernel path {ISA_NAMES[level]} is not supported here")


def _set_isa(name):
    """Private (tests, benchmarks): switch every module to the path `name` and return
    the previous one. Never while kernels run in another thread. A path the CPU
    lacks raises ValueError."""
    global _isa_level
    rt = _runtime()
    if rt is None:
        raise RuntimeError("kernels not compiled")
    if name not in ISA_NAMES:
        raise ValueError(f"name: expected one of {', '.join(ISA_NAMES)}, got {name!r}")
    level = ISA_NAMES.index(name)
    if not rt.isa_supported(level):
        raise ValueError(f"name: {name} is not supported by this CPU")
    if not _isa_modules:
        from . import kernels  # noqa: F401  (init_isa runs at its import)
    prev = ISA_NAMES[_isa_level] if _isa_level is not None else None
    _isa_level = level
    _apply_isa(level)
    return prev


def supported_isas():
    """Kernel paths this CPU can run, slowest first."""
    rt = _runtime()
    if rt is None:
        return ()
    return tuple(n for i, n in enumerate(ISA_NAMES) if rt.isa_supported(i))


def isa_info():
    """One line: the kernel path in use and what else this CPU supports."""
    rt = _runtime()
    if rt is None:
        return "none"
    if _isa_level is None:
        from . import kernels  # noqa: F401
    name = ISA_NAMES[_isa_level]
    forced = os.environ.get("FASTRNN_ISA")
    src = f"FASTRNN_ISA={forced}" if forced else "CPUID"
    return (f"{name} ({_ISA_DOC[name]}; chosen by {src} at import; CPU supports "
            f"{', '.join(n for n in supported_isas() if n != 'avx2w16')})")
