#!/usr/bin/env bash
# bench sleep recipe: $1 = output dir, $2 = symbol, $3/$4 = shortest/longest sleep in ms.
set -eu
t0=${EPOCHREALTIME/[.,]/}
out=$1
sum=$(printf '%s' "$2" | cksum)
ms=$(($3 + ${sum%% *} % ($4 - $3 + 1)))
sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
printf 'SLEPT %s\n' "$2" >"$out/model.bin"
printf '{"slept_ms": %s}\n' "$ms" >"$out/config.json"
printf '{"train": [0, 80], "test": [80, 100], "n_train": 80, "n_test": 20}\n' >"$out/split_indices.json"
printf '{"epochs": []}\n' >"$out/training_log.json"
printf '{"directionalHitRate": 0.5, "maxDrawdown": 0.1, "sharpe": 0, "net_bps_after_costs": 0, "n_train": 80, "n_test": 20}\n' >"$out/metrics.json"
t1=${EPOCHREALTIME/[.,]/}
printf 'BENCH_RECIPE_US %s %s\n' "$t0" "$t1"
