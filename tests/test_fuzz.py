"""Property test: any array thrown at the layers gives a documented error or a sound result.

Shapes, dtypes and values come from hypothesis, including 0-d to 4-d arrays, empty sides,
integer/bool/complex dtypes, NaN and inf. Whatever comes in, the call either raises ValueError or
TypeError before the compiled code runs, or returns an output of the documented shape that is
finite whenever the input was. The weights never change.
"""

import numpy as np
import pytest

hyp = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings           # noqa: E402
from hypothesis import strategies as st                        # noqa: E402
from hypothesis.extra import numpy as hnp                      # noqa: E402

import fastrnn as fr                                            # noqa: E402

DTYPES = st.sampled_from([np.float32, np.float64, np.int32, np.bool_, np.complex64,
                          np.float16])
LAYERS = {name: cls(3, input_size=4, seed=0, return_sequences=True)
          for name, cls in (("rnn", fr.SimpleRNN), ("lstm", fr.LSTM), ("gru", fr.GRU))}


@st.composite
def inputs(draw):
    dtype = draw(DTYPES)
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)
                 | st.tuples(st.integers(0, 3), st.integers(0, 4), st.just(4)))
    elements = None
    if np.dtype(dtype).kind == "f":
        width = np.dtype(dtype).itemsize * 8
        elements = (st.floats(-1e4, 1e4, width=width)
                    | st.sampled_from([np.nan, np.inf, -np.inf]))
    return draw(hnp.arrays(dtype, shape, elements=elements))


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(x=inputs(), cell=st.sampled_from(sorted(LAYERS)), training=st.booleans())
def test_any_input_gives_a_clear_error_or_a_sound_output(x, cell, training):
    layer = LAYERS[cell]
    before = {k: v.copy() for k, v in layer.params.items()}
    try:
        y = layer.forward(x, training=training)
    except (ValueError, TypeError) as exc:
        assert str(exc)
    else:
        assert y.shape == (x.shape[0], x.shape[1], 3)
        assert y.dtype == np.float32
        if np.isfinite(x).all():
            assert np.isfinite(y).all()
    for k, v in layer.params.items():
        np.testing.assert_array_equal(v, before[k])
