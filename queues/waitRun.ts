import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../src/config/schema.js';
import type { Ledger, LedgerEntry } from '../src/ledger/ledger.js';
import type { EngineSummary } from '../src/telemetry/summary.js';
import { QUEUES } from './names.js';

export interface RunOutcome {
  state: 'completed' | 'failed';
  summary?: EngineSummary;
  error?: string;
  ledger: Record<string, LedgerEntry>;
}

/**
 * Blocks until the run's finalize-run job has completed (the summary is written) or failed,
 * calling `onTick` with the ledger every `pollMs` so a caller can show progress (without one, the
 * ledger is read once, at the end).
 */
export async function waitForRun(opts: {
  config: Config;
  redis: Redis;
  ledger: Ledger;
  finalizeJobId: string;
  date: string;
  pollMs?: number;
  signal?: AbortSignal;
  onTick?: (ledger: Record<string, LedgerEntry>) => void;
  /** Called once when Redis stops answering and once when it is back. */
  onRedisOutage?: (down: boolean, err?: Error) => void;
  /** Give up after Redis has been away this long (default 15 min). */
  maxOutageMs?: number;
}): Promise<RunOutcome> {
  const queue = new Queue(QUEUES.finalize, { connection: opts.redis, prefix: opts.config.queuePrefix });
  queue.on('error', () => undefined); // outages are handled below
  let downSince: number | undefined;
  try {
    for (;;) {
      try {
        // The whole date is read (and parsed) only for a caller that shows it: a run of 1,000
        // symbols is ~1 MB of ledger, and waiting alone needs only the finalize job.
        const ledger = opts.onTick ? await opts.ledger.get(opts.date) : undefined;
        const job = await queue.getJob(opts.finalizeJobId);
        if (downSince !== undefined) {
          downSince = undefined;
          opts.onRedisOutage?.(false);
        }
        if (ledger) opts.onTick?.(ledger);
        if (job) {
          const state = await job.getState();
          if (state === 'completed') {
            // The job may have completed between reading it and its state: read it again for the
            // return value (the summary), which the first read cannot have.
            const done = job.returnvalue ? job : await queue.getJob(opts.finalizeJobId);
            return {
              state,
              summary: done?.returnvalue as EngineSummary,
              ledger: await opts.ledger.get(opts.date),
            };
          }
          if (state === 'failed')
            return { state, error: job.failedReason, ledger: ledger ?? (await opts.ledger.get(opts.date)) };
        }
      } catch (err) {
        // Redis restarting: the workers ride it out, and so does the wait.
        if (downSince === undefined) {
          downSince = Date.now();
          opts.onRedisOutage?.(true, err as Error);
        } else if (Date.now() - downSince > (opts.maxOutageMs ?? 15 * 60_000)) {
          throw err;
        }
      }
      if (opts.signal?.aborted) throw new Error('interrupted');
      await new Promise((r) => setTimeout(r, opts.pollMs ?? 500));
    }
  } finally {
    await queue.close();
  }
}
