import type { NoCapacityAlert } from '../compute/capacityWait.js';
import type { EngineSummary } from '../telemetry/summary.js';
import type { StuckProvisioning } from '../train/stuck.js';

/**
 * The text of every notification: short plain text (no parse mode, so nothing to escape), one fact
 * per line, never longer than Telegram's 4096 characters.
 */

/** Telegram refuses longer texts; stay a little under. */
export const MAX_MESSAGE_CHARS = 4000;
/** A failure line's reason is cut to this many characters. */
const MAX_REASON_CHARS = 160;

export interface RunStartInfo {
  runId: string;
  /** YYYYMMDD */
  date: string;
  /** Symbols requested. */
  symbols: number;
  enqueued: number;
  skipped: number;
  /** Symbols left alone because an earlier job of theirs is still queued or running. */
  inFlight: number;
  mode: string;
  cap: number;
  driver: string;
  promote: string;
  /** What the run should cost (driver vast; src/vast/estimate.ts), one line. */
  estimate?: string;
}

export interface SymbolFailure {
  runId: string;
  /** YYYYMMDD */
  date: string;
  symbol: string;
  /** The ledger reason (an error code: timeout, recipe_failed, ...). */
  reason: string;
  /** The error message; only its first line is sent, shortened. */
  message?: string;
  /** Attempts made, the failing one included. */
  attempts?: number;
}

function dashed(date: string): string {
  return /^\d{8}$/.test(date) ? `${date.slice(0, 4)}-${date.slice(4, 6)}-${date.slice(6)}` : date;
}

function oneLine(text: string, max: number): string {
  const s = text.replace(/\s+/g, ' ').trim();
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

function usd(x: number): string {
  return `$${x > 0 && x < 1 ? x.toFixed(4) : x.toFixed(2)}`;
}

/**
 * Lines under a header, cut at a line boundary so the whole stays under MAX_MESSAGE_CHARS; the
 * last line then says how many were left out.
 */
export function fitLines(header: string[], lines: string[], max = MAX_MESSAGE_CHARS): string {
  const out = [...header];
  let len = out.join('\n').length;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const more = `… and ${lines.length - i} more`;
    // Keep room for the "and N more" line unless this is the last line.
    const need = 1 + line.length + (i < lines.length - 1 ? 1 + more.length + 4 : 0);
    if (len + need > max) {
      out.push(more);
      return out.join('\n');
    }
    out.push(line);
    len += 1 + line.length;
  }
  return out.join('\n');
}

export function formatRunStarted(s: RunStartInfo): string {
  const parts = [`${s.enqueued} to train`, `${s.skipped} skipped`];
  if (s.inFlight > 0) parts.push(`${s.inFlight} already in flight`);
  return [
    `retrain run ${s.runId} started (${dashed(s.date)})`,
    `${plural(s.symbols, 'symbol')}: ${parts.join(', ')}`,
    `mode ${s.mode} (at most ${s.cap} at once), driver ${s.driver}, promotion ${s.promote}`,
    ...(s.estimate ? [s.estimate] : []),
  ].join('\n');
}

export function failureLine(f: SymbolFailure): string {
  const msg = f.message ? oneLine(f.message.split('\n')[0] ?? '', MAX_REASON_CHARS) : '';
  const attempts = f.attempts && f.attempts > 1 ? ` (after ${f.attempts} attempts)` : '';
  return `${f.symbol}: ${f.reason}${msg ? ` — ${msg}` : ''}${attempts}`;
}

/** One message for failures of one run that happened close together: `SYMBOL: reason` lines. */
export function formatFailures(failures: SymbolFailure[]): string {
  const first = failures[0];
  if (!first) return '';
  const what = failures.length === 1 ? `${first.symbol} failed` : `${failures.length} symbols failed`;
  return fitLines([`retrain run ${first.runId} (${dashed(first.date)}): ${what}`], failures.map(failureLine));
}

/** An attempt killed as hung, to be retried: what happened and what retrain does about it. */
export function formatAttemptHung(f: SymbolFailure): string {
  const attempt = f.attempts ? ` attempt ${f.attempts}` : '';
  return fitLines(
    [`retrain run ${f.runId} (${dashed(f.date)}): ${f.symbol}${attempt} hung; killed, retrying`],
    f.message ? [oneLine(f.message, 300)] : [],
  );
}

export function formatRunCompleted(s: EngineSummary): string {
  const cost =
    s.costs.budget_usd !== null
      ? `${usd(s.total_cost_usd)} of a ${usd(s.costs.budget_usd)} budget`
      : usd(s.total_cost_usd);
  const header = [
    `retrain run ${s.run_id} finished (${dashed(s.date)})`,
    `${s.succeeded} succeeded, ${s.failed} failed, ${s.skipped} skipped (of ${s.total_symbols})`,
    `wall time ${s.total_wall_minutes.toFixed(1)} min, cost ${cost}`,
    `promoted: ${s.promoted.length ? oneLine(s.promoted.join(', '), 1000) : 'none'}`,
    ...((s.waited_minutes ?? 0) > 0
      ? [`waited for GPU capacity: ${s.waited_minutes.toFixed(1)} min in all`]
      : []),
  ];
  const failed = Object.entries(s.by_symbol)
    .filter(([, e]) => e.status === 'failed')
    .map(([sym, e]) => `${sym}${e.reason ? ` (${e.reason})` : ''}`);
  if (failed.length === 0) return header.join('\n');
  return fitLines([...header, 'failed:'], failed);
}

/** A length of time the way a person reads it: seconds under 2 min, minutes under 2 h, then hours. */
export function humanDuration(sec: number): string {
  if (sec < 120) return `${Math.round(sec)} s`;
  if (sec < 2 * 3600) return `${(sec / 60).toFixed(1)} min`;
  return `${(sec / 3600).toFixed(1)} h`;
}

function stuckDetail(s: StuckProvisioning): string {
  const host = s.instance ? `${s.driver} instance ${s.instance}` : `${s.driver}, no host yet`;
  return `limit ${humanDuration(s.limitSec)}; ${host}; attempt ${s.attempt}; job ${s.jobId}`;
}

/** A run that got no GPU at all for a while (src/compute/capacityWait.ts): which offer it lacks. */
export function formatNoCapacity(a: NoCapacityAlert): string {
  return [
    `retrain run ${a.runId} (${dashed(a.date)}): no GPU for ${humanDuration(a.minutes * 60)}, ${a.waiting} symbol${a.waiting === 1 ? '' : 's'} waiting`,
    `no offer meets: ${oneLine(a.unmet, 1500)}`,
    `waiting since ${a.since}; each symbol searches again until its wait limit`,
  ].join('\n');
}

/**
 * Symbols of one run stuck in PROVISIONING past their limit (one check's findings): how long each
 * has been at it, the limit it passed and the host it waits on.
 */
export function formatProvisioningStuck(items: StuckProvisioning[]): string {
  const first = items[0];
  if (!first) return '';
  const head = `retrain run ${first.runId} (${dashed(first.date)})`;
  if (items.length === 1) {
    return [
      `${head}: ${first.symbol} stuck in PROVISIONING for ${humanDuration(first.stuckSec)}`,
      `${stuckDetail(first)}; since ${first.since}`,
    ].join('\n');
  }
  return fitLines(
    [`${head}: ${items.length} symbols stuck in PROVISIONING`],
    items.map((s) => `${s.symbol}: ${humanDuration(s.stuckSec)} (${stuckDetail(s)})`),
  );
}
