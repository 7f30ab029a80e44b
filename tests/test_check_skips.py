"""tests/check_skips.py: the CI gate on skipped tests."""
import importlib.util
import os

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("check_skips", os.path.join(HERE, "check_skips.py"))
check_skips = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_skips)

REPORT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.test_a" name="test_ok" time="0.1"/>
<testcase classname="tests.test_a" name="test_keras" time="0.0">
  <skipped type="pytest.skip" message="keras parity runs with the torch backend">x</skipped>
</testcase>
<testcase classname="tests.test_engine" name="test_threads" time="0.0">
  <skipped type="pytest.skip" message="built without OpenMP">y</skipped>
</testcase>
</testsuite></testsuites>"""


def test_allowed_skips_pass_and_others_fail(tmp_path, capsys):
    p = tmp_path / "r.xml"
    p.write_text(REPORT)
    skips = check_skips.skipped(p)
    assert [n for n, _ in skips] == ["tests.test_a::test_keras", "tests.test_engine::test_threads"]
    assert check_skips.unexpected(skips) == [("tests.test_engine::test_threads",
                                              "built without OpenMP")]
    assert check_skips.main([str(p)]) == 1
    assert "NOT ALLOWED: tests.test_engine::test_threads: built without OpenMP" in \
        capsys.readouterr().out
    p.write_text(REPORT.replace("built without OpenMP", "root ignores directory permissions"))
    assert check_skips.main([str(p)]) == 0
    p.write_text(REPORT.replace("built without OpenMP", "could not import 'mpi4py'"))
    assert check_skips.main([str(p)]) == 1          # CI installs MPI: its tests must run
    assert check_skips.main([str(tmp_path / "missing.xml")]) == 2


def test_every_allowed_entry_says_why():
    for pattern, why in check_skips.ALLOWED:
        assert pattern and len(why) > 10
