"""Sequence tagging with stacked LSTMs and TimeDistributed(Dense), written as a Keras script.

Task: word segmentation. The spaces are removed from English text and the model tags every
letter with whether a new word starts there (1) or not (0), one label per time step. Data:
Python's own help texts (``pydoc_data.topics``, part of the standard library, so this example
always runs), lower-cased letters only, cut into windows of 50 letters; the last 20% of the
text is held out.

The model code is the Keras script's; only the import line differs (``import keras`` there).

    python examples/keras_style/lstm_tagging.py
    python examples/keras_style/lstm_tagging.py --quick
"""

import argparse
import re
import time

import numpy as np

import fastrnn as keras          # the Keras version of this script: `import keras`

from fastrnn.datasets import pydoc_topics_text


def load_data(seq_len=50, quick=False):
    """(x_train, y_train), (x_test, y_test): letter ids 1..26 and word-start tags (B, T)."""
    words = re.sub(r"[^a-z]+", " ", pydoc_topics_text().lower()).split()
    letters = "".join(words)
    starts = np.zeros(len(letters), dtype=np.int32)
    pos = np.cumsum([0] + [len(w) for w in words[:-1]])
    starts[pos] = 1
    ids = np.frombuffer(letters.encode("ascii"), dtype=np.uint8).astype(np.int32) - 96
    n = len(ids) // seq_len
    x = ids[:n * seq_len].reshape(n, seq_len)
    y = starts[:n * seq_len].reshape(n, seq_len)
    split = int(n * 0.8)
    (xtr, ytr), (xte, yte) = (x[:split], y[:split]), (x[split:], y[split:])
    if quick:
        xtr, ytr, xte, yte = xtr[:400], ytr[:400], xte[:100], yte[:100]
    return (xtr, ytr), (xte, yte)


def build_model(seq_len, n_ids=27, embed=32, units=64):
    model = keras.Sequential([
        keras.Input(shape=(seq_len,), dtype="int32"),
        keras.layers.Embedding(n_ids, embed),
        keras.layers.LSTM(units, return_sequences=True),
        keras.layers.LSTM(units, return_sequences=True),
        keras.layers.TimeDistributed(keras.layers.Dense(2, activation="softmax")),
    ])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam",
                  metrics=["accuracy"])
    return model


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny run for smoke tests")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args(argv)
    seq_len = 50
    (x_train, y_train), (x_test, y_test) = load_data(seq_len, args.quick)
    print(f"{len(x_train)} train / {len(x_test)} test windows of {seq_len} letters; "
          f"{y_train.mean():.3f} of the letters start a word")
    embed, units = (8, 16) if args.quick else (32, 64)
    model = build_model(seq_len, embed=embed, units=units)
    epochs = args.epochs or (1 if args.quick else 5)
    t0 = time.perf_counter()
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=epochs,
              validation_data=(x_test, y_test), verbose=0 if args.quick else 2)
    seconds = time.perf_counter() - t0
    score, acc = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    majority = float(np.mean(y_test == 0))
    print(f"test loss {score:.4f}  per-letter accuracy {acc:.4f}  (all 'no word start' "
          f"{majority:.4f}); training {seconds:.1f} s")
    pred = np.asarray(model.predict(x_test[:1], verbose=0)).argmax(-1)[0]
    text = "".join((" " if t and i else "") + chr(96 + c)
                   for i, (c, t) in enumerate(zip(x_test[0], pred)))
    print(f"segmented: {text}")
    return {"accuracy": float(acc), "loss": float(score), "majority": majority,
            "seconds": seconds}


if __name__ == "__main__":
    main()
