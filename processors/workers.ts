import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { CapacityWaitProvider, capacityWaiting } from '../src/compute/capacityWait.js';
import { createProvider, vastClientFrom } from '../src/compute/factory.js';
import { InstancePool } from '../src/compute/pool.js';
import { PooledProvider } from '../src/compute/pooled.js';
import type { Config } from '../src/config/schema.js';
import { Ledger } from '../src/ledger/ledger.js';
import { redisProductionLock } from '../src/promotion/lock.js';
import { processNotifier } from '../src/notify/index.js';
import { createStore } from '../src/storage/index.js';
import type { LogHub } from '../src/telemetry/logger.js';
import { isRunCancelled } from '../src/train/runCancel.js';
import { RunSpend } from '../src/train/spend.js';
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
  const store = createStore(config.store);
  const ledger = new Ledger({
    redis: connection,
    prefix: config.queuePrefix,
    store,
    retentionDays: config.ledger.retentionDays,
    onMirrorError: (err: unknown) => logs.root.warn({ err: String(err) }, 'ledger mirror write failed'),
  });
  const spend = new RunSpend(connection, config.queuePrefix);
  // The train queue, for the pool (does a symbol wait for an instance?), the reaper and the
  // stuck-provisioning check.
  const trainQueue = new Queue(QUEUES.train, { connection, prefix: config.queuePrefix });
  // Failure alerts and the completion summary (Telegram when configured); sends never block a job.
  const notifier = processNotifier(config, logs);
  const onEvent = (event: string, data: Record<string, unknown>) => logs.root.info({ event, ...data }, event);
  const rented = await createProvider(config, {
    redis: connection,
    onEvent,
    ...(config.train.driver === 'vast'
      ? {
          // Symbols waiting to start, and those waiting for capacity: a freed instance is kept for them.
          symbolsWaiting: async (runId) => {
            const c = await trainQueue.getJobCounts('wait', 'prioritized', 'delayed');
            const capacity = await capacityWaiting(connection, config.queuePrefix, runId);
            return (c.wait ?? 0) + (c.prioritized ?? 0) + (c.delayed ?? 0) + capacity;
          },
        }
      : {}),
    bookIdle: (runId, usd) => spend.bookPoolIdle(runId, usd),
  });
  const pooled = rented instanceof PooledProvider ? rented : undefined;
  const freeSlotsPool = pooled ? new InstancePool(connection, config.queuePrefix) : undefined;
  // No offer is a wait, not a failure (vast): the symbol searches again until its wait limit.
  const provider =
    config.train.driver === 'vast'
      ? new CapacityWaitProvider({
          config,
          inner: rented,
          redis: connection,
          onEvent,
          ...(freeSlotsPool ? { freeSlots: (runId: string) => freeSlotsPool.freeSlots(runId) } : {}),
          onNoCapacity: (alert) => {
            logs.forDate(alert.date).warn({ event: 'capacity.none', ...alert }, `run ${alert.runId}: no GPU`);
            notifier.noCapacity?.(alert);
          },
        })
      : rented;
  const shutdown = new AbortController();
  const promoteQueue = new Queue(QUEUES.promote, { connection, prefix: config.queuePrefix });
  promoteQueue.on('error', (err) => logs.root.warn({ err: err.message }, 'promote queue error'));
  const base = workerOptions(config);

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
  // Production's lock on a connection of its own that fails fast: a lock that cannot be renewed
  // must be seen as lost, not wait for Redis to come back.
  const lockConnection = producerConnection(config.redisUrl);
  lockConnection.on('error', (err) => logs.root.warn({ err: err.message }, 'redis connection error (lock)'));
  const productionLock = redisProductionLock(lockConnection, config.queuePrefix);
  const promoteProcessor = createPromoteProcessor({ config, store, ledger, logs, lock: productionLock });
  const promote = new Worker(QUEUES.promote, promoteProcessor, {
    ...base,
    connection,
    concurrency: 4,
  });
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

  // The maintenance queue's repeatable jobs: the orphan reaper wherever Vast instances can exist,
  // and the check for train jobs stuck in PROVISIONING whatever the driver.
  const client =
    config.train.driver === 'vast' ? vastClientFrom(config, process.env, { redis: connection }) : undefined;
  const maintenanceQueue = new Queue(QUEUES.maintenance, { connection, prefix: config.queuePrefix });
  for (const q of [maintenanceQueue, trainQueue]) {
    q.on('error', (err) => logs.root.warn({ queue: q.name, err: err.message }, 'queue error'));
  }
  await scheduleMaintenance(maintenanceQueue, config);
  workers.push(
    new Worker(
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
      { ...base, connection, concurrency: 1 },
    ),
  );
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
        // Pending alerts (the last failures, the summary) get a short, bounded chance to go out.
        await notifier.flush(config.notify.telegram.flushTimeoutMs);
        await promoteQueue.close();
        await maintenanceQueue.close();
        await trainQueue.close();
        await provider.close?.().catch(() => undefined);
        await connection.quit().catch(() => connection.disconnect());
        await lockConnection.quit().catch(() => lockConnection.disconnect());
      })();
      return closing;
    },
  };
}
