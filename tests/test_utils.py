"""fastrnn.utils: pad_sequences / to_categorical against Keras's documented outputs, Sequence."""

import numpy as np
import pytest

from fastrnn.utils import PyDataset, Sequence, pad_sequences, to_categorical

SEQ = [[1], [2, 3], [4, 5, 6]]


def test_pad_sequences_keras_documented_examples():
    # the examples of keras.utils.pad_sequences's docstring
    out = pad_sequences(SEQ)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, [[0, 0, 1], [0, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(pad_sequences(SEQ, value=-1),
                                  [[-1, -1, 1], [-1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(pad_sequences(SEQ, padding="post"),
                                  [[1, 0, 0], [2, 3, 0], [4, 5, 6]])
    np.testing.assert_array_equal(pad_sequences(SEQ, maxlen=2), [[0, 1], [2, 3], [5, 6]])


def test_pad_sequences_truncating_post_dtype_and_empty():
    np.testing.assert_array_equal(pad_sequences(SEQ, maxlen=2, truncating="post"),
                                  [[0, 1], [2, 3], [4, 5]])
    out = pad_sequences([[0.5, 1.5], []], maxlen=3, dtype="float32", value=np.nan)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[np.nan, 0.5, 1.5], [np.nan] * 3])
    assert pad_sequences([[1, 2]], maxlen=0).shape == (1, 0)
    assert pad_sequences([]).shape == (0, 0)
    # elements with a shape of their own: (n, maxlen, 2)
    out = pad_sequences([np.ones((1, 2)), np.full((3, 2), 2.0)], dtype="float64")
    assert out.shape == (2, 3, 2)
    np.testing.assert_array_equal(out[0], [[0, 0], [0, 0], [1, 1]])
    # strings pad with a string value
    np.testing.assert_array_equal(pad_sequences([["a"], ["b", "c"]], dtype="<U1", value="_"),
                                  [["_", "a"], ["b", "c"]])
    # numpy arrays in, inputs untouched
    seqs = [np.array([3, 4, 5]), np.array([6])]
    pad_sequences(seqs, maxlen=2)
    np.testing.assert_array_equal(seqs[0], [3, 4, 5])


@pytest.mark.parametrize("kwargs,match", [
    ({"padding": "middle"}, "padding"), ({"truncating": "both"}, "truncating"),
    ({"maxlen": -1}, "maxlen"), ({"maxlen": 2.5}, "maxlen"),
    ({"dtype": "<U3"}, "value"),
])
def test_pad_sequences_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pad_sequences(SEQ, **kwargs)


def test_pad_sequences_bad_sequences():
    with pytest.raises(ValueError, match="sequences"):
        pad_sequences(5)
    with pytest.raises(ValueError, match=r"sequences\[1\]"):
        pad_sequences([[1], 7])
    with pytest.raises(ValueError, match=r"sequences\[1\]"):
        pad_sequences([np.ones((2, 2)), np.ones((2, 3))])


def test_to_categorical_keras_documented_example():
    a = to_categorical([0, 1, 2, 3], num_classes=4)
    np.testing.assert_array_equal(a, np.eye(4))
    assert a.dtype == np.float32


def test_to_categorical_shapes():
    np.testing.assert_array_equal(to_categorical([2, 0]), [[0, 0, 1], [1, 0, 0]])
    assert to_categorical(np.array([[1], [0]])).shape == (2, 2)       # trailing 1 dropped
    seq = to_categorical(np.array([[0, 1, 2], [2, 2, 0]]), num_classes=4, dtype="float64")
    assert seq.shape == (2, 3, 4) and seq.dtype == np.float64
    np.testing.assert_array_equal(seq.argmax(-1), [[0, 1, 2], [2, 2, 0]])
    np.testing.assert_array_equal(seq.sum(-1), np.ones((2, 3)))
    np.testing.assert_array_equal(to_categorical(np.array([1.0, 0.0])), [[0, 1], [1, 0]])


@pytest.mark.parametrize("x,kwargs,exc", [
    ([0, 3], {"num_classes": 3}, ValueError), ([-1, 0], {}, ValueError),
    ([0.5], {}, ValueError), (["a"], {}, TypeError), ([0], {"num_classes": 0}, ValueError)])
def test_to_categorical_bad_input(x, kwargs, exc):
    with pytest.raises(exc):
        to_categorical(x, **kwargs)


def test_matches_keras_when_installed():
    keras = pytest.importorskip("keras")
    seqs = [[1, 2, 3, 4], [5], [], [6, 7]]
    for kw in ({}, {"maxlen": 3}, {"padding": "post", "truncating": "post", "value": 9}):
        np.testing.assert_array_equal(pad_sequences(seqs, **kw),
                                      keras.utils.pad_sequences(seqs, **kw))
    np.testing.assert_array_equal(to_categorical([1, 0, 2]),
                                  keras.utils.to_categorical([1, 0, 2]))


def test_sequence_base_class():
    class Batches(Sequence):
        def __init__(self):
            self.epochs = 0

        def __len__(self):
            return 3

        def __getitem__(self, i):
            return np.full((2, 1), i), np.zeros(2)

        def on_epoch_end(self):
            self.epochs += 1

    b = Batches()
    assert b.num_batches == 3 and [int(x[0, 0]) for x, _ in b] == [0, 1, 2]
    assert PyDataset is Sequence
    with pytest.raises(NotImplementedError):
        len(Sequence())
    with pytest.raises(NotImplementedError):
        Sequence()[0]
