/**
 * The cost report: what runs cost as booked by retrain (the ledger's per-symbol `costUsd`, plus the
 * pooled instances' idle time booked to the run), grouped by symbol, run or day; and, for Vast,
 * reconciled with what Vast billed for the instances carrying this deployment's labels: billed,
 * the difference, and a flag when it is over the tolerance. The per-date reconciliation is kept in
 * Redis, where the dashboard's /metrics reads it (it never calls a provider's API itself).
 */
import type { Redis } from 'ioredis';
import type { LedgerEntry } from './types.js';

export type CostGrouping = 'symbol' | 'run' | 'day';

export interface BilledInstance {
  /** The job id from the instance's label (`train__<SYMBOL>__<YYYYMMDD>`). */
  jobId: string;
  instanceId: number | null;
  usd: number;
}

export interface CostRow {
  key: string;
  booked: number;
  billed?: number;
  difference?: number;
  flagged?: boolean;
}

export interface CostReport {
  from: string;
  to: string;
  by: CostGrouping;
  rows: CostRow[];
  total: CostRow;
  /** Whether Vast's charges were read (driver vast). */
  reconciled: boolean;
  tolerance: { usd: number; pct: number };
}

export interface CostInput {
  from: string;
  to: string;
  by: CostGrouping;
  /** Ledger entries per date. */
  ledger: Record<string, Record<string, LedgerEntry>>;
  /** Pool idle dollars per run id (booked to the run, no symbol's). */
  poolIdle: Record<string, number>;
  billed?: BilledInstance[];
  tolerance: { usd: number; pct: number };
}

const JOB_ID = /^train__([A-Z0-9]{2,24})__(\d{8})$/;
const r6 = (x: number) => Math.round(x * 1e6) / 1e6;

/** Over the tolerance: more than `usd` and more than `pct` % of what was booked. */
export function overTolerance(booked: number, billed: number, t: { usd: number; pct: number }): boolean {
  const diff = Math.abs(billed - booked);
  return diff > t.usd && diff > (t.pct / 100) * Math.abs(booked);
}

export function buildCostReport(i: CostInput): CostReport {
  const rows = new Map<string, CostRow>();
  const row = (key: string) => {
    let r = rows.get(key);
    if (!r) rows.set(key, (r = { key, booked: 0, ...(i.billed ? { billed: 0 } : {}) }));
    return r;
  };
  const runOf = new Map<string, string>();
  const runDate = new Map<string, string>();
  for (const [date, entries] of Object.entries(i.ledger)) {
    for (const e of Object.values(entries)) {
      const run = e.runId ?? `${date}-?`;
      runOf.set(`${e.symbol}@${date}`, run);
      runDate.set(run, date);
      const key = i.by === 'symbol' ? e.symbol : i.by === 'run' ? run : date;
      if (e.costUsd > 0 || i.by !== 'symbol' || e.jobId) row(key).booked += e.costUsd || 0;
    }
  }
  for (const [run, usd] of Object.entries(i.poolIdle)) {
    if (!(usd > 0) || !runDate.has(run)) continue;
    const key = i.by === 'symbol' ? '(pool idle)' : i.by === 'run' ? run : runDate.get(run)!;
    row(key).booked += usd;
  }
  for (const b of i.billed ?? []) {
    const m = JOB_ID.exec(b.jobId);
    if (!m || m[2]! < i.from || m[2]! > i.to) continue;
    const [, symbol, date] = m;
    const key =
      i.by === 'symbol' ? symbol! : i.by === 'run' ? (runOf.get(`${symbol}@${date}`) ?? `${date}-?`) : date!;
    const r = row(key);
    r.billed = (r.billed ?? 0) + b.usd;
  }
  const total: CostRow = { key: 'total', booked: 0, ...(i.billed ? { billed: 0 } : {}) };
  const out = [...rows.values()].sort((a, b) => a.key.localeCompare(b.key));
  for (const r of out) {
    total.booked += r.booked;
    if (r.billed !== undefined) total.billed = (total.billed ?? 0) + r.billed;
  }
  for (const r of [...out, total]) {
    r.booked = r6(r.booked);
    if (r.billed !== undefined) {
      r.billed = r6(r.billed);
      r.difference = r6(r.billed - r.booked);
      r.flagged = overTolerance(r.booked, r.billed, i.tolerance);
    }
  }
  return {
    from: i.from,
    to: i.to,
    by: i.by,
    rows: out,
    total,
    reconciled: i.billed !== undefined,
    tolerance: i.tolerance,
  };
}

/** Where the last reconciliation of a date is kept (read by /metrics). */
export function reconciliationKey(prefix: string, date: string): string {
  return `${prefix}:cost:reconciled:${date}`;
}

const TTL_SEC = 90 * 24 * 3600;

/** Keeps the per-day totals of a reconciled report (grouped by day) for /metrics. */
export async function saveReconciliation(redis: Redis, prefix: string, byDay: CostReport): Promise<void> {
  if (!byDay.reconciled || byDay.by !== 'day') return;
  const m = redis.multi();
  for (const r of byDay.rows) {
    const key = reconciliationKey(prefix, r.key);
    m.hset(key, {
      booked: String(r.booked),
      billed: String(r.billed ?? 0),
      difference: String(r.difference ?? 0),
      flagged: r.flagged ? '1' : '0',
      at: new Date().toISOString(),
    });
    m.expire(key, TTL_SEC);
  }
  await m.exec();
}

export interface SavedReconciliation {
  booked: number;
  billed: number;
  difference: number;
  flagged: boolean;
}

export async function readReconciliation(
  redis: Redis,
  prefix: string,
  date: string,
): Promise<SavedReconciliation | null> {
  const h = await redis.hgetall(reconciliationKey(prefix, date));
  if (!h.billed) return null;
  return {
    booked: Number(h.booked) || 0,
    billed: Number(h.billed) || 0,
    difference: Number(h.difference) || 0,
    flagged: h.flagged === '1',
  };
}
