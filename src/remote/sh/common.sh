# Bash functions shared by run.sh and the runner's probe/start/kill commands (src/remote/shellLib.ts).
# They take no data but numeric ids (checked before use) and need no procps: processes are found
# through /proc (every Linux host), with a `kill -0` fallback where /proc is missing.
#
# A run is started as `setsid bash run.sh`, so its pid is also its session id and process group
# id. `timeout` moves each step into a process group of its own, but never out of the session, so
# "every process of the run" means "every process whose session id is the run's pid".

# retrain_proc FILE: reads a /proc/PID/stat file into RETRAIN_ST (the state letter) and RETRAIN_SID
# (the session id); false when it cannot be read. Only the first 80 characters are parsed: the
# fields wanted (pid, a comm of at most 15 characters, state, ppid, pgrp, session) end within 60,
# and bash's `##*) ` costs by the length of the line. The fields are cut out by pattern, not split
# into an array nor by `read <<<` (a here-string is a temp file per call): a scan of 85 processes
# took 15 ms, then 6 split by assignment; cutting saves another sixth.
retrain_proc() {
  local line
  IFS= read -r line 2>/dev/null <"$1" || return 1
  line=${line:0:80}
  # After the comm's last ") ": "STATE PPID PGRP SESSION ...", single spaces.
  line=${line##*) }
  RETRAIN_ST=${line%% *}
  line=${line#* * * }
  RETRAIN_SID=${line%% *}
}

# retrain_kthreads: sets the array RETRAIN_SKIP to 1 at init's, kthreadd's and kthreadd's children's
# pids (the kernel's threads), which are never in a run's session, so that a scan skips them
# unread: they were 60 of the 83 processes of a small VM, and a many-core host has several per core.
# Only when pid 2 is kthreadd (not in a container, where pid 2 is anybody); init's alone otherwise.
retrain_kthreads() {
  local line='' kids='' k
  RETRAIN_SKIP=()
  RETRAIN_SKIP[1]=1
  IFS= read -r line 2>/dev/null </proc/2/stat
  case $line in '2 (kthreadd) '?' 0 '*) ;; *) return 0 ;; esac
  IFS= read -r kids 2>/dev/null </proc/2/task/2/children
  RETRAIN_SKIP[2]=1
  for k in $kids; do
    case $k in *[!0-9]*) ;; *) RETRAIN_SKIP[k]=1 ;; esac
  done
}

# retrain_scan SID: sets the array RETRAIN_PIDS to the live (non-zombie) processes of session SID,
# leaving out the calling shell. Runs in the calling shell (no subshell), so it lists no helper.
retrain_scan() {
  local sid=$1 f p
  retrain_kthreads
  RETRAIN_PIDS=()
  # /proc/[0-9]* and not /proc/[0-9]*/stat: that glob reads every process's directory.
  # [[ ]], a keyword, not [ ], a builtin: the loop runs once per process of the host.
  for f in /proc/[0-9]*; do
    p=${f#/proc/}
    [[ -n ${RETRAIN_SKIP[p]-} ]] && continue
    retrain_proc "$f/stat" || continue
    [[ $RETRAIN_SID == "$sid" && $RETRAIN_ST != Z && $p != "$BASHPID" ]] || continue
    RETRAIN_PIDS+=("$p")
  done
}

# retrain_alive PID: true when PID is a live session leader whose cwd is the current directory
# (the work dir): our run.sh, not a process that reused its pid.
retrain_alive() {
  local p=$1
  case $p in '' | *[!0-9]*) return 1 ;; esac
  [ "$p" -gt 1 ] || return 1
  if [ -d /proc/self ]; then
    retrain_proc "/proc/$p/stat" || return 1
    [ "$RETRAIN_ST" != Z ] && [ "$RETRAIN_SID" = "$p" ] || return 1
    if [ -e "/proc/$p/cwd" ]; then [ "/proc/$p/cwd" -ef . ] || return 1; fi
    return 0
  fi
  kill -0 "$p" 2>/dev/null
}

# retrain_nap_open: opens fd 7 on a pipe that nobody writes, so that `read -t 0.005 -u 7` is a
# 5 ms sleep without a process (an external `sleep` per look costs a fork and an exec). False when
# it cannot (the caller then sleeps the old way or not at all).
retrain_nap_open() {
  { exec 7<> <(:); } 2>/dev/null || return 1
  # A bash without fractional timeouts (before 4.0) fails at once instead of waiting.
  read -r -t 0.001 -u 7 2>/dev/null
  [ "$?" -gt 128 ]
}

# retrain_wait_exit PID NAPS: waits in the work dir until `exit_code` exists, for at most NAPS
# naps of 5 ms (a look every 2.5 ms in the first 100 ms), or until PID is no longer our run
# (looked at every 100 ms). fd 7 must be open
# (retrain_nap_open).
retrain_wait_exit() {
  local p=$1 n=$2 i=0
  while [ ! -f exit_code ] && [ "$i" -lt "$n" ]; do
    # In the first 100 ms a nap is two halves with a look between: a short run is seen sooner.
    if [ "$i" -lt 20 ]; then
      read -r -t 0.0025 -u 7
      [ -f exit_code ] && return 0
      read -r -t 0.0025 -u 7
    else
      read -r -t 0.005 -u 7
    fi
    i=$((i + 1))
    if [ $((i % 20)) -eq 0 ]; then retrain_alive "$p" || return 0; fi
  done
  return 0
}

# retrain_kill_session SID GRACE_TENTHS: SIGTERM the process group and every process of session
# SID, wait up to GRACE_TENTHS/10 s, SIGKILL what is left, wait up to 5 s more; prints the pids
# still alive after that (nothing when the run is gone). Does nothing when SID now belongs to a
# session leader working in another directory (the id was reused). Call it from the work dir.
retrain_kill_session() {
  local sid=$1 grace=$2 i
  case $sid in '' | *[!0-9]*) return 1 ;; esac
  [ "$sid" -gt 1 ] || return 1
  if [ ! -d /proc/self ]; then
    kill -TERM -- "-$sid" 2>/dev/null || return 0
    i=0
    while kill -0 -- "-$sid" 2>/dev/null && [ "$i" -lt "$grace" ]; do
      sleep 0.1
      i=$((i + 1))
    done
    kill -KILL -- "-$sid" 2>/dev/null
    return 0
  fi
  if retrain_proc "/proc/$sid/stat"; then
    if [ "$RETRAIN_SID" = "$sid" ] && [ -e "/proc/$sid/cwd" ] && ! [ "/proc/$sid/cwd" -ef . ]; then
      return 0
    fi
  fi
  kill -TERM -- "-$sid" 2>/dev/null
  retrain_scan "$sid"
  [ "${#RETRAIN_PIDS[@]}" -gt 0 ] && kill -TERM "${RETRAIN_PIDS[@]}" 2>/dev/null
  i=0
  while [ "${#RETRAIN_PIDS[@]}" -gt 0 ] && [ "$i" -lt "$grace" ]; do
    sleep 0.1
    i=$((i + 1))
    retrain_scan "$sid"
  done
  if [ "${#RETRAIN_PIDS[@]}" -gt 0 ]; then
    kill -KILL -- "-$sid" 2>/dev/null
    kill -KILL "${RETRAIN_PIDS[@]}" 2>/dev/null
  fi
  i=0
  while [ "${#RETRAIN_PIDS[@]}" -gt 0 ] && [ "$i" -lt 50 ]; do
    sleep 0.1
    i=$((i + 1))
    retrain_scan "$sid"
  done
  [ "${#RETRAIN_PIDS[@]}" -eq 0 ] || printf '%s ' "${RETRAIN_PIDS[@]}"
  return 0
}

# retrain_rm_containers: force-removes the containers a run started (the `containers` file of the
# current directory, one "ENGINE NAME" line each, written by run.sh before each step). Killing
# the engine's client does not stop its container; this does. Nothing happens without the file.
retrain_rm_containers() {
  local engine name
  [ -f containers ] || return 0
  while read -r engine name; do
    case $engine in docker | podman) ;; *) continue ;; esac
    case $name in retrain-[0-9]*-[0-9]*) ;; *) continue ;; esac
    case $name in *[!A-Za-z0-9-]*) continue ;; esac
    "$engine" rm -f -t 0 "$name" >/dev/null 2>&1 || "$engine" rm -f "$name" >/dev/null 2>&1
  done <containers
  return 0
}
