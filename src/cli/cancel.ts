/**
 * `retrain cancel [--run ID | --date D] [--symbol S]`: cancels from any machine. It sets the flag the
 * workers watch (src/train/runCancel.ts); each worker stops the trainings concerned, gives their hosts
 * back and records the symbols as cancelled (`failed`, reason `cancelled`). The command then waits a
 * while for that to be seen in the ledger. A second call finds nothing left to cancel and changes
 * nothing.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from '../config/load.js';
import { InputError } from '../errors.js';
import type { LedgerEntry } from '../ledger/ledger.js';
import { createRuntime } from '../runtime.js';
import { parseRunDate } from '../symbols/date.js';
import { cancelRun, cancelSymbol } from '../train/runCancel.js';
import { connectRedis } from './redis.js';

export interface CancelFlags {
  config?: string;
  run?: string;
  date?: string;
  symbol?: string;
  /** Seconds to wait for the workers to stop what was cancelled (0: do not wait). */
  wait?: string;
  json?: boolean;
}

const RUN_ID = /^(\d{8})-\d+$/;
const LIVE = new Set(['pending', 'running']);

export interface CancelTarget {
  runId: string;
  date: string;
  /** Undefined: the whole run. */
  symbol?: string;
  symbols: string[];
}

/** Which runs (and symbols) the flags name, from the ledger; only symbols still pending or running. */
export function cancelTargets(
  date: string,
  entries: Record<string, LedgerEntry>,
  flags: { run?: string; symbol?: string },
): CancelTarget[] {
  if (flags.symbol !== undefined && !entries[flags.symbol]) {
    throw new InputError(`--symbol ${flags.symbol}: no such symbol in the ledger of ${date}`);
  }
  const byRun = new Map<string, string[]>();
  for (const e of Object.values(entries)) {
    if (!e.runId || !LIVE.has(e.status)) continue;
    if (flags.run !== undefined && e.runId !== flags.run) continue;
    if (flags.symbol !== undefined && e.symbol !== flags.symbol) continue;
    byRun.set(e.runId, [...(byRun.get(e.runId) ?? []), e.symbol]);
  }
  return [...byRun.entries()].map(([runId, symbols]) => ({
    runId,
    date,
    ...(flags.symbol !== undefined ? { symbol: flags.symbol } : {}),
    symbols: symbols.sort(),
  }));
}

export async function cancelCommand(flags: CancelFlags): Promise<number> {
  if ((flags.run === undefined) === (flags.date === undefined)) {
    throw new InputError('cancel needs exactly one of --run <id> or --date <YYYYMMDD>');
  }
  let date: string;
  if (flags.run !== undefined) {
    const m = RUN_ID.exec(flags.run);
    if (!m) throw new InputError(`--run ${JSON.stringify(flags.run)}: expected a run id like 20260115-3`);
    date = m[1]!;
  } else date = parseRunDate(flags.date!);
  const waitSec = flags.wait === undefined ? 60 : Number(flags.wait);
  if (!Number.isFinite(waitSec) || waitSec < 0) {
    throw new InputError(`--wait ${JSON.stringify(flags.wait)}: expected seconds (0 or more)`);
  }
  const config = loadConfig({ file: flags.config });
  const redis = await connectRedis(config.redisUrl);
  try {
    const { ledger } = createRuntime(config, { redis });
    const entries = await ledger.get(date);
    if (flags.run !== undefined && !Object.values(entries).some((e) => e.runId === flags.run)) {
      throw new InputError(`--run ${flags.run}: no such run in the ledger of ${date}`);
    }
    const targets = cancelTargets(date, entries, flags);
    const out = (line: string) => {
      if (!flags.json) process.stdout.write(line + '\n');
    };
    if (targets.length === 0) {
      out('nothing to cancel: no symbol of that run is pending or running');
      if (flags.json) process.stdout.write(JSON.stringify({ cancelled: [], date }) + '\n');
      return 0;
    }
    for (const t of targets) {
      const fresh = t.symbol
        ? await cancelSymbol(redis, config.queuePrefix, t.runId, t.symbol)
        : await cancelRun(redis, config.queuePrefix, t.runId);
      out(
        `${fresh ? 'cancelled' : 'already cancelled'}: run ${t.runId}${t.symbol ? ` symbol ${t.symbol}` : ''} ` +
          `(${t.symbols.length} pending or running: ${t.symbols.join(', ')})`,
      );
    }
    const wanted = targets.flatMap((t) => t.symbols);
    const end = Date.now() + waitSec * 1000;
    let now = entries;
    while (Date.now() < end) {
      now = await ledger.get(date);
      if (wanted.every((s) => !LIVE.has(now[s]?.status ?? ''))) break;
      await sleep(Math.min(500, Math.max(0, end - Date.now())));
    }
    const left = wanted.filter((s) => LIVE.has(now[s]?.status ?? ''));
    for (const s of wanted) {
      if (!left.includes(s)) out(`  ${s}: ${now[s]?.status} (${now[s]?.reason ?? ''}), host released`);
    }
    if (left.length) {
      out(
        `  still ${left.join(', ')}: a worker stops each as soon as it sees the flag ` +
          '(a job still queued fails when a worker picks it up)',
      );
    }
    if (flags.json) {
      process.stdout.write(
        JSON.stringify({
          date,
          cancelled: targets.map((t) => ({ runId: t.runId, symbol: t.symbol ?? null, symbols: t.symbols })),
          stopped: wanted.filter((s) => !left.includes(s)),
          pending: left,
        }) + '\n',
      );
    }
    return 0;
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}
