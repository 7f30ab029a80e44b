"""Every kernel path this CPU can run (AVX-512, AVX2, the AVX-512 tiling lowered to
AVX2, baseline) against the NumPy reference, and the FASTRNN_ISA selection.

The paths differ in vector width and register tile (fastrnn/_engine/src/fr_kern.c),
so the shapes below straddle every tile edge: batches of 1, 2, 7, 9, 17 rows (row
tiles of 2..8 and their balanced remainders), hidden sizes below, at and just past
the vector widths 2/4/8/16 and the panel widths 48/64, T = 1, masks.
"""
import tempfile
import os
import subprocess
import sys

import numpy as np
import pytest

# subprocesses start outside the source checkout: `python -c` puts the working directory
# first on sys.path, and the checkout's uncompiled fastrnn/ would shadow the installed one
_OUTSIDE_SOURCE = tempfile.gettempdir()

import fastrnn
from fastrnn._engine import config as _config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_engine as TE  # noqa: E402  (shared reference-comparison helpers)

PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(fastrnn.__file__)))
PATHS = _config.supported_isas()

SHAPES = [  # T, B, I, H
    (1, 1, 3, 5),
    (3, 2, 5, 17),
    (2, 7, 4, 16),
    (3, 9, 6, 33),
    (2, 17, 7, 49),
    (1, 5, 3, 65),
]


@pytest.fixture
def isa(request):
    prev = _config._set_isa(request.param)
    yield request.param
    _config._set_isa(prev)


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("isa", PATHS, indirect=True)
def test_path_vs_reference(isa, cell, shape, dt):
    seed = 100 + shape[1] * 7 + shape[3]
    TE.check_cell(cell, shape, dt, None, seed)


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("mode", [0, 1], ids=["hoisted", "in-step"])
@pytest.mark.parametrize("isa", PATHS, indirect=True)
def test_path_input_projection_both_ways(isa, mode, cell, dt):
    # the same shapes with the input projection hoisted and computed in the fused step
    # (its own register tiles over x_t, K = I in blocks; rows 7 and 17 give uneven tiles)
    from fastrnn._engine import kernels
    kernels._set_fuse_input(mode)
    try:
        TE.check_cell(cell, (3, 7, 40, 17), dt, "random", seed=7)
        TE.check_cell(cell, (2, 17, 5, 65), dt, None, seed=8)
    finally:
        kernels._set_fuse_input(-1)


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("isa", PATHS, indirect=True)
def test_path_masks_and_relu(isa, cell, dt):
    TE.check_cell(cell, (5, 9, 4, 21), dt, "random", seed=5)
    TE.check_cell(cell, (4, 3, 5, 18), dt, "lengths", seed=6)
    if cell == "rnn":
        TE.check_cell(cell, (3, 10, 4, 50), dt, None, seed=7, activation="relu")


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("isa", PATHS, indirect=True)
def test_path_recurrent_dropout(isa, cell, dt):
    for i, shape in enumerate(SHAPES):
        T, B, I, H = shape
        seed = 300 + 7 * i
        TE.check_cell(cell, shape, dt, "random" if i % 2 else None, seed,
                      recurrent_mask=TE.recurrent_mask(B, H, dt, seed))
    TE.check_cell(cell, (4, 3, 5, 18), dt, "lengths", 320,
                  recurrent_mask=TE.recurrent_mask(3, 18, dt, 320))


@pytest.mark.parametrize("isa", PATHS, indirect=True)
def test_path_threaded_split(isa):
    saved = fastrnn.get_num_threads()
    fastrnn.set_num_threads(2)
    try:
        for cell in ("rnn", "lstm", "gru"):
            TE.check_cell(cell, (6, 30, 40, 70), np.float32, "lengths", seed=8)
            # one row: the threads split the hidden units (panels differ per path)
            for dt in (np.float32, np.float64):
                TE.check_cell(cell, (3, 1, 6, {"rnn": 1024, "gru": 600}.get(cell, 512)), dt,
                              "random", seed=9)
            TE.check_cell(cell, (6, 30, 40, 70), np.float32, "random", seed=9,
                          recurrent_mask=TE.recurrent_mask(30, 70, np.float32, 9))
    finally:
        fastrnn.set_num_threads(saved)


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("isa", PATHS, indirect=True)
def test_path_activations_full_range_and_nan(isa, dt):
    # the activations are vectorized differently per path (AVX-512 masks, AVX2/SSE
    # blends of branch-free selects, see src/fr_act.h): each must keep the accuracy,
    # the exact saturation and the NaN propagation of the scalar definition
    TE.test_activation_accuracy_full_range(dt)
    TE.test_activation_nan(dt)


def test_best_path_is_the_default():
    rt = _config._runtime()
    assert _config.ISA_NAMES[rt.isa_best()] == PATHS[-1] or PATHS[-1] == "avx2w16"
    if "avx512" in PATHS:
        assert rt.isa_best() == _config.ISA_NAMES.index("avx512")
    assert "baseline" in PATHS


class _FakeRuntime:
    """A CPU with AVX2 only."""
    @staticmethod
    def isa_best():
        return 1

    @staticmethod
    def isa_supported(level):
        return level in (0, 1, 2)


@pytest.mark.parametrize("value,expect", [(None, 1), ("", 1), ("auto", 1), ("AVX2", 1),
                                          ("baseline", 0), ("avx2w16", 2)])
def test_env_value_selects_path(value, expect):
    assert _config._isa_from_env(_FakeRuntime, value) == expect


@pytest.mark.parametrize("value", ["avx512", "sse9"])
def test_env_value_unsupported_or_unknown_falls_back_with_warning(value):
    with pytest.warns(RuntimeWarning, match="FASTRNN_ISA"):
        assert _config._isa_from_env(_FakeRuntime, value) == 1


def test_set_isa_rejects_unknown_name():
    with pytest.raises(ValueError, match="name: expected one of"):
        _config._set_isa("avx1024")


SCRIPT = r"""
import io, numpy as np, fastrnn
from fastrnn._engine import config, kernels, runtime, lstm, gru, elman
buf = io.StringIO(); fastrnn.show_config(file=buf)
print(config.ISA_NAMES[runtime._isa()], [m._set_isa(runtime._isa()) for m in (lstm, gru, elman)])
print(buf.getvalue())
"""


@pytest.mark.parametrize("name", PATHS)
def test_env_var_forces_path_in_fresh_process(name):
    env = dict(os.environ, FASTRNN_ISA=name, PYTHONPATH=PKG_PARENT)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          cwd=_OUTSIDE_SOURCE,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    first = out.stdout.splitlines()[0]
    assert first.startswith(name + " ")
    assert f"SIMD dispatched   {name} (" in out.stdout
    assert f"FASTRNN_ISA={name}" in out.stdout


def test_env_var_bad_value_warns_in_fresh_process():
    env = dict(os.environ, FASTRNN_ISA="mmx", PYTHONPATH=PKG_PARENT)
    out = subprocess.run([sys.executable, "-W", "always", "-c", SCRIPT], env=env,
                          cwd=_OUTSIDE_SOURCE,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "FASTRNN_ISA" in out.stderr and "expected one of" in out.stderr
    assert out.stdout.splitlines()[0].startswith(PATHS[-1] if PATHS[-1] != "avx2w16"
                                                 else "avx2")


# (K, M, N): one and several K blocks of 256, a last panel narrower than a vector, one
# exactly 1 or 2 vectors wide (the narrow tile writing C directly), full panels only,
# row counts that leave short row tiles, and a non-multiple K tail
GEMM_TN_SHAPES = [(1, 1, 1), (7, 3, 5), (300, 13, 16), (513, 37, 70), (600, 50, 32),
                  (257, 9, 48), (1000, 64, 64), (260, 17, 100)]


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("isa", PATHS, indirect=True)
def test_path_weight_gradient_product(isa, dt):
    """The weight gradients' product A^T B (dW = dG^T X) on every path against float64
    NumPy, for shapes that reach each of its branches."""
    from fastrnn._engine import runtime
    rng = np.random.default_rng(11)
    for K, M, N in GEMM_TN_SHAPES:
        A = rng.standard_normal((K, M)).astype(dt)
        B = rng.standard_normal((K, N)).astype(dt)
        got = runtime._gemm_tn(A, B)
        want = A.astype(np.float64).T @ B.astype(np.float64)
        tol = 2e-5 if dt == np.float32 else 1e-12
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.sqrt(K),
                                   err_msg=f"K={K} M={M} N={N}")
