import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { vastClientFrom } from '../src/compute/factory.js';
import { InstancePool } from '../src/compute/pool.js';
import { PooledProvider } from '../src/compute/pooled.js';
import type { ComputeProvider } from '../src/compute/provider.js';
import type { Config } from '../src/config/schema.js';
import { redisProductionLock } from '../src/promotion/lock.js';
import { processNotifier, type Notifier } from '../src/notify/index.js';
import { createRuntime, type Runtime } from '../src/runtime.js';
import type { RunSpend } from '../src/train/spend.js';
import type { LogHub } from '../src/telemetry/logger.js';
import { isRunCancelled } from '../src/train/runCancel.js';
import { producerConnection, workerConnection } from '../queues/connection.js';
import { QUEUES } from '../queues/names.js';
import { workerOptions } from '../queues/options.js';
import { scheduleMaintenance } from '../queues/maintenance.js';
import { createFinalizeProcessor } from './finalize.js';
import { createMaintenanceProcessor } from './reaper.js';
import { createPromoteProcessor } from './promote.js';
import { createTrainProcessor } from './train.js';
import { createScheduledRunProcessor } from './scheduledRun.js';

export interface RunningWorkers {
  /** Graceful: stop taking jobs, hand running trainings back, wait up to the grace period. */
  close(): Promise<void>;
  workers: Worker[];
}

/** Starts the train, promote and finalize-run workers of one process. */
export async function startWorkers(config: Config, logs: LogHub): Promise<RunningWorkers> {
  const connection: Redis = workerConnection(config.redisUrl);
  connection.on('error', (err) => logs.root.warn({ err: err.message }, 'redis connection error'));
  const runtime = createRuntime(config, {
    redis: connection,
    onMirrorError: (err: unknown) => logs.root.warn({ err: String(err) }, 'ledger mirror write failed'),
  });
  const { store, ledger, spend } = runtime;
  // The train queue, for the pool (does a symbol wait for an instance?), the reaper and the
  // stuck-provisioning check.
  const trainQueue = new Queue(QUEUES.train, { connection, prefix: config.queuePrefix });
  const provider = await trainProvider(runtime, logs, trainQueue);
  const pooled = provider instanceof PooledProvider ? provider : undefined;
  const shutdown = new AbortController();
  const promoteQueue = new Queue(QUEUES.promote, { connection, prefix: config.queuePrefix });
  promoteQueue.on('error', (err) => logs.root.warn({ err: err.message }, 'promote queue error'));
  const base = workerOptions(config);
  // Failure alerts and the completion summary (Telegram when configured); sends never block a job.
  const notifier = processNotifier(config, logs);

  const train = new Worker(
    QUEUES.train,
    createTrainProcessor({
      config,
      store,
      ledger,
      provider,
      logs,
      promoteQueue,
      spend,
      isRunCancelled: (runId) => isRunCancelled(connection, config.queuePrefix, runId),
      shutdown: shutdown.signal,
      notifier,
    }),
    { ...base, connection, concurrency: config.train.workerConcurrency },
  );
  const { worker: promote, lockConnection } = startPromote(config, logs, runtime, connection);
  const finalize = new Worker(
    QUEUES.finalize,
    createFinalizeProcessor({
      store,
      ledger,
      logs,
      notifier,
      ...(pooled
        ? { drainPool: (runId) => pooled.drainRun(runId), poolIdleUsd: (runId) => spend.poolIdle(runId) }
        : {}),
    }),
    {
      ...base,
      connection,
      concurrency: 2,
    },
  );
  // The daily job scheduler's jobs (registered by `retrain scheduler`): each plans one run.
  const scheduled = new Worker(
    QUEUES.scheduler,
    createScheduledRunProcessor({ config, redis: connection, store, ledger, logs }),
    { ...base, connection, concurrency: 1 },
  );
  const workers: Worker[] = [train, promote, finalize, scheduled];

  const maintenance = await startMaintenance({
    config,
    logs,
    connection,
    notifier,
    trainQueue,
    pooled,
    spend,
  });
  workers.push(maintenance.worker);
  for (const w of workers) {
    // Listeners never throw (a throwing listener leaks memory in BullMQ).
    w.on('error', (err) => logs.root.warn({ queue: w.name, err: err.message }, 'worker error'));
  }

  let closing: Promise<void> | undefined;
  return {
    workers,
    close() {
      closing ??= closeAll({
        config,
        shutdown,
        workers,
        notifier,
        queues: [promoteQueue, maintenance.queue, trainQueue],
        provider,
        connections: [connection, lockConnection],
      });
      return closing;
    },
  };
}

/** The configured driver's provider; a pool asks how many symbols wait for an instance. */
function trainProvider(runtime: Runtime, logs: LogHub, trainQueue: Queue): Promise<ComputeProvider> {
  return runtime.provider({
    onEvent: (event, data) => logs.root.info({ event, ...data }, event),
    ...(runtime.config.train.driver === 'vast'
      ? {
          symbolsWaiting: async () => {
            const c = await trainQueue.getJobCounts('wait', 'prioritized', 'delayed');
            return (c.wait ?? 0) + (c.prioritized ?? 0) + (c.delayed ?? 0);
          },
        }
      : {}),
  });
}

/**
 * The promote worker. Production's lock is on a connection of its own that fails fast: a lock that
 * cannot be renewed must be seen as lost, not wait for Redis to come back.
 */
function startPromote(
  config: Config,
  logs: LogHub,
  runtime: Runtime,
  connection: Redis,
): { worker: Worker; lockConnection: Redis } {
  const lockConnection = producerConnection(config.redisUrl);
  lockConnection.on('error', (err) => logs.root.warn({ err: err.message }, 'redis connection error (lock)'));
  const lock = redisProductionLock(lockConnection, config.queuePrefix);
  const { store, ledger } = runtime;
  const worker = new Worker(QUEUES.promote, createPromoteProcessor({ config, store, ledger, logs, lock }), {
    ...workerOptions(config),
    connection,
    concurrency: 4,
  });
  return { worker, lockConnection };
}

/**
 * Graceful: stop taking jobs and hand running trainings back, waiting up to the grace period (then
 * forcing); pending alerts get a short, bounded chance to go out; then everything is closed.
 */
async function closeAll(d: {
  config: Config;
  shutdown: AbortController;
  workers: Worker[];
  notifier: Notifier;
  queues: Queue[];
  provider: ComputeProvider;
  connections: Redis[];
}): Promise<void> {
  const { config, workers } = d;
  d.shutdown.abort();
  const graceful = Promise.all(workers.map((w) => w.close()));
  const timer = new Promise<'timeout'>((r) =>
    setTimeout(() => r('timeout'), config.worker.shutdownGraceMs).unref(),
  );
  if ((await Promise.race([graceful.then(() => 'ok' as const), timer])) === 'timeout') {
    await Promise.all(workers.map((w) => w.close(true)));
  }
  await d.notifier.flush(config.notify.telegram.flushTimeoutMs);
  for (const q of d.queues) await q.close();
  await d.provider.close?.().catch(() => undefined);
  for (const c of d.connections) await c.quit().catch(() => c.disconnect());
}

/**
 * The maintenance queue's repeatable jobs: the orphan reaper wherever Vast instances can exist,
 * and the check for train jobs stuck in PROVISIONING whatever the driver.
 */
async function startMaintenance(d: {
  config: Config;
  logs: LogHub;
  connection: Redis;
  notifier: Notifier;
  trainQueue: Queue;
  pooled: PooledProvider | undefined;
  spend: RunSpend;
}): Promise<{ worker: Worker; queue: Queue }> {
  const { config, logs, connection, notifier, trainQueue, pooled, spend } = d;
  const client = config.train.driver === 'vast' ? vastClientFrom(config) : undefined;
  const maintenanceQueue = new Queue(QUEUES.maintenance, { connection, prefix: config.queuePrefix });
  for (const q of [maintenanceQueue, trainQueue]) {
    q.on('error', (err) => logs.root.warn({ queue: q.name, err: err.message }, 'queue error'));
  }
  await scheduleMaintenance(maintenanceQueue, config);
  const worker = new Worker(
    QUEUES.maintenance,
    createMaintenanceProcessor({
      config,
      client,
      trainQueue,
      log: logs.root,
      redis: connection,
      notifier,
      logs,
      ...(pooled
        ? {
            pool: new InstancePool(connection, config.queuePrefix),
            bookIdle: (runId: string, usd: number) => spend.bookPoolIdle(runId, usd),
          }
        : {}),
    }),
    { ...workerOptions(config), connection, concurrency: 1 },
  );
  return { worker, queue: maintenanceQueue };
}
