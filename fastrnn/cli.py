"""The ``fastrnn`` command line (also ``python -m fastrnn``).

Commands::

    fastrnn demo                  train a character LSTM on Python's own help texts for ~1 minute
    fastrnn train-text FILE       train a character model on any UTF-8 text file
    fastrnn generate [MODEL]      sample text from a model saved by demo / train-text
    fastrnn bench [ARGS]          the benchmark suite's quick mode

Errors in the input (a missing, empty, binary, too large or non-regular file, a bad model
file, a bad or out-of-range option value) print one line ``fastrnn: error: ...`` to stderr and
exit with status 2. Ctrl-C (SIGINT) or SIGTERM during training stops it, saves the model
learned so far and exits with status 130 (SIGINT) or 143 (SIGTERM).
"""

from __future__ import annotations

import argparse
import math
import os
import stat
import sys
import time

PROG = "fastrnn"
# `train-text` with no --epochs, --minutes or --max-steps: long enough for a 256-unit LSTM to
# get well below a bigram count model on ordinary prose on 2 cores (one epoch of a small file
# was gibberish)
TRAIN_TEXT_MINUTES = 3.0
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
# train-text reads at most this much text unless --max-bytes says otherwise: the whole text
# and its ids are held in memory (about 9 bytes per character)
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
_FIRST_BLOCK = 64 * 1024           # binary detection looks at this much first


class CLIError(Exception):
    """An input problem reported as one line and exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``fastrnn: error: ...``, exit 2) instead of a usage
    block: the same shape as every other input error of the command line."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{PROG}: error: {message} (see `{self.prog} -h`)\n")


def default_cache_dir() -> str:
    """Where `fastrnn demo` saves its model: $FASTRNN_HOME, else $XDG_CACHE_HOME/fastrnn,
    else ~/.cache/fastrnn."""
    env = os.environ.get("FASTRNN_HOME")
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fastrnn")


def default_demo_model() -> str:
    return os.path.join(default_cache_dir(), "demo-charlm.safetensors")


# ----------------------------------------------------------------------------
# argument types (argparse turns their ArgumentTypeError into a usage error, exit 2)


def _nonneg_float(s):
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {s!r}") from None
    if not (v >= 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {s!r}")
    return v


def _int_in(lo, hi):
    """argparse type: an integer in [lo, hi] (sizes beyond hi cannot run on one machine)."""
    def conv(s):
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer in [{lo}, {hi}], got "
                                             f"{s!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"expected an integer in [{lo}, {hi}], got {s!r}")
        return v
    conv.__name__ = "integer"
    return conv


def _float_in(lo, hi):
    """argparse type: a finite number in (lo, hi]."""
    def conv(s):
        try:
            v = float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number in ({lo:g}, {hi:g}], got "
                                             f"{s!r}") from None
        if not (math.isfinite(v) and lo < v <= hi):
            raise argparse.ArgumentTypeError(f"expected a number in ({lo:g}, {hi:g}], got "
                                             f"{s!r}")
        return v
    conv.__name__ = "number"
    return conv


# upper bounds of the numeric options (validated before anything is read or allocated)
MAX_HIDDEN = 4096
MAX_EMBED = 4096
MAX_LAYERS = 16
MAX_SEQ_LEN = 10_000
MAX_BATCH = 4096
MAX_LENGTH = 1_000_000
MAX_SAMPLES = 1000
MAX_THREADS = 1024


def _add_training_args(p, *, hidden, seq_len, batch_size, lr, minutes, epochs,
                       budget_minutes=None):
    g = p.add_argument_group("model and training")
    g.add_argument("--cell", choices=("lstm", "gru", "rnn"), default="lstm",
                   help="recurrent cell (default: %(default)s)")
    g.add_argument("--hidden", type=_int_in(1, MAX_HIDDEN), default=hidden,
                   help="units per recurrent layer (default: %(default)s)")
    g.add_argument("--layers", type=_int_in(1, MAX_LAYERS), default=1,
                   help="stacked recurrent layers (default: %(default)s)")
    g.add_argument("--embed-dim", type=_int_in(1, MAX_EMBED), default=None,
                   help="character embedding size (default: min(64, vocabulary size))")
    g.add_argument("--seq-len", type=_int_in(1, MAX_SEQ_LEN), default=seq_len,
                   help="truncated-BPTT window in characters (default: %(default)s)")
    g.add_argument("--batch-size", type=_int_in(1, MAX_BATCH), default=batch_size,
                   help="parallel text streams per update (default: %(default)s)")
    if epochs:
        epochs_help = " (default: %(default)s)"
    elif minutes:
        epochs_help = " (default: no limit: --minutes ends the training)"
    else:
        epochs_help = " (default: no limit)"
    if minutes:
        minutes_help = " (default: %(default)s)"
    elif budget_minutes:
        minutes_help = (f" (default: {budget_minutes:g} when neither --epochs nor --max-steps "
                        "is given, else no limit)")
    else:
        minutes_help = " (default: no limit)"
    g.add_argument("--epochs", type=_int_in(1, 10 ** 6), default=epochs,
                   help="passes over the text" + epochs_help)
    g.add_argument("--minutes", type=_float_in(0, 10 ** 6), default=minutes,
                   help="training time budget in minutes" + minutes_help)
    g.add_argument("--max-steps", type=_int_in(1, 10 ** 12), default=None,
                   help="stop after this many updates (default: no limit)")
    g.add_argument("--lr", type=_float_in(0, 10), default=lr,
                   help="Adam learning rate (default: %(default)s)")
    g.add_argument("--clipnorm", type=_float_in(0, 1e6), default=1.0,
                   help="per-tensor gradient norm clip (default: %(default)s)")
    g.add_argument("--val-fraction", type=float, default=0.05,
                   help="held-out tail of the text for validation (default: %(default)s)")
    g.add_argument("--seed", type=_int_in(0, 2 ** 63 - 1), default=0,
                   help="random seed for weights and sampling (default: %(default)s)")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    _add_threads_arg(g)


def _add_threads_arg(p):
    p.add_argument("--threads", type=_int_in(1, MAX_THREADS), default=None,
                   help="threads for the recurrent kernels (default: all CPUs available)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="fastrnn: fast CPU recurrent networks (Elman RNN, LSTM, GRU).",
        epilog="Run `fastrnn COMMAND -h` for the options of one command.")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "demo", help="train a character-level LSTM on Python's help texts (~1 min), then sample",
        description="Train a character-level LSTM (Embedding -> LSTM -> Dense) on the help texts "
                    "that ship with Python (pydoc_data.topics, ~465k characters) for a fixed "
                    "time, report validation bits per character and training speed, print "
                    "samples and save the model for `fastrnn generate`. No network needed.")
    # 64 streams x 50 characters: the same learning per character as 32 x 100 in our
    # measurements, with larger (faster) matrix products per time step
    # lr 8e-3 (with the per-tensor clipnorm): the lowest validation loss after one minute
    # among 3e-3 / 5e-3 / 8e-3 / 1.2e-2 for LSTM, GRU and Elman cells
    _add_training_args(p, hidden=256, seq_len=50, batch_size=64, lr=8e-3, minutes=1.0,
                       epochs=None)
    p.add_argument("--out", metavar="MODEL", default=None,
                   help=f"where to save the model (default: {default_demo_model()})")
    p.add_argument("--length", type=_int_in(0, MAX_LENGTH), default=300,
                   help="characters per printed sample (default: %(default)s)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "train-text", help="train a character-level model on a UTF-8 text file",
        description="Train a character-level language model on FILE with truncated "
                    "backpropagation through time and save it (with its vocabulary) for "
                    "`fastrnn generate`. Stops after --epochs, --minutes or --max-steps, "
                    f"whichever comes first; with none of them it trains for "
                    f"{TRAIN_TEXT_MINUTES:g} minutes. Ctrl-C stops early and saves. Warns when "
                    "the result is no better than counting character pairs (undertrained).")
    p.add_argument("file", metavar="FILE", help="UTF-8 text file")
    _add_training_args(p, hidden=256, seq_len=100, batch_size=32, lr=5e-3, minutes=None,
                       epochs=None, budget_minutes=TRAIN_TEXT_MINUTES)
    p.add_argument("--out", metavar="MODEL", default=None,
                   help="where to save the model (default: FILE's name + .charlm.safetensors "
                        "in the current directory)")
    p.add_argument("--length", type=_int_in(0, MAX_LENGTH), default=200,
                   help="characters of the sample printed at the end (default: %(default)s)")
    p.add_argument("--max-bytes", type=_int_in(1, 2 ** 40), default=DEFAULT_MAX_BYTES,
                   help="refuse files larger than this many bytes (default: %(default)s = "
                        "64 MiB; the text is held in memory)")
    p.set_defaults(func=cmd_train_text)

    p = sub.add_parser(
        "generate", help="sample text from a saved character model",
        description="Stream characters from a model saved by `fastrnn demo` or "
                    "`fastrnn train-text`, one step at a time.")
    p.add_argument("model", metavar="MODEL", nargs="?", default=None,
                   help=f"model file (default: the demo model, {default_demo_model()})")
    p.add_argument("--prime", default="", help="text to start from (default: none)")
    p.add_argument("--length", type=_int_in(0, MAX_LENGTH), default=500,
                   help="characters to generate (default: %(default)s)")
    p.add_argument("--temperature", "-t", type=_nonneg_float, default=0.8,
                   help="sampling temperature, 0 = greedy (default: %(default)s)")
    p.add_argument("--num-samples", "-n", type=_int_in(1, MAX_SAMPLES), default=1,
                   help="independent samples (default: %(default)s)")
    p.add_argument("--seed", type=_int_in(0, 2 ** 63 - 1), default=None,
                   help="random seed (default: random)")
    _add_threads_arg(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser(
        "bench", help="run the benchmark suite's quick mode",
        description="Run the benchmark suite in quick mode (--quick is always on); extra "
                    "arguments are passed on (`fastrnn bench --help` shows the suite's "
                    "options).",
        add_help=False)
    p.add_argument("bench_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_bench)
    return parser


# ----------------------------------------------------------------------------
# helpers


def _out(msg=""):
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


def _check_common(args):
    if not 0.0 <= args.val_fraction < 0.5:
        raise CLIError(f"--val-fraction must be in [0, 0.5), got {args.val_fraction}")


def _save_model(lm, path, extra):
    from . import textgen
    d = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(d, exist_ok=True)
        return textgen.save(lm, path, extra=extra)
    except OSError as exc:
        raise CLIError(f"cannot write model to {path!r}: {exc.strerror or exc}") from None


def _check_out_path(path):
    """Fail before training, not after, when the model cannot be written."""
    if os.path.isdir(path):
        raise CLIError(f"--out must be a file path, got a directory: {path!r}")
    d = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(d, exist_ok=True)
    except OSError as exc:
        raise CLIError(f"cannot create the folder for the model {d!r}: "
                       f"{exc.strerror or exc}") from None
    if not os.access(d, os.W_OK):
        raise CLIError(f"cannot write the model to {path!r}: folder is not writable")


def _run_training(args, text, source_desc, out_path, *, minutes_default=None):
    """Build, train (Ctrl-C aware), save. Returns (lm, result, files)."""
    from . import textgen
    from .datasets import CharVocab
    _check_common(args)
    _check_out_path(out_path)
    vocab = CharVocab.from_text(text)
    if len(vocab) < 2:
        raise CLIError(f"{source_desc} has only {len(vocab)} distinct character; a language "
                       "model needs at least 2")
    lm = textgen.CharLM(vocab, hidden=args.hidden, layers=args.layers, cell=args.cell,
                        embed_dim=args.embed_dim, seed=args.seed)
    epochs, minutes = args.epochs, args.minutes
    if epochs is None and minutes is None and args.max_steps is None:
        minutes = minutes_default
    n_train = len(text) - int(len(text) * args.val_fraction)
    if n_train < 2 * args.batch_size + 1:
        raise CLIError(f"{source_desc} is too short for --batch-size {args.batch_size}: "
                       f"{n_train} training characters, need at least {2 * args.batch_size + 1}"
                       " (use a smaller --batch-size)")
    limits = []
    if epochs:
        limits.append(f"{epochs} epoch{'s' * (epochs > 1)}")
    if minutes:
        limits.append(f"{minutes:g} min")
    if args.max_steps:
        limits.append(f"{args.max_steps} steps")
    _out(f"model: {lm.describe()}")
    _out(f"training: {' or '.join(limits)}, batch {args.batch_size} streams x "
         f"{args.seq_len} chars, Adam lr {args.lr:g}, clipnorm {args.clipnorm:g} "
         f"(Ctrl-C or SIGTERM stops and saves)")
    res = textgen.train(lm, text, seq_len=args.seq_len, batch_size=args.batch_size,
                        epochs=epochs, minutes=minutes, max_steps=args.max_steps,
                        learning_rate=args.lr, clipnorm=args.clipnorm,
                        val_fraction=args.val_fraction, seed=args.seed,
                        verbose=0 if args.quiet else 1)
    extra = {"source": source_desc, "steps": res.steps, "train_chars": res.train_chars,
             "val_bpc": None if math.isnan(res.val_bpc) else round(res.val_bpc, 4),
             "interrupted": res.interrupted}
    if res.interrupted:
        _out(f"\ninterrupted after {res.steps} steps ({res.train_seconds:.1f} s); "
             "saving the model learned so far")
    # (a Ctrl-C while saving leaves any previous file intact: io writes atomically)
    files = _save_model(lm, out_path, extra)
    return lm, res, files


def _report(res, vocab_size, *, n_val):
    if res.steps:
        _out(f"train loss: {res.first_loss_bpc:.3f} -> {res.last_loss_bpc:.3f} bits/char "
             f"(first batch -> mean of the last 20), {res.steps} steps, "
             f"{res.epochs_done:.2f} epochs in {res.train_seconds:.1f} s")
        _out(f"throughput: {res.chars_per_second:,.0f} characters/s (training: forward, "
             "backward and update)")
    if not math.isnan(res.val_bpc):
        _out(f"validation: {res.val_bpc:.3f} bits/char on {n_val:,} held-out characters "
             f"(uniform guess: {math.log2(vocab_size):.2f})")


def _warn_if_undertrained(lm, res, text, val_fraction):
    """Warn when the network is no better than counting character pairs: more time helps."""
    from . import _ngram
    from .datasets import split_text
    train_text, val_text = split_text(text, val_fraction)
    train_ids = lm.vocab.encode(train_text, errors="ignore")
    val_ids = lm.vocab.encode(val_text, errors="ignore") if len(val_text) > 4 else train_ids
    if len(train_ids) < 2 or len(val_ids) < 2:
        return
    counts = _ngram.bigram_bpc(train_ids, val_ids, len(lm.vocab))
    if _ngram.undertrained(res.val_bpc, res.last_loss_bpc, counts):
        got = res.val_bpc if math.isfinite(res.val_bpc) else res.last_loss_bpc
        sys.stderr.write(
            f"{PROG}: warning: undertrained: {got:.2f} bits/char is no better than counting "
            f"which character follows which ({counts:.2f} bits/char on this text); "
            "try --minutes 10\n")
        sys.stderr.flush()


def _print_samples(lm, temperatures, length, seed, prime, n=2):
    from . import textgen
    for k, t in enumerate(temperatures):
        _out(f"\n--- samples at temperature {t:g} (prime {prime!r}) ---")
        samples = textgen.generate(lm, prime=prime, length=length, temperature=t,
                                   num_samples=n, seed=None if seed is None else seed + k)
        for s in samples:
            _out(prime + s)
            _out("---")


# ----------------------------------------------------------------------------
# commands


def cmd_demo(args):
    from .datasets import pydoc_topics_text
    try:
        text = pydoc_topics_text()
    except ImportError as exc:
        raise CLIError(str(exc)) from None
    out_path = args.out or default_demo_model()
    _out(f"fastrnn demo: character-level {args.cell.upper()} on Python's built-in help texts "
         f"(pydoc_data.topics: {len(text):,} characters, {len(set(text))} distinct)")
    lm, res, files = _run_training(args, text, "pydoc_data.topics", out_path)
    n_val = int(len(text) * args.val_fraction)
    _report(res, len(lm.vocab), n_val=n_val)
    _out(f"saved model to {files[0]}" + (f" (+ {files[1]})" if len(files) > 1 else ""))
    if res.interrupted:
        return _exit_status(res)
    _out(f"generate more with: {PROG} generate"
         + ("" if args.out is None else f" {files[0]}") + " --prime 'The ' --temperature 0.8")
    _print_samples(lm, (0.5, 1.0), args.length, args.seed, prime="The ")
    return 0


def _default_out_for(path):
    stem = os.path.splitext(os.path.basename(os.path.abspath(path)))[0] or "model"
    return os.path.join(os.getcwd(), stem + ".charlm.safetensors")


_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISDIR, "a directory"))


def _check_text_file(path, max_bytes):
    """Refuse, before reading anything, what train-text cannot read safely: anything but a
    regular file (a FIFO would block forever, /dev/zero never ends), a file larger than
    ``max_bytes``, and a file whose first block is binary (NUL bytes or not UTF-8)."""
    try:
        st = os.stat(path)            # stat never blocks, even on a FIFO
    except FileNotFoundError:
        raise CLIError(f"file not found: {path!r}") from None
    except OSError as exc:
        raise CLIError(f"cannot read {path!r}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = next((k for test, k in _KINDS if test(st.st_mode)), "not a regular file")
        raise CLIError(f"expected a regular text file, got {kind}: {path!r}")
    if st.st_size > max_bytes:
        raise CLIError(f"{path!r} is {st.st_size:,} bytes, more than --max-bytes "
                       f"{max_bytes:,}; pass a larger --max-bytes to train on it")
    try:
        with open(path, "rb") as fh:
            first = fh.read(_FIRST_BLOCK)
    except OSError as exc:
        raise CLIError(f"cannot read {path!r}: {exc.strerror or exc}") from None
    if b"\x00" in first:
        raise CLIError(f"expected a UTF-8 text file, got binary data (NUL bytes in the first "
                       f"{_FIRST_BLOCK // 1024} KiB): {path!r}")
    try:
        first.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(first) - 3:        # not just a character cut at the block end
            raise CLIError(f"expected a UTF-8 text file, got invalid UTF-8 at byte "
                           f"{exc.start}: {path!r}") from None


def _exit_status(res):
    """130 for Ctrl-C, 128 + N for signal N (143 for SIGTERM)."""
    return 128 + int(res.stop_signal) if res.stop_signal else EXIT_INTERRUPTED


def cmd_train_text(args):
    from .datasets import DataError, read_text_file
    _check_text_file(args.file, args.max_bytes)
    try:
        # +1: a file that grew past the limit since the check is caught below
        text = read_text_file(args.file, max_bytes=args.max_bytes + 1)
    except DataError as exc:
        raise CLIError(str(exc)) from None
    if len(text) > args.max_bytes:
        raise CLIError(f"{args.file!r} grew beyond --max-bytes {args.max_bytes:,} while "
                       "being read")
    out_path = args.out or _default_out_for(args.file)
    _out(f"text: {args.file} ({len(text):,} characters, {len(set(text))} distinct)")
    lm, res, files = _run_training(args, text, os.path.basename(args.file), out_path,
                                   minutes_default=TRAIN_TEXT_MINUTES)
    _report(res, len(lm.vocab), n_val=int(len(text) * args.val_fraction))
    if not res.interrupted:
        _warn_if_undertrained(lm, res, text, args.val_fraction)
    _out(f"saved model to {files[0]}" + (f" (+ {files[1]})" if len(files) > 1 else ""))
    if res.interrupted:
        return _exit_status(res)
    if args.length:
        _print_samples(lm, (0.8,), args.length, args.seed, prime="", n=1)
    _out(f"generate more with: {PROG} generate {files[0]}")
    return 0


def cmd_generate(args):
    from . import textgen
    path = args.model or default_demo_model()
    if args.model is None and not os.path.exists(path):
        raise CLIError(f"no model given and no demo model at {path}; run `{PROG} demo` first "
                       f"or pass a model file")
    try:
        lm = textgen.load(path)
    except textgen.ModelFileError as exc:
        raise CLIError(str(exc)) from None
    dropped = sorted({ch for ch in args.prime if ch not in lm.vocab})
    if dropped:
        sys.stderr.write(f"{PROG}: warning: dropping prime characters not in the model's "
                         f"vocabulary: {''.join(dropped)!r}\n")
    for i in range(args.num_samples):
        if i:
            _out("\n---")
        sys.stdout.write(args.prime)
        seed = None if args.seed is None else args.seed + i
        textgen.generate(lm, prime=args.prime, length=args.length,
                         temperature=args.temperature, seed=seed, stream=sys.stdout)
        sys.stdout.write("\n")
        sys.stdout.flush()
    return 0


def cmd_bench(args):
    try:
        from . import bench as _bench
    except ImportError as exc:
        raise CLIError(f"the benchmark suite is not available in this installation ({exc})") \
            from None
    extra = list(args.bench_args or [])
    if extra[:1] == ["--"]:
        extra = extra[1:]
    if "-h" in extra or "--help" in extra:
        # the suite's help lists --quick and both defaults; say which ones apply here
        _out(f"`{PROG} bench` always runs the suite with --quick: where an option below shows "
             "two defaults, the --quick one applies. `python bench/run.py` (source checkout) "
             "runs the full grid.\n")
    try:
        rc = _bench.main(["--quick", *extra])
    except SystemExit as exc:   # the suite's own argparse (--help, a usage error)
        rc = exc.code
    return 0 if rc is None else (rc if isinstance(rc, int) else EXIT_USAGE)


# ----------------------------------------------------------------------------


def main(argv=None) -> int:
    """Entry point of `fastrnn` and `python -m fastrnn`; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # generated text may hold characters the terminal's encoding cannot show: replace them
    # instead of failing with UnicodeEncodeError
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="replace")
        except (AttributeError, ValueError, OSError):
            pass
    if argv[:1] == ["bench"]:
        # everything after `bench` belongs to the bench suite (its own --help included)
        argv = ["bench", "--", *argv[1:]] if len(argv) > 1 else argv
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help / --version (0) or a usage error (2)
        return int(exc.code or 0)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        if getattr(args, "threads", None):
            from ._engine import config as _config
            _config.set_num_threads(args.threads)
        return int(args.func(args) or 0)
    except CLIError as exc:
        sys.stdout.flush()
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stdout.flush()
        sys.stderr.write(f"\n{PROG}: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `fastrnn generate | head`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
