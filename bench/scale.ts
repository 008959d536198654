/**
 * Scale: one run of BENCH_SCALE_N symbols (default 10,000). Measures the time to plan and to enqueue
 * it (enqueueRun: ledger entries, the flow of one finalize-run parent over one train job per symbol,
 * the global cap), what Redis holds per queued job and per finished job under the default retention
 * settings (BENCH_SCALE_FINISH symbols, default 1,000, are trained for real with the no-op recipe),
 * what stays in Redis per run date, and the dashboard's runs pages with the run in the ledger.
 */
import { Queue } from 'bullmq';
import { createDashboard, listenDashboard } from '../dashboards/server.js';
import { producerConnection } from '../queues/connection.js';
import { enqueueRun } from '../queues/enqueue.js';
import { QUEUES } from '../queues/names.js';
import { startWorkers } from '../processors/workers.js';
import { Ledger } from '../src/ledger/ledger.js';
import { planRun } from '../src/plan/planRun.js';
import { createStore } from '../src/storage/index.js';
import { LogHub } from '../src/telemetry/logger.js';
import { BENCH_DATE, seedFeatures } from './lib/runs.js';
import {
  benchRedisUrl,
  figures,
  keyMemory,
  machineLine,
  NOOP_RECIPE,
  percentile,
  round,
  say,
  sleep,
  stopPrivateRedis,
  syntheticSymbols,
  world,
} from './lib/world.js';

const CONCURRENCY = 8;

export async function scale(): Promise<void> {
  const n = Number(process.env.BENCH_SCALE_N ?? 10_000);
  const finish = Math.min(n, Number(process.env.BENCH_SCALE_FINISH ?? 1000));
  const redisUrl = await benchRedisUrl();
  say(machineLine());
  say(`scale: ${n} symbols in one run (${finish} of them trained with the no-op recipe), Redis ${redisUrl}`);
  const w = await world('scale', redisUrl);
  const config = w.config({
    recipe: NOOP_RECIPE,
    train: { driver: 'local', workerConcurrency: CONCURRENCY, maxConcurrent: CONCURRENCY, retries: 0 },
  });
  const r = config.retention;
  say(
    `retention (defaults): completed jobs kept ${r.completedAgeSec / 86400} days, at most ${r.completedCount}; ` +
      `failed ${r.failedAgeSec / 86400} days; ${r.keepLogs} log lines per job`,
  );
  const store = createStore(config.store);
  const redis = producerConnection(redisUrl);
  redis.on('error', () => undefined);
  const ledger = new Ledger({ redis, prefix: w.prefix, store, retentionDays: config.ledger.retentionDays });
  const trainQueue = new Queue(QUEUES.train, { connection: redis, prefix: w.prefix });
  const logs = new LogHub({ home: config.home, level: config.log.level, stdout: false });
  try {
    const symbols = syntheticSymbols(n);
    // Small features files: 10,000 full ones would be 4 GB and change nothing measured here.
    await seedFeatures(store, symbols, BENCH_DATE, 50);

    let t = performance.now();
    const plan = await planRun(
      {
        symbols,
        date: BENCH_DATE,
        featureset: 'v1',
        driver: 'local',
        recipe: NOOP_RECIPE,
        vars: {},
        timeoutMinutes: 10,
        retries: 0,
        promote: 'off',
        canary: false,
        force: false,
        ensureFeatures: false,
      },
      { config, store, ledger },
    );
    const planS = (performance.now() - t) / 1000;
    const before = await keyMemory(redis, `${w.prefix}:*`);
    t = performance.now();
    const enq = await enqueueRun({
      config,
      redis,
      ledger,
      plan,
      symbols,
      mode: 'hybrid',
      cap: CONCURRENCY,
      force: false,
    });
    const enqueueS = (performance.now() - t) / 1000;
    const queued = await keyMemory(redis, `${w.prefix}:*`);
    say(`plan (readiness of ${n} symbols, job specs): ${round(planS, 2)} s`);
    say(
      `enqueue (ledger + flow of ${enq.enqueued.length} train jobs + finalize-run): ${round(enqueueS, 2)} s ` +
        `(target <= 2 s); Redis then holds ${round((queued.bytes - before.bytes) / 2 ** 20, 1)} MiB in ` +
        `${queued.keys - before.keys} keys, ${round((queued.bytes - before.bytes) / n)} bytes per queued symbol`,
    );

    // Train some of them for real, then stop the workers (the rest stay queued).
    t = performance.now();
    const workers = await startWorkers(config, logs);
    try {
      while ((await trainQueue.getCompletedCount()) < finish) await sleep(500);
    } finally {
      await workers.close();
    }
    say(`trained ${finish} symbols in ${round((performance.now() - t) / 1000, 1)} s`);

    const done = await trainQueue.getJobs(['completed'], 0, -1);
    const perJob: number[] = [];
    const logsPerJob: number[] = [];
    for (const job of done) {
      const [hash, logList] = await Promise.all([
        redis.memory('USAGE', `${w.prefix}:train:${job.id}`, 'SAMPLES', 0),
        redis.memory('USAGE', `${w.prefix}:train:${job.id}:logs`, 'SAMPLES', 0),
      ]);
      perJob.push((hash ?? 0) + (logList ?? 0));
      logsPerJob.push(logList ?? 0);
    }
    const bytesPerJob = perJob.reduce((a, b) => a + b, 0) / Math.max(1, perJob.length);
    const processed =
      (await redis.memory(
        'USAGE',
        `${w.prefix}:${QUEUES.finalize}:${enq.finalizeJobId}:processed`,
        'SAMPLES',
        0,
      )) ?? 0;
    const ledgerBytes = (await redis.memory('USAGE', `${w.prefix}:ledger:${BENCH_DATE}`, 'SAMPLES', 0)) ?? 0;
    // A finished symbol's ledger entry is larger than a pending one (times, metrics key, history).
    const entryLens = await Promise.all(
      done.map((j) =>
        redis.hstrlen(
          `${w.prefix}:ledger:${BENCH_DATE}`,
          (j.data as { spec: { symbol: string } }).spec.symbol,
        ),
      ),
    );
    const finishedEntry = entryLens.reduce((a, b) => a + b, 0) / Math.max(1, entryLens.length);
    const finalizeJob =
      (await redis.memory('USAGE', `${w.prefix}:${QUEUES.finalize}:${enq.finalizeJobId}`, 'SAMPLES', 0)) ?? 0;
    say(
      `finished train job in Redis: ${round(bytesPerJob)} bytes on average (p99 ${percentile(perJob, 99)}; ` +
        `of which its log ${round(logsPerJob.reduce((a, b) => a + b, 0) / Math.max(1, logsPerJob.length))})`,
    );
    say(
      `  kept until ${r.completedAgeSec / 86400} days old or beyond the newest ${r.completedCount}: at most ` +
        `${round((r.completedCount * bytesPerJob) / 2 ** 20, 1)} MiB of finished train jobs, whatever the number of days`,
    );
    say(
      `  the run's finalize-run job also keeps each child's result: ${round(processed / Math.max(1, finish))} bytes ` +
        `per finished symbol (${round(((processed / Math.max(1, finish)) * n) / 2 ** 20, 1)} MiB for the whole run), plus ` +
        `${round(finalizeJob / 1024)} KiB of job data; kept as long as that job (${r.completedAgeSec / 86400} days)`,
    );
    const ledgerTtl = await redis.ttl(`${w.prefix}:ledger:${BENCH_DATE}`);
    const days = config.ledger.retentionDays;
    say(
      `per run date: the ledger hash, ${round(ledgerBytes / 2 ** 20, 1)} MiB for this date ` +
        `(${round(ledgerBytes / n)} bytes per symbol with ${n - finish} still pending; a finished symbol's ` +
        `entry is ${round(finishedEntry)} bytes of JSON), expiring ${round(ledgerTtl / 86400, 1)} days after ` +
        `its last change (ledger.retentionDays ${days}): at most ~${round((days * finishedEntry * n) / 2 ** 20)} MiB ` +
        `of ledger for ${days} days of such runs`,
    );

    // The dashboard's runs pages with this run in the ledger.
    const token = `bench-${Math.random().toString(36).slice(2)}`;
    const dash = createDashboard({
      prefix: w.prefix,
      redis,
      store,
      credentials: { token },
      readOnly: true,
      logger: logs.root,
    });
    const served = await listenDashboard(dash, '127.0.0.1', 0);
    const page = async (path: string) => {
      const times: number[] = [];
      let bytes = 0;
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        const res = await fetch(new URL(path, served.url), { headers: { authorization: `Bearer ${token}` } });
        const body = await res.arrayBuffer();
        times.push(performance.now() - t0);
        bytes = body.byteLength;
        if (res.status !== 200) throw new Error(`GET ${path} answered ${res.status}`);
      }
      return { ms: percentile(times, 50), bytes };
    };
    let runsPage;
    let runPage;
    try {
      runsPage = await page('/runs');
      runPage = await page(`/runs/${BENCH_DATE}`);
    } finally {
      await served.close();
    }
    say(
      `dashboard /runs: ${round(runsPage.ms)} ms, ${round(runsPage.bytes / 2 ** 20, 2)} MiB of HTML; ` +
        `/runs/${BENCH_DATE}: ${round(runPage.ms)} ms, ${round(runPage.bytes / 2 ** 20, 2)} MiB (median of 3)`,
    );
    figures({
      enqueue_10k_s: round(enqueueS, 2),
      redis_bytes_per_job: Math.round(bytesPerJob),
      n,
      finished: finish,
      plan_s: round(planS, 2),
      queued_bytes_per_job: Math.round((queued.bytes - before.bytes) / n),
      finalize_bytes_per_job: Math.round(processed / Math.max(1, finish)),
      ledger_bytes_per_symbol_day: Math.round(ledgerBytes / n),
      ledger_entry_bytes_finished: Math.round(finishedEntry),
      runs_page_ms: round(runsPage.ms),
      runs_page_bytes: runsPage.bytes,
    });
  } finally {
    await trainQueue.close();
    await redis.quit().catch(() => redis.disconnect());
    logs.close();
    await w.cleanup();
    stopPrivateRedis();
  }
}
