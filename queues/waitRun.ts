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
 * calling `onTick` with the ledger every `pollMs` so a caller can show progress.
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
}): Promise<RunOutcome> {
  const queue = new Queue(QUEUES.finalize, { connection: opts.redis, prefix: opts.config.queuePrefix });
  try {
    for (;;) {
      const ledger = await opts.ledger.get(opts.date);
      opts.onTick?.(ledger);
      const job = await queue.getJob(opts.finalizeJobId);
      if (job) {
        const state = await job.getState();
        if (state === 'completed')
          return {
            state,
            summary: job.returnvalue as EngineSummary,
            ledger: await opts.ledger.get(opts.date),
          };
        if (state === 'failed') return { state, error: job.failedReason, ledger };
      }
      if (opts.signal?.aborted) throw new Error('interrupted');
      await new Promise((r) => setTimeout(r, opts.pollMs ?? 500));
    }
  } finally {
    await queue.close();
  }
}
