"""fastrnn.bench.peers: the implementations agree with the reference; the check flags a
wrong one."""

import io

import numpy as np
import pytest

from fastrnn import reference
from fastrnn.bench import grid, peers


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_onnx_conversion_matches_reference(cell):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    ort = peers.OrtImpl(1)
    d = grid.make_data(cell, 3, 4, 5, 6, seed=7)
    got = ort.outputs(d)
    w = (d["weight_ih"], d["weight_hh"], d["bias_ih"], d["bias_hh"])
    if cell == "lstm":
        y, h, c, _ = reference.lstm_forward(d["x"], d["h0"], d["c0"], *w)
        np.testing.assert_allclose(got["c_n"], c, atol=1e-5)
    else:
        y, h, _ = getattr(reference, cell + "_forward")(d["x"], d["h0"], *w)
    np.testing.assert_allclose(got["y"], y, atol=1e-5)
    np.testing.assert_allclose(got["h_n"], h, atol=1e-5)
    # one streaming step equals a T=1 sequence
    step = ort.step_outputs(d)
    one = {**d, "x": d["x"][:1]}
    np.testing.assert_allclose(step, ort.outputs(one)["h_n"], atol=1e-6)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_torch_grads_match_numpy_reference(cell):
    pytest.importorskip("torch")
    torch_impl = peers.TorchImpl(1)
    try:
        numpy_impl = peers.FastrnnImpl("numpy")
        d = grid.make_data(cell, 2, 3, 4, 5, seed=3)
        g_t, g_n = torch_impl.grads(d), numpy_impl.grads(d)
        assert set(g_n) <= set(g_t) | {"c0"}
        for k in g_n:
            np.testing.assert_allclose(g_t[k], g_n[k], rtol=1e-4, atol=1e-5, err_msg=k)
    finally:
        torch_impl.torch.set_num_threads(torch_impl.old_threads)


def test_unavailable_peer_raises(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(peers.Unavailable, match="torch not installed"):
        peers.TorchImpl(1)
    with pytest.raises(peers.Unavailable, match="onnxruntime not installed"):
        peers.OrtImpl(1)


def test_agreement_check_flags_a_wrong_peer():
    numpy_impl = peers.FastrnnImpl("numpy")

    class Wrong:
        training = False

        def outputs(self, d):
            res = numpy_impl.outputs(d)
            res["y"] = res["y"] + 1e-2
            return res

        def grads(self, d):
            return None

        def step_outputs(self, d):
            return numpy_impl.outputs({**d, "x": d["x"][:1]})["h_n"]

    class Base(peers.FastrnnImpl):
        def step_outputs(self, d):
            return self.outputs({**d, "x": d["x"][:1]})["h_n"]

    base = Base.__new__(Base)
    base.__dict__.update(numpy_impl.__dict__)
    out = io.StringIO()
    res = peers.check_agreement({"base": base, "wrong": Wrong()}, ["gru"], "base", out)
    assert [r["ok"] for r in res] == [False]
    assert "WARNING: wrong gru does not match" in out.getvalue()
    # the same peer without the offset passes
    Wrong.outputs = lambda self, d: numpy_impl.outputs(d)
    out = io.StringIO()
    res = peers.check_agreement({"base": base, "right": Wrong()}, ["gru"], "base", out)
    assert [r["ok"] for r in res] == [True]
    assert "WARNING" not in out.getvalue()
