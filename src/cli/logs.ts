/**
 * `retrain logs SYMBOL [--date D] [--attempt N] [--follow] [--json]`: a symbol's training log as
 * retrain kept it (secrets masked), from any machine. A finished attempt's log comes from the store
 * (`ml-artifacts/<jobId>/train.log`, or `attempts/<n>/train.log` for a failed one); a training under
 * way is read from its BullMQ job log in Redis, which the worker running it (any worker) appends to
 * line by line; `--follow` keeps printing new lines until the symbol ends. `--json` prints the
 * symbol's events from this machine's `logs/<date>Z/engine.log`, one JSON object a line.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { QUEUES } from '../../queues/names.js';
import { loadConfig } from '../config/load.js';
import { InputError } from '../errors.js';
import { Ledger, type LedgerEntry } from '../ledger/ledger.js';
import { createRuntime } from '../runtime.js';
import type { ArtifactStore } from '../storage/index.js';
import { keys } from '../storage/layout.js';
import { parseRunDate } from '../symbols/date.js';
import { connectRedis } from './redis.js';

export interface LogsFlags {
  config?: string;
  date?: string;
  attempt?: string;
  follow?: boolean;
  json?: boolean;
}

const LIVE = new Set(['pending', 'running']);
/** The line an attempt's job log starts with (trainSymbol's `enter('PENDING')`). */
const ATTEMPT_START = /^\d{4}-\d\d-\d\dT\S+ PENDING$/;

/** The job log's lines split by attempt (each starts at its PENDING line). */
export function splitAttempts(lines: string[]): string[][] {
  const out: string[][] = [];
  for (const line of lines) {
    if (ATTEMPT_START.test(line) || out.length === 0) out.push([]);
    out[out.length - 1]!.push(line);
  }
  return out;
}

/**
 * What of `next` (the list read again) was not printed yet, given the list printed last time. The
 * list is capped (BullMQ keepLogs drops lines at its head), so when its head moved the new lines are
 * found after the longest tail of what was printed that `next` still holds.
 */
export function unseenLines(printed: string[], next: string[], printedCount: number): string[] {
  if (printedCount === 0) return next;
  const same =
    printed.length === printedCount && next.length >= printedCount && printed.every((l, i) => next[i] === l);
  if (same) return next.slice(printedCount);
  for (let k = Math.min(3, printed.length); k >= 1; k--) {
    const tail = printed.slice(-k);
    for (let i = next.length - k; i >= 0; i--) {
      if (tail.every((l, j) => next[i + j] === l)) return next.slice(i + k);
    }
  }
  return next;
}

async function findDate(ledger: Ledger, symbol: string): Promise<string> {
  for (const d of await ledger.dates()) if (await ledger.getEntry(d, symbol)) return d;
  throw new InputError(`no run in the ledger has symbol ${symbol}`);
}

async function storedLog(
  store: ArtifactStore,
  e: LedgerEntry,
  attempt: number,
): Promise<{ key: string; text: string } | null> {
  if (!e.jobId) return null;
  const candidates = [keys.artifact(e.jobId, `attempts/${attempt}/train.log`)];
  if (attempt === e.attempts && e.status === 'success')
    candidates.unshift(keys.artifact(e.jobId, 'train.log'));
  for (const key of candidates) {
    if (await store.exists(key)) return { key, text: (await store.getBytes(key)).toString('utf8') };
  }
  return null;
}

export async function logsCommand(symbol: string, flags: LogsFlags): Promise<number> {
  if (!/^[A-Z0-9]{2,24}$/.test(symbol)) throw new InputError(`invalid symbol ${JSON.stringify(symbol)}`);
  const attemptFlag = flags.attempt === undefined ? undefined : Number(flags.attempt);
  if (attemptFlag !== undefined && !(Number.isInteger(attemptFlag) && attemptFlag >= 1)) {
    throw new InputError(`--attempt ${JSON.stringify(flags.attempt)}: expected a whole number from 1`);
  }
  const config = loadConfig({ file: flags.config });
  const requested = flags.date !== undefined ? parseRunDate(flags.date) : undefined;
  const redis = await connectRedis(config.redisUrl);
  const { store, ledger } = createRuntime(config, { redis });
  const queue = new Queue(QUEUES.train, { connection: redis, prefix: config.queuePrefix });
  try {
    const date = requested ?? (await findDate(ledger, symbol));
    const entry = await ledger.getEntry(date, symbol);
    if (!entry) throw new InputError(`${symbol} has no ledger entry for ${date}`);

    if (flags.json) {
      const file = join(config.home, 'logs', `${date}Z`, 'engine.log');
      if (!existsSync(file)) {
        process.stderr.write(`no engine log on this machine for ${date} (${file})\n`);
        return 1;
      }
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        try {
          if ((JSON.parse(line) as { symbol?: string }).symbol === symbol) process.stdout.write(line + '\n');
        } catch {
          /* a torn last line */
        }
      }
      return 0;
    }

    const attempt = attemptFlag ?? Math.max(1, entry.attempts);
    const live = LIVE.has(entry.status) && attempt >= entry.attempts;
    if (!live) {
      const kept = await storedLog(store, entry, attempt);
      if (!kept) {
        process.stderr.write(
          `${symbol} ${date} attempt ${attempt}: no training log was kept (status ${entry.status}` +
            `${entry.reason ? `, ${entry.reason}` : ''}; the attempt may have ended before training)\n`,
        );
        return 1;
      }
      process.stderr.write(
        `# ${symbol} ${date} attempt ${attempt} (${entry.status}): ${store.locate(kept.key)}\n`,
      );
      process.stdout.write(kept.text.endsWith('\n') || kept.text === '' ? kept.text : kept.text + '\n');
      return 0;
    }
    if (!entry.jobId) throw new InputError(`${symbol} ${date} has no job yet`);
    return await followJobLog(
      queue,
      ledger,
      entry.jobId,
      date,
      symbol,
      flags.follow === true,
      config.train.pollMs,
    );
  } finally {
    await queue.close().catch(() => undefined);
    await redis.quit().catch(() => redis.disconnect());
  }
}

/** Prints the running attempt's job log; with `follow`, new lines too until the symbol ends. */
async function followJobLog(
  queue: Queue,
  ledger: Ledger,
  jobId: string,
  date: string,
  symbol: string,
  follow: boolean,
  pollMs: number,
): Promise<number> {
  let printed: string[] = [];
  let count = 0;
  process.stderr.write(`# ${symbol} ${date} (running): live log of job ${jobId}\n`);
  const current = async () => {
    const { logs } = await queue.getJobLogs(jobId, 0, -1, true);
    return splitAttempts(logs).at(-1) ?? [];
  };
  let stop = false;
  const onSig = () => (stop = true);
  process.once('SIGINT', onSig);
  try {
    for (;;) {
      const lines = await current();
      const fresh = count > lines.length ? lines : unseenLines(printed, lines, count);
      for (const l of fresh) process.stdout.write(l + '\n');
      printed = lines;
      count = lines.length;
      if (!follow || stop) return 0;
      const e = await ledger.getEntry(date, symbol);
      if (!e || !LIVE.has(e.status)) {
        // One last read: the lines the worker wrote just before recording the end.
        const last = await current();
        for (const l of unseenLines(printed, last, count)) process.stdout.write(l + '\n');
        process.stderr.write(
          `# ${symbol} ended: ${e?.status ?? 'unknown'}${e?.reason ? ` (${e.reason})` : ''}\n`,
        );
        return e?.status === 'success' ? 0 : 1;
      }
      await sleep(Math.min(pollMs, 1000));
    }
  } finally {
    process.off('SIGINT', onSig);
  }
}
