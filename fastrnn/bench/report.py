"""What the suite prints and writes: log lines, the table, the summary, JSON and the plot."""

import datetime
import json
import platform
import sys

import numpy as np

from .grid import IMPLS

__all__ = ["print_machine", "format_isa", "print_peaks", "table_header", "format_row",
           "print_summary", "write_json", "plot_speedups"]


def _log(out, msg=""):
    print(msg, file=out, flush=True)


def _fmt_time(s, streaming):
    if s is None:
        return "-"
    if streaming:
        return f"{s * 1e6:.1f} us"
    return f"{s * 1e3:.3f} ms"


def plot_speedups(records, path, out=None):
    """Horizontal bars: fastrnn's speed-up over each peer per row (log scale). Returns True when
    a file was written."""
    out = sys.stdout if out is None else out
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _log(out, f"matplotlib not installed: --plot {path} skipped")
        return False
    peers = [p for p in IMPLS if p != "fastrnn" and any(
        r["impl"] == p and r["fastrnn_speedup"] for r in records)]
    rows = []
    for r in records:
        key = (r["cell"], r["shape"], r["mode"])
        if key not in rows:
            rows.append(key)
    if not peers or not rows:
        _log(out, f"nothing to plot (no fastrnn speed-ups): --plot {path} skipped")
        return False
    val = {(r["cell"], r["shape"], r["mode"], r["impl"]): r["fastrnn_speedup"] for r in records}
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(rows) * max(1, len(peers)) / 1.6 + 1.5))
    height = 0.8 / len(peers)
    for j, p in enumerate(peers):
        ys = [i + j * height for i in range(len(rows))]
        xs = [val.get(k + (p,)) or 0 for k in rows]
        ax.barh(ys, xs, height=height, label=f"vs {p}")
    ax.axvline(1.0, color="k", lw=1)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(rows))])
    ax.set_yticklabels(["/".join(k) for k in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("fastrnn speed-up (peer time / fastrnn time; > 1 = fastrnn faster)")
    ax.legend(loc="best", fontsize=8)
    ax.set_title("fastrnn speed-up per (cell, shape, mode)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    _log(out, f"wrote {path}")
    return True


# ---------------------------------------------------------------- header

def print_machine(out, info, load, isa_info, openblas_line):
    """The first lines of a run: date, machine, fastrnn's ISA path, OpenBLAS core, load.

    Returns the notes to add to the run (a busy machine) and the CPU flag list shown."""
    notes = []
    _log(out, f"fastrnn benchmark  "
              f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M:%S} UTC")
    flags = set(info["flags"])
    isa = [f for f in ("avx512f", "avx2", "fma") if f in flags]
    _log(out, f"machine: {info['model']}, {info['cores']} cores, flags {' '.join(isa) or 'n/a'}"
              f"{'' if 'avx512f' in flags else ' (no avx512f)'}, "
              f"{info['mhz'] or '?'} MHz; python {platform.python_version()}, numpy "
              f"{np.__version__}")
    _log(out, format_isa(isa_info))
    _log(out, openblas_line)
    if load is not None:
        busy = load > 0.5 * (info["cores"] or 1)
        _log(out, f"load average (1 min) at start: {load:.2f}" + (
            "  WARNING: the machine is busy; other processes distort the timings, most of all "
            "for multi-threaded implementations" if busy else ""))
        if busy:
            notes.append(f"machine busy at start (load average {load:.2f})")
    return notes, isa


def format_isa(isa_info):
    """The header line naming fastrnn's ISA path (``machine.fastrnn_isa()``'s dict)."""
    forced = isa_info.get("forced")
    path = isa_info.get("path") or "unknown (the engine does not report it)"
    src = f" [{isa_info['source']}]" if isa_info.get("source") else ""
    return (f"fastrnn ISA path: {path}{src}; FASTRNN_ISA="
            f"{forced if forced is not None else 'unset'}")


def print_peaks(out, peaks, theo_core, theo_how, threads):
    """The measured sgemm peak(s) and the theoretical FMA peak estimate."""
    if peaks:
        _log(out, "measured sgemm peak (scipy BLAS, 1024^3, best of 5): " + ", ".join(
            f"{k} thread{'s' if k > 1 else ''} {v:.1f} GFLOP/s"
            for k, v in sorted(peaks.items())))
    if theo_core:
        _log(out, f"theoretical FMA peak: {theo_core:.0f} GFLOP/s per core, "
                  f"{theo_core * threads:.0f} for {threads} threads [{theo_how}]")
    else:
        _log(out, f"theoretical FMA peak: {theo_how}")


# ---------------------------------------------------------------- table

def table_header():
    """The table's column line (the dashes under it have its length)."""
    return (f"{'cell':<5} {'shape':<9} {'mode':<9} {'impl':<8} {'median':>12} {'GFLOP/s':>8} "
            f"{'%peak':>6} {'fastrnn x':>9} {'reps':>5} {'peak MiB':>12}")


def format_row(rec, peak_ref):
    """One table line from a record (see ``suite.run``); ``peak_ref`` the sgemm peak or None."""
    gf, med = rec["gflops"], rec["median_s"]
    speed = rec["fastrnn_speedup"]
    m = rec["peak_mem_bytes"]
    mem_txt = "-" if m is None else f"{m / 2**20:.1f} {rec['mem_method'][:2]}"
    return (f"{rec['cell']:<5} {rec['shape']:<9} {rec['mode']:<9} {rec['impl']:<8} "
            f"{_fmt_time(med, rec['mode'] == 'streaming'):>12} {gf:>8.2f} "
            f"{(f'{100 * gf / peak_ref:.1f}%' if peak_ref else '-'):>6} "
            f"{(f'{speed:.2f}' if speed else '-'):>9} {rec['repeats']:>5} "
            f"{mem_txt:>12}")


def print_summary(out, records, has_base, notes, threads, elapsed, load, cores):
    """After the table: the rows fastrnn loses (worst first), notes, column legend, time."""
    losses = [r for r in records if r["fastrnn_speedup"] is not None and r["impl"] != "fastrnn"
              and r["fastrnn_speedup"] < 1.0]
    _log(out)
    if has_base:
        if losses:
            _log(out, "fastrnn is slower than a peer on these rows (speed-up < 1):")
            for r in sorted(losses, key=lambda r: r["fastrnn_speedup"]):
                _log(out, f"  {r['cell']}/{r['shape']}/{r['mode']}: {r['impl']} is "
                          f"{1 / r['fastrnn_speedup']:.2f}x faster")
        else:
            _log(out, "fastrnn is at least as fast as every peer on every row measured.")
    for n in notes:
        _log(out, "note: " + n)
    _log(out, "columns: median = median time per call (per step for streaming); GFLOP/s uses "
              "forward FLOPs 2*B*T*G*H*(I+H), training 3x; %peak = of the measured "
              f"{threads}-thread sgemm peak; fastrnn x = impl time / fastrnn time (>1: fastrnn "
              "faster); peak MiB = extra peak memory of one training step (tr = tracemalloc, "
              "numpy allocations; rs = peak RSS delta, lower bound).")
    _log(out, f"total time {elapsed:.1f} s" + (
        f"; load average (1 min) at the end {load:.2f} (this run counts for about "
        f"{min(threads, cores or 1)})" if load is not None else ""))


def write_json(result, path, out):
    """Write the run's ``{"metadata", "records"}`` dict to ``path``."""
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    _log(out, f"wrote {path}")
