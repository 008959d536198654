import Table from 'cli-table3';
import type { LedgerEntry } from '../ledger/ledger.js';
import type { EngineSummary } from '../telemetry/summary.js';

function fmt(n: unknown, digits = 3): string {
  return typeof n === 'number' && Number.isFinite(n) ? n.toFixed(digits) : '-';
}

/** The end-of-run table: one row per symbol. `metrics` maps symbol → its metrics.json. */
export function renderRunTable(
  symbols: string[],
  ledger: Record<string, LedgerEntry>,
  metrics: Record<string, Record<string, unknown> | undefined>,
): string {
  const t = new Table({
    head: ['symbol', 'status', 'hitRate', 'maxDD', 'net_bps', 'decision', 'minutes', 'attempts', 'reason'],
    style: { head: [], border: [], compact: true },
  });
  for (const s of symbols) {
    const e = ledger[s];
    const m = metrics[s] ?? {};
    t.push([
      s,
      e?.status ?? 'skipped',
      fmt(m.directionalHitRate),
      fmt(m.maxDrawdown),
      fmt(e?.net_bps_after_costs ?? m.net_bps_after_costs, 2),
      e?.decision ?? '-',
      fmt(e?.trainMinutes, 2),
      String(e?.attempts ?? 0),
      e?.reason ?? '',
    ]);
  }
  return t.toString();
}

export function renderSummaryLine(s: EngineSummary): string {
  return `${s.total_symbols} symbols: ${s.succeeded} succeeded, ${s.failed} failed, ${s.skipped} skipped; wall ${s.total_wall_minutes.toFixed(2)} min`;
}
