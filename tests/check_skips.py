"""Fail CI when a test skips for a reason outside a short, documented allow-list.

A skipped test is a test that did not run: a missing optional peer is fine, a kernel test
that silently skips because the build lost OpenMP or the engine is not fakes a green run.
Usage (what .ci/run does)::

    pytest -q -rs --junitxml=.ci-junit.xml
    python tests/check_skips.py .ci-junit.xml

Exit status 0 when every skip matches ALLOWED, 1 otherwise (each unexpected skip printed),
2 when the report cannot be read.
"""
import re
import sys
import xml.etree.ElementTree as ET

# (pattern matched against the skip message, why this skip is acceptable in CI). .ci/run
# installs torch, Keras, Dask, mpi4py + mpich and the examples' data packages: their tests must
# run there, so they are not on this list.
ALLOWED = [
    (r"keras parity runs with the torch backend", "a Keras peer on another backend"),
    (r"could not import 'safetensors", "the safetensors interop check is optional"),
    (r"could not import 'matplotlib'|matplotlib not installed",
     "plots of the examples are optional (examples extra)"),
    (r"torch\.onnx\.export unavailable", "torch's ONNX exporter needs packages of its own"),
    (r"FASTRNN_WHEEL", "the built-wheel checks run in .ci/wheel (FASTRNN_CI_WHEEL=1)"),
    (r"auditwheel", "only an auditwheel-repaired wheel is checked for it"),
    (r"root ignores directory permissions", "CI containers often run as root"),
]


def skipped(path):
    """(test id, message) of every skipped test case in a JUnit XML report."""
    out = []
    for case in ET.parse(path).getroot().iter("testcase"):
        for sk in case.findall("skipped"):
            name = f"{case.get('classname', '')}::{case.get('name', '')}"
            out.append((name, sk.get("message") or (sk.text or "")))
    return out


def unexpected(skips, allowed=ALLOWED):
    """The skips whose message matches no allowed pattern."""
    return [(n, m) for n, m in skips if not any(re.search(p, m) for p, _ in allowed)]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python tests/check_skips.py REPORT.xml", file=sys.stderr)
        return 2
    try:
        skips = skipped(argv[0])
    except (OSError, ET.ParseError) as exc:
        print(f"check_skips: cannot read {argv[0]}: {exc}", file=sys.stderr)
        return 2
    bad = unexpected(skips)
    print(f"check_skips: {len(skips)} skipped, {len(skips) - len(bad)} on the allow-list")
    for name, msg in bad:
        print(f"  NOT ALLOWED: {name}: {msg}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
