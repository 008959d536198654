import { InputError } from '../errors.js';

/** Where one symbol of one run date stands. */
/** `waiting_capacity`: started, but no GPU could be had yet; it searches again (docs/gpu-path.md). */
export type LedgerStatus = 'pending' | 'running' | 'waiting_capacity' | 'success' | 'failed' | 'skipped';

export const LEDGER_STATUSES: readonly LedgerStatus[] = [
  'pending',
  'running',
  'waiting_capacity',
  'success',
  'failed',
  'skipped',
];

/** One attempt of a symbol's training. */
export interface HistoryItem {
  attempt: number;
  startedAt: string;
  endedAt?: string;
  /** e.g. success | failed | retrying */
  outcome?: string;
  reason?: string;
  /** Training minutes the checkpoint this attempt resumed from stood for (absent: started from zero). */
  resumedFromMin?: number;
}

/** The resume ledger's record of one symbol on one run date. */
export interface LedgerEntry {
  symbol: string;
  status: LedgerStatus;
  attempts: number;
  /** An error code (see errors.ts) or a planning reason such as `no_data`. */
  reason?: string;
  error?: { type: string; message: string; stack?: string };
  jobId?: string;
  runId?: string;
  /** The train state machine's state, e.g. EXECUTING. */
  state?: string;
  startedAt?: string;
  endedAt?: string;
  trainMinutes?: number;
  costUsd: number;
  /** While waiting for capacity: since when (ISO). */
  waitingSince?: string;
  /** Minutes the symbol waited for capacity, all attempts together. */
  waitedMin?: number;
  /** The GPU rented (offer gpu_name) and the preference class it was chosen from (vast.gpuNames). */
  gpu?: string;
  gpuClass?: string;
  /** Training minutes the symbol's retries did not redo because they resumed from checkpoints. */
  resumeSavedMin?: number;
  metricsKey?: string;
  net_bps_after_costs?: number;
  /** pending | promote | reject | skipped | off | error */
  decision?: string;
  history: HistoryItem[];
  updatedAt: string;
}

/** What a new plan says about one symbol (see Ledger.init). */
export interface LedgerPlanItem {
  symbol: string;
  status: LedgerStatus;
  reason?: string;
  /** A planning skip's detail (e.g. which market day is missing or invalid, and why). */
  error?: { type: string; message: string };
  jobId?: string;
  runId?: string;
}

export interface UpdateOptions {
  /** Appended to `history` (atomically, with the patch). */
  appendHistory?: HistoryItem;
  /** Merged into the last history item (ignored when there is none); applied before appendHistory. */
  patchLastHistory?: Partial<HistoryItem>;
  /** Apply only when the current status is none of these (a missing entry always applies). */
  onlyIf?: { statusNot?: LedgerStatus[] };
}

const DATE_RE = /^\d{8}$/;

/** Throws InputError unless `date` is the compact YYYYMMDD form. */
export function checkDate(date: string): string {
  if (typeof date !== 'string' || !DATE_RE.test(date)) {
    throw new InputError(`invalid ledger date ${JSON.stringify(date)}: expected YYYYMMDD`);
  }
  return date;
}

/** Throws InputError unless `symbol` is a non-empty string. */
export function checkSymbol(symbol: string): string {
  if (typeof symbol !== 'string' || symbol.trim() === '' || symbol !== symbol.trim()) {
    throw new InputError(`invalid ledger symbol ${JSON.stringify(symbol)}`);
  }
  return symbol;
}

export function checkStatus(status: unknown): LedgerStatus {
  if (!LEDGER_STATUSES.includes(status as LedgerStatus)) {
    throw new InputError(
      `invalid ledger status ${JSON.stringify(status)}: expected ${LEDGER_STATUSES.join('|')}`,
    );
  }
  return status as LedgerStatus;
}

/**
 * Turns what Redis holds into a well-formed entry. Lua's cjson encodes an empty array as `{}`, so a
 * `history` that is not an array becomes []; missing counters become 0.
 */
export function normaliseEntry(raw: unknown, symbol: string): LedgerEntry {
  const e = (raw && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  return {
    ...(e as Partial<LedgerEntry>),
    symbol: typeof e.symbol === 'string' ? e.symbol : symbol,
    status: LEDGER_STATUSES.includes(e.status as LedgerStatus) ? (e.status as LedgerStatus) : 'pending',
    attempts: typeof e.attempts === 'number' ? e.attempts : 0,
    costUsd: typeof e.costUsd === 'number' ? e.costUsd : 0,
    history: Array.isArray(e.history) ? (e.history as HistoryItem[]) : [],
    updatedAt: typeof e.updatedAt === 'string' ? e.updatedAt : '',
  };
}

/** Parses one hash field's JSON value. */
export function parseEntry(json: string, symbol: string): LedgerEntry {
  return normaliseEntry(JSON.parse(json), symbol);
}
