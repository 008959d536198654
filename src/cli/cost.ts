/**
 * `retrain cost [--date D | --from D --to D] [--by symbol|run|day] [--json]`: what runs cost, booked
 * by retrain and, with driver vast, reconciled with what Vast billed (src/ledger/costReport.ts).
 */
import Table from 'cli-table3';
import { loadConfig } from '../config/load.js';
import { jobIdFromLabel } from '../compute/vast.js';
import { vastClientFrom } from '../compute/factory.js';
import { InputError } from '../errors.js';
import type { LedgerEntry } from '../ledger/ledger.js';
import {
  buildCostReport,
  saveReconciliation,
  type BilledInstance,
  type CostGrouping,
  type CostRow,
} from '../ledger/costReport.js';
import { createRuntime } from '../runtime.js';
import { parseRunDate } from '../symbols/date.js';
import { RunSpend } from '../train/spend.js';
import { instanceCharges } from '../vast/billing.js';
import { connectRedis } from './redis.js';

export interface CostFlags {
  config?: string;
  driver?: string;
  date?: string;
  from?: string;
  to?: string;
  by?: string;
  json?: boolean;
  toleranceUsd?: string;
  tolerancePct?: string;
}

/** Slack around the ledger's first start and last end when asking Vast for charges. */
const WINDOW_SLACK_SEC = 6 * 3600;

function num(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0)
    throw new InputError(`${name} ${JSON.stringify(raw)}: expected a number ≥ 0`);
  return n;
}

/** The instants (epoch s) the entries' attempts span, widened by WINDOW_SLACK_SEC. */
function window(ledger: Record<string, Record<string, LedgerEntry>>): [number, number] | null {
  let lo = Infinity;
  let hi = -Infinity;
  for (const entries of Object.values(ledger)) {
    for (const e of Object.values(entries)) {
      for (const t of [
        e.startedAt,
        e.endedAt,
        e.updatedAt,
        ...e.history.flatMap((h) => [h.startedAt, h.endedAt]),
      ]) {
        const ms = t ? Date.parse(t) : NaN;
        if (Number.isFinite(ms)) {
          lo = Math.min(lo, ms);
          hi = Math.max(hi, ms);
        }
      }
    }
  }
  return Number.isFinite(lo) ? [lo / 1000 - WINDOW_SLACK_SEC, hi / 1000 + WINDOW_SLACK_SEC] : null;
}

export async function costCommand(flags: CostFlags): Promise<number> {
  if (flags.date !== undefined && (flags.from !== undefined || flags.to !== undefined)) {
    throw new InputError('cost takes --date or --from/--to, not both');
  }
  const by = (flags.by ?? 'symbol') as CostGrouping;
  if (!['symbol', 'run', 'day'].includes(by))
    throw new InputError(`--by ${JSON.stringify(flags.by)}: expected symbol, run or day`);
  const tolerance = {
    usd: num('--tolerance-usd', flags.toleranceUsd, 0.01),
    pct: num('--tolerance-pct', flags.tolerancePct, 10),
  };
  const config = loadConfig({
    file: flags.config,
    ...(flags.driver ? { overrides: { train: { driver: flags.driver } } } : {}),
  });
  const redis = await connectRedis(config.redisUrl);
  try {
    const { ledger } = createRuntime(config, { redis });
    const all = await ledger.dates();
    let from: string;
    let to: string;
    if (flags.from !== undefined || flags.to !== undefined) {
      from = flags.from !== undefined ? parseRunDate(flags.from) : '00000000';
      to = flags.to !== undefined ? parseRunDate(flags.to) : '99999999';
      if (from > to) throw new InputError(`--from ${from} is after --to ${to}`);
    } else {
      const d = flags.date !== undefined ? parseRunDate(flags.date) : all[0];
      if (!d) {
        process.stdout.write(flags.json ? '{}\n' : 'the ledger is empty: no run has been planned yet\n');
        return 0;
      }
      from = to = d;
    }
    const dates = all.filter((d) => d >= from && d <= to);
    const byDate: Record<string, Record<string, LedgerEntry>> = {};
    for (const d of dates) byDate[d] = await ledger.get(d);
    const spend = new RunSpend(redis, config.queuePrefix);
    const runIds = new Set(
      Object.values(byDate).flatMap((es) => Object.values(es).flatMap((e) => (e.runId ? [e.runId] : []))),
    );
    const poolIdle: Record<string, number> = {};
    for (const id of runIds) poolIdle[id] = await spend.poolIdle(id);

    let billed: BilledInstance[] | undefined;
    const span = window(byDate);
    if (config.train.driver === 'vast') {
      billed = [];
      if (span) {
        for (const c of await instanceCharges(vastClientFrom(config), span[0], span[1])) {
          const jobId = jobIdFromLabel(config.deployment, c.label);
          if (jobId) billed.push({ jobId, instanceId: c.instanceId, usd: c.usd });
        }
      }
    }
    const input = { from, to, ledger: byDate, poolIdle, ...(billed ? { billed } : {}), tolerance };
    const report = buildCostReport({ ...input, by });
    if (billed) await saveReconciliation(redis, config.queuePrefix, buildCostReport({ ...input, by: 'day' }));

    if (flags.json) {
      process.stdout.write(JSON.stringify(report, null, 2) + '\n');
      return report.total.flagged ? 1 : 0;
    }
    const head = ['', 'booked'];
    if (report.reconciled) head.push('billed by Vast', 'difference', '');
    const t = new Table({ head: [by, ...head.slice(1)], style: { head: [], border: [], compact: true } });
    const line = (r: CostRow) => {
      const cells = [r.key, `$${r.booked.toFixed(4)}`];
      if (report.reconciled)
        cells.push(
          `$${(r.billed ?? 0).toFixed(4)}`,
          `${(r.difference ?? 0) >= 0 ? '+' : ''}${(r.difference ?? 0).toFixed(4)}`,
          r.flagged ? 'OVER TOLERANCE' : 'ok',
        );
      return cells;
    };
    for (const r of report.rows) t.push(line(r));
    t.push(line(report.total));
    const range = from === to ? from : `${from}..${to}`;
    process.stdout.write(
      `cost ${range}, by ${by}${report.reconciled ? ', reconciled with Vast charges' : ' (booked by retrain)'}\n${t.toString()}\n`,
    );
    const flagged = report.rows.filter((r) => r.flagged);
    if (flagged.length) {
      process.stdout.write(
        `${flagged.length} over the tolerance ($${tolerance.usd} and ${tolerance.pct}%): ${flagged.map((r) => r.key).join(', ')}\n`,
      );
    }
    return flagged.length || report.total.flagged ? 1 : 0;
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}
