#!/usr/bin/env bash
# Runs Python with an importable xgboost >= 1.7: the first interpreter that has one, of
# $RETRAIN_PYTHON, python3, /usr/bin/python3 (Debian's python3-xgboost) and python; else a private
# venv under the work root (created once, shared by the symbols of that root), never the system
# Python's own packages. `--ensure` only finds or installs it and says which; otherwise the
# arguments are handed to that interpreter.
set -euo pipefail
here=$(cd -- "$(dirname -- "$0")" && pwd)
# recipe dir = <work root>/<symbol>/<stamp>/recipe
workroot=$(cd -- "$here/../../.." && pwd)
venv="$workroot/.venvs/xgboost"
check='import sys, xgboost; v = tuple(int(x) for x in xgboost.__version__.split(".")[:2]); sys.exit(0 if v >= (1, 7) else 1)'

pick() {
  local py
  for py in ${RETRAIN_PYTHON:-} python3 /usr/bin/python3 python "$venv/bin/python"; do
    command -v "$py" >/dev/null 2>&1 || continue
    if "$py" -c "$check" >/dev/null 2>&1; then
      command -v "$py"
      return 0
    fi
  done
  return 1
}

if ! py=$(pick); then
  mkdir -p -- "$workroot/.venvs"
  # Symbols starting together on one host install once.
  if command -v flock >/dev/null 2>&1; then
    exec 8>"$venv.lock"
    flock -w 900 8
  fi
  if ! py=$(pick); then
    base=$(command -v python3 || command -v /usr/bin/python3 || true)
    [ -n "$base" ] || { echo "xgboost: no python3 on this host" >&2; exit 3; }
    echo "xgboost: no Python here imports xgboost >= 1.7; installing it into $venv"
    rm -rf -- "$venv"
    "$base" -m venv -- "$venv" || { echo "xgboost: cannot create a venv (install python3-venv)" >&2; exit 3; }
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "xgboost>=1.7,<4" ||
      { echo "xgboost: pip could not install xgboost into $venv" >&2; exit 3; }
    py=$(pick) || { echo "xgboost: installed but still not importable" >&2; exit 3; }
  fi
fi

if [ "${1:-}" = --ensure ]; then
  echo "xgboost: using $py (xgboost $("$py" -c 'import xgboost; print(xgboost.__version__)'))"
  exit 0
fi
exec "$py" "$@"
