import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { LocalProvider } from '../src/compute/local.js';
import type { ComputeProvider } from '../src/compute/provider.js';
import type { Config } from '../src/config/schema.js';
import { InputError } from '../src/errors.js';
import { Ledger } from '../src/ledger/ledger.js';
import { createStore } from '../src/storage/index.js';
import { SECRET_ENV_NAMES, type LogHub } from '../src/telemetry/logger.js';
import { join } from 'node:path';
import { workerConnection } from '../queues/connection.js';
import { QUEUES } from '../queues/names.js';
import { workerOptions } from '../queues/options.js';
import { createFinalizeProcessor } from './finalize.js';
import { createPromoteProcessor } from './promote.js';
import { createTrainProcessor } from './train.js';

export interface RunningWorkers {
  /** Graceful: stop taking jobs, hand running trainings back, wait up to the grace period. */
  close(): Promise<void>;
  workers: Worker[];
}

function trainingBaseEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of [...SECRET_ENV_NAMES, 'REDIS_URL']) delete env[name];
  return env;
}

export function providerFor(config: Config): ComputeProvider {
  switch (config.train.driver) {
    case 'local':
      // Trainings get the worker's environment minus the orchestrator's own secrets; a recipe's
      // declared secrets are added per run.
      return new LocalProvider({ root: join(config.home, 'models'), baseEnv: trainingBaseEnv() });
    default:
      throw new InputError(
        `driver ${config.train.driver} is not available in this version (use --driver local)`,
      );
  }
}

/** Starts the train, promote and finalize-run workers of one process. */
export function startWorkers(config: Config, logs: LogHub): RunningWorkers {
  const connection: Redis = workerConnection(config.redisUrl);
  connection.on('error', (err) => logs.root.warn({ err: err.message }, 'redis connection error'));
  const store = createStore(config.store);
  const ledger = new Ledger({
    redis: connection,
    prefix: config.queuePrefix,
    store,
    onMirrorError: (err: unknown) => logs.root.warn({ err: String(err) }, 'ledger mirror write failed'),
  });
  const provider = providerFor(config);
  const shutdown = new AbortController();
  const promoteQueue = new Queue(QUEUES.promote, { connection, prefix: config.queuePrefix });
  const base = workerOptions(config);

  const train = new Worker(
    QUEUES.train,
    createTrainProcessor({ config, store, ledger, provider, logs, promoteQueue, shutdown: shutdown.signal }),
    { ...base, connection, concurrency: config.train.workerConcurrency },
  );
  const promote = new Worker(QUEUES.promote, createPromoteProcessor({ config, store, ledger, logs }), {
    ...base,
    connection,
    concurrency: 4,
  });
  const finalize = new Worker(QUEUES.finalize, createFinalizeProcessor({ store, ledger, logs }), {
    ...base,
    connection,
    concurrency: 2,
  });
  const workers = [train, promote, finalize];
  for (const w of workers) {
    // Listeners never throw (a throwing listener leaks memory in BullMQ).
    w.on('error', (err) => logs.root.warn({ queue: w.name, err: err.message }, 'worker error'));
  }

  let closing: Promise<void> | undefined;
  return {
    workers,
    close() {
      closing ??= (async () => {
        shutdown.abort();
        const graceful = Promise.all(workers.map((w) => w.close()));
        const timer = new Promise<'timeout'>((r) =>
          setTimeout(() => r('timeout'), config.worker.shutdownGraceMs).unref(),
        );
        if ((await Promise.race([graceful.then(() => 'ok' as const), timer])) === 'timeout') {
          await Promise.all(workers.map((w) => w.close(true)));
        }
        await promoteQueue.close();
        await connection.quit().catch(() => connection.disconnect());
      })();
      return closing;
    },
  };
}
