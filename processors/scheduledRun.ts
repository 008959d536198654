import { randomUUID } from 'node:crypto';
import { UnrecoverableError, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../src/config/schema.js';
import { RetrainError } from '../src/errors.js';
import type { Ledger } from '../src/ledger/ledger.js';
import { hostGpus, runHasGpus } from '../src/compute/hostGpus.js';
import { concurrencyCap } from '../src/plan/concurrency.js';
import { startEstimate } from '../src/plan/startEstimate.js';
import { planRun } from '../src/plan/planRun.js';
import type { ArtifactStore } from '../src/storage/store.js';
import { EVENTS } from '../src/telemetry/events.js';
import type { LogHub } from '../src/telemetry/logger.js';
import { enqueueRun } from '../queues/enqueue.js';
import { claimSlot, finishSlot, releaseSlot } from '../scheduler/claim.js';
import { runDateForSlot, slotOf } from '../scheduler/slot.js';
import type { ScheduledRunData } from '../scheduler/template.js';

export interface ScheduledRunResult {
  /** The slot, epoch ms and ISO. */
  slot: number;
  slotAt: string;
  date: string;
  runId: string;
  /** True when the slot had already been planned (a retry or a second job for it): nothing enqueued. */
  duplicate: boolean;
  enqueued?: string[];
  skipped?: string[];
}

/**
 * The daily scheduler's job: plans the run for the day before the job's *slot* (never the clock:
 * a slot taken late still trains its own date) and enqueues it, at most once per slot (claim in
 * Redis). Planning is `retrain enqueue`'s: the template's symbols and recipe, this worker's driver,
 * store and limits.
 */
export function createScheduledRunProcessor(deps: {
  config: Config;
  redis: Redis;
  store: ArtifactStore;
  ledger: Ledger;
  logs: LogHub;
}) {
  const { config, redis, store, ledger, logs } = deps;
  return async (job: Job<ScheduledRunData>): Promise<ScheduledRunResult> => {
    const slot = slotOf(job);
    if (slot === undefined) {
      throw new UnrecoverableError(`bad_input: job ${job.id} of the scheduler queue carries no slot`);
    }
    const d = job.data;
    if (d?.v !== 1 || !Array.isArray(d.symbols)) {
      throw new UnrecoverableError(`bad_input: job ${job.id} has no scheduled-run template (v1)`);
    }
    const date = runDateForSlot(slot);
    const slotAt = new Date(slot).toISOString();
    const log = logs.forDate(date).child({ slot: slotAt, schedulerJobId: job.id });
    const claim = await claimSlot(redis, config.queuePrefix, {
      slot,
      date,
      jobId: String(job.id),
      token: `${job.id}#${job.attemptsMade}#${randomUUID()}`,
    });
    if (claim.kind === 'done') {
      log.info(
        { event: EVENTS.scheduleFired, date, runId: claim.record.runId, duplicate: true },
        `slot ${slotAt} was already planned as run ${claim.record.runId}: nothing enqueued`,
      );
      return { slot, slotAt, date, runId: claim.record.runId ?? '', duplicate: true };
    }
    if (claim.kind === 'busy') {
      // Another attempt holds the slot (or held it and died: its claim expires). Retry later.
      throw new Error(`slot ${slotAt} is being planned by job ${claim.record?.jobId ?? '?'}; retrying later`);
    }
    try {
      const plan = await planRun(
        {
          symbols: d.symbols,
          date,
          featureset: d.featureset,
          driver: config.train.driver,
          recipe: d.recipe,
          vars: d.vars,
          timeoutMinutes: d.timeoutMinutes,
          retries: d.retries,
          promote: d.promote,
          canary: d.canary,
          force: false,
          ensureFeatures: d.ensureFeatures,
          synthetic: d.synthetic === true,
          interruptible: config.train.driver === 'vast' && config.vast.interruptible,
        },
        { config, store, ledger },
      );
      const cap = concurrencyCap({
        mode: d.mode,
        symbols: plan.specs.length,
        maxInstances: config.train.maxInstances,
        maxConcurrent: d.maxConcurrent ?? config.train.maxConcurrent,
        gpu: runHasGpus(config, plan.recipe.def.gpu === true, await hostGpus(config, redis, plan.specs[0])),
      });
      // The Telegram start message carries what the run should cost (driver vast).
      const estimate =
        config.train.driver === 'vast' && plan.specs.length > 0
          ? await startEstimate({
              config,
              ledger,
              symbols: plan.specs.map((s) => s.symbol),
              cap,
              interruptible: config.vast.interruptible,
              timeoutMinutes: d.timeoutMinutes,
            })
          : undefined;
      const result = await enqueueRun({
        config,
        redis,
        ledger,
        plan,
        symbols: d.symbols,
        mode: d.mode,
        cap,
        force: false,
        ...(d.budgetUsd !== undefined ? { budgetUsd: d.budgetUsd } : {}),
        ...(estimate ? { estimate } : {}),
      });
      if (!(await finishSlot(redis, claim, { jobId: String(job.id), slot, date, runId: result.runId }))) {
        log.warn({ runId: result.runId }, `slot ${slotAt}: the claim expired while planning`);
      }
      log.info(
        {
          event: EVENTS.scheduleFired,
          date,
          runId: result.runId,
          duplicate: false,
          lateMs: Date.now() - slot,
          enqueued: result.enqueued.length,
          skipped: result.skipped.length,
        },
        `slot ${slotAt}: run ${result.runId} planned for ${date}`,
      );
      log.info(
        {
          event: EVENTS.jobStarted,
          runId: result.runId,
          symbols: d.symbols.length,
          enqueued: result.enqueued.length,
          skipped: result.skipped.length,
          mode: d.mode,
          cap,
          driver: config.train.driver,
        },
        `run ${result.runId} started`,
      );
      return {
        slot,
        slotAt,
        date,
        runId: result.runId,
        duplicate: false,
        enqueued: result.enqueued,
        skipped: result.skipped.map((s) => s.symbol),
      };
    } catch (err) {
      await releaseSlot(redis, claim).catch(() => undefined);
      if (err instanceof RetrainError && !err.retryable) {
        throw new UnrecoverableError(`${err.code}: ${err.message}`);
      }
      throw err;
    }
  };
}
