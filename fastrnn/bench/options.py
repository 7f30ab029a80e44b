"""Command-line options of the benchmark suite (shared by ``fastrnn bench`` and
``bench/run.py``)."""

import argparse

from .grid import CELLS, DEFAULT_SHAPES, EXTRA_SHAPES, IMPLS, MODES, QUICK_SHAPES, SHAPES, \
    STREAM_SIZE
from .machine import cpu_info

__all__ = ["build_parser", "parse_options"]


def _csv(value, allowed, what):
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise SystemExit(f"--{what}: empty list")
    bad = [v for v in items if allowed is not None and v not in allowed]
    if bad:
        raise SystemExit(f"--{what}: unknown {bad}; choose from {', '.join(allowed)}")
    return items


def _parse_shape(text, what):
    try:
        vals = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        vals = ()
    if len(vals) != 4 or min(vals) < 1:
        raise SystemExit(f"{what} must be four positive integers B,T,I,H, got {text!r}")
    return vals


def build_parser():
    """The ``argparse`` parser of the suite (``fastrnn bench --help`` shows it)."""
    p = argparse.ArgumentParser(
        prog="fastrnn bench",
        description="Benchmark fastrnn against its NumPy reference, PyTorch and ONNX Runtime "
                    "(interleaved timing in one process; median of repeats).")
    p.add_argument("--cells", default=",".join(CELLS), help="comma list of rnn,gru,lstm")
    p.add_argument("--shapes", default=None,
                   help="comma list of shape names: " + ", ".join(
                       f"{k}={'x'.join(map(str, v))}"
                       for k, v in {**SHAPES, **EXTRA_SHAPES}.items())
                   + " (B x T x I x H); default all but tiny, --quick: latency,small")
    p.add_argument("--custom-shape", action="append", default=[], metavar="B,T,I,H",
                   help="add a custom shape (repeatable)")
    p.add_argument("--modes", default=None,
                   help="comma list of inference,training,streaming (default all)")
    p.add_argument("--impls", default=",".join(IMPLS),
                   help="comma list of fastrnn,numpy,torch,ort (fastrnn is the baseline)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for every implementation (default: all cores)")
    p.add_argument("--stream-size", default=None, metavar="I,H",
                   help="streaming step input and hidden size (default 64,256; B=1)")
    p.add_argument("--quick", action="store_true",
                   help="small subset (latency+small shapes, short budget): under two minutes")
    p.add_argument("--row-budget", type=float, default=None,
                   help="seconds of timed rounds per row (default 6, --quick 1)")
    p.add_argument("--min-repeats", type=int, default=5, help="samples per implementation")
    p.add_argument("--max-repeats", type=int, default=50)
    p.add_argument("--sample-time", type=float, default=None,
                   help="target seconds per sample (calls are batched to reach it; default "
                        "0.02, --quick 0.01)")
    p.add_argument("--switch-gap", type=float, default=0.02,
                   help="idle seconds before each sample so the previous implementation's "
                        "spinning worker threads go to sleep; the wait then goes on while the "
                        "process still burns CPU (OpenBLAS spins ~0.1 s), up to 0.5 s "
                        "(default 0.02)")
    p.add_argument("--max-settle", type=float, default=0.5,
                   help="longest wait (s) before a sample for the process to stop using CPU "
                        "(spinning worker pools); 0: only --switch-gap (default 0.5)")
    p.add_argument("--numpy-max-call", type=float, default=None,
                   help="skip the NumPy reference on a row when its estimated time per call "
                        "(from earlier rows) exceeds this many seconds (default: 1.5 * row "
                        "budget / min repeats, at least 1)")
    p.add_argument("--no-memory", action="store_true",
                   help="skip the peak-memory measurement of training steps")
    p.add_argument("--no-peak", action="store_true", help="skip the sgemm peak measurement")
    p.add_argument("--no-check", action="store_true",
                   help="skip the start-up agreement check between implementations")
    p.add_argument("--json", metavar="PATH", help="write results as JSON")
    p.add_argument("--plot", metavar="PATH", help="write a PNG of fastrnn's speed-ups")
    p.add_argument("--seed", type=int, default=0)
    return p


def parse_options(argv=None):
    """Parse and check the command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    (argparse.Namespace, dict)
        The raw arguments and the resolved run options: ``cells``, ``shapes`` (list of
        (name, (B, T, I, H))), ``modes``, ``impl_names``, ``threads``, ``stream_I``,
        ``stream_H``, ``budget``, ``sample_time``, ``min_rep``, ``max_rep``,
        ``numpy_max_call``.

    Raises
    ------
    SystemExit
        On an unknown name or a malformed value (the message names the option).
    """
    args = build_parser().parse_args(argv)
    cells = _csv(args.cells, CELLS, "cells")
    all_shapes = {**SHAPES, **EXTRA_SHAPES}
    if args.shapes is not None:
        shape_names = _csv(args.shapes, tuple(all_shapes), "shapes")
    elif args.custom_shape:
        shape_names = []
    else:
        shape_names = list(QUICK_SHAPES if args.quick else DEFAULT_SHAPES)
    shapes = [(nm, all_shapes[nm]) for nm in shape_names]
    for text in args.custom_shape:
        s = _parse_shape(text, "--custom-shape")
        shapes.append(("x".join(map(str, s)), s))
    modes = _csv(args.modes, MODES, "modes") if args.modes is not None else list(MODES)
    impl_names = _csv(args.impls, IMPLS, "impls")
    threads = args.threads or cpu_info()["cores"] or 1
    if threads < 1:
        raise SystemExit(f"--threads must be >= 1, got {threads}")
    stream_I, stream_H = STREAM_SIZE
    if args.stream_size:
        try:
            stream_I, stream_H = (int(v) for v in args.stream_size.split(","))
        except ValueError:
            raise SystemExit(f"--stream-size must be I,H, got {args.stream_size!r}")
    budget = args.row_budget if args.row_budget is not None else (1.0 if args.quick else 6.0)
    sample_time = args.sample_time if args.sample_time is not None else (
        0.01 if args.quick else 0.02)
    min_rep = max(1, args.min_repeats)
    max_rep = max(min_rep, args.max_repeats)
    numpy_max_call = args.numpy_max_call if args.numpy_max_call is not None else \
        max(1.0, 1.5 * budget / min_rep)

    o = dict(cells=cells, shapes=shapes, modes=modes, impl_names=impl_names, threads=threads,
             stream_I=stream_I, stream_H=stream_H, budget=budget, sample_time=sample_time,
             min_rep=min_rep, max_rep=max_rep, numpy_max_call=numpy_max_call)
    return args, o
