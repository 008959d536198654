/**
 * The watchdog started on every instance by `onstart`: at the rental's deadline it destroys the
 * instance with the instance-scoped key Vast gives the container (CONTAINER_API_KEY, never the
 * account key), so a rental cannot outlive the orchestrator by more than maxRuntimeMin.
 *
 * - The deadline is an absolute time fixed when the rental is created: a container restart re-runs
 *   onstart, and a timer counted from there would start again (vast-reality.md, "On the instance").
 * - The destroy is retried with a doubling wait (a 429 or a network blip must not let it live),
 *   with curl, wget or python3, whichever the image has (and coreutils: date, sleep, sed, tr).
 * - What it did goes to a log file on the instance (`<workRoot>/watchdog.log`).
 * - Without CONTAINER_API_KEY (a template may not inject it; PID 1's environment is tried too) it
 *   says so in its log and leaves the limit to the orchestrator (processor timeout and reaper).
 */
import { shellQuote } from '../recipes/template.js';

export interface WatchdogOptions {
  apiUrl: string;
  /** Epoch seconds: when the instance must be gone. */
  deadlineEpochSec: number;
  /** The log file on the instance. */
  logPath: string;
  /** Destroy tries before it gives up (default 8: about 20 min of waiting at most). */
  tries?: number;
  /** The first wait between tries, seconds (default 5). */
  firstRetrySec?: number;
}

export function watchdogScript(o: WatchdogOptions): string {
  const url = `${o.apiUrl.replace(/\/+$/, '')}/api/v0/instances/`;
  const tries = o.tries ?? 8;
  const py =
    'import os,sys,urllib.request as r,urllib.error as e\n' +
    'try: r.urlopen(r.Request(sys.argv[1], method="DELETE", headers={"Authorization": "Bearer " + os.environ["K"]}), timeout=60); print(200)\n' +
    'except e.HTTPError as x: print(x.code)\n' +
    'except Exception: print(0)';
  const body = [
    `d=${Math.floor(o.deadlineEpochSec)}; log=${shellQuote(o.logPath)}; mkdir -p "$(dirname "$log")"`,
    'say() { echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $*" >> "$log"; }',
    'say "watchdog started (pid $$): destroy at $(date -u -d @$d +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || echo $d)"',
    'n=$(( d - $(date +%s) )); if [ "$n" -gt 0 ]; then sleep "$n"; fi',
    "K=${CONTAINER_API_KEY:-$(tr '\\0' '\\n' </proc/1/environ 2>/dev/null | sed -n 's/^CONTAINER_API_KEY=//p')}",
    "I=${CONTAINER_ID:-$(tr '\\0' '\\n' </proc/1/environ 2>/dev/null | sed -n 's/^CONTAINER_ID=//p')}",
    'if [ -z "$K" ] || [ -z "$I" ]; then say "deadline reached; no CONTAINER_API_KEY/CONTAINER_ID: cannot destroy this instance (the orchestrator limits apply)"; exit 0; fi',
    `export K; u=${shellQuote(url)}"$I/"; w=${o.firstRetrySec ?? 5}; i=1`,
    `while [ $i -le ${tries} ]; do`,
    '  if command -v curl >/dev/null 2>&1; then c=$(curl -sS -m 60 -o /dev/null -w "%{http_code}" -X DELETE -H "Authorization: Bearer $K" "$u" 2>/dev/null)',
    '  elif command -v wget >/dev/null 2>&1; then c=$(wget -q -S -T 60 -O /dev/null --method=DELETE --header="Authorization: Bearer $K" "$u" 2>&1 | sed -n "s/^ *HTTP\\/[0-9.]* \\([0-9][0-9]*\\).*/\\1/p" | tail -n 1)',
    `  else c=$(python3 -c ${shellQuote(py)} "$u" 2>/dev/null); fi`,
    '  case "$c" in 2??|404) say "deadline reached: destroy requested (HTTP $c, try $i)"; exit 0;; esac',
    '  say "destroy failed (HTTP ${c:-none}, try $i); again in ${w}s"; sleep "$w"; w=$((w * 2)); i=$((i + 1))',
    'done',
    'say "gave up destroying after the last try"',
  ].join('\n');
  return ['#!/bin/bash', `(\n${body}\n) >/dev/null 2>&1 &`].join('\n');
}
