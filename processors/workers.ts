import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { CapacityWaitProvider, capacityWaiting } from '../src/compute/capacityWait.js';
import { vastClientFrom } from '../src/compute/factory.js';
import { InstancePool } from '../src/compute/pool.js';
import { PooledProvider } from '../src/compute/pooled.js';
import type { ComputeProvider } from '../src/compute/provider.js';
import type { Config } from '../src/config/schema.js';
import { redisProductionLock } from '../src/promotion/lock.js';
import { processNotifier, type Notifier } from '../src/notify/index.js';
import { createRuntime, type Runtime } from '../src/runtime.js';
import type { RunSpend } from '../src/train/spend.js';
import type { ArtifactStore } from '../src/storage/store.js';
import { watchDependencies, type DependencyWatch } from '../src/telemetry/dependencies.js';
import type { HealthSources } from '../src/telemetry/healthServer.js';
import type { LogHub } from '../src/telemetry/logger.js';
import { isStoreOutage, reportingStore } from '../src/storage/reporting.js';
import { closeRedis, untracked, type CloseStep } from '../src/util/close.js';
import { isAttemptCancelled } from '../src/train/runCancel.js';
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
import { fixHeapGrowth } from '../src/util/heapGrowth.js';

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
  // A worker lives for days with a small heap: left to itself, V8 collects it in full every ~0.5 s
  // of a busy run (src/util/heapGrowth.ts).
  fixHeapGrowth();
  const deps = watchDependencies(config, logs.root);
  const connection: Redis = workerConnection(config.redisUrl);
  deps.redis.watch(connection, 'redis connection');
  const s3 = deps.s3;
  const runtime = createRuntime(config, {
    redis: connection,
    ...(s3 ? { wrapStore: (store: ArtifactStore) => reportingStore(store, s3) } : {}),
    // An unreachable store is already told once by its outage reporter.
    onMirrorError: (err: unknown) => {
      if (!isStoreOutage(err)) logs.root.warn({ err: String(err) }, 'ledger mirror write failed');
    },
  });
  const { store, ledger, spend } = runtime;
  // The train queue, for the pool (does a symbol wait for an instance?), the reaper and the
  // stuck-provisioning check.
  const trainQueue = new Queue(QUEUES.train, { connection, prefix: config.queuePrefix });
  // Failure alerts and the completion summary (Telegram when configured); sends never block a job.
  const notifier = processNotifier(config, logs);
  const { provider, pooled } = await trainProvider(runtime, logs, { trainQueue, notifier, deps });
  const shutdown = new AbortController();
  const promoteQueue = new Queue(QUEUES.promote, { connection, prefix: config.queuePrefix });
  deps.redis.watch(promoteQueue, 'promote queue');
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
      isRunCancelled: (runId, symbol) => isAttemptCancelled(connection, config.queuePrefix, runId, symbol),
      shutdown: shutdown.signal,
      notifier,
      connection,
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
    deps,
    connection,
    notifier,
    trainQueue,
    pooled,
    spend,
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
  deps: DependencyWatch;
  connection: Redis;
  notifier: Notifier;
  trainQueue: Queue;
  pooled: PooledProvider | undefined;
  spend: RunSpend;
}): Promise<{ worker: Worker; queue: Queue }> {
  const { config, logs, deps, connection, notifier, trainQueue, pooled, spend } = d;
  const client =
    config.train.driver === 'vast'
      ? vastClientFrom(config, process.env, {
          redis: connection,
          ...(deps.vast ? { outage: deps.vast } : {}),
        })
      : undefined;
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

/**
 * The compute provider the train worker uses: the configured one, and for vast the capacity wait in
 * front of it (no offer is a wait, not a failure: src/compute/capacityWait.ts). `pooled`: the pool,
 * when on (the finalize processor drains it).
 */
async function trainProvider(
  runtime: Runtime,
  logs: LogHub,
  d: { trainQueue: Queue; notifier: Notifier; deps: DependencyWatch },
): Promise<{ provider: ComputeProvider; pooled: PooledProvider | undefined }> {
  const { config, redis } = runtime;
  const { trainQueue, notifier, deps } = d;
  const onEvent = (event: string, data: Record<string, unknown>) => logs.root.info({ event, ...data }, event);
  const rented = await runtime.provider({
    onEvent,
    ...(config.train.driver === 'vast'
      ? {
          // Symbols waiting to start, and those waiting for capacity: a freed instance is kept for them.
          symbolsWaiting: async (runId) => {
            const c = await trainQueue.getJobCounts('wait', 'prioritized', 'delayed');
            const capacity = await capacityWaiting(redis, config.queuePrefix, runId);
            return (c.wait ?? 0) + (c.prioritized ?? 0) + (c.delayed ?? 0) + capacity;
          },
        }
      : {}),
    ...(deps.vast ? { vastOutage: deps.vast } : {}),
  });
  const pooled = rented instanceof PooledProvider ? rented : undefined;
  if (config.train.driver !== 'vast') return { provider: rented, pooled };
  const pool = pooled ? new InstancePool(redis, config.queuePrefix) : undefined;
  const provider = new CapacityWaitProvider({
    config,
    inner: rented,
    redis,
    onEvent,
    ...(pool ? { freeSlots: (runId: string) => pool.freeSlots(runId) } : {}),
    onNoCapacity: (alert) => {
      logs.forDate(alert.date).warn({ event: 'capacity.none', ...alert }, `run ${alert.runId}: no GPU`);
      notifier.noCapacity?.(alert);
    },
  });
  return { provider, pooled };
}
