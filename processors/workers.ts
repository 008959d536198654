import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { vastClientFrom } from '../src/compute/factory.js';
import { InstancePool } from '../src/compute/pool.js';
import { PooledProvider } from '../src/compute/pooled.js';
import type { Config } from '../src/config/schema.js';
import { redisProductionLock } from '../src/promotion/lock.js';
import { processNotifier, type Notifier } from '../src/notify/index.js';
import { createRuntime } from '../src/runtime.js';
import { watchDependencies, type DependencyWatch } from '../src/telemetry/dependencies.js';
import type { HealthSources } from '../src/telemetry/healthServer.js';
import type { LogHub } from '../src/telemetry/logger.js';
import { isStoreOutage, reportingStore } from '../src/storage/reporting.js';
import { closeRedis, untracked, type CloseStep } from '../src/util/close.js';
import { isRunCancelled } from '../src/train/runCancel.js';
import type { RunSpend } from '../src/train/spend.js';
import { producerConnection, workerConnection } from '../queues/connection.js';
import { QUEUES } from '../queues/names.js';
import { workerOptions } from '../queues/options.js';
import { scheduleMaintenance } from '../queues/maintenance.js';
import { createFinalizeProcessor } from './finalize.js';
import { createMaintenanceProcessor } from './reaper.js';
import { createPromoteProcessor } from './promote.js';
import { createTrainProcessor } from './train.js';
import { createScheduledRunProcessor } from './scheduledRun.js';
import { workerHealth } from './health.js';

export interface RunningWorkers {
  /**
   * Graceful: stop taking jobs, hand running trainings back, wait up to the grace period. `step`
   * names each part, so that a bounded shutdown can say which one never finished.
   */
  close(step?: CloseStep): Promise<void>;
  workers: Worker[];
  /** Redis, S3 and Vast outages, each reported once (not per queue and retry). */
  dependencies: DependencyWatch;
  /** For /healthz and /metrics (processors/health.ts). */
  health: HealthSources;
}

/** Starts the train, promote and finalize-run workers of one process. */
export async function startWorkers(config: Config, logs: LogHub): Promise<RunningWorkers> {
  const deps = watchDependencies(config, logs.root);
  const connection: Redis = workerConnection(config.redisUrl);
  deps.redis.watch(connection, 'redis connection');
  const s3 = deps.s3;
  const runtime = createRuntime(config, {
    redis: connection,
    ...(s3 ? { wrapStore: (s) => reportingStore(s, s3) } : {}),
    // An unreachable store is already told once by its outage reporter.
    onMirrorError: (err: unknown) => {
      if (!isStoreOutage(err)) logs.root.warn({ err: String(err) }, 'ledger mirror write failed');
    },
  });
  const { store, ledger, spend } = runtime;
  // The train queue, for the pool (does a symbol wait for an instance?), the reaper and the
  // stuck-provisioning check.
  const trainQueue = new Queue(QUEUES.train, { connection, prefix: config.queuePrefix });
  const provider = await runtime.provider({
    onEvent: (event, data) => logs.root.info({ event, ...data }, event),
    ...(config.train.driver === 'vast'
      ? {
          symbolsWaiting: async () => {
            const c = await trainQueue.getJobCounts('wait', 'prioritized', 'delayed');
            return (c.wait ?? 0) + (c.prioritized ?? 0) + (c.delayed ?? 0);
          },
        }
      : {}),
    ...(deps.vast ? { vastOutage: deps.vast } : {}),
  });
  const pooled = provider instanceof PooledProvider ? provider : undefined;
  const shutdown = new AbortController();
  const promoteQueue = new Queue(QUEUES.promote, { connection, prefix: config.queuePrefix });
  deps.redis.watch(promoteQueue, 'promote queue');
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
  // Production's lock on a connection of its own that fails fast: a lock that cannot be renewed
  // must be seen as lost, not wait for Redis to come back.
  const lockConnection = producerConnection(config.redisUrl);
  deps.redis.watch(lockConnection, 'redis connection (lock)');
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

  const maintenance = await startMaintenance({
    config,
    logs,
    connection,
    notifier,
    trainQueue,
    pooled,
    spend,
    deps,
  });
  workers.push(maintenance.worker);
  for (const w of workers) {
    // Listeners never throw (a throwing listener leaks memory in BullMQ).
    deps.redis.watch(w, `worker ${w.name}`);
  }

  let closing: Promise<void> | undefined;
  return {
    workers,
    dependencies: deps,
    health: workerHealth({ redis: deps.redis, workers, outages: deps.all }),
    close(step = untracked) {
      shutdown.abort();
      closing ??= closeAll({
        config,
        workers,
        notifier,
        queues: [promoteQueue, maintenance.queue, trainQueue],
        provider,
        connections: [connection, lockConnection],
        deps,
        step,
      });
      return closing;
    },
  };
}

/** The close of startWorkers' parts, each step named for a bounded shutdown (src/cli/shutdown.ts). */
async function closeAll(p: {
  config: Config;
  workers: Worker[];
  notifier: { flush(timeoutMs: number): Promise<unknown> };
  queues: Queue[];
  provider: { close?(): Promise<void> };
  connections: [Redis, Redis];
  deps: DependencyWatch;
  step: CloseStep;
}): Promise<void> {
  const { config, workers, step } = p;
  const graceful = Promise.all(workers.map((w) => step(`${w.name} worker`, () => w.close())));
  const timer = new Promise<'timeout'>((r) =>
    setTimeout(() => r('timeout'), config.worker.shutdownGraceMs).unref(),
  );
  if ((await Promise.race([graceful.then(() => 'ok' as const), timer])) === 'timeout') {
    await Promise.all(workers.map((w) => step(`${w.name} worker`, () => w.close(true))));
  }
  // Pending alerts (the last failures, the summary) get a short, bounded chance to go out.
  await step('notifier', () => p.notifier.flush(config.notify.telegram.flushTimeoutMs));
  for (const q of p.queues) await step(`${q.name} queue`, () => q.close());
  await step('compute provider', async () => p.provider.close?.().catch(() => undefined));
  await step('redis connection', () => closeRedis(p.connections[0]));
  await step('redis connection (lock)', () => closeRedis(p.connections[1]));
  p.deps.close();
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
  deps: DependencyWatch;
}): Promise<{ worker: Worker; queue: Queue }> {
  const { config, logs, connection, notifier, trainQueue, pooled, spend, deps } = d;
  const client = config.train.driver === 'vast' ? vastClientFrom(config, process.env, deps.vast) : undefined;
  const maintenanceQueue = new Queue(QUEUES.maintenance, { connection, prefix: config.queuePrefix });
  for (const q of [maintenanceQueue, trainQueue]) {
    deps.redis.watch(q, `queue ${q.name}`);
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
