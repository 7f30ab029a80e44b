"""What the benchmark runs on: CPU, ISA paths, BLAS, thread knobs, load, sgemm peak.

Everything here reads the machine and the libraries defensively: a missing file, library or
function gives a line saying so, never an exception out of the suite.
"""

import contextlib
import importlib
import io
import json
import os
import platform
import time

import numpy as np

__all__ = ["cpu_info", "theoretical_peak", "sgemm_peak", "numpy_blas_description",
           "fastrnn_description", "fastrnn_isa", "openblas_description", "set_threads",
           "loadavg"]


def cpu_info():
    """CPU model, ISA flags, highest reported MHz and usable cores (from /proc/cpuinfo)."""
    info = {"model": platform.processor() or platform.machine(), "flags": [], "mhz": None,
            "cores": os.cpu_count()}
    try:
        info["cores"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):   # pragma: no cover - non-Linux
        pass
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return info
    mhz = []
    for line in text.splitlines():
        key, _, val = line.partition(":")
        key, val = key.strip(), val.strip()
        if key == "model name" and info["model"] in ("", platform.machine(), platform.processor()):
            info["model"] = val
        elif key == "flags" and not info["flags"]:
            info["flags"] = val.split()
        elif key == "cpu MHz":
            try:
                mhz.append(float(val))
            except ValueError:
                pass
    if mhz:
        info["mhz"] = max(mhz)
    return info


def theoretical_peak(info):
    """Estimated fp32 FMA peak per core in GFLOP/s, assuming 2 FMA units per core."""
    flags = set(info.get("flags") or ())
    mhz = info.get("mhz")
    if not mhz or not flags:
        return None, "cannot derive (no /proc/cpuinfo flags or MHz)"
    if "avx512f" in flags:
        lanes, isa = 16, "AVX-512"
    elif "avx2" in flags and "fma" in flags:
        lanes, isa = 8, "AVX2+FMA"
    elif "avx" in flags:
        return mhz * 1e-3 * 16, "AVX without FMA: 1 add + 1 mul x 8 lanes per cycle (estimate)"
    else:
        return mhz * 1e-3 * 8, "SSE: 1 add + 1 mul x 4 lanes per cycle (estimate)"
    per_core = mhz * 1e-3 * lanes * 2 * 2
    return per_core, (f"{isa}: 2 FMA units x {lanes} fp32 lanes x 2 flop x {mhz / 1e3:.2f} GHz "
                      "(estimate; turbo/AVX clocks differ)")


def _blas_controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def sgemm_peak(threads, n=1024, repeats=5):
    """Measured sgemm GFLOP/s with scipy's BLAS at 1 thread and at ``threads`` threads."""
    from scipy.linalg import blas
    rng = np.random.default_rng(1)
    a = np.asfortranarray(rng.standard_normal((n, n)).astype(np.float32))
    b = np.asfortranarray(rng.standard_normal((n, n)).astype(np.float32))
    flops = 2.0 * n ** 3
    ctl = _blas_controller()
    res = {}
    for nt in sorted({1, threads}):
        if ctl is not None:
            cm = ctl.limit(limits=nt, user_api="blas")
        elif nt == threads:
            cm = contextlib.nullcontext()
        else:
            continue      # cannot limit threads without threadpoolctl
        with cm:
            blas.sgemm(1.0, a, b)
            ts = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                blas.sgemm(1.0, a, b)
                ts.append(time.perf_counter() - t0)
        res[nt] = flops / min(ts) / 1e9
    return res


def numpy_blas_description():
    """Lines naming the BLAS numpy uses and its thread count (threadpoolctl when present)."""
    ctl = _blas_controller()
    if ctl is None:
        cfg = getattr(np, "__config__", None)
        name = "unknown"
        try:
            name = cfg.CONFIG["Build Dependencies"]["blas"]["name"]      # numpy >= 1.26
        except Exception:
            pass
        return [f"numpy {np.__version__} BLAS: {name} (threadpoolctl not installed: "
                "its thread count is not controlled)"]
    lines = []
    for lib in ctl.info():
        if lib.get("user_api") != "blas":
            continue
        owner = os.path.basename(os.path.dirname(lib.get("filepath", "")))
        lines.append(f"BLAS {lib.get('internal_api')} {lib.get('version')} ({owner}, "
                     f"{lib.get('architecture')}, {lib.get('threading_layer')}, "
                     f"threads={lib.get('num_threads')})")
    return lines or ["no BLAS library found by threadpoolctl"]


def fastrnn_description():
    """fastrnn's version and its ``show_config()`` report, as lines."""
    import fastrnn
    lines = [f"fastrnn {getattr(fastrnn, '__version__', '(no __version__)')}"]
    show = getattr(fastrnn, "show_config", None)
    if show is None:
        try:
            show = importlib.import_module("fastrnn._engine.config").show_config
        except Exception:
            show = None
    if show is None:
        lines.append("  fastrnn.show_config not available")
        return lines
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            ret = show()
    except Exception as exc:
        lines.append(f"  fastrnn.show_config failed: {exc}")
        return lines
    text = buf.getvalue()
    if not text.strip() and ret is not None:
        text = ret if isinstance(ret, str) else json.dumps(ret, default=str, indent=1)
    shown = text.strip().splitlines()
    if shown and shown[0].startswith("fastrnn"):
        return shown           # show_config names the version itself
    lines.extend("  " + ln for ln in shown)
    return lines


def _fastrnn_thread_fns():
    import fastrnn
    get = getattr(fastrnn, "get_num_threads", None)
    put = getattr(fastrnn, "set_num_threads", None)
    if put is None:
        try:
            cfg = importlib.import_module("fastrnn._engine.config")
            get, put = getattr(cfg, "get_num_threads", None), cfg.set_num_threads
        except Exception:
            put = None
    return get, put


def set_threads(threads, notes, restore):
    """Give numpy's BLAS and fastrnn ``threads`` threads (torch and ORT get theirs in their
    constructors). Appends undo callables to ``restore``; returns the knobs used (text)."""
    knobs = []
    ctl = _blas_controller()
    if ctl is not None:
        limiter = ctl.limit(limits=threads, user_api="blas")
        restore.append(limiter.restore_original_limits)
        knobs.append(f"numpy/scipy BLAS: threadpoolctl limit {threads}")
    else:
        notes.append("threadpoolctl not installed: the NumPy reference's BLAS thread count is "
                     "not controlled (OPENBLAS_NUM_THREADS / OMP_NUM_THREADS set it)")
    try:
        get, put = _fastrnn_thread_fns()
        if put is not None:
            if get is not None:
                old = get()
                restore.append(lambda: put(old))
            put(threads)
            knobs.append(f"fastrnn.set_num_threads({threads})")
        else:
            notes.append("fastrnn.set_num_threads not present: fastrnn runs with its default "
                         "thread count")
    except Exception as exc:      # pragma: no cover
        notes.append(f"fastrnn.set_num_threads failed: {exc}")
    return knobs


def loadavg():
    """The 1-minute load average, or None where the OS does not report it."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):   # pragma: no cover
        return None


# ---------------------------------------------------------------- ISA path and OpenBLAS core

# Names under which the engine may expose the ISA path it selected (the engine owns that
# choice; the bench only reports it, so every spelling is tried and none is required).
_ISA_ATTRS = ("isa_path", "get_isa", "isa_info", "active_isa", "current_isa", "isa", "ISA",
              "ISA_PATH")
_ISA_MODULES = ("fastrnn._engine.config", "fastrnn._engine.dispatch", "fastrnn._engine.runtime")


def _isa_from_module():
    for modname in _ISA_MODULES:
        try:
            mod = importlib.import_module(modname)
        except Exception:
            continue
        for attr in _ISA_ATTRS:
            val = getattr(mod, attr, None)
            if callable(val):
                try:
                    val = val()
                except Exception:
                    continue
            if isinstance(val, str) and val.strip():
                return val.strip(), f"{modname}.{attr}"
    return None, None


def _isa_from_text(text):
    """The ISA path from a ``show_config`` report: a line labelled ``ISA...`` wins over the
    older ``SIMD dispatched`` line."""
    found = {}
    for line in (text or "").splitlines():
        label, sep, value = line.strip().partition("  ")
        if not sep:
            label, sep, value = line.strip().partition(":")
        label, value = label.strip().rstrip(":"), value.strip()
        if not value:
            continue
        low = label.lower()
        if low.startswith("isa") or low.endswith(" isa") or "isa path" in low:
            found.setdefault("isa", (value, f"show_config '{label}'"))
        elif low.startswith("simd"):
            found.setdefault("simd", (value, f"show_config '{label}'"))
    return found.get("isa") or found.get("simd") or (None, None)


def fastrnn_isa(show_text=None):
    """The instruction-set path fastrnn's kernels run, as far as the engine reports it.

    Parameters
    ----------
    show_text : str, optional
        ``fastrnn.show_config()`` output already captured (read when the engine exposes no
        function for it).

    Returns
    -------
    dict
        ``path`` (str or None), ``source`` (where it was read), ``forced`` (the
        ``FASTRNN_ISA`` environment variable, None when unset).

    Example
    -------
    >>> fastrnn_isa()["path"]          # doctest: +SKIP
    'avx512'
    """
    path, source = _isa_from_module()
    if path is None:
        if show_text is None:
            show_text = "\n".join(fastrnn_description())
        path, source = _isa_from_text(show_text)
    return {"path": path, "source": source, "forced": os.environ.get("FASTRNN_ISA")}


def _openblas_corenames():
    """Core type OpenBLAS selected at load (``openblas_get_corename``) for every OpenBLAS
    loaded in this process (numpy's and SciPy's builds carry prefixed/suffixed symbols)."""
    try:
        import ctypes
        import scipy.linalg.cython_blas  # noqa: F401  (loads SciPy's BLAS)
        with open("/proc/self/maps") as fh:
            paths = sorted({ln.split()[-1] for ln in fh if "openblas" in ln.lower() and "/" in ln})
    except Exception:
        return {}
    names = {}
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for pre in ("", "scipy_"):
            for suf in ("", "64_"):
                fn = getattr(lib, f"{pre}openblas_get_corename{suf}", None)
                if fn is None:
                    continue
                fn.restype = ctypes.c_char_p
                fn.argtypes = []
                try:
                    names[os.path.basename(path)] = fn().decode(errors="replace")
                except Exception:
                    pass
                break
            else:
                continue
            break
    return names


def openblas_description():
    """One line: the OpenBLAS core type(s) in use and the environment variables that force it.

    ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` change which kernels OpenBLAS runs (and so the
    NumPy reference's and the weight-gradient GEMMs' speed); a published table must say whether
    they were set.

    Returns
    -------
    (str, dict)
        The line and ``{"corenames": {library: core}, "OPENBLAS_CORETYPE": ...,
        "OPENBLAS_L2_SIZE": ...}`` for the JSON metadata.
    """
    env = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    cores = _openblas_corenames()
    core_txt = ", ".join(f"{v} ({k})" for k, v in cores.items()) or "unknown (no OpenBLAS "\
        "core name found)"
    env_txt = ", ".join(f"{k}={v}" if v is not None else f"{k} unset" for k, v in env.items())
    return f"OpenBLAS core type: {core_txt}; {env_txt}", {"corenames": cores, **env}
