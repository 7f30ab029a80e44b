"""End-to-end tests of the `fastrnn` command line, in subprocesses with tiny models."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fastrnn
from fastrnn import cli

PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(fastrnn.__file__)))
TINY = ["--hidden", "16", "--seq-len", "16", "--batch-size", "4", "-q"]


@pytest.fixture(autouse=True)
def _restore_threads():
    yield
    fastrnn.set_num_threads(None)      # --threads in an in-process call must not leak


def _env(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = PKG_PARENT + os.pathsep + env.get("PYTHONPATH", "")
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    env.pop("FASTRNN_HOME", None)
    env["PYTHONWARNINGS"] = "ignore"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def run(tmp_path, *args, timeout=120, env=None):
    return subprocess.run([sys.executable, "-m", "fastrnn", *map(str, args)],
                          capture_output=True, text=True, cwd=tmp_path,
                          env={**_env(tmp_path), **(env or {})}, timeout=timeout,
                          errors="replace")


class Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def call(capsys, monkeypatch, tmp_path):
    """Run cli.main in this process (fast); returns a subprocess-like result."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("FASTRNN_HOME", raising=False)

    def _call(*args):
        capsys.readouterr()
        rc = cli.main([str(a) for a in args])
        out, err = capsys.readouterr()
        return Result(rc, out, err)
    return _call


def one_line(text):
    """stdout of `generate` minus the one newline it ends with."""
    assert text.endswith("\n")
    return text[:-1]


def assert_clean_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    errs = [l for l in proc.stderr.splitlines() if l.startswith("fastrnn: error:")]
    assert len(errs) == 1, proc.stderr
    for n in needles:
        assert n in errs[0], errs[0]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "the", "cat", "sat", "on", "mat", "ünï"]
    text = "\n".join(" ".join(rng.choice(words, 8)) + "." for _ in range(150))
    p = d / "tiny.txt"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    d = tmp_path_factory.mktemp("trained")
    model = d / "tiny.safetensors"
    proc = run(d, "train-text", corpus, *TINY, "--max-steps", "8", "--out", model,
               "--length", "30")
    assert proc.returncode == 0, proc.stderr
    return d, model, proc


def test_help_and_version(tmp_path, call):
    p = run(tmp_path, "--help")          # the real entry point, python -m fastrnn
    assert p.returncode == 0
    for cmd in ("demo", "train-text", "generate", "bench"):
        assert cmd in p.stdout
    p = call("--version")
    assert p.returncode == 0 and fastrnn.__version__ in p.stdout
    p = call()
    assert p.returncode == 2


def test_main_returns_codes_in_process(capsys):
    assert cli.main(["--help"]) == 0
    assert cli.main(["no-such-command"]) == 2
    assert cli.main(["train-text"]) == 2          # missing FILE
    assert cli.main(["generate", "--length", "-3"]) == 2
    capsys.readouterr()


def test_train_text_then_generate(trained, corpus, call):
    d, model, proc = trained
    assert model.exists()
    out = proc.stdout
    assert "bits/char" in out and "characters/s" in out and "saved model to" in out
    # generation is reproducible with a seed and has the requested length
    g1 = run(d, "generate", model, "--prime", "the ", "--length", "40", "--seed", "3")
    g2 = call("generate", model, "--prime", "the ", "--length", "40", "--seed", "3")
    assert g1.returncode == 0, g1.stderr
    assert g1.stdout == g2.stdout
    text = one_line(g1.stdout)
    assert text.startswith("the ") and len(text) == 4 + 40
    vocab = set(corpus.read_text(encoding="utf-8"))
    assert set(text) <= vocab
    g3 = call("generate", model, "--length", "25", "--temperature", "0", "-n", "2")
    assert g3.returncode == 0, g3.stderr


def test_generate_to_an_ascii_terminal(trained):
    d, model, _ = trained
    g = run(d, "generate", model, "--prime", "ünï ", "--length", "200", "--seed", "0",
            "--temperature", "2", env={"PYTHONIOENCODING": "ascii"})
    assert g.returncode == 0, g.stderr
    assert "Traceback" not in g.stderr and "?" in g.stdout


def test_prime_with_unknown_chars_warns(trained, call):
    d, model, _ = trained
    g = call("generate", model, "--prime", "€€the", "--length", "5", "--seed", "0")
    assert g.returncode == 0
    assert "warning" in g.stderr and "€" in g.stderr


def test_gru_and_rnn_cells_two_layers(corpus, tmp_path, call):
    for cell in ("gru", "rnn"):
        m = tmp_path / f"{cell}.safetensors"
        p = call("train-text", corpus, *TINY, "--cell", cell, "--layers", "2",
                 "--max-steps", "3", "--out", m, "--length", "0", "--threads", "1")
        assert p.returncode == 0, p.stderr
        assert cell.upper() in p.stdout
        g = call("generate", m, "--length", "10", "--seed", "1", "--threads", "1")
        assert g.returncode == 0, g.stderr
        assert len(one_line(g.stdout)) == 10



def test_default_out_path_is_in_cwd(corpus, tmp_path, call):
    p = call("train-text", corpus, *TINY, "--max-steps", "2", "--length", "0")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "tiny.charlm.safetensors").exists()


@pytest.mark.parametrize("kind", ["missing", "empty", "binary", "latin1", "directory"])
def test_train_text_bad_files(tmp_path, kind, call):
    p = tmp_path / "in.txt"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "binary":
        p.write_bytes(bytes(range(256)) * 4)
    elif kind == "latin1":
        p.write_bytes("café crème brûlée ".encode("latin-1") * 20)
    elif kind == "directory":
        p.mkdir()
    needle = {"missing": "not found", "empty": "empty", "binary": "binary",
              "latin1": "UTF-8", "directory": "directory"}[kind]
    assert_clean_error(call("train-text", p, *TINY, "--max-steps", "1"), needle)
    assert not (tmp_path / "in.charlm.safetensors").exists()


def test_train_text_too_short_for_batch(tmp_path, call):
    p = tmp_path / "short.txt"
    p.write_text("abcabc", encoding="utf-8")
    assert_clean_error(call("train-text", p, "--batch-size", "64", "--max-steps", "1"),
                       "too short")


def test_bad_option_values(tmp_path, corpus, call):
    for opt in (["--hidden", "0"], ["--lr", "nan"], ["--minutes", "-1"], ["--cell", "tcn"],
                ["--val-fraction", "0.9"]):
        p = call("train-text", corpus, *opt)
        assert p.returncode == 2 and "error" in p.stderr, opt


def test_generate_bad_model_files(tmp_path, trained, call):
    _, good, _ = trained
    cases = {}
    cases["random"] = tmp_path / "random.safetensors"
    cases["random"].write_bytes(np.random.default_rng(0).bytes(4096))
    cases["text"] = tmp_path / "notes.txt"
    cases["text"].write_text("just some text\n" * 10)
    cases["truncated"] = tmp_path / "trunc.safetensors"
    cases["truncated"].write_bytes(good.read_bytes()[:-100])
    cases["empty"] = tmp_path / "empty.safetensors"
    cases["empty"].write_bytes(b"")
    for name, path in cases.items():
        assert_clean_error(call("generate", path, "--length", "5"))
    assert_clean_error(call("generate", tmp_path / "nope.safetensors"), "not found")
    assert_clean_error(call("generate", tmp_path), "directory")


def test_generate_plain_fastrnn_model_without_vocab(tmp_path, call):
    model = fastrnn.Sequential([fastrnn.Embedding(5, 3), fastrnn.LSTM(4, return_sequences=True),
                                fastrnn.Dense(5)])
    model.build((None, None))
    path = tmp_path / "plain.safetensors"
    fastrnn.save_model(model, path)
    assert_clean_error(call("generate", path), "not a character model")


def test_generate_without_demo_model(tmp_path, call):
    assert_clean_error(call("generate"), "fastrnn demo")


def test_demo_tiny_then_generate_default_model(tmp_path):
    p = run(tmp_path, "demo", *TINY, "--max-steps", "3", "--length", "20", timeout=300)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "pydoc_data.topics" in out
    assert "validation:" in out and "bits/char" in out
    assert "temperature 0.5" in out and "temperature 1" in out
    model = tmp_path / "cache" / "fastrnn" / "demo-charlm.safetensors"
    assert model.exists() and str(model) in out
    g = run(tmp_path, "generate", "--length", "15", "--seed", "0")
    assert g.returncode == 0, g.stderr
    assert len(one_line(g.stdout)) == 15


def test_sigint_saves_and_exits_cleanly(corpus, tmp_path, call):
    model = tmp_path / "int.safetensors"
    cmd = [sys.executable, "-m", "fastrnn", "train-text", str(corpus), "--hidden", "16",
           "--seq-len", "16", "--batch-size", "4", "--minutes", "10", "--out", str(model)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, env=_env(tmp_path))
    try:
        # wait until training runs (the first progress line is printed after step 1)
        seen = []
        while True:
            line = proc.stdout.readline()
            assert line, f"process ended early: {''.join(seen)} {proc.stderr.read()}"
            seen.append(line)
            if " step " in line:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == cli.EXIT_INTERRUPTED, (out, err)
    assert "Traceback" not in err
    assert "interrupted" in out and "saved model to" in out
    assert model.exists()
    g = call("generate", model, "--length", "10", "--seed", "0")
    assert g.returncode == 0, g.stderr


def test_bench_forwards_quick(monkeypatch):
    import types
    calls = []
    fake = types.ModuleType("fastrnn.bench")
    fake.main = lambda argv: calls.append(list(argv)) or 0
    monkeypatch.setitem(sys.modules, "fastrnn.bench", fake)
    monkeypatch.setattr(fastrnn, "bench", fake, raising=False)
    assert cli.main(["bench", "--cells", "lstm"]) == 0
    assert calls == [["--quick", "--cells", "lstm"]]


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("FASTRNN_HOME", str(tmp_path / "h"))
    assert cli.default_demo_model().startswith(str(tmp_path / "h"))
    monkeypatch.delenv("FASTRNN_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cli.default_demo_model() == str(tmp_path / "x" / "fastrnn" / "demo-charlm.safetensors")


def test_single_character_text_and_bad_out_path(tmp_path, corpus, call):
    p = tmp_path / "a.txt"
    p.write_text("a" * 500, encoding="utf-8")
    assert_clean_error(call("train-text", p, *TINY, "--max-steps", "1"), "distinct")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = call("train-text", corpus, *TINY, "--max-steps", "1", "--out", blocker / "m.safetensors")
    assert_clean_error(r, "cannot create")
    assert "step" not in r.stdout          # checked before training starts
    assert_clean_error(call("train-text", corpus, *TINY, "--max-steps", "1", "--out", tmp_path),
                       "directory")


def test_console_script_entry_point():
    from importlib.metadata import entry_points
    from fastrnn.__main__ import main
    assert main is cli.main
    eps = [e for e in entry_points(group="console_scripts") if e.name == "fastrnn"]
    if not eps:
        pytest.skip("fastrnn is not installed as a distribution here")
    assert eps[0].value == "fastrnn.__main__:main"


# ---- train-text's default budget, the undertrained warning, help that agrees with itself ------
def test_train_text_without_a_budget_trains_for_the_default_minutes(corpus, call, monkeypatch):
    from fastrnn import _ngram
    monkeypatch.setattr(cli, "TRAIN_TEXT_MINUTES", 0.003)      # 0.18 s instead of 3 minutes
    # how far a 0.18 s model gets depends on the machine's speed: make the count model
    # unbeatable so the warning's wiring is tested, not the machine
    monkeypatch.setattr(_ngram, "bigram_bpc", lambda *a, **k: 0.0)
    p = call("train-text", corpus, *TINY, "--length", "0")
    assert p.returncode == 0, p.stderr
    assert "training: 0.003 min," in p.stdout and "epoch" not in p.stdout.split("training:")[1] \
        .split(",")[0]
    # a 0.18 s model is no better than counting character pairs: the user is told what to do
    assert "undertrained" in p.stderr and "--minutes 10" in p.stderr


def test_undertrained_warning_absent_when_the_network_beats_the_counts(corpus, call,
                                                                      monkeypatch):
    from fastrnn import _ngram
    monkeypatch.setattr(_ngram, "bigram_bpc", lambda *a, **k: 99.0)   # counts: hopeless
    p = call("train-text", corpus, *TINY, "--max-steps", "2", "--length", "0")
    assert p.returncode == 0, p.stderr
    assert "undertrained" not in p.stderr


def test_train_text_help_agrees_with_itself(call):
    p = call("train-text", "--help")
    assert p.returncode == 0
    text = " ".join(p.stdout.split())                 # argparse wraps lines
    assert "1 epoch" not in text and "until --minutes is used up" not in text
    assert f"trains for {cli.TRAIN_TEXT_MINUTES:g} minutes" in text
    assert f"(default: {cli.TRAIN_TEXT_MINUTES:g} when neither --epochs nor --max-steps" in text
    d = " ".join(call("demo", "--help").stdout.split())
    assert "(default: 1.0)" in d and "--minutes ends the training" in d


def test_bench_help_says_quick_is_always_on(call):
    p = call("bench", "--help")
    assert p.returncode == 0
    assert p.stdout.startswith("`fastrnn bench` always runs the suite with --quick")


# ------------------------------------------------------------------------------------------
# issue 9, defect 5: train-text input limits and argument ranges; SIGTERM like SIGINT

@pytest.mark.skipif(not os.path.exists("/dev/zero") or not hasattr(os, "mkfifo"),
                    reason="needs /dev/zero and FIFOs (POSIX)")
def test_train_text_refuses_devices_and_fifos(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for path, word in (("/dev/zero", "character device"), ("/dev/urandom", "character device"),
                       (fifo, "FIFO"), (tmp_path, "directory")):
        # a subprocess with a timeout: reading these once never ended (or blocked forever)
        p = run(tmp_path, "train-text", path, *TINY, "--max-steps", "1", timeout=60)
        assert_clean_error(p, word)


def test_train_text_size_limit_and_binary_detection(tmp_path, call):
    big = tmp_path / "big.txt"
    big.write_text("hello world. " * 200, encoding="utf-8")              # 2600 bytes
    assert_clean_error(call("train-text", big, *TINY, "--max-bytes", "1000"), "--max-bytes")
    nul = tmp_path / "nul.txt"
    nul.write_bytes(b"text" + b"\x00" * 10 + b"more text" * 5000)
    assert_clean_error(call("train-text", nul, *TINY, "--max-steps", "1"), "binary")
    noise = tmp_path / "noise.txt"
    noise.write_bytes(np.random.default_rng(3).integers(128, 256, 5000, np.uint8).tobytes())
    assert_clean_error(call("train-text", noise, *TINY, "--max-steps", "1"), "UTF-8")
    h = call("train-text", "-h")
    assert h.returncode == 0 and "--max-bytes" in h.stdout and "64 MiB" in h.stdout
    assert cli.DEFAULT_MAX_BYTES == 64 * 1024 * 1024


def test_out_of_range_numbers_give_one_line_errors(tmp_path, corpus, call):
    cases = [("train-text", corpus, "--length", "1e10"),
             ("train-text", corpus, "--length", "10000000000"),
             ("train-text", corpus, "--hidden", "200000"),
             ("train-text", corpus, "--embed-dim", "1e8"),
             ("train-text", corpus, "--embed-dim", "100000000"),
             ("train-text", corpus, "--layers", "1000"),
             ("train-text", corpus, "--seq-len", "10000000"),
             ("train-text", corpus, "--batch-size", "100000000"),
             ("train-text", corpus, "--threads", "1000000"),
             ("train-text", corpus, "--minutes", "inf"),
             ("train-text", corpus, "--lr", "1e300"),
             ("generate", "--length", "1e10"),
             ("generate", "--num-samples", "1000000000"),
             ("demo", "--hidden", "200000")]
    for args in cases:
        p = call(*args)
        assert_clean_error(p, args[-2])
        assert "usage:" not in p.stderr


def test_sigterm_saves_and_exits_143(corpus, tmp_path, call):
    model = tmp_path / "term.safetensors"
    cmd = [sys.executable, "-m", "fastrnn", "train-text", str(corpus), "--hidden", "16",
           "--seq-len", "16", "--batch-size", "4", "--minutes", "10", "--out", str(model)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, env=_env(tmp_path))
    try:
        seen = []
        while True:
            line = proc.stdout.readline()
            assert line, f"process ended early: {''.join(seen)} {proc.stderr.read()}"
            seen.append(line)
            if " step " in line:
                break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, (proc.returncode, out, err)
    assert "Traceback" not in err
    assert "interrupted" in out and "saved model to" in out
    g = call("generate", model, "--length", "10", "--seed", "0")
    assert g.returncode == 0, g.stderr
