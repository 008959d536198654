import type { LedgerEntry } from '../ledger/ledger.js';

export interface SymbolSummary {
  status: string;
  attempts: number;
  reason: string | null;
  metrics_path: string | null;
  net_bps_after_costs: number | null;
  decision: string | null;
  train_minutes: number | null;
  cost_usd: number;
  /** Training minutes not redone because a retry resumed from a checkpoint (0 when none). */
  resume_saved_minutes: number;
  /** Minutes it waited for capacity (no offer, no pooled instance), all attempts. */
  waited_minutes: number;
  /** The GPU it last rented and the preference class chosen (vast.gpuNames); null when none. */
  gpu: string | null;
  gpu_class: string | null;
}

export interface EngineSummary {
  date: string;
  run_id: string;
  total_symbols: number;
  succeeded: number;
  failed: number;
  skipped: number;
  avg_train_minutes: number | null;
  median_train_minutes: number | null;
  total_wall_minutes: number;
  total_cost_usd: number;
  /** Training minutes the run's retries did not redo thanks to checkpoints. */
  resume_saved_minutes: number;
  /** Minutes the run's symbols waited for capacity, all together. */
  waited_minutes: number;
  promoted: string[];
  /** What the run's rentals cost (dph_total × rented seconds, per symbol across its attempts). */
  costs: RunCosts;
  by_symbol: Record<string, SymbolSummary>;
}

export interface RunCosts {
  total_usd: number;
  /** `--budget-usd` of the run, null when it had none. */
  budget_usd: number | null;
  /** Symbols that failed because the budget was spent. */
  stopped_by_budget: string[];
  by_symbol: Record<string, number>;
  /** Pooled instances' time that no symbol held (boot of spare slots, idle between symbols). */
  pool_idle_usd: number;
  /** Minutes each symbol waited for capacity: unbilled, but time the run's cost did not buy. */
  waited_minutes_by_symbol: Record<string, number>;
}

function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const round = (x: number) => Math.round(x * 1000) / 1000;
/** Dollars to the micro-dollar: a few seconds of a cheap GPU still show. */
const usd = (x: number) => Math.round(x * 1e6) / 1e6;

/**
 * The run summary (`summary/<date>Z/engine_summary.json`), from the ledger entries of the run's
 * symbols. A symbol with no entry (never planned) counts as skipped.
 */
export function buildSummary(opts: {
  date: string;
  runId: string;
  symbols: string[];
  ledger: Record<string, LedgerEntry>;
  startedAt: Date;
  endedAt: Date;
  /** Symbols the promotion guard actually published to production. */
  promoted?: string[];
  budgetUsd?: number;
  /** What pooled instances cost while no symbol held them: in the total, not in any symbol's. */
  poolIdleUsd?: number;
}): EngineSummary {
  const by: Record<string, SymbolSummary> = {};
  const minutes: number[] = [];
  let succeeded = 0;
  let failed = 0;
  let skipped = 0;
  let cost = 0;
  let saved = 0;
  let waited = 0;
  const waitedBySymbol: Record<string, number> = {};
  const costBySymbol: Record<string, number> = {};
  const stoppedByBudget: string[] = [];
  for (const symbol of opts.symbols) {
    const e = opts.ledger[symbol];
    const status = e?.status ?? 'skipped';
    if (status === 'success') succeeded++;
    else if (status === 'failed') failed++;
    else if (status === 'skipped') skipped++;
    if (status === 'success' && typeof e?.trainMinutes === 'number') minutes.push(e.trainMinutes);
    cost += e?.costUsd ?? 0;
    saved += e?.resumeSavedMin ?? 0;
    waited += e?.waitedMin ?? 0;
    waitedBySymbol[symbol] = round(e?.waitedMin ?? 0);
    costBySymbol[symbol] = usd(e?.costUsd ?? 0);
    if (status === 'failed' && e?.reason === 'budget') stoppedByBudget.push(symbol);
    by[symbol] = {
      status,
      attempts: e?.attempts ?? 0,
      reason: e?.reason ?? null,
      metrics_path: status === 'success' ? (e?.metricsKey ?? null) : null,
      net_bps_after_costs: typeof e?.net_bps_after_costs === 'number' ? e.net_bps_after_costs : null,
      decision: e?.decision ?? null,
      train_minutes: typeof e?.trainMinutes === 'number' ? round(e.trainMinutes) : null,
      cost_usd: usd(e?.costUsd ?? 0),
      resume_saved_minutes: round(e?.resumeSavedMin ?? 0),
      waited_minutes: round(e?.waitedMin ?? 0),
      gpu: e?.gpu ?? null,
      gpu_class: e?.gpuClass ?? null,
    };
  }
  const avg = minutes.length ? minutes.reduce((a, b) => a + b, 0) / minutes.length : null;
  const med = median(minutes);
  return {
    date: opts.date,
    run_id: opts.runId,
    total_symbols: opts.symbols.length,
    succeeded,
    failed,
    skipped,
    avg_train_minutes: avg === null ? null : round(avg),
    median_train_minutes: med === null ? null : round(med),
    total_wall_minutes: round((opts.endedAt.getTime() - opts.startedAt.getTime()) / 60_000),
    total_cost_usd: usd(cost + (opts.poolIdleUsd ?? 0)),
    resume_saved_minutes: round(saved),
    waited_minutes: round(waited),
    promoted: opts.promoted ?? [],
    costs: {
      total_usd: usd(cost + (opts.poolIdleUsd ?? 0)),
      budget_usd: opts.budgetUsd ?? null,
      stopped_by_budget: stoppedByBudget,
      by_symbol: costBySymbol,
      pool_idle_usd: usd(opts.poolIdleUsd ?? 0),
      waited_minutes_by_symbol: waitedBySymbol,
    },
    by_symbol: by,
  };
}
