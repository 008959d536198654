#!/usr/bin/env python3
"""Reference recipe: logistic regression on FeatureBuilderV1 features. Python 3 standard library only.

Inputs
  --dataset  features CSV `ts,close,<features...>,fwd_ret_1` (src/data/FEATURES.md); every column
             other than ts, close and fwd_ret_1 is a feature. Rows must be in time order.
  --costs    costs.json: {"symbol", "taker_fee_bps", "maker_fee_bps", "median_spread_bps",
             "slippage_bps_per_sigma"}

Method
  Time-ordered split, no shuffling across it: rows [0, n_train) train, [n_train, n) test, with
  n_train = floor(n * (1 - test_fraction)). Features are standardised with the train split's mean and
  std. Label y = 1 if fwd_ret_1 > 0 else 0. Mini-batch gradient descent on the log loss plus
  L2 (weights only), batch order shuffled per epoch inside the train split by random.Random(seed):
  the same inputs give byte-identical outputs.

Outputs (in --out; every file written atomically: a temporary file, then os.replace)
  features.json       before training: {"features": [...], "means": [...], "stds": [...]}
  split_indices.json  before training: {"train": [0, n_train], "test": [n_train, n],
                      "n_train", "n_test"}; ranges are half-open [start, end)
  training_log.json   refreshed after every epoch: {"epochs": [{"epoch", "train_loss", "test_loss"}]}
  model.bin           the model (format below)
  config.json         hyperparameters, feature list, seed
  metrics.json        directionalHitRate, maxDrawdown, sharpe, net_bps_after_costs, n_train, n_test
  stdout gets `RETRAIN_PROGRESS step=<epoch> total=<epochs>` after each epoch.

Checkpoints (--checkpoint-dir, optional)
  After every epoch, epoch-NNNNNN.json (written atomically; the two newest are kept): the epoch,
  bias, weights, the batch order and the random generator's state, the loss history and a
  fingerprint of the inputs and hyperparameters. With --resume-from naming such a file, training
  goes on after its epoch and gives the same outputs, byte for byte, as a run never interrupted. A
  checkpoint that does not match this run's inputs is ignored (training starts from epoch 0).

model.bin (little-endian)
  offset 0  4 bytes   magic b"RTLR"
  offset 4  uint16    format version (1)
  offset 6  uint16    n, the number of features (in the order of config.json "features")
  offset 8  float64   bias, then n float64 weights, n float64 means, n float64 stds
  p(up) = sigmoid(bias + sum_j weights[j] * (x[j] - means[j]) / stds[j])

Exit status 0 on success, 2 on bad input or arguments (message on stderr).
"""

import argparse
import json
import math
import os
import random
import struct
import sys

# The helpers every shipped recipe shares: beside this file on the host, in recipes/_shared/ in the repository.
sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "_shared"))
import retrain_recipe as rr  # noqa: E402

MAGIC = b"RTLR"
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------- model


def sigmoid(z):
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def log_loss(z, y):
    """-[y log s(z) + (1-y) log(1 - s(z))], computed without overflow."""
    return max(z, 0.0) - y * z + math.log1p(math.exp(-abs(z)))


def logit(w, b, x):
    return b + sum(wj * xj for wj, xj in zip(w, x))


def mean_loss(w, b, X, y):
    return sum(log_loss(logit(w, b, x), t) for x, t in zip(X, y)) / len(X)


def standardise(X_train):
    d = len(X_train[0])
    n = len(X_train)
    means = [sum(x[j] for x in X_train) / n for j in range(d)]
    stds = []
    for j in range(d):
        var = sum((x[j] - means[j]) ** 2 for x in X_train) / n
        stds.append(math.sqrt(var) if var > 0 else 1.0)
    return means, stds


# ----------------------------------------------------------------------------- main


def parse_args(argv):
    p = argparse.ArgumentParser(description="Reference recipe: logistic regression (stdlib only).")
    p.add_argument("--dataset", required=True)
    p.add_argument("--costs", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--symbol", required=True)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--learning-rate", type=float, default=0.05)
    p.add_argument("--test-fraction", type=float, default=0.25)
    p.add_argument("--threshold", type=float, default=0.02)
    p.add_argument("--l2", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--checkpoint-dir", default="")
    p.add_argument("--resume-from", default="")
    a = p.parse_args(argv)
    if a.epochs < 1 or a.epochs > 100000:
        p.error("--epochs must be in 1..100000")
    if not (a.learning_rate > 0 and math.isfinite(a.learning_rate)):
        p.error("--learning-rate must be > 0")
    if not 0 < a.test_fraction < 1:
        p.error("--test-fraction must be in (0, 1)")
    if not 0 <= a.threshold < 0.5:
        p.error("--threshold must be in [0, 0.5)")
    if not (a.l2 >= 0 and math.isfinite(a.l2)):
        p.error("--l2 must be >= 0")
    if a.batch_size < 1:
        p.error("--batch-size must be >= 1")
    return a


def run_fingerprint(args, features, n, n_train):
    """What a checkpoint must agree with to be resumed from: the data's shape and the hyperparameters."""
    return {
        "features": features,
        "n": n,
        "n_train": n_train,
        "epochs": args.epochs,
        "learning_rate": args.learning_rate,
        "l2": args.l2,
        "batch_size": args.batch_size,
        "seed": args.seed,
    }


def write_checkpoint(directory, epoch, fingerprint, b, w, order, rng, history):
    os.makedirs(directory, exist_ok=True)
    version, internal, gauss = rng.getstate()
    state = {
        "format": "reference-checkpoint-1",
        "epoch": epoch,
        "fingerprint": fingerprint,
        "b": b,
        "w": w,
        "order": order,
        "rng": [version, list(internal), gauss],
        "history": history,
    }
    rr.write_atomic(os.path.join(directory, "epoch-%06d.json" % epoch), json.dumps(state, sort_keys=True))
    names = sorted(f for f in os.listdir(directory) if f.startswith("epoch-") and f.endswith(".json"))
    for old in names[:-2]:
        try:
            os.remove(os.path.join(directory, old))
        except OSError:
            pass


def read_checkpoint(path, fingerprint, d, n_train):
    """The state in a checkpoint written by write_checkpoint for this same run, else None."""
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
        ok = (
            state.get("format") == "reference-checkpoint-1"
            and state.get("fingerprint") == fingerprint
            and isinstance(state.get("epoch"), int)
            and 1 <= state["epoch"] <= fingerprint["epochs"]
            and len(state["w"]) == d
            and sorted(state["order"]) == list(range(n_train))
            and len(state["history"]) == state["epoch"]
        )
        return state if ok else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def train(args):
    features, ts, X, fwd, _close = rr.read_dataset(args.dataset)
    costs = rr.read_costs(args.costs)
    n = len(X)
    n_train = int(math.floor(n * (1.0 - args.test_fraction)))
    n_test = n - n_train
    if n_train < rr.MIN_TRAIN or n_test < rr.MIN_TEST:
        raise rr.BadInput(
            "too few rows: %d (train %d, test %d; need at least %d and %d)" % (n, n_train, n_test, rr.MIN_TRAIN, rr.MIN_TEST)
        )
    os.makedirs(args.out, exist_ok=True)
    out = lambda name: os.path.join(args.out, name)  # noqa: E731
    rr.log("reference: %s, %d rows, %d features, train %d, test %d" % (args.symbol, n, len(features), n_train, n_test))

    means, stds = standardise(X[:n_train])
    Z = [[(x[j] - means[j]) / stds[j] for j in range(len(features))] for x in X]
    y = [1.0 if r > 0 else 0.0 for r in fwd]
    rr.write_json(out("features.json"), {"features": features, "means": means, "stds": stds})
    rr.write_json(
        out("split_indices.json"),
        {"train": [0, n_train], "test": [n_train, n], "n_train": n_train, "n_test": n_test},
    )

    Z_train, y_train, Z_test, y_test = Z[:n_train], y[:n_train], Z[n_train:], y[n_train:]
    d = len(features)
    w = [0.0] * d
    b = 0.0
    rng = random.Random(args.seed)
    order = list(range(n_train))
    lr, l2, bs = args.learning_rate, args.l2, args.batch_size
    history = []
    fingerprint = run_fingerprint(args, features, n, n_train)
    first = 1
    if args.resume_from:
        state = read_checkpoint(args.resume_from, fingerprint, d, n_train)
        if state is None:
            rr.log("checkpoint %s does not match this run; starting from epoch 0" % os.path.basename(args.resume_from))
        else:
            first = state["epoch"] + 1
            b, w, order, history = state["b"], state["w"], state["order"], state["history"]
            rng.setstate((state["rng"][0], tuple(state["rng"][1]), state["rng"][2]))
            rr.log("resumed from epoch %d (%s)" % (state["epoch"], os.path.basename(args.resume_from)))
    for epoch in range(first, args.epochs + 1):
        rng.shuffle(order)
        for start in range(0, n_train, bs):
            batch = order[start : start + bs]
            gw = [0.0] * d
            gb = 0.0
            for i in batch:
                x = Z_train[i]
                err = sigmoid(logit(w, b, x)) - y_train[i]
                gb += err
                for j in range(d):
                    gw[j] += err * x[j]
            m = float(len(batch))
            b -= lr * gb / m
            w = [wj - lr * (gj / m + l2 * wj) for wj, gj in zip(w, gw)]
        train_loss = mean_loss(w, b, Z_train, y_train)
        test_loss = mean_loss(w, b, Z_test, y_test)
        history.append({"epoch": epoch, "train_loss": train_loss, "test_loss": test_loss})
        rr.write_json(out("training_log.json"), {"epochs": history})
        rr.log("epoch %d/%d train_loss=%.6f test_loss=%.6f" % (epoch, args.epochs, train_loss, test_loss))
        rr.log("RETRAIN_PROGRESS step=%d total=%d" % (epoch, args.epochs))
        if args.checkpoint_dir:
            write_checkpoint(args.checkpoint_dir, epoch, fingerprint, b, w, order, rng, history)

    probs = [sigmoid(logit(w, b, z)) for z in Z_test]
    positions = rr.positions_from_probabilities(probs, args.threshold)
    if "vol_24" in features:
        j = features.index("vol_24")
        vols = [x[j] for x in X]
        median_vol = rr.median(vols[:n_train])
        test_vol = vols[n_train:]
    else:
        median_vol, test_vol = 0.0, [None] * n_test
    per_year = rr.bars_per_year(ts)
    metrics = rr.trading_metrics(positions, fwd[n_train:], test_vol, median_vol, costs, per_year)
    metrics["n_train"] = n_train
    metrics["n_test"] = n_test

    blob = struct.pack("<4sHH", MAGIC, FORMAT_VERSION, d) + struct.pack("<%dd" % (1 + 3 * d), b, *w, *means, *stds)
    rr.write_atomic(out("model.bin"), blob)
    rr.write_json(
        out("config.json"),
        {
            "recipe": "reference",
            "model": "logistic_regression",
            "model_format": "RTLR v%d (see train.py)" % FORMAT_VERSION,
            "symbol": args.symbol,
            "features": features,
            "label": "fwd_ret_1 > 0",
            "epochs": args.epochs,
            "learning_rate": args.learning_rate,
            "l2": l2,
            "batch_size": bs,
            "test_fraction": args.test_fraction,
            "threshold": args.threshold,
            "seed": args.seed,
            "bars_per_year": per_year,
            "costs": {k: costs[k] for k in rr.COST_FIELDS},
        },
    )
    rr.write_json(out("metrics.json"), metrics)
    rr.log(
        "done: hit_rate=%.4f sharpe=%.3f net_bps=%.3f max_dd=%.4f trades_on=%d/%d"
        % (
            metrics["directionalHitRate"],
            metrics["sharpe"],
            metrics["net_bps_after_costs"],
            metrics["maxDrawdown"],
            sum(1 for p in positions if p != 0),
            n_test,
        )
    )


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        train(args)
    except rr.BadInput as e:
        print("train.py: error: %s" % e, file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
