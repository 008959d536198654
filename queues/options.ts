import type { JobsOptions, WorkerOptions } from 'bullmq';
import type { Config } from '../src/config/schema.js';
import type { JobSpec } from '../src/jobspec/types.js';
import { JITTERED, jitteredDelay } from './backoff.js';

/** Job options of one symbol's `train` job, child of the run's finalize-run job. */
export function trainJobOptions(config: Config, spec: JobSpec): JobsOptions {
  return {
    jobId: spec.jobId,
    attempts: spec.retries + 1,
    backoff: { type: JITTERED, delay: config.train.backoffMs },
    // A symbol that finally fails must not block the run's summary.
    ignoreDependencyOnFailure: true,
    keepLogs: config.retention.keepLogs,
    removeOnComplete: { age: config.retention.completedAgeSec, count: config.retention.completedCount },
    removeOnFail: { age: config.retention.failedAgeSec },
  };
}

export function promoteJobOptions(config: Config, jobId: string): JobsOptions {
  return {
    jobId,
    attempts: 3,
    backoff: { type: JITTERED, delay: 2000 },
    removeOnComplete: { age: config.retention.completedAgeSec, count: config.retention.completedCount },
    removeOnFail: { age: config.retention.failedAgeSec },
  };
}

export function finalizeJobOptions(config: Config, jobId: string): JobsOptions {
  return {
    jobId,
    attempts: 5,
    backoff: { type: JITTERED, delay: 2000 },
    removeOnComplete: { age: config.retention.completedAgeSec, count: config.retention.completedCount },
    removeOnFail: { age: config.retention.failedAgeSec },
  };
}

/**
 * Worker settings for trainings that last hours: a short lock renewed in the background (a dead
 * worker is noticed within ~lockDuration + stalledInterval) and several allowed stalls, because every
 * orchestrator restart during one training counts as one. See docs/failure-model.md.
 */
export function workerOptions(config: Config): Omit<WorkerOptions, 'connection'> {
  return {
    prefix: config.queuePrefix,
    lockDuration: config.worker.lockDurationMs,
    stalledInterval: config.worker.stalledIntervalMs,
    maxStalledCount: config.worker.maxStalledCount,
    settings: {
      backoffStrategy: (attemptsMade: number, type?: string, _err?: Error, job?: { opts?: JobsOptions }) => {
        const opt = job?.opts?.backoff;
        const base = typeof opt === 'object' && opt.delay !== undefined ? opt.delay : config.train.backoffMs;
        if (type === JITTERED) return jitteredDelay(attemptsMade, base);
        return base;
      },
    },
  };
}
