"""Forecast the yearly sunspot number with a GRU.

Data: yearly sunspot numbers 1700-2008 from statsmodels (no download). The model
reads the last ``--window`` years and predicts the next one. The last
``--test-years`` years are the test set (the GRU never sees them in training);
the inputs are scaled with the training years' mean and standard deviation.

    pip install statsmodels matplotlib     # matplotlib only for the plot
    python examples/sunspots_gru.py
    python examples/sunspots_gru.py --quick

Prints the test RMSE (one step ahead, in sunspot units) next to the persistence
baseline (next year = this year) and a linear autoregression on the same
window fitted by least squares, and saves sunspots_gru.png (loss curves and
the test forecasts against the truth).
"""

import argparse
import os
import sys
import time

import numpy as np

import fastrnn as fr
from fastrnn.datasets import load_sunspots


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny run for smoke tests")
    p.add_argument("--window", type=int, default=24, help="input years (default: %(default)s)")
    p.add_argument("--test-years", type=int, default=60)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", default="sunspots_gru.png",
                   help="PNG path (default: %(default)s; '' to skip)")
    p.add_argument("--verbose", type=int, default=None, help="fit verbosity (0, 1, 2)")
    return p.parse_args(argv)


def windows(series, w):
    """X (N, w, 1): w consecutive values; y (N, 1): the value that follows."""
    idx = np.arange(len(series) - w)[:, None] + np.arange(w)[None, :]
    return series[idx][..., None], series[w:][:, None]


def rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def main(argv=None):
    args = parse_args(argv)
    epochs = args.epochs or (15 if args.quick else 300)
    verbose = args.verbose if args.verbose is not None else 0
    years, counts = load_sunspots()
    w = args.window
    n_test = args.test_years
    split = len(counts) - n_test                 # first test target index
    train_series = counts[:split]
    mu, sd = train_series.mean(), train_series.std()
    z = ((counts - mu) / sd).astype(np.float32)

    X, y = windows(z, w)                         # target of row i is z[i + w]
    target_index = np.arange(w, len(z))
    is_test = target_index >= split
    X_train, y_train = X[~is_test], y[~is_test]
    X_test, y_test = X[is_test], y[is_test]
    print(f"sunspots {int(years[0])}-{int(years[-1])}: {len(X_train)} training windows "
          f"(targets {int(years[w])}-{int(years[split - 1])}), test on the last {n_test} "
          f"years ({int(years[split])}-{int(years[-1])}); window {w} years")

    t0 = time.perf_counter()
    model = fr.Sequential([
        fr.GRU(args.hidden, input_size=1),
        fr.Dense(1),
    ], seed=args.seed)
    model.compile(optimizer=fr.optimizers.Adam(learning_rate=args.lr, clipnorm=1.0),
                  loss="mse")
    # the validation windows are the last 15% of the training years (fit holds out the
    # tail, before shuffling); stop when they stop improving and keep the best weights
    stop = fr.callbacks.EarlyStopping(patience=25, restore_best_weights=True)
    hist = model.fit(X_train, y_train, batch_size=args.batch_size, epochs=epochs,
                     validation_split=0.15, verbose=verbose, callbacks=[stop])
    if stop.stopped_epoch:
        print(f"early stopping at epoch {stop.stopped_epoch + 1}, best epoch "
              f"{stop.best_epoch + 1}")
    pred = model.predict(X_test)[:, 0] * sd + mu
    t_gru = time.perf_counter() - t0
    truth = counts[split:]

    persistence = counts[split - 1:-1]           # next year = this year
    # linear AR(w) on the same windows, least squares with an intercept
    A = np.c_[X_train[:, :, 0], np.ones(len(X_train))]
    coef, *_ = np.linalg.lstsq(A, y_train[:, 0], rcond=None)
    ar = (np.c_[X_test[:, :, 0], np.ones(len(X_test))] @ coef) * sd + mu

    r_gru, r_pers, r_ar = rmse(pred, truth), rmse(persistence, truth), rmse(ar, truth)
    print(f"\ntest RMSE, GRU {args.hidden}:             {r_gru:7.2f}   [{t_gru:.1f} s]")
    print(f"baseline, persistence (last value): {r_pers:7.2f}")
    print(f"reference, linear AR({w}):          {r_ar:7.2f}")
    print(("GRU beats persistence" if r_gru < r_pers else "GRU does NOT beat persistence")
          + f" by {100 * (1 - r_gru / r_pers):.0f}%")
    if args.plot:
        save_plot(args.plot, hist.history, years[split:], truth, pred, persistence)
    return {"rmse": r_gru, "persistence": r_pers, "ar": r_ar, "seconds": t_gru}


def save_plot(path, history, years, truth, pred, persistence):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no plot)")
        return
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [1, 2]})
    ep = np.arange(1, len(history["loss"]) + 1)
    a1.plot(ep, history["loss"], label="train")
    if "val_loss" in history:
        a1.plot(ep, history["val_loss"], label="validation")
    a1.set_yscale("log")
    a1.set_xlabel("epoch")
    a1.set_ylabel("MSE (standardised)")
    a1.legend()
    a2.plot(years, truth, "k-", lw=2, label="observed")
    a2.plot(years, pred, "C1o-", ms=3, label="GRU (one step ahead)")
    a2.plot(years, persistence, "C2--", lw=1, label="persistence")
    a2.set_xlabel("year")
    a2.set_ylabel("sunspot number")
    a2.set_title("test years")
    a2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"saved plot to {os.path.abspath(path)}")


if __name__ == "__main__":
    main()
    sys.exit(0)
