"""One benchmark run: header, implementations, agreement check, the timed rows, the summary.

The pieces it strings together live in ``grid`` (what is measured), ``peers`` (who is
measured), ``timing`` (how) and ``report`` (what is printed and written).
"""

import datetime
import platform
import statistics
import sys
import time

import numpy as np

from . import machine, report
from .grid import make_data, mode_flops
from .options import parse_options
from .peers import FastrnnImpl, OrtImpl, TorchImpl, Unavailable, check_agreement
from .report import _log
from .timing import peak_memory, time_round_robin

__all__ = ["run"]


def run(argv=None, out=None):
    """Run the benchmark.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (``fastrnn bench --help`` lists them); default ``sys.argv[1:]``.
    out : file, optional
        Where the report is printed (default ``sys.stdout``).

    Returns
    -------
    dict
        ``{"metadata": {...}, "records": [...]}``, also written with ``--json``.

    Example
    -------
    >>> res = run(["--quick", "--impls", "fastrnn,numpy"])      # doctest: +SKIP
    """
    out = sys.stdout if out is None else out
    args, o = parse_options(argv)
    restore = []      # undo callables (thread settings), run whatever happens
    try:
        return _run(args, o, out, restore, argv)
    finally:
        for undo in reversed(restore):
            try:
                undo()
            except Exception:     # pragma: no cover
                pass


def _start_impls(impl_names, threads, knobs, restore, out):
    """Construct the implementations asked for; the missing ones go to ``skipped``."""
    impls, skipped = {}, []
    for name in impl_names:
        try:
            if name == "fastrnn":
                impls[name] = FastrnnImpl("cython")
            elif name == "numpy":
                impls[name] = FastrnnImpl("numpy")
            elif name == "torch":
                impls[name] = TorchImpl(threads)
                restore.append(lambda t=impls[name]: t.torch.set_num_threads(t.old_threads))
                knobs.append(f"torch.set_num_threads({threads})")
            elif name == "ort":
                impls[name] = OrtImpl(threads)
                knobs.append(f"ORT intra_op_num_threads={threads}, inter_op_num_threads=1")
        except Unavailable as exc:
            skipped.append({"impl": name, "reason": str(exc)})
            _log(out, f"{exc}: skipped" if name in ("torch", "ort")
                 else f"{name} not available ({exc}): skipped")
    return impls, skipped


def _describe(impls):
    """Versions and the lines saying what each implementation runs on."""
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    try:
        import scipy
        versions["scipy"] = scipy.__version__
    except ImportError:   # pragma: no cover
        pass
    describe = []
    try:
        describe += machine.fastrnn_description()
        import fastrnn
        versions["fastrnn"] = getattr(fastrnn, "__version__", None)
    except Exception as exc:  # pragma: no cover
        describe.append(f"fastrnn description failed: {exc}")
    describe += machine.numpy_blas_description()
    for name in ("torch", "ort"):
        if name in impls:
            describe += impls[name].describe()
            if name == "torch":
                versions["torch"] = impls[name].torch.__version__
            else:
                versions["onnxruntime"] = impls[name].ort.__version__
                versions["onnx"] = impls[name].onnx.__version__
    return versions, describe


def _grid_rows(cells, modes, shapes, stream_I, stream_H):
    """(cell, shape name, (B, T, I, H), mode) in the order they are measured."""
    rows = []
    for cell in cells:
        for mode in modes:
            if mode == "streaming":
                continue
            for sname, (B, T, I, H) in shapes:
                rows.append((cell, sname, (B, T, I, H), mode))
        if "streaming" in modes:
            rows.append((cell, "stream", (1, 1, stream_I, stream_H), "streaming"))
    return rows


def _row_fns(impls, cell, sname, mode, d, flops, numpy_rate, numpy_max_call, row_skip):
    """The ``fn(n)`` of every implementation taking part in a row."""
    fns = {}
    for name, impl in impls.items():
        if mode == "training" and not impl.training:
            continue
        if name == "numpy" and mode != "streaming":
            rate = numpy_rate.get((cell, mode))
            if rate and flops / rate > numpy_max_call:
                msg = (f"numpy reference skipped on {cell}/{sname}/{mode}: estimated "
                       f"{flops / rate:.2f} s per call (from smaller rows) exceeds "
                       f"{numpy_max_call:.2f} s (row budget)")
                row_skip.append(msg)
                continue
        try:
            fns[name] = impl.step_fn(d) if mode == "streaming" else impl.seq_fn(d, mode)
        except Unavailable:
            continue
        except Exception as exc:
            row_skip.append(f"{name} failed to set up {cell}/{sname}/{mode}: "
                            f"{type(exc).__name__}: {exc}")
    return fns


def _run(args, o, out, restore, argv):
    cells, shapes, modes, impl_names = o["cells"], o["shapes"], o["modes"], o["impl_names"]
    threads, stream_I, stream_H = o["threads"], o["stream_I"], o["stream_H"]
    budget, sample_time = o["budget"], o["sample_time"]
    min_rep, max_rep = o["min_rep"], o["max_rep"]
    numpy_max_call = o["numpy_max_call"]
    t_start = time.perf_counter()
    info = machine.cpu_info()
    isa_info = machine.fastrnn_isa()
    openblas_line, openblas = machine.openblas_description()
    notes, isa = report.print_machine(out, info, machine.loadavg(), isa_info, openblas_line)
    knobs = machine.set_threads(threads, notes, restore)

    impls, skipped = _start_impls(impl_names, threads, knobs, restore, out)
    _log(out, f"threads: {threads} ({'; '.join(knobs)})")
    base_name = "fastrnn" if "fastrnn" in impls else None
    if base_name is None:
        _log(out, "fastrnn (cython) not in this run: speed-up columns are n/a")

    versions, describe = _describe(impls)
    for line in describe:
        _log(out, line)

    peaks = {}
    if not args.no_peak:
        try:
            peaks = machine.sgemm_peak(threads)
        except Exception as exc:
            notes.append(f"sgemm peak not measured: {exc}")
    theo_core, theo_how = machine.theoretical_peak(info)
    report.print_peaks(out, peaks, theo_core, theo_how, threads)
    peak_ref = peaks.get(threads)

    checks = []
    if not args.no_check and impls:
        base_for_check = base_name or next(iter(impls))
        checks = check_agreement(impls, cells, base_for_check, out)

    records, row_notes = [], []
    numpy_rate = {}      # (cell, mode) -> last measured FLOP/s of the numpy reference
    _log(out)
    header = report.table_header()
    _log(out, header)
    _log(out, "-" * len(header))
    for cell, sname, (B, T, I, H), mode in _grid_rows(cells, modes, shapes, stream_I, stream_H):
        d = make_data(cell, B, T, I, H, seed=args.seed)
        flops = mode_flops(cell, B, T, I, H, mode)
        row_skip = []
        fns = _row_fns(impls, cell, sname, mode, d, flops, numpy_rate, numpy_max_call,
                       row_skip)
        mem = {}
        if mode == "training" and not args.no_memory:
            for name, fn in list(fns.items()):
                try:
                    fn(1)           # warm: first-call allocations are not a training step's
                    mem[name] = peak_memory(fn, impls[name].mem_method)
                except Exception as exc:
                    row_skip.append(f"{name} failed on {cell}/{sname}/{mode}: {exc}")
                    fns.pop(name)
        try:
            res = time_round_robin(fns, min_rep, max_rep, budget, sample_time,
                                   gap=args.switch_gap, max_settle=args.max_settle) if fns else {}
        except Exception as exc:
            row_skip.append(f"timing failed on {cell}/{sname}/{mode}: {type(exc).__name__}: "
                            f"{exc}")
            res = {}
        row_load = machine.loadavg()
        base_t = None
        if base_name in res:
            base_t = statistics.median(res[base_name]["times"])
        for name in impls:
            if name not in res:
                continue
            ts = res[name]["times"]
            med = statistics.median(ts)
            gf = flops / med / 1e9
            if name == "numpy" and mode != "streaming":
                numpy_rate[(cell, mode)] = flops / med
            m = mem.get(name)
            rec = {
                "cell": cell, "shape": sname, "B": B, "T": T, "I": I, "H": H, "mode": mode,
                "impl": name, "median_s": med, "min_s": min(ts), "max_s": max(ts),
                "repeats": len(ts), "calls_per_sample": res[name]["n"], "flops": flops,
                "gflops": gf, "frac_peak": (gf / peak_ref) if peak_ref else None,
                "fastrnn_speedup": (med / base_t) if base_t else None,
                "peak_mem_bytes": m[0] if m else None, "mem_method": m[1] if m else None,
                "threads": threads, "dtype": "float32", "samples_s": ts,
                "load_1min": row_load,
            }
            records.append(rec)
            _log(out, report.format_row(rec, peak_ref))
        for msg in row_skip:
            _log(out, "  note: " + msg)
            row_notes.append(msg)
    elapsed = time.perf_counter() - t_start

    for s in skipped:
        row_notes.append(f"{s['impl']} skipped: {s['reason']}")
    report.print_summary(out, records, base_name is not None, notes, threads, elapsed,
                         machine.loadavg(), info["cores"])

    result = {
        "metadata": {
            "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "threads": threads, "thread_knobs": knobs, "versions": versions,
            "cpu": {"model": info["model"], "cores": info["cores"], "mhz": info["mhz"],
                    "isa": isa},
            "fastrnn_isa": isa_info, "openblas": openblas,
            "sgemm_peak_gflops": {str(k): v for k, v in peaks.items()},
            "theoretical_peak_gflops_per_core": theo_core,
            "theoretical_peak_note": theo_how,
            "implementations": list(impls), "skipped": skipped, "notes": notes + row_notes,
            "describe": describe, "checks": checks,
            "timing": {"row_budget_s": budget, "switch_gap_s": args.switch_gap,
                       "max_settle_s": args.max_settle, "min_repeats": min_rep,
                       "max_repeats": max_rep, "sample_time_s": sample_time,
                       "statistic": "median", "interleaved": True},
            "flops": "forward 2*B*T*G*H*(I+H); training 3x forward; streaming one step (T=1)",
            "elapsed_s": elapsed, "argv": list(argv) if argv is not None else sys.argv[1:],
        },
        "records": records,
    }
    if args.json:
        report.write_json(result, args.json, out)
    if args.plot:
        report.plot_speedups(records, args.plot, out)
    return result
