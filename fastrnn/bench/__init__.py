"""fastrnn benchmark suite (``fastrnn bench`` / ``python bench/run.py`` /
``python -m fastrnn.bench``).

Times fastrnn's compiled engine against its own NumPy reference and, when they are installed,
PyTorch and ONNX Runtime, on a grid of (cell, shape, mode), plus single-step streaming latency.
Everything runs in one process: for every row the implementations are warmed up, then timed
round-robin (one sample of each implementation per round, the starting implementation rotating),
so that a slow or noisy machine moves all of them together and the ratios hold. The reported time
is the median of the samples.

Forward FLOPs are ``2*B*T*G*H*(I+H)`` (G = 1 rnn, 3 gru, 4 lstm); a training step (forward +
backward with every gradient) is counted as 3x that. Pointwise work is not counted.

Only numpy and scipy are required; torch, onnx + onnxruntime, threadpoolctl and matplotlib are
used when present.

Modules: ``grid`` (cells, shapes, FLOPs, data), ``peers`` (the implementations and the
agreement check), ``machine`` (CPU, ISA path, BLAS, threads, peaks), ``timing`` (interleaved
rounds, peak memory), ``report`` (table, summary, JSON, plot), ``options`` (command line),
``suite`` (one run).
"""

import sys

from .grid import CELLS, IMPLS, MODES, QUICK_SHAPES, SHAPES, forward_flops, make_data, \
    mode_flops
from .options import build_parser
from .peers import FastrnnImpl, OrtImpl, TorchImpl, Unavailable, check_agreement
from .report import plot_speedups
from .suite import run
from .timing import peak_memory, time_round_robin

__all__ = ["main", "run", "build_parser", "SHAPES", "QUICK_SHAPES", "CELLS", "MODES", "IMPLS",
           "forward_flops", "mode_flops", "make_data", "FastrnnImpl", "TorchImpl", "OrtImpl",
           "Unavailable", "check_agreement", "time_round_robin", "peak_memory",
           "plot_speedups"]


def main(argv=None):
    """Command-line entry point (``fastrnn bench``, ``python bench/run.py``).

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default ``sys.argv[1:]``); ``--help`` lists them.

    Returns
    -------
    int
        0 (argument errors raise ``SystemExit`` with argparse's usage message).

    Example
    -------
    >>> main(["--quick", "--impls", "fastrnn,numpy"])        # doctest: +SKIP
    0
    """
    run(argv)
    return 0


if __name__ == "__main__":      # pragma: no cover
    sys.exit(main())
