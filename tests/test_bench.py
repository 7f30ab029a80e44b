"""End-to-end tests of the benchmark suite (fastrnn.bench.suite / main, bench/run.py).

The pieces have their own modules: test_bench_grid, _peers, _machine, _timing, _report,
_options. No timing assertions."""

import io
import json
import os
import subprocess
import sys

import pytest

from fastrnn import bench as _bench
from fastrnn.bench import grid

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
        expect = grid.mode_flops(r["cell"], B, T, I, H, r["mode"])
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


@pytest.mark.parametrize("argv", [["--cells", "lstm,bogus"], ["--shapes", "huge"],
                                  ["--impls", "tensorflow"], ["--custom-shape", "1,2,3"],
                                  ["--modes", ""]])
def test_bad_arguments(argv):
    with pytest.raises(SystemExit):
        _run(FAST + argv)


def test_bench_run_script_help():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "run.py"), "--help"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--quick" in proc.stdout and "--json" in proc.stdout


def test_main_returns_zero(capsys):
    assert _bench.main(["--cells", "rnn", "--modes", "inference", "--impls", "numpy",
                        "--no-check"] + FAST) == 0
    assert "rnn   tiny" in capsys.readouterr().out


def test_header_reports_isa_path_openblas_core_and_load(monkeypatch):
    monkeypatch.setenv("FASTRNN_ISA", "baseline")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.delenv("OPENBLAS_L2_SIZE", raising=False)
    argv = ["--cells", "rnn", "--modes", "inference", "--impls", "numpy", "--no-check"] + FAST
    result, text = _run(argv)
    lines = text.splitlines()
    isa = [ln for ln in lines if ln.startswith("fastrnn ISA path: ")]
    assert len(isa) == 1 and isa[0].endswith("FASTRNN_ISA=baseline"), isa
    blas = [ln for ln in lines if ln.startswith("OpenBLAS core type: ")]
    assert len(blas) == 1
    assert "OPENBLAS_CORETYPE=Haswell" in blas[0] and "OPENBLAS_L2_SIZE unset" in blas[0]
    if hasattr(os, "getloadavg"):
        assert any(ln.startswith("load average (1 min) at start: ") for ln in lines)
    # the header comes before the table, in this order
    assert lines.index(isa[0]) < lines.index(blas[0]) < next(
        i for i, ln in enumerate(lines) if ln.startswith("cell "))
    meta = result["metadata"]
    assert meta["fastrnn_isa"]["forced"] == "baseline"
    assert meta["openblas"]["OPENBLAS_CORETYPE"] == "Haswell"
    assert meta["openblas"]["OPENBLAS_L2_SIZE"] is None


def test_python_m_fastrnn_bench_help():
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "fastrnn.bench", "--help"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--threads" in proc.stdout


def test_threads_restored_after_run():
    from fastrnn._engine import config
    before = config.get_num_threads()
    _run(["--cells", "rnn", "--modes", "inference", "--impls", "fastrnn", "--no-check"] +
         FAST[:-2] + ["--threads", str(before + 1)])
    assert config.get_num_threads() == before
