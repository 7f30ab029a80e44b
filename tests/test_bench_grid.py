"""fastrnn.bench.grid: FLOP counts and the shared random problem."""

import numpy as np
import pytest

from fastrnn.bench import grid


def test_flops():
    assert grid.forward_flops("lstm", 2, 3, 5, 7) == 2 * 2 * 3 * 4 * 7 * (5 + 7)
    assert grid.forward_flops("gru", 1, 1, 1, 1) == 2 * 3 * 2
    assert grid.forward_flops("rnn", 1, 1, 2, 3) == 2 * 1 * 3 * 5
    assert grid.mode_flops("rnn", 2, 3, 4, 5, "training") == \
        3 * grid.forward_flops("rnn", 2, 3, 4, 5)
    assert grid.mode_flops("gru", 2, 3, 4, 5, "inference") == \
        grid.forward_flops("gru", 2, 3, 4, 5)


@pytest.mark.parametrize("cell,G", [("rnn", 1), ("gru", 3), ("lstm", 4)])
def test_make_data_shapes_and_seed(cell, G):
    B, T, I, H = 2, 3, 5, 7
    d = grid.make_data(cell, B, T, I, H, seed=4)
    assert d["x"].shape == (T, B, I) and d["dy"].shape == (T, B, H)
    assert d["weight_ih"].shape == (G * H, I) and d["weight_hh"].shape == (G * H, H)
    assert d["bias_ih"].shape == d["bias_hh"].shape == (G * H,)
    assert d["h0"].shape == d["c0"].shape == d["dh_n"].shape == (B, H)
    for k in ("x", "weight_ih", "h0", "dy"):
        assert d[k].dtype == np.float32
    assert np.abs(d["weight_hh"]).max() <= 1 / np.sqrt(H)
    again = grid.make_data(cell, B, T, I, H, seed=4)
    other = grid.make_data(cell, B, T, I, H, seed=5)
    np.testing.assert_array_equal(d["weight_hh"], again["weight_hh"])
    assert not np.array_equal(d["weight_hh"], other["weight_hh"])


def test_grid_names_are_consistent():
    assert set(grid.QUICK_SHAPES) <= set(grid.SHAPES)
    assert set(grid.DEFAULT_SHAPES) == set(grid.SHAPES)
    assert not set(grid.EXTRA_SHAPES) & set(grid.SHAPES)
    assert set(grid.GATES) == set(grid.CELLS)
