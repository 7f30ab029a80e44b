"""Runtime configuration of the compiled kernels: thread count and a build /
runtime report (``fastrnn.show_config()``)."""
from __future__ import annotations

import os
import sys
from typing import Optional, TextIO

__all__ = ["show_config", "set_num_threads", "get_num_threads"]

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
    rt = _runtime()
    if rt is None or not rt.openmp_enabled():
        return 1
    return _num_threads if _num_threads is not None else _default_threads()


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
                  f"  SIMD dispatched   {rt.simd_level()}"
                  f"{' (runtime dispatch)' if rt.target_clones() else ' (compile-time)'}"]
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
