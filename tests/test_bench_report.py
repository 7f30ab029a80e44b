"""fastrnn.bench.report: table lines, the summary, the plot without matplotlib."""

import io
import sys

from fastrnn.bench import report


def _rec(**kw):
    rec = {"cell": "lstm", "shape": "small", "mode": "inference", "impl": "torch",
           "median_s": 0.0015, "gflops": 12.5, "fastrnn_speedup": 0.5, "repeats": 7,
           "peak_mem_bytes": None, "mem_method": None}
    rec.update(kw)
    return rec


def test_format_row_matches_header_columns():
    header = report.table_header()
    line = report.format_row(_rec(), peak_ref=50.0)
    assert line.startswith("lstm  small     inference torch   ")
    assert "1.500 ms" in line and "12.50" in line and "25.0%" in line and " 0.50 " in line
    assert len(line) == len(header)
    line = report.format_row(_rec(mode="streaming", median_s=2.5e-5, fastrnn_speedup=None,
                                  peak_mem_bytes=3 * 2**20, mem_method="tracemalloc"), None)
    assert "25.0 us" in line and line.endswith("3.0 tr")
    assert "%" not in line


def test_summary_lists_losses_worst_first():
    out = io.StringIO()
    recs = [_rec(impl="fastrnn", fastrnn_speedup=1.0), _rec(impl="torch", fastrnn_speedup=0.5),
            _rec(impl="ort", fastrnn_speedup=0.25), _rec(impl="numpy", fastrnn_speedup=3.0)]
    report.print_summary(out, recs, True, ["a note"], 2, 1.0, 0.5, 2)
    text = out.getvalue()
    assert text.index("ort is 4.00x faster") < text.index("torch is 2.00x faster")
    assert "numpy is" not in text and "note: a note" in text
    assert "load average (1 min) at the end 0.50" in text
    out = io.StringIO()
    report.print_summary(out, recs[:1], True, [], 2, 1.0, None, 2)
    assert "at least as fast as every peer" in out.getvalue()


def test_format_isa():
    assert report.format_isa({"path": "avx2", "source": "x", "forced": None}) == \
        "fastrnn ISA path: avx2 [x]; FASTRNN_ISA=unset"
    assert "unknown" in report.format_isa({"path": None, "source": None, "forced": "avx2"})


def test_plot_without_matplotlib(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = io.StringIO()
    recs = [{"cell": "rnn", "shape": "tiny", "mode": "inference", "impl": "numpy",
             "fastrnn_speedup": 2.0}]
    assert report.plot_speedups(recs, str(tmp_path / "x.png"), out) is False
    assert "matplotlib not installed" in out.getvalue()
    assert not (tmp_path / "x.png").exists()
