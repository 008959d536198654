import { DelayedError, Queue, UnrecoverableError, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../src/config/schema.js';
import type { ComputeProvider } from '../src/compute/provider.js';
import { asRetrainError, CancelledError, RunCancelledError } from '../src/errors.js';
import { promoteJobId } from '../src/jobspec/build.js';
import type { Ledger } from '../src/ledger/ledger.js';
import type { Notifier } from '../src/notify/index.js';
import type { ArtifactStore } from '../src/storage/store.js';
import type { LogHub } from '../src/telemetry/logger.js';
import { attemptFailed, attemptHandedBack, attemptSucceeded } from '../src/train/attempt/record.js';
import type { RunSpend } from '../src/train/spend.js';
import { watchRunCancel } from '../src/train/runCancel.js';
import { trainSymbol } from '../src/train/trainSymbol.js';
import { sendTogether } from '../src/util/redisTogether.js';
import type { JobHandle, TrainJobData, TrainResult } from '../src/train/types.js';
import { promoteJobOptions } from '../queues/options.js';

export interface TrainProcessorDeps {
  config: Config;
  store: ArtifactStore;
  ledger: Ledger;
  provider: ComputeProvider;
  logs: LogHub;
  promoteQueue: Queue;
  spend?: RunSpend;
  /** Whether the user cancelled a run or this symbol of it (src/train/runCancel.ts); watched while a job runs. */
  isRunCancelled?: (runId: string, symbol: string) => Promise<boolean>;
  /** Aborted when the worker shuts down gracefully. */
  shutdown: AbortSignal;
  /** Told when a symbol finally fails (a grouped alert); never blocks. */
  notifier?: Notifier;
  /**
   * The connection the train worker and the ledger share: a state change's writes leave on it in
   * one write (src/util/redisTogether.ts).
   */
  connection?: Redis;
}

function handleFor(job: Job<TrainJobData>, connection: Redis | undefined): JobHandle {
  return {
    get data() {
      return job.data;
    },
    attempt: job.attemptsMade + 1,
    maxAttempts: job.opts.attempts ?? 1,
    save: async (patch) => {
      await job.updateData({ ...job.data, ...patch });
    },
    progress: async (p) => {
      await job.updateProgress(p);
    },
    log: async (line) => {
      await job.log(line);
    },
    ...(connection ? { together: <T>(issue: () => T) => sendTogether(connection, issue) } : {}),
  };
}

/**
 * The `train` processor: thin. It adapts the BullMQ job, runs the state machine, records the
 * outcome in the ledger, hands successes to the promotion queue, and maps errors: non-retryable →
 * UnrecoverableError; shutdown → hand the job back (delayed, no stall, remote training untouched).
 */
export function createTrainProcessor(deps: TrainProcessorDeps) {
  return async (job: Job<TrainJobData>, token?: string): Promise<TrainResult> => {
    const spec = job.data.spec;
    const logger = deps.logs.forDate(spec.date);
    const handle = handleFor(job, deps.connection);
    const log = logger.child({ runId: job.data.runId, symbol: spec.symbol, jobId: spec.jobId });
    try {
      const watch = deps.isRunCancelled
        ? watchRunCancel(() => deps.isRunCancelled!(job.data.runId, spec.symbol), deps.config.train.pollMs)
        : undefined;
      await watch?.checked;
      let result: TrainResult;
      try {
        result = await trainSymbol(handle, {
          ...deps,
          logger,
          signal: deps.shutdown,
          ...(watch ? { cancel: watch.signal } : {}),
        });
      } finally {
        watch?.stop();
      }
      const promote = spec.promote !== 'off';
      await attemptSucceeded({ ledger: deps.ledger, log, spec }, result, promote);
      if (promote) {
        const id = promoteJobId(spec.symbol, spec.date);
        const old = await deps.promoteQueue.getJob(id);
        if (old && ['completed', 'failed'].includes(await old.getState())) await old.remove();
        await deps.promoteQueue.add(
          'promote',
          {
            symbol: spec.symbol,
            date: spec.date,
            jobId: spec.jobId,
            mode: spec.promote,
            canary: spec.canary,
            runId: job.data.runId,
            ...(spec.dataSource === 'synthetic' ? { synthetic: true } : {}),
          },
          promoteJobOptions(deps.config, id),
        );
      }
      return result;
    } catch (raw) {
      if (raw instanceof CancelledError || (deps.shutdown.aborted && !(raw instanceof RunCancelledError))) {
        // Graceful hand-over: another worker picks the job up and reattaches.
        attemptHandedBack({ log, spec });
        await job.moveToDelayed(Date.now() + 1000, token);
        throw new DelayedError();
      }
      const err = asRetrainError(raw);
      const attempt = job.attemptsMade + 1;
      const final = !err.retryable || attempt >= (job.opts.attempts ?? 1);
      await attemptFailed({ ledger: deps.ledger, log, spec }, err, attempt, final);
      const failure = {
        runId: job.data.runId,
        date: spec.date,
        symbol: spec.symbol,
        reason: err.code,
        message: err.message,
        attempts: attempt,
      };
      if (final) deps.notifier?.symbolFailed(failure);
      else if (err.code === 'hung') deps.notifier?.attemptHung(failure);
      if (!err.retryable) throw new UnrecoverableError(`${err.code}: ${err.message}`);
      throw err;
    }
  };
}
