import { join } from 'node:path';
import { enqueueRun, type EnqueueResult } from '../../queues/enqueue.js';
import { waitForRun, type RunOutcome } from '../../queues/waitRun.js';
import { startWorkers, type RunningWorkers } from '../../processors/workers.js';
import { concurrencyCap } from '../plan/concurrency.js';
import { planRun, type Plan } from '../plan/planRun.js';
import { createRuntime } from '../runtime.js';
import { createStore } from '../storage/index.js';
import { keys } from '../storage/layout.js';
import type { ArtifactStore } from '../storage/store.js';
import { EVENTS } from '../telemetry/events.js';
import { LogHub } from '../telemetry/logger.js';
import { serializeJobSpec } from '../jobspec/build.js';
import { cancelRun } from '../train/runCancel.js';
import { closeRedis } from '../util/close.js';
import { connectRedis } from './redis.js';
import { BoundedShutdown } from './shutdown.js';
import { createProgressView } from './progress.js';
import { renderRunTable, renderSummaryLine } from './table.js';
import type { RunRequest } from './runOptions.js';

export interface ExecuteOptions {
  /** Run the workers in this process (`retrain run`, the demo). */
  inProcessWorkers: boolean;
  out?: NodeJS.WriteStream;
}

/** Plans, enqueues and (with wait) follows one run. Returns the process exit code. */
export async function executeRun(req: RunRequest, opts: ExecuteOptions): Promise<number> {
  const out = opts.out ?? process.stdout;
  const { config } = req;
  if (req.dryRun) {
    const plan = await planRun(req.plan, { config, store: createStore(config.store) });
    out.write('[\n' + plan.specs.map((s) => '  ' + serializeJobSpec(s)).join(',\n') + '\n]\n');
    for (const s of plan.skipped) process.stderr.write(`skip ${s.symbol}: ${s.message}\n`);
    return 0;
  }

  const wait = req.wait || opts.inProcessWorkers;
  const logs = new LogHub({ home: config.home, level: config.log.level, stdout: !wait });
  const redis = await connectRedis(config.redisUrl);
  const { store, ledger } = createRuntime(config, { redis });
  let workers: RunningWorkers | undefined;
  // Leaving (a signal, or the end) is bounded: Redis gone must not keep the command alive forever.
  const bounded = new BoundedShutdown({
    command: opts.inProcessWorkers ? 'retrain run' : 'retrain enqueue',
    graceMs: config.worker.shutdownGraceMs,
  });
  let interrupted = false;
  let runId: string | undefined;
  let cancelling = false;
  const onSignal = (sig: NodeJS.Signals) => {
    interrupted = true;
    if (opts.inProcessWorkers && sig === 'SIGINT' && runId && !cancelling) {
      // Ctrl-C on `retrain run`: cancel the run — stop its trainings, give every host back, fail
      // what is left — and still print the table. A second Ctrl-C leaves at once (hand-over).
      cancelling = true;
      process.stderr.write(
        `\ninterrupted: cancelling run ${runId}: stopping trainings and destroying their instances ` +
          '(Ctrl-C again to leave now; the reaper then cleans up)...\n',
      );
      void cancelRun(redis, config.queuePrefix, runId).catch(() => abort.abort());
      process.once('SIGINT', onSignal);
      return;
    }
    process.stderr.write(
      opts.inProcessWorkers
        ? '\ninterrupted: handing running trainings back (they resume on the next worker)...\n'
        : '\ninterrupted: no longer waiting; the run goes on on the workers\n',
    );
    bounded.arm();
    abort.abort();
  };
  const abort = new AbortController();
  try {
    const plan = await planRun(req.plan, { config, store, ledger });
    const cap = runCap(req, plan);
    const result: EnqueueResult = await enqueueRun({
      config,
      redis,
      ledger,
      plan,
      symbols: req.plan.symbols,
      mode: req.mode,
      cap,
      force: req.plan.force,
      ...(req.budgetUsd !== undefined ? { budgetUsd: req.budgetUsd } : {}),
    });
    runId = result.runId;
    announceRun(req, result, cap, logs, out);
    if (!wait) return 0;

    if (opts.inProcessWorkers) workers = await startWorkers(config, logs);
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const view = createProgressView(req.plan.symbols, out);
    let outcome: RunOutcome;
    try {
      outcome = await waitForRun({
        config,
        redis,
        ledger,
        finalizeJobId: result.finalizeJobId,
        date: result.date,
        signal: abort.signal,
        onTick: (l) => view.update(l),
        onRedisOutage: (down, err) =>
          process.stderr.write(
            down
              ? `\nRedis is not answering (${err?.message ?? 'unknown error'}); waiting for it to come back...\n`
              : 'Redis is back.\n',
          ),
      });
    } finally {
      view.stop();
    }
    await printOutcome(req, result, outcome, store, out);
    if (outcome.state === 'failed') {
      process.stderr.write(`run ${result.runId} could not be finalized: ${outcome.error}\n`);
      return 1;
    }
    if (cancelling) return 130;
    return outcome.summary && outcome.summary.failed === 0 ? 0 : 1;
  } catch (err) {
    if (interrupted) return 130;
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    bounded.arm();
    if (workers) await workers.close(bounded.step);
    await bounded.step('redis connection', () => closeRedis(redis));
    bounded.finish();
    logs.close();
  }
}

/** The run's start, in its engine log and on the terminal (what was enqueued, skipped, in flight). */
function announceRun(
  req: RunRequest,
  result: EnqueueResult,
  cap: number,
  logs: LogHub,
  out: NodeJS.WritableStream,
): void {
  const { config } = req;
  logs.forDate(result.date).info(
    {
      event: EVENTS.jobStarted,
      runId: result.runId,
      symbols: req.plan.symbols.length,
      enqueued: result.enqueued.length,
      skipped: result.skipped.length,
      mode: req.mode,
      cap,
      driver: config.train.driver,
    },
    `run ${result.runId} started`,
  );
  out.write(
    `run ${result.runId}: ${result.enqueued.length} to train, ${result.skipped.length} skipped, ` +
      `${result.inFlight.length} already in flight; mode ${req.mode}, at most ${cap} at once, driver ${config.train.driver}${req.plan.interruptible ? ' (interruptible)' : ''}\n`,
  );
  for (const s of result.skipped) out.write(`  skip ${s.symbol}: ${s.message}\n`);
  for (const s of result.inFlight)
    out.write(`  in flight ${s}: left alone (its job is still queued or running)\n`);
}

/** The run's table, its summary line and where its status, summary and logs are. */
async function printOutcome(
  req: RunRequest,
  result: EnqueueResult,
  outcome: RunOutcome,
  store: ArtifactStore,
  out: NodeJS.WritableStream,
): Promise<void> {
  const { config } = req;
  const metrics: Record<string, Record<string, unknown> | undefined> = {};
  for (const s of req.plan.symbols) {
    const key = outcome.ledger[s]?.metricsKey;
    if (key && outcome.ledger[s]?.status === 'success') {
      metrics[s] = await store.getJson<Record<string, unknown>>(key).catch(() => undefined);
    }
  }
  out.write('\n' + renderRunTable(req.plan.symbols, outcome.ledger, metrics) + '\n');
  if (outcome.summary) out.write(renderSummaryLine(outcome.summary) + '\n');
  out.write(`status:  ${store.locate(keys.runStatus(result.date))}\n`);
  out.write(`summary: ${store.locate(keys.summary(result.date))}\n`);
  out.write(`logs:    ${join(config.home, 'logs', `${result.date}Z`)}\n`);
}

/** How many of the run's symbols may train at once (the queue's global concurrency). */
function runCap(req: RunRequest, plan: Plan): number {
  const { config } = req;
  return concurrencyCap({
    mode: req.mode,
    symbols: plan.specs.length,
    maxInstances: config.train.maxInstances,
    maxConcurrent: config.train.maxConcurrent,
    gpu: config.train.driver === 'vast' || (config.train.driver === 'ssh' && plan.recipe.def.gpu === true),
  });
}
