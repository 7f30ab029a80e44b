"""Tests of the benchmark suite (fastrnn._bench, bench/run.py). No timing assertions."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fastrnn import _bench
from fastrnn import reference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# a tiny, fast configuration: tiny shapes, 2 samples per implementation, no sgemm peak
FAST = ["--shapes", "tiny", "--no-peak", "--row-budget", "0", "--min-repeats", "2",
        "--max-repeats", "2", "--sample-time", "0.0005", "--switch-gap", "0",
        "--stream-size", "8,16", "--threads", "1"]

RECORD_FIELDS = {"cell": str, "shape": str, "B": int, "T": int, "I": int, "H": int,
                 "mode": str, "impl": str, "median_s": float, "gflops": float,
                 "repeats": int, "threads": int, "flops": float}


def _run(argv):
    out = io.StringIO()
    result = _bench.run(argv, out=out)
    return result, out.getvalue()


def _check_records(result, cells, shapes, modes, memory=True):
    meta, records = result["metadata"], result["records"]
    impls = meta["implementations"]
    assert "numpy" in impls
    assert meta["threads"] == 1 and "numpy" in meta["versions"]
    for r in records:
        for k, typ in RECORD_FIELDS.items():
            assert isinstance(r[k], typ), (k, r[k])
        assert r["median_s"] > 0 and r["gflops"] > 0 and r["repeats"] >= 1
        assert r["impl"] in impls
        assert r["cell"] in cells and r["mode"] in modes
        B, T, I, H = r["B"], r["T"], r["I"], r["H"]
        if r["mode"] == "streaming":
            assert (B, T, I, H) == (1, 1, 8, 16) and r["shape"] == "stream"
        else:
            assert (B, T, I, H) == shapes[r["shape"]]
        expect = _bench.mode_flops(r["cell"], B, T, I, H, r["mode"])
        assert r["flops"] == pytest.approx(expect)
        assert r["gflops"] == pytest.approx(expect / r["median_s"] / 1e9)
        if "fastrnn" in impls:
            assert r["fastrnn_speedup"] is not None
            if r["impl"] == "fastrnn":
                assert r["fastrnn_speedup"] == pytest.approx(1.0)
        if memory and r["mode"] == "training" and r["impl"] in ("fastrnn", "numpy"):
            assert r["mem_method"] == "tracemalloc" and r["peak_mem_bytes"] > 0
    # one record per (cell, shape, mode, impl), every combination present
    keys = [(r["cell"], r["shape"], r["mode"], r["impl"]) for r in records]
    assert len(keys) == len(set(keys))
    expected = set()
    for cell in cells:
        for mode in modes:
            names = ["stream"] if mode == "streaming" else list(shapes)
            for sname in names:
                for impl in impls:
                    if impl == "ort" and mode == "training":
                        continue
                    expected.add((cell, sname, mode, impl))
    assert set(keys) == expected
    return records


def test_quick_tiny_with_json_and_plot(tmp_path):
    jpath, ppath = tmp_path / "b.json", tmp_path / "b.png"
    argv = ["--quick", "--cells", "rnn,lstm", "--impls", "fastrnn,numpy",
            "--json", str(jpath), "--plot", str(ppath)] + FAST
    result, text = _run(argv)
    with open(jpath) as f:
        loaded = json.load(f)
    assert loaded["records"] == json.loads(json.dumps(result["records"]))
    _check_records(loaded, ["rnn", "lstm"], {"tiny": (2, 5, 8, 16)},
                   ["inference", "training", "streaming"])
    assert "median" in text and "GFLOP/s" in text
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib not installed" in text
    else:
        if "fastrnn" in result["metadata"]["implementations"]:
            assert ppath.stat().st_size > 0
            with open(ppath, "rb") as f:
                assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_without_outputs_custom_shape_and_table():
    argv = ["--cells", "gru", "--modes", "inference,training", "--impls", "numpy",
            "--custom-shape", "2,3,4,5", "--no-check", "--no-memory"] + FAST
    result, text = _run(argv)
    recs = _check_records(result, ["gru"], {"tiny": (2, 5, 8, 16), "2x3x4x5": (2, 3, 4, 5)},
                          ["inference", "training"], memory=False)
    assert len(recs) == 4
    for r in recs:
        assert r["peak_mem_bytes"] is None
        assert f"{r['cell']:<5} {r['shape']:<9} {r['mode']:<9} {r['impl']:<8}" in text
    assert "wrote" not in text


def test_missing_peers_reported_as_skipped(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)        # import torch -> ImportError
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    argv = ["--cells", "rnn", "--modes", "inference", "--impls", "numpy,torch,ort",
            "--no-check"] + FAST
    result, text = _run(argv)
    assert "torch not installed: skipped" in text
    assert "onnxruntime not installed: skipped" in text
    skipped = {s["impl"] for s in result["metadata"]["skipped"]}
    assert skipped == {"torch", "ort"}
    assert result["metadata"]["implementations"] == ["numpy"]
    assert {r["impl"] for r in result["records"]} == {"numpy"}


def test_plot_without_matplotlib(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = io.StringIO()
    recs = [{"cell": "rnn", "shape": "tiny", "mode": "inference", "impl": "numpy",
             "fastrnn_speedup": 2.0}]
    assert _bench.plot_speedups(recs, str(tmp_path / "x.png"), out) is False
    assert "matplotlib not installed" in out.getvalue()
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("argv", [["--cells", "lstm,bogus"], ["--shapes", "huge"],
                                  ["--impls", "tensorflow"], ["--custom-shape", "1,2,3"],
                                  ["--modes", ""]])
def test_bad_arguments(argv):
    with pytest.raises(SystemExit):
        _run(FAST + argv)


def test_flops():
    assert _bench.forward_flops("lstm", 2, 3, 5, 7) == 2 * 2 * 3 * 4 * 7 * (5 + 7)
    assert _bench.forward_flops("gru", 1, 1, 1, 1) == 2 * 3 * 2
    assert _bench.mode_flops("rnn", 2, 3, 4, 5, "training") == \
        3 * _bench.forward_flops("rnn", 2, 3, 4, 5)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_onnx_conversion_matches_reference(cell):
    pytest.importorskip("onnx")
    ort = _bench.OrtImpl(1)
    d = _bench.make_data(cell, 3, 4, 5, 6, seed=7)
    got = ort.outputs(d)
    w = (d["weight_ih"], d["weight_hh"], d["bias_ih"], d["bias_hh"])
    if cell == "lstm":
        y, h, c, _ = reference.lstm_forward(d["x"], d["h0"], d["c0"], *w)
        np.testing.assert_allclose(got["c_n"], c, atol=1e-5)
    else:
        y, h, _ = getattr(reference, cell + "_forward")(d["x"], d["h0"], *w)
    np.testing.assert_allclose(got["y"], y, atol=1e-5)
    np.testing.assert_allclose(got["h_n"], h, atol=1e-5)


def test_agreement_check_flags_a_wrong_peer():
    numpy_impl = _bench.FastrnnImpl("numpy")

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

    class Base(_bench.FastrnnImpl):
        def step_outputs(self, d):
            return self.outputs({**d, "x": d["x"][:1]})["h_n"]

    base = Base.__new__(Base)
    base.__dict__.update(numpy_impl.__dict__)
    out = io.StringIO()
    res = _bench.check_agreement({"base": base, "wrong": Wrong()}, ["gru"], "base", out)
    assert [r["ok"] for r in res] == [False]
    assert "WARNING: wrong gru does not match" in out.getvalue()


def test_time_round_robin_counts():
    calls = {"a": 0, "b": 0}

    def make(name):
        def fn(n):
            calls[name] += n
        return fn

    res = _bench.time_round_robin({"a": make("a"), "b": make("b")}, min_repeats=3,
                                  max_repeats=4, budget=0.0, sample_time=0.0001)
    for name in ("a", "b"):
        assert 3 <= len(res[name]["times"]) <= 4 and res[name]["n"] >= 1
        assert all(t >= 0 for t in res[name]["times"])
        assert calls[name] >= len(res[name]["times"]) * res[name]["n"]


def test_peak_memory_tracemalloc():
    def fn(n):
        for _ in range(n):
            a = np.ones(1 << 20)        # 8 MiB
            del a
    peak, method = _bench.peak_memory(fn, "tracemalloc")
    assert method == "tracemalloc" and peak >= 8 << 20


def test_bench_run_script_help():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "run.py"), "--help"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--quick" in proc.stdout and "--json" in proc.stdout


def test_main_returns_zero(capsys):
    assert _bench.main(["--cells", "rnn", "--modes", "inference", "--impls", "numpy",
                        "--no-check"] + FAST) == 0
    assert "rnn   tiny" in capsys.readouterr().out
