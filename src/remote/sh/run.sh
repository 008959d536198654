# Functions of the generated run.sh (src/remote/runScript.ts). Expects RETRAIN_PID, RETRAIN_OUT,
# RETRAIN_HB_SEC, RETRAIN_KILL_AFTER_SEC, retrain_env and retrain_scan to be defined.

# Writes epoch seconds to `heartbeat` every RETRAIN_HB_SEC s while run.sh lives; exits on TERM.
# It waits with a nap (retrain_nap_open), which TERM interrupts at once, where the host can: no
# `sleep` process per beat, and none left for retrain_reap to find when the run ends.
retrain_heartbeat() {
  local s='' nap=0
  trap 'kill "$s" 2>/dev/null; exit 0' TERM
  retrain_nap_open && nap=1
  while kill -0 "$RETRAIN_PID" 2>/dev/null; do
    printf '%(%s)T\n' -1 >heartbeat.tmp && mv -f -- heartbeat.tmp heartbeat
    if [ "$nap" = 1 ]; then
      # Anything but the timeout (the pipe gone) would make this loop spin: sleep from then on.
      read -r -t "$RETRAIN_HB_SEC" -u 7
      [ "$?" -gt 128 ] || nap=0
    else
      sleep "$RETRAIN_HB_SEC" &
      s=$!
      wait "$s"
    fi
  done
}

# retrain_out_empty: true when out/ is a directory (not a link) with nothing in it, as staged.
# Bash globs only: run.sh sets nullglob and dotglob nowhere else outside a subshell.
retrain_out_empty() {
  local -a f
  [ -d "$RETRAIN_OUT" ] && [ ! -L "$RETRAIN_OUT" ] || return 1
  shopt -s nullglob dotglob
  f=("$RETRAIN_OUT"/*)
  shopt -u nullglob dotglob
  [ "${#f[@]}" -eq 0 ]
}

# retrain_step N TOTAL TIMEOUT_SEC COMMAND: runs one step (0 = no timeout) with the recipe env,
# stdout and stderr appended to train.log; returns its exit code, 124 when it timed out.
retrain_step() {
  local n=$1 total=$2 limit=$3 cmd=$4 rc start=$SECONDS
  local -a wrap=()
  printf '[retrain] step %s/%s: %s\n' "$n" "$total" "${cmd//$'\n'/'\n'}" >>train.log
  # Container mode (retrain_container_cmd defined by run.sh): the step runs under `ENGINE run`.
  if declare -F retrain_container_cmd >/dev/null; then
    retrain_container_cmd "$n" || return 127
    wrap=("${RETRAIN_CT_CMD[@]}")
  fi
  if [ "$limit" -gt 0 ]; then
    (
      retrain_env
      exec timeout --kill-after="$RETRAIN_KILL_AFTER_SEC" "$limit" "${wrap[@]}" bash -eo pipefail -c "$cmd"
    ) >>train.log 2>&1 </dev/null
  else
    (
      retrain_env
      exec "${wrap[@]}" bash -eo pipefail -c "$cmd"
    ) >>train.log 2>&1 </dev/null
  fi
  rc=$?
  [ "${#wrap[@]}" -eq 0 ] || retrain_rm_containers
  if [ "$limit" -gt 0 ] && { [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; } && [ $((SECONDS - start)) -ge "$limit" ]; then
    printf '[retrain] step %s/%s timed out after %ss\n' "$n" "$total" "$limit" >>train.log
    return 124
  fi
  [ "$rc" -eq 0 ] || printf '[retrain] step %s/%s failed with exit code %s\n' "$n" "$total" "$rc" >>train.log
  return "$rc"
}

# Kills every process of this run except this shell (leftovers the steps started in background).
retrain_reap() {
  local i=0
  [ -d /proc/self ] || return 0
  retrain_scan "$RETRAIN_PID"
  [ "${#RETRAIN_PIDS[@]}" -eq 0 ] && return 0
  kill -TERM "${RETRAIN_PIDS[@]}" 2>/dev/null
  while [ "$i" -lt 20 ]; do
    sleep 0.1
    i=$((i + 1))
    retrain_scan "$RETRAIN_PID"
    [ "${#RETRAIN_PIDS[@]}" -eq 0 ] && return 0
  done
  kill -KILL "${RETRAIN_PIDS[@]}" 2>/dev/null
  return 0
}

# Writes RETRAIN_OUT/sha256.txt: one sha256sum line per regular (non-symlink) file, sorted by name.
# An out dir the recipe removed or replaced by a symlink gets nothing (never a write outside the
# work dir); the collector then refuses it.
retrain_checksums() {
  local LC_ALL=C f
  local -a names=()
  if [ -L "$RETRAIN_OUT" ] || [ ! -d "$RETRAIN_OUT" ]; then
    printf '[retrain] out/ is not a directory of the work dir (removed or a symlink): no sha256.txt\n' >>train.log
    return 0
  fi
  # The names are gathered in this shell (globs restored after, as in retrain_out_empty): the only
  # process is sha256sum's.
  shopt -s nullglob dotglob
  for f in "$RETRAIN_OUT"/*; do
    f=${f#"$RETRAIN_OUT"/}
    [ -f "$RETRAIN_OUT/$f" ] && [ ! -L "$RETRAIN_OUT/$f" ] && [ "$f" != sha256.txt ] || continue
    case $f in *$'\n'* | *\\*) continue ;; esac
    names+=("$f")
  done
  shopt -u nullglob dotglob
  if [ "${#names[@]}" -eq 0 ]; then
    : >sha256.txt.tmp
  else
    (cd -- "$RETRAIN_OUT" && exec sha256sum -- "${names[@]}") >sha256.txt.tmp
  fi && mv -f -- sha256.txt.tmp "$RETRAIN_OUT/sha256.txt"
}

# retrain_finish CODE: the only way out. Writing exit_code is the last thing done.
retrain_finish() {
  kill "$RETRAIN_HB" 2>/dev/null
  wait "$RETRAIN_HB" 2>/dev/null
  retrain_reap
  retrain_rm_containers
  printf '%s\n' "$1" >exit_code.tmp && mv -f -- exit_code.tmp exit_code
  exit "$1"
}
