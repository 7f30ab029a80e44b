"""A stateful=True LSTM forecaster, written as a Keras script: the state is carried from one
batch to the next, so the model reads the whole series as one long sequence while each
training step back-propagates through one window only (truncated BPTT).

Data: yearly sunspot numbers 1700-2008 (the data file in statsmodels, read by
``fastrnn.datasets``; ``pip install --no-deps statsmodels``). One step ahead: every year
predicts the next. The last 60 years are the test; the model warms its state on the training
years first, as a deployed forecaster would.

The model code is the Keras script's; only the import line differs (``import keras`` there).

    python examples/keras_style/stateful_timeseries.py
    python examples/keras_style/stateful_timeseries.py --quick
"""

import argparse
import time

import numpy as np

import fastrnn as keras          # the Keras version of this script: `import keras`

from fastrnn.datasets import load_sunspots

WINDOW = 12


def windows(series, n_test_windows):
    """The series as consecutive, non-overlapping windows of WINDOW years: inputs (N, WINDOW, 1)
    and next-year targets alike, ending at the last year; the last ``n_test_windows`` are the
    test, the ones before them (right up to the test) the training windows."""
    n = (len(series) - 1) // WINDOW
    start = len(series) - 1 - n * WINDOW
    x = series[start:start + n * WINDOW].reshape(n, WINDOW, 1).astype("float32")
    y = series[start + 1:start + 1 + n * WINDOW].reshape(n, WINDOW, 1).astype("float32")
    k = n - n_test_windows
    return (x[:k], y[:k]), (x[k:], y[k:])


def build_model(units=32):
    model = keras.Sequential([
        keras.Input(batch_shape=(1, WINDOW, 1)),
        keras.layers.LSTM(units, stateful=True, return_sequences=True),
        keras.layers.Dense(1),
    ])
    model.compile(loss="mse", optimizer=keras.optimizers.Adam(learning_rate=0.01))
    return model


def reset(model):
    for layer in model.layers:           # Keras 3 resets per layer
        if hasattr(layer, "reset_state"):
            layer.reset_state()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny run for smoke tests")
    p.add_argument("--epochs", type=int, default=None)
    args = p.parse_args(argv)
    _, counts = load_sunspots()
    n_test = 60                           # years, 5 windows
    mean, std = counts[:-n_test].mean(), counts[:-n_test].std()
    (x_train, y_train), (x_test, y_test) = windows((counts - mean) / std, n_test // WINDOW)
    model = build_model(8 if args.quick else 32)
    epochs = args.epochs or (2 if args.quick else 40)
    t0 = time.perf_counter()
    for _ in range(epochs):
        reset(model)                      # every epoch reads the series from its start
        model.fit(x_train, y_train, batch_size=1, epochs=1, shuffle=False, verbose=0)
    seconds = time.perf_counter() - t0
    reset(model)
    model.predict(x_train, batch_size=1, verbose=0)          # warm the state
    pred = np.asarray(model.predict(x_test, batch_size=1, verbose=0)).reshape(-1) * std + mean
    truth = y_test.reshape(-1) * std + mean
    rmse = float(np.sqrt(np.mean((pred - truth) ** 2)))
    persistence = float(np.sqrt(np.mean((x_test.reshape(-1) * std + mean - truth) ** 2)))
    print(f"{len(x_train)} training windows of {WINDOW} years, {len(truth)} test years")
    print(f"test RMSE {rmse:.1f}  (persistence: next year = this year, {persistence:.1f}); "
          f"training {seconds:.1f} s")
    return {"rmse": rmse, "persistence": persistence, "seconds": seconds}


if __name__ == "__main__":
    main()
