"""What the shipped recipes share: reading the features CSV and costs.json, atomic writes, and the
trading metrics of metrics.json (DESIGN.md, "training contract").

retrain ships this file beside every shipped recipe's own files (recipes/_shared/, see
src/recipes/loader.ts), so on the host `import retrain_recipe` finds it in the recipe directory; run
from the repository, a recipe's train.py adds recipes/_shared to its path. Python 3 standard library
only. A recipe copied out of the repository must take this file with it (and list it in `files`).
"""

import csv
import json
import math
import os

MIN_TRAIN = 40
MIN_TEST = 10
COST_FIELDS = ("taker_fee_bps", "maker_fee_bps", "median_spread_bps", "slippage_bps_per_sigma")


class BadInput(Exception):
    pass


def write_atomic(path, data):
    """Writes bytes (or text) to a temporary file next to `path`, then renames it over `path`."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path, value):
    write_atomic(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def log(msg):
    print(msg, flush=True)


def read_dataset(path):
    """Returns (feature_names, ts, X rows, fwd_ret_1, close)."""
    try:
        f = open(path, newline="")
    except OSError as e:
        raise BadInput("cannot read dataset %s: %s" % (path, e.strerror))
    with f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise BadInput("dataset %s is empty" % path)
        header = [h.strip() for h in header]
        missing = [c for c in ("ts", "close", "fwd_ret_1") if c not in header]
        if missing:
            raise BadInput("dataset %s: missing column(s) %s" % (path, ", ".join(missing)))
        if len(set(header)) != len(header):
            raise BadInput("dataset %s: duplicate column names" % path)
        features = [h for h in header if h not in ("ts", "close", "fwd_ret_1")]
        if not features:
            raise BadInput("dataset %s: no feature columns" % path)
        i_ts, i_close, i_fwd = header.index("ts"), header.index("close"), header.index("fwd_ret_1")
        i_feat = [header.index(name) for name in features]
        ts, X, fwd, close = [], [], [], []
        for line_no, row in enumerate(reader, start=2):
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(header):
                raise BadInput("dataset line %d: %d fields, expected %d" % (line_no, len(row), len(header)))
            try:
                values = [float(v) for v in row]
            except ValueError:
                raise BadInput("dataset line %d: non-numeric value" % line_no)
            if not all(math.isfinite(v) for v in values):
                raise BadInput("dataset line %d: non-finite value" % line_no)
            if ts and values[i_ts] <= ts[-1]:
                raise BadInput("dataset line %d: ts is not after the previous row's (rows must be in time order)" % line_no)
            ts.append(values[i_ts])
            close.append(values[i_close])
            fwd.append(values[i_fwd])
            X.append([values[i] for i in i_feat])
    return features, ts, X, fwd, close


def read_costs(path):
    try:
        with open(path) as f:
            costs = json.load(f)
    except OSError as e:
        raise BadInput("cannot read costs %s: %s" % (path, e.strerror))
    except ValueError as e:
        raise BadInput("costs %s: invalid JSON (%s)" % (path, e))
    if not isinstance(costs, dict):
        raise BadInput("costs %s: expected a JSON object" % path)
    for field in COST_FIELDS:
        v = costs.get(field)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise BadInput("costs %s: %s must be a non-negative number" % (path, field))
    return costs


def median(xs):
    s = sorted(xs)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2.0


def positions_from_probabilities(probs, threshold):
    """+1 (long) when p > 0.5 + threshold, -1 (short) when p < 0.5 - threshold, else 0 (flat)."""
    return [(1 if p > 0.5 else -1) if abs(p - 0.5) > threshold else 0 for p in probs]


def trading_metrics(positions, fwd_ret, bar_vol, median_vol, costs, bars_per_year):
    """The metrics of metrics.json on the test split (DESIGN.md, "training contract").

    Position pos[t] is held over bar t -> t+1, so its gross return is pos[t] * fwd_ret_1[t] (log return).
    Each change of position (starting flat) pays, in basis points per unit of |pos[t] - pos[t-1]|:
        taker_fee_bps + median_spread_bps / 2 + slippage_bps_per_sigma * (bar_vol[t] / median_vol)
    where bar_vol is the bar's vol_24 and median_vol the median vol_24 of the train split (ratio 1 when
    unavailable). The last position is not charged an exit. net[t] = gross[t] - cost[t] / 1e4.

    directionalHitRate  traded bars (pos != 0) where sign(pos) == sign(fwd_ret_1), over traded bars;
                        0 when nothing was traded.
    maxDrawdown         largest peak-to-trough fall of equity[t] = exp(cumsum(net)), starting at 1,
                        as a fraction of the peak (0 when none).
    sharpe              mean(net) / std(net) * sqrt(bars_per_year) (population std; 0 when std is 0).
    net_bps_after_costs mean(net) * 1e4 over all test bars.
    """
    fixed_bps = costs["taker_fee_bps"] + costs["median_spread_bps"] / 2.0
    slip = costs["slippage_bps_per_sigma"]
    net = []
    hits = traded = 0
    prev = 0
    for pos, r, vol in zip(positions, fwd_ret, bar_vol):
        change = abs(pos - prev)
        ratio = vol / median_vol if (median_vol > 0 and vol is not None) else 1.0
        cost_bps = (fixed_bps + slip * ratio) * change
        net.append(pos * r - cost_bps / 1e4)
        if pos != 0:
            traded += 1
            if pos * r > 0:
                hits += 1
        prev = pos

    n = len(net)
    mean = sum(net) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in net) / n)
    log_equity = peak = 0.0
    max_dd = 0.0
    for x in net:
        log_equity += x
        peak = max(peak, log_equity)
        max_dd = max(max_dd, 1.0 - math.exp(log_equity - peak))
    return {
        "directionalHitRate": hits / traded if traded else 0.0,
        "maxDrawdown": max_dd,
        "sharpe": mean / std * math.sqrt(bars_per_year) if std > 0 else 0.0,
        "net_bps_after_costs": mean * 1e4,
    }


def bars_per_year(ts):
    """From the median spacing of the timestamps: 8760 for hourly bars."""
    gaps = [b - a for a, b in zip(ts, ts[1:])]
    dt = median(gaps) if gaps else 3600.0
    return 365.0 * 86400.0 / dt
