#!/usr/bin/env python3
"""xgboost-gpu recipe: gradient-boosted trees (XGBoost, device cuda or cpu) on FeatureBuilderV1 features.

Same contract as recipes/reference/train.py (inputs, split, metrics, output files); the functions
they share (CSV/costs reading, atomic writes, metrics) are in recipes/_shared/retrain_recipe.py,
shipped beside both. Differences:
  - the model is an XGBoost booster (binary:logistic, tree_method hist) trained for --num-rounds
    rounds on the raw features (trees need no standardisation; features.json still records the
    train-split means and stds);
  - model.bin is the booster saved in UBJSON (xgboost.Booster.save_raw("ubj")); load it with
    booster = xgboost.Booster(); booster.load_model(bytearray(open("model.bin", "rb").read()));
  - training_log.json holds per-round train/test log loss, refreshed every --log-every rounds;
  - `RETRAIN_PROGRESS step=<round> total=<rounds>` is printed after every round.
Requires xgboost >= 1.7 and numpy. `train.py --ensure-xgboost` (the recipe's setup step) finds the first
Python on the host that imports xgboost >= 1.7 ($RETRAIN_PYTHON, python3, /usr/bin/python3 -- Debian's
python3-xgboost --, python), else creates a private venv under the work root and pip-installs it there
(never into the system Python). Training under an interpreter without xgboost re-executes itself
under the one found. and numpy (an xgboost dependency).
Exit status 0 on success, 2 on bad input or arguments, 3 when xgboost is missing or fails.
"""

import argparse
import math
import os
import shutil
import subprocess
import sys

# The helpers every shipped recipe shares: beside this file on the host, in recipes/_shared/ in the repository.
sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "_shared"))
import retrain_recipe as rr  # noqa: E402

class TrainerFailed(Exception):
    pass


# ----------------------------------------------------------------------------- metrics (as in reference)


def column_stats(X_train):
    n = len(X_train)
    means = [sum(x[j] for x in X_train) / n for j in range(len(X_train[0]))]
    stds = [math.sqrt(sum((x[j] - means[j]) ** 2 for x in X_train) / n) for j in range(len(X_train[0]))]
    return means, stds


# ----------------------------------------------------------------------------- main


def parse_args(argv):
    p = argparse.ArgumentParser(description="xgboost-gpu recipe: gradient-boosted trees.")
    p.add_argument("--dataset", required=True)
    p.add_argument("--costs", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--symbol", required=True)
    p.add_argument("--num-rounds", type=int, default=100)
    p.add_argument("--max-depth", type=int, default=6)
    p.add_argument("--learning-rate", type=float, default=0.05)
    p.add_argument("--test-fraction", type=float, default=0.25)
    p.add_argument("--threshold", type=float, default=0.02)
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--subsample", type=float, default=0.8)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--seed", type=int, default=1234)
    a = p.parse_args(argv)
    if not 1 <= a.num_rounds <= 100000:
        p.error("--num-rounds must be in 1..100000")
    if not 1 <= a.max_depth <= 16:
        p.error("--max-depth must be in 1..16")
    if not (a.learning_rate > 0 and math.isfinite(a.learning_rate)):
        p.error("--learning-rate must be > 0")
    if not 0 < a.test_fraction < 1:
        p.error("--test-fraction must be in (0, 1)")
    if not 0 <= a.threshold < 0.5:
        p.error("--threshold must be in [0, 0.5)")
    if not 0 < a.subsample <= 1:
        p.error("--subsample must be in (0, 1]")
    if a.log_every < 1:
        p.error("--log-every must be >= 1")
    return a


# ----------------------------------------------------------------------------- finding xgboost

MIN_XGBOOST = (1, 7)
XGB_CHECK = (
    "import sys, xgboost; v = tuple(int(x) for x in xgboost.__version__.split('.')[:2]); "
    "sys.exit(0 if v >= %r else 1)" % (MIN_XGBOOST,)
)
REEXEC_ENV = "RETRAIN_XGBOOST_REEXEC"


def venv_dir():
    """<work root>/.venvs/xgboost: this file is <work root>/<symbol>/<stamp>/recipe/train.py."""
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(here))), ".venvs", "xgboost")


def find_xgboost_python():
    """The first interpreter that imports xgboost >= 1.7, or None."""
    candidates = [
        os.environ.get("RETRAIN_PYTHON"),
        shutil.which("python3"),
        "/usr/bin/python3",
        shutil.which("python"),
        os.path.join(venv_dir(), "bin", "python"),
    ]
    seen = set()
    for py in candidates:
        if not py or py in seen or not os.access(py, os.X_OK):
            continue
        seen.add(py)
        if subprocess.run([py, "-c", XGB_CHECK], capture_output=True).returncode == 0:
            return py
    return None


def ensure_xgboost():
    """Setup step: finds or installs xgboost (private venv); prints which interpreter. Exit status."""
    py = find_xgboost_python()
    if py is None:
        venv = venv_dir()
        os.makedirs(os.path.dirname(venv), exist_ok=True)
        with open(venv + ".lock", "w") as lock:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)  # symbols starting together on one host install once
            py = find_xgboost_python()
            if py is None:
                rr.log("xgboost: no Python here imports xgboost >= 1.7; installing it into %s" % venv)
                shutil.rmtree(venv, ignore_errors=True)
                base = shutil.which("python3") or sys.executable
                steps = [
                    [base, "-m", "venv", venv],
                    [os.path.join(venv, "bin", "python"), "-m", "pip", "install", "--quiet",
                     "--disable-pip-version-check", "xgboost>=1.7,<4"],
                ]
                for cmd in steps:
                    if subprocess.run(cmd).returncode != 0:
                        print("train.py: error: could not run: %s" % " ".join(cmd[:4]), file=sys.stderr)
                        return 3
                py = find_xgboost_python()
    if py is None:
        print("train.py: error: xgboost installed but still not importable", file=sys.stderr)
        return 3
    version = subprocess.run([py, "-c", "import xgboost; print(xgboost.__version__)"], capture_output=True, text=True)
    rr.log("xgboost: using %s (xgboost %s)" % (py, version.stdout.strip()))
    return 0


def reexec_with_xgboost():
    """This interpreter has no xgboost: run this script again under one that has (once)."""
    if os.environ.get(REEXEC_ENV):
        return
    py = find_xgboost_python()
    if py is None:
        return
    rr.log("xgboost: %s has no xgboost; running under %s" % (sys.executable, py))
    sys.stdout.flush()
    os.environ[REEXEC_ENV] = "1"
    os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:])


def xgb_major(version):
    try:
        return int(version.split(".")[0])
    except ValueError:
        return 0


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
    try:
        import xgboost as xgb  # noqa: F401
    except ImportError:
        reexec_with_xgboost()
    try:
        import numpy as np
        import xgboost as xgb
    except ImportError as e:
        raise TrainerFailed("%s (train.py --ensure-xgboost finds or installs xgboost>=1.7)" % e)

    os.makedirs(args.out, exist_ok=True)
    out = lambda name: os.path.join(args.out, name)  # noqa: E731
    rr.log(
        "xgboost-gpu: %s, %d rows, %d features, train %d, test %d, xgboost %s, device %s"
        % (args.symbol, n, len(features), n_train, n_test, xgb.__version__, args.device)
    )
    means, stds = column_stats(X[:n_train])
    rr.write_json(out("features.json"), {"features": features, "means": means, "stds": stds})
    rr.write_json(
        out("split_indices.json"),
        {"train": [0, n_train], "test": [n_train, n], "n_train": n_train, "n_test": n_test},
    )

    y = [1.0 if r > 0 else 0.0 for r in fwd]
    dtrain = xgb.DMatrix(np.asarray(X[:n_train], dtype=np.float64), label=np.asarray(y[:n_train]), feature_names=features)
    dtest = xgb.DMatrix(np.asarray(X[n_train:], dtype=np.float64), label=np.asarray(y[n_train:]), feature_names=features)
    params = {
        "objective": "binary:logistic",
        "eval_metric": "logloss",
        "tree_method": "hist",
        "max_depth": args.max_depth,
        "eta": args.learning_rate,
        "subsample": args.subsample,
        "colsample_bytree": 0.8,
        "min_child_weight": 5.0,
        "lambda": 1.0,
        "seed": args.seed,
    }
    if xgb_major(xgb.__version__) >= 2:
        params["device"] = args.device
    elif args.device == "cuda":
        params["tree_method"] = "gpu_hist"  # xgboost 1.x names the GPU through the tree method
    history = []
    total = args.num_rounds

    class Progress(xgb.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log):
            step = epoch + 1
            train_loss = float(evals_log["train"]["logloss"][-1])
            test_loss = float(evals_log["test"]["logloss"][-1])
            history.append({"epoch": step, "train_loss": train_loss, "test_loss": test_loss})
            if step % args.log_every == 0 or step == total:
                rr.write_json(out("training_log.json"), {"epochs": history})
                rr.log("round %d/%d train_loss=%.6f test_loss=%.6f" % (step, total, train_loss, test_loss))
            rr.log("RETRAIN_PROGRESS step=%d total=%d" % (step, total))
            return False

    try:
        booster = xgb.train(
            params,
            dtrain,
            num_boost_round=total,
            evals=[(dtrain, "train"), (dtest, "test")],
            verbose_eval=False,
            callbacks=[Progress()],
        )
        probs = [float(p) for p in booster.predict(dtest)]
        model_bytes = bytes(booster.save_raw(raw_format="ubj"))
    except xgb.core.XGBoostError as e:
        hint = " (no usable GPU? try the var device=cpu)" if args.device == "cuda" else ""
        raise TrainerFailed("xgboost failed: %s%s" % (str(e).splitlines()[0] if str(e) else e, hint))

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

    rr.write_atomic(out("model.bin"), model_bytes)
    rr.write_json(
        out("config.json"),
        {
            "recipe": "xgboost-gpu",
            "model": "xgboost_booster",
            "model_format": "xgboost UBJSON (Booster.save_raw('ubj'))",
            "xgboost_version": xgb.__version__,
            "symbol": args.symbol,
            "features": features,
            "label": "fwd_ret_1 > 0",
            "params": params,
            "num_rounds": total,
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
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--ensure-xgboost"]:
        return ensure_xgboost()
    args = parse_args(argv)
    try:
        train(args)
    except rr.BadInput as e:
        print("train.py: error: %s" % e, file=sys.stderr, flush=True)
        return 2
    except TrainerFailed as e:
        print("train.py: error: %s" % e, file=sys.stderr, flush=True)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
