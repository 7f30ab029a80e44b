"""fastrnn.bench.machine: ISA path, OpenBLAS core type, CPU estimates, thread knobs."""

import pytest

from fastrnn.bench import machine


def test_isa_line_preferred_over_simd_line():
    text = ("fastrnn 0.2.0\n  threads           2\n  SIMD dispatched   avx2 (runtime dispatch)\n"
            "  ISA path          avx512 (FASTRNN_ISA=avx512)\n")
    assert machine._isa_from_text(text) == ("avx512 (FASTRNN_ISA=avx512)",
                                            "show_config 'ISA path'")
    old = "fastrnn 0.1.0\n  SIMD dispatched   avx512f (runtime dispatch)\n"
    assert machine._isa_from_text(old)[0] == "avx512f (runtime dispatch)"
    assert machine._isa_from_text("ISA: avx2\n")[0] == "avx2"
    assert machine._isa_from_text("nothing here\n") == (None, None)
    assert machine._isa_from_text("") == (None, None)


def test_isa_from_engine_attribute_wins(monkeypatch):
    import fastrnn._engine.config as cfg
    monkeypatch.setattr(cfg, "isa_path", lambda: "avx2", raising=False)
    monkeypatch.setenv("FASTRNN_ISA", "avx2")
    info = machine.fastrnn_isa(show_text="  SIMD dispatched   avx512f\n")
    assert info == {"path": "avx2", "source": "fastrnn._engine.config.isa_path",
                    "forced": "avx2"}


def test_isa_engine_attribute_that_raises_is_ignored(monkeypatch):
    import fastrnn._engine.config as cfg

    def broken():
        raise RuntimeError("no")
    monkeypatch.setattr(machine, "_ISA_MODULES", ("fastrnn._engine.config",))
    for attr in machine._ISA_ATTRS:
        monkeypatch.delattr(cfg, attr, raising=False)
    monkeypatch.setattr(cfg, "isa_path", broken, raising=False)
    monkeypatch.delenv("FASTRNN_ISA", raising=False)
    info = machine.fastrnn_isa(show_text="  SIMD dispatched   baseline\n")
    assert info == {"path": "baseline", "source": "show_config 'SIMD dispatched'",
                    "forced": None}


def test_isa_reported_by_the_installed_engine():
    info = machine.fastrnn_isa()
    assert set(info) == {"path", "source", "forced"}
    assert info["path"] is None or isinstance(info["path"], str)


def test_openblas_description_names_the_environment(monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("OPENBLAS_L2_SIZE", "1048576")
    line, meta = machine.openblas_description()
    assert line.startswith("OpenBLAS core type: ")
    assert "OPENBLAS_CORETYPE=Haswell" in line and "OPENBLAS_L2_SIZE=1048576" in line
    assert meta["OPENBLAS_CORETYPE"] == "Haswell" and isinstance(meta["corenames"], dict)
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    monkeypatch.delenv("OPENBLAS_L2_SIZE")
    line, meta = machine.openblas_description()
    assert "OPENBLAS_CORETYPE unset" in line and "OPENBLAS_L2_SIZE unset" in line


@pytest.mark.parametrize("flags,lanes", [(["avx512f", "avx2", "fma"], 16), (["avx2", "fma"], 8)])
def test_theoretical_peak(flags, lanes):
    per_core, how = machine.theoretical_peak({"flags": flags, "mhz": 2000.0})
    assert per_core == pytest.approx(2.0 * lanes * 2 * 2)
    assert "estimate" in how
    assert machine.theoretical_peak({"flags": [], "mhz": None})[0] is None


def test_cpu_info_fields():
    info = machine.cpu_info()
    assert set(info) >= {"model", "flags", "mhz", "cores"}
    assert info["cores"] is None or info["cores"] >= 1


def test_set_threads_restores(monkeypatch):
    import fastrnn._engine.config as cfg
    before = cfg.get_num_threads()
    notes, restore = [], []
    knobs = machine.set_threads(before + 1, notes, restore)
    assert any("fastrnn.set_num_threads" in k for k in knobs)
    for undo in reversed(restore):
        undo()
    assert cfg.get_num_threads() == before


def test_fastrnn_description_survives_a_failing_show_config(monkeypatch):
    import fastrnn

    def broken(*a, **k):
        raise RuntimeError("boom")
    monkeypatch.setattr(fastrnn, "show_config", broken)
    lines = machine.fastrnn_description()
    assert any("show_config failed: boom" in ln for ln in lines)
    assert machine.loadavg() is None or machine.loadavg() >= 0


def test_isa_info_function_of_the_engine_is_read(monkeypatch):
    # the engine's isa_info() (one line: path, how it was chosen, what the CPU supports)
    import fastrnn._engine.config as cfg
    monkeypatch.setattr(machine, "_ISA_MODULES", ("fastrnn._engine.config",))
    for attr in machine._ISA_ATTRS:
        monkeypatch.delattr(cfg, attr, raising=False)
    monkeypatch.setattr(cfg, "isa_info", lambda: "avx2 (8 lanes; chosen by CPUID at import)",
                        raising=False)
    info = machine.fastrnn_isa(show_text="")
    assert info["path"].startswith("avx2") and info["source"].endswith("isa_info")
