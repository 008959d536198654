import { FlowProducer, Queue, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../src/config/schema.js';
import type { Ledger } from '../src/ledger/ledger.js';
import { processNotifier, type Notifier } from '../src/notify/index.js';
import type { Plan } from '../src/plan/planRun.js';
import { finalizeJobId, QUEUES } from './names.js';
import { finalizeJobOptions, trainJobOptions } from './options.js';

export interface FinalizeJobData {
  runId: string;
  date: string;
  /** Every symbol requested, trained or not (the summary covers them all). */
  symbols: string[];
  trained: string[];
  mode: string;
  cap: number;
  driver: string;
  promote: string;
  plannedAt: string;
  /** `--budget-usd`, when the run has one. */
  budgetUsd?: number;
}

export interface EnqueueResult {
  runId: string;
  finalizeJobId: string;
  date: string;
  cap: number;
  enqueued: string[];
  skipped: { symbol: string; reason: string; message: string }[];
  /** Symbols whose job is still queued or running from an earlier enqueue (left alone). */
  inFlight: string[];
}

const LIVE_STATES = new Set(['active', 'waiting', 'delayed', 'prioritized', 'waiting-children']);

/**
 * Adds the run: ledger entries first (so a fast worker never races the plan), then one flow — a
 * `finalize-run` parent over one `train` child per symbol — and sets the global cap on `train`.
 * A symbol whose job is still live is left alone; a finished job with the same id is removed first
 * (its history stays in the ledger), so re-running a date works with deterministic ids. Once the
 * flow is added, the notifier gets the start message (whoever enqueued: CLI or scheduler).
 */
export async function enqueueRun(opts: {
  config: Config;
  redis: Redis;
  ledger: Ledger;
  plan: Plan;
  symbols: string[];
  mode: string;
  cap: number;
  force: boolean;
  budgetUsd?: number;
  now?: () => Date;
  /** Told once the run is enqueued (the start message); default: the process's notifier. */
  notifier?: Notifier;
  /** A cost estimate line for the start message (driver vast). */
  estimate?: string;
}): Promise<EnqueueResult> {
  const { config, redis, ledger, plan } = opts;
  const now = opts.now ?? (() => new Date());
  const connection = redis;
  const trainQueue = new Queue(QUEUES.train, { connection, prefix: config.queuePrefix });
  const flow = new FlowProducer({ connection, prefix: config.queuePrefix });
  try {
    // Kept without an expiry (one small key per date, unlike the ledger): a run id must never be
    // reused while anything keyed by it (finalize-run job, run spend, checkpoints) may still exist.
    const seq = await redis.incr(`${config.queuePrefix}:runseq:${plan.date}`);
    const runId = `${plan.date}-${seq}`;
    const fid = finalizeJobId(plan.date, seq);

    const inFlight: string[] = [];
    const toAdd = [];
    // All lookups at once (ioredis pipelines them): one round trip per symbol, in turn, was half the
    // time of enqueueing 10,000 symbols.
    const olds: (Job | undefined)[] = await Promise.all(plan.specs.map((s) => trainQueue.getJob(s.jobId)));
    for (const [i, spec] of plan.specs.entries()) {
      const old = olds[i];
      if (old) {
        const state = await old.getState();
        if (LIVE_STATES.has(state)) {
          inFlight.push(spec.symbol);
          continue;
        }
        await old.remove({ removeChildren: false });
      }
      toAdd.push(spec);
    }

    await ledger.init(
      plan.date,
      [
        ...toAdd.map((s) => ({ symbol: s.symbol, status: 'pending' as const, jobId: s.jobId, runId })),
        ...plan.skipped
          .filter((s) => s.reason === 'no_data' || s.reason === 'bad_data')
          .map((s) => ({
            symbol: s.symbol,
            status: 'skipped' as const,
            reason: s.reason,
            error: { type: s.reason, message: s.message },
            runId,
          })),
      ],
      opts.force,
    );

    await trainQueue.setGlobalConcurrency(opts.cap);
    const data: FinalizeJobData = {
      runId,
      date: plan.date,
      symbols: opts.symbols,
      trained: toAdd.map((s) => s.symbol),
      mode: opts.mode,
      cap: opts.cap,
      driver: plan.specs[0]?.driver ?? config.train.driver,
      promote: plan.specs[0]?.promote ?? config.promotion.mode,
      plannedAt: now().toISOString(),
      ...(opts.budgetUsd !== undefined ? { budgetUsd: opts.budgetUsd } : {}),
    };
    await flow.add({
      name: 'finalize-run',
      queueName: QUEUES.finalize,
      data,
      opts: finalizeJobOptions(config, fid),
      children: toAdd.map((spec) => ({
        name: 'train',
        queueName: QUEUES.train,
        data: {
          spec,
          runId,
          state: 'PENDING',
          ...(opts.budgetUsd !== undefined ? { budgetUsd: opts.budgetUsd } : {}),
        },
        opts: trainJobOptions(config, spec),
      })),
    });
    (opts.notifier ?? processNotifier(config)).runStarted({
      runId,
      date: plan.date,
      symbols: opts.symbols.length,
      enqueued: toAdd.length,
      skipped: plan.skipped.length,
      inFlight: inFlight.length,
      mode: opts.mode,
      cap: opts.cap,
      driver: data.driver,
      promote: data.promote,
      ...(opts.estimate ? { estimate: opts.estimate } : {}),
    });
    return {
      runId,
      finalizeJobId: fid,
      date: plan.date,
      cap: opts.cap,
      enqueued: toAdd.map((s) => s.symbol),
      skipped: plan.skipped,
      inFlight,
    };
  } finally {
    await flow.close();
    await trainQueue.close();
  }
}
