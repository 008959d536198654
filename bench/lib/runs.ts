/**
 * One run of the real pipeline in this process, as `retrain run` does it (plan, enqueue, workers,
 * wait), and the timings of its train jobs read back from BullMQ afterwards.
 */
import { Spawner } from '../../src/remote/spawner.js';
import { readFile } from 'node:fs/promises';
import { Queue, Worker } from 'bullmq';
import { producerConnection, workerConnection } from '../../queues/connection.js';
import { enqueueRun } from '../../queues/enqueue.js';
import { QUEUES } from '../../queues/names.js';
import { waitForRun } from '../../queues/waitRun.js';
import { startWorkers } from '../../processors/workers.js';
import { stateDurations } from '../../dashboards/stateDurations.js';
import type { Config } from '../../src/config/schema.js';
import { buildFeaturesV1, featuresToCsv } from '../../src/data/features.js';
import { generateOhlcv } from '../../src/data/synthetic.js';
import { Ledger } from '../../src/ledger/ledger.js';
import { concurrencyCap } from '../../src/plan/concurrency.js';
import { planRun } from '../../src/plan/planRun.js';
import { createStore } from '../../src/storage/index.js';
import { keys } from '../../src/storage/layout.js';
import type { ArtifactStore } from '../../src/storage/store.js';
import { LogHub } from '../../src/telemetry/logger.js';
import { join } from 'node:path';
import { REPO, say, sleep } from './world.js';

export const BENCH_DATE = '20260105';

/**
 * Stores one features file per symbol for `date`. The bytes are one real FeatureBuilderV1 file
 * (built once from synthetic bars, cut to its first `rows` rows when given) copied under every
 * symbol: building 1,000 synthetic histories would take over a minute and measure nothing the
 * benchmarks are about.
 */
export async function seedFeatures(
  store: ArtifactStore,
  symbols: string[],
  date: string,
  rows?: number,
): Promise<number> {
  let csv = featuresToCsv(buildFeaturesV1(generateOhlcv('BTCUSDT', date)));
  if (rows !== undefined)
    csv =
      csv
        .split('\n')
        .slice(0, rows + 1)
        .join('\n') + '\n';
  for (const s of symbols) await store.putBytes(keys.features('v1', s, date), csv);
  return Buffer.byteLength(csv);
}

export interface JobTiming {
  symbol: string;
  jobId: string;
  /** finishedOn - processedOn of the train job. */
  jobMs: number;
  /** The recipe's own run time (BENCH_RECIPE_US line), 0 when not found. */
  recipeMs: number;
  processedOn: number;
  finishedOn: number;
  /** Seconds per state, from the job log's state lines. */
  states: Record<string, number>;
}

export interface RunTimings {
  jobs: JobTiming[];
  failed: string[];
  enqueueMs: number;
  /** Epoch ms when the run was enqueued. */
  enqueuedAt: number;
  planMs: number;
  wallMs: number;
  /** CPU time of this process while the workers ran (user + system). */
  cpuMs: number;
  /** Of cpuMs, the main thread's (mainThreadCpuMs). */
  mainCpuMs: number;
  /** CPU time of the commands it ran and waited for (bash, sha256sum, tar, ...; not run.sh) and of the helper starting them. */
  childCpuMs: number;
}

/**
 * User + system CPU of this process's main thread (JavaScript, and the system calls it makes
 * itself), from /proc (Linux; NaN elsewhere). The rest of the process's CPU is its helper threads:
 * libuv's pool (file operations) and V8's (garbage collection, compilation).
 */
export async function mainThreadCpuMs(): Promise<number> {
  try {
    const stat = await readFile(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return NaN;
  }
}

/**
 * User + system CPU of the waited-for children of this process and of the local driver's command
 * helper (src/remote/spawner.ts) with its children, from /proc (Linux; 0 elsewhere).
 */
export async function childCpuMs(): Promise<number> {
  const ticks = async (pid: number | 'self', own: boolean): Promise<number> => {
    try {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // Fields 14-17 of stat (utime, stime, cutime, cstime), counted from the state field (3) here.
      const children = Number(fields[13]) + Number(fields[14]);
      return own ? Number(fields[11]) + Number(fields[12]) + children : children;
    } catch {
      return 0;
    }
  };
  const helper = Spawner.shared().helperPid;
  const total = (await ticks('self', false)) + (helper ? await ticks(helper, true) : 0);
  return (total * 1000) / 100;
}

/** Plans, enqueues and runs one run with workers in this process; returns its train jobs' timings. */
export async function runPipeline(
  config: Config,
  symbols: string[],
  opts: { cap: number; date?: string; recipe: string; vars?: Record<string, string> },
): Promise<RunTimings> {
  const date = opts.date ?? BENCH_DATE;
  const store = createStore(config.store);
  const logs = new LogHub({ home: config.home, level: config.log.level, stdout: false });
  const redis = producerConnection(config.redisUrl);
  redis.on('error', () => undefined);
  const ledger = new Ledger({
    redis,
    prefix: config.queuePrefix,
    store,
    retentionDays: config.ledger.retentionDays,
  });
  const trainQueue = new Queue(QUEUES.train, { connection: redis, prefix: config.queuePrefix });
  try {
    let t = performance.now();
    const plan = await planRun(
      {
        symbols,
        date,
        featureset: 'v1',
        driver: config.train.driver,
        recipe: opts.recipe,
        vars: opts.vars ?? {},
        timeoutMinutes: 10,
        retries: 0,
        promote: 'off',
        canary: false,
        force: false,
        ensureFeatures: false,
      },
      { config, store, ledger },
    );
    const planMs = performance.now() - t;
    if (plan.specs.length !== symbols.length)
      throw new Error(
        `planned ${plan.specs.length} of ${symbols.length} symbols: ${plan.skipped[0]?.message}`,
      );
    const cap = concurrencyCap({
      mode: 'hybrid',
      symbols: plan.specs.length,
      maxInstances: config.train.maxInstances,
      maxConcurrent: opts.cap,
      gpu: false,
    });
    t = performance.now();
    const enqueuedAt = Date.now();
    const enq = await enqueueRun({
      config,
      redis,
      ledger,
      plan,
      symbols,
      mode: 'hybrid',
      cap,
      force: false,
    });
    const enqueueMs = performance.now() - t;
    t = performance.now();
    const cpu0 = process.cpuUsage();
    const child0 = await childCpuMs();
    const main0 = await mainThreadCpuMs();
    const workers = await startWorkers(config, logs);
    let outcome;
    try {
      outcome = await waitForRun({
        config,
        redis,
        ledger,
        finalizeJobId: enq.finalizeJobId,
        date,
        pollMs: 200,
      });
    } finally {
      await workers.close();
    }
    const wallMs = performance.now() - t;
    const cpu = process.cpuUsage(cpu0);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    const childMs = (await childCpuMs()) - child0;
    const mainMs = (await mainThreadCpuMs()) - main0;
    const failed = Object.values(outcome.ledger)
      .filter((e) => e.status !== 'success')
      .map((e) => `${e.symbol}: ${e.status} ${e.reason ?? ''} ${e.error?.message ?? ''}`);

    const jobs: JobTiming[] = [];
    for (const spec of plan.specs) {
      const job = await trainQueue.getJob(spec.jobId);
      if (!job?.processedOn || !job.finishedOn) continue;
      const { logs: lines } = await trainQueue.getJobLogs(spec.jobId, 0, -1);
      let recipeMs = 0;
      for (const l of lines) {
        const m = /BENCH_RECIPE_US (\d+) (\d+)/.exec(l);
        if (m) recipeMs = (Number(m[2]) - Number(m[1])) / 1000;
      }
      const states: Record<string, number> = {};
      for (const d of stateDurations(lines, job.finishedOn))
        states[d.state] = (states[d.state] ?? 0) + d.seconds;
      jobs.push({
        symbol: spec.symbol,
        jobId: spec.jobId,
        jobMs: job.finishedOn - job.processedOn,
        recipeMs,
        processedOn: job.processedOn,
        finishedOn: job.finishedOn,
        states,
      });
    }
    return {
      jobs,
      failed,
      enqueueMs,
      enqueuedAt,
      planMs,
      wallMs,
      cpuMs,
      mainCpuMs: mainMs,
      childCpuMs: childMs,
    };
  } finally {
    await trainQueue.close();
    await redis.quit().catch(() => redis.disconnect());
    logs.close();
  }
}

/**
 * The GPU benches' run: seeds a 50-row features file per symbol, then runs the sleep recipe (a
 * training of trainMinS-trainMaxS simulated seconds, time scaled down `scale` times) through the
 * whole pipeline. Returns the timings and the wall time in simulated seconds; says how many failed.
 */
export async function runScaledSleep(
  config: Config,
  symbols: string[],
  opts: { cap: number; scale: number; trainMinS: number; trainMaxS: number },
): Promise<{ r: RunTimings; wallS: number }> {
  await seedFeatures(createStore(config.store), symbols, BENCH_DATE, 50);
  const t = performance.now();
  const r = await runPipeline(config, symbols, {
    cap: opts.cap,
    recipe: join(REPO, 'bench/recipes/sleep'),
    vars: {
      min_ms: String((opts.trainMinS * 1000) / opts.scale),
      max_ms: String((opts.trainMaxS * 1000) / opts.scale),
    },
  });
  const wallS = ((performance.now() - t) / 1000) * opts.scale;
  if (r.failed.length) say(`${r.failed.length} symbols did not succeed, e.g. ${r.failed[0]}`);
  return { r, wallS };
}

/** Symbols per second over the window from the first job taken to the last job finished. */
export function throughput(jobs: { processedOn: number; finishedOn: number }[]): number {
  if (jobs.length === 0) return 0;
  const start = Math.min(...jobs.map((j) => j.processedOn));
  const end = Math.max(...jobs.map((j) => j.finishedOn));
  return jobs.length / Math.max(1e-3, (end - start) / 1000);
}

/**
 * A bare BullMQ queue and worker doing the same no-op: `n` jobs added in bulk, one Worker with
 * `concurrency`, an empty processor. The baseline for what BullMQ itself costs on this Redis.
 */
export async function bareBullmq(
  redisUrl: string,
  prefix: string,
  n: number,
  concurrency: number,
): Promise<{ jobMs: number[]; perSec: number }> {
  const producer = producerConnection(redisUrl);
  const consumer = workerConnection(redisUrl);
  producer.on('error', () => undefined);
  consumer.on('error', () => undefined);
  const queue = new Queue('bare', { connection: producer, prefix });
  await queue.addBulk(Array.from({ length: n }, (_, i) => ({ name: 'noop', data: { i } })));
  const worker = new Worker('bare', async () => undefined, { connection: consumer, prefix, concurrency });
  try {
    while ((await queue.getCompletedCount()) < n) await sleep(100);
    const jobs = await queue.getJobs(['completed'], 0, n);
    const timed = jobs
      .filter((j) => j.processedOn && j.finishedOn)
      .map((j) => ({ processedOn: j.processedOn!, finishedOn: j.finishedOn! }));
    return { jobMs: timed.map((j) => j.finishedOn - j.processedOn), perSec: throughput(timed) };
  } finally {
    await worker.close();
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
    await producer.quit().catch(() => producer.disconnect());
    await consumer.quit().catch(() => consumer.disconnect());
  }
}
