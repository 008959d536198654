#!/usr/bin/env bash
# bench no-op recipe: $1 = output dir, $2 = symbol. Builtins only, so its run time is its own.
set -eu
t0=${EPOCHREALTIME/[.,]/}
out=$1
printf 'NOOP %s\n' "$2" >"$out/model.bin"
printf '{"noop": true}\n' >"$out/config.json"
printf '{"train": [0, 80], "test": [80, 100], "n_train": 80, "n_test": 20}\n' >"$out/split_indices.json"
printf '{"epochs": []}\n' >"$out/training_log.json"
printf '{"directionalHitRate": 0.5, "maxDrawdown": 0.1, "sharpe": 0, "net_bps_after_costs": 0, "n_train": 80, "n_test": 20}\n' >"$out/metrics.json"
t1=${EPOCHREALTIME/[.,]/}
printf 'BENCH_RECIPE_US %s %s\n' "$t0" "$t1"
