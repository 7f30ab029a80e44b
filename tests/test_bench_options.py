"""fastrnn.bench.options: defaults, --quick, custom shapes, rejected values."""

import pytest

from fastrnn.bench import grid, options


def test_defaults_and_quick():
    args, o = options.parse_options(["--threads", "2"])
    assert [n for n, _ in o["shapes"]] == list(grid.DEFAULT_SHAPES)
    assert o["budget"] == 6.0 and o["sample_time"] == 0.02 and o["threads"] == 2
    assert o["modes"] == list(grid.MODES) and o["impl_names"] == list(grid.IMPLS)
    assert (o["stream_I"], o["stream_H"]) == grid.STREAM_SIZE
    args, o = options.parse_options(["--quick", "--threads", "1"])
    assert [n for n, _ in o["shapes"]] == list(grid.QUICK_SHAPES)
    assert o["budget"] == 1.0 and o["sample_time"] == 0.01
    assert o["numpy_max_call"] == max(1.0, 1.5 * 1.0 / 5)


def test_custom_shape_only_and_repeats():
    _, o = options.parse_options(["--custom-shape", "2x3x4x5", "--min-repeats", "7",
                                  "--max-repeats", "3", "--stream-size", "8,16"])
    assert o["shapes"] == [("2x3x4x5", (2, 3, 4, 5))]
    assert o["min_rep"] == 7 and o["max_rep"] == 7
    assert (o["stream_I"], o["stream_H"]) == (8, 16)


@pytest.mark.parametrize("argv", [["--cells", "lstm,bogus"], ["--shapes", "huge"],
                                  ["--impls", "tensorflow"], ["--custom-shape", "1,2,3"],
                                  ["--custom-shape", "1,2,3,0"], ["--modes", ""],
                                  ["--stream-size", "8"], ["--threads", "-1"]])
def test_bad_arguments(argv):
    with pytest.raises(SystemExit):
        options.parse_options(argv)
