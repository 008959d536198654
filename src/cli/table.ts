import Table from 'cli-table3';
import type { LedgerEntry } from '../ledger/ledger.js';
import type { EngineSummary } from '../telemetry/summary.js';

function fmt(n: unknown, digits = 3): string {
  return typeof n === 'number' && Number.isFinite(n) ? n.toFixed(digits) : '-';
}

/** A symbol's status as the tables show it: a wait for capacity says since when (UTC). */
export function statusLabel(e: Pick<LedgerEntry, 'status' | 'waitingSince'> | undefined): string {
  if (!e) return 'skipped';
  if (e.status === 'waiting_capacity' && e.waitingSince)
    return `${e.status} since ${e.waitingSince.slice(11, 19)}Z`;
  return e.status;
}

/** Minutes waited for capacity, for a `waited` column shown only when some symbol waited. */
export function waitedColumn(
  entries: (LedgerEntry | undefined)[],
): ((e: LedgerEntry | undefined) => string) | null {
  if (!entries.some((e) => (e?.waitedMin ?? 0) > 0 || e?.status === 'waiting_capacity')) return null;
  return (e) => fmt(e?.waitedMin ?? 0, 2);
}

/** The end-of-run table: one row per symbol. `metrics` maps symbol → its metrics.json. */
export function renderRunTable(
  symbols: string[],
  ledger: Record<string, LedgerEntry>,
  metrics: Record<string, Record<string, unknown> | undefined>,
): string {
  const waited = waitedColumn(symbols.map((s) => ledger[s]));
  const t = new Table({
    head: [
      'symbol',
      'status',
      'hitRate',
      'maxDD',
      'net_bps',
      'decision',
      'minutes',
      ...(waited ? ['waited'] : []),
      'attempts',
      'reason',
    ],
    style: { head: [], border: [], compact: true },
  });
  for (const s of symbols) {
    const e = ledger[s];
    const m = metrics[s] ?? {};
    t.push([
      s,
      statusLabel(e),
      fmt(m.directionalHitRate),
      fmt(m.maxDrawdown),
      fmt(e?.net_bps_after_costs ?? m.net_bps_after_costs, 2),
      e?.decision ?? '-',
      fmt(e?.trainMinutes, 2),
      ...(waited ? [waited(e)] : []),
      String(e?.attempts ?? 0),
      e?.reason ?? '',
    ]);
  }
  return t.toString();
}

export function renderSummaryLine(s: EngineSummary): string {
  return `${s.total_symbols} symbols: ${s.succeeded} succeeded, ${s.failed} failed, ${s.skipped} skipped; wall ${s.total_wall_minutes.toFixed(2)} min`;
}
