import { DelayedError, type Job } from 'bullmq';
import type { Ledger } from '../src/ledger/ledger.js';
import type { Notifier } from '../src/notify/index.js';
import { keys } from '../src/storage/layout.js';
import type { ArtifactStore } from '../src/storage/store.js';
import { EVENTS } from '../src/telemetry/events.js';
import type { LogHub } from '../src/telemetry/logger.js';
import { buildSummary, type EngineSummary } from '../src/telemetry/summary.js';
import type { FinalizeJobData } from '../queues/enqueue.js';

/**
 * The `finalize-run` processor, parent of the run's train jobs: runs once all of them have ended
 * (failures included), waits for pending promotion decisions, then writes the summary and the
 * final ledger mirror, and tells the notifier (the completion summary).
 */
export function createFinalizeProcessor(deps: {
  store: ArtifactStore;
  ledger: Ledger;
  logs: LogHub;
  /** Gets the completion summary; never blocks. */
  notifier?: Notifier;
  /** Destroys the run's idle pooled instances (run end); returns how many. */
  drainPool?: (runId: string) => Promise<number>;
  /** What the run's pooled instances cost while no symbol held them (RunSpend.poolIdle). */
  poolIdleUsd?: (runId: string) => Promise<number>;
}) {
  return async (job: Job<FinalizeJobData>, token?: string): Promise<EngineSummary> => {
    const d = job.data;
    const log = deps.logs.forDate(d.date).child({ runId: d.runId });
    const ledger = await deps.ledger.get(d.date);
    const waiting = d.trained.filter(
      (s) => ledger[s]?.status === 'success' && ledger[s]?.decision === 'pending',
    );
    if (waiting.length > 0) {
      await job.moveToDelayed(Date.now() + 500, token);
      throw new DelayedError();
    }
    // Run end: no symbol of the run will want an instance again.
    const drained = await deps.drainPool?.(d.runId).catch((err: unknown) => {
      log.warn(
        { event: 'pool.drain_failed', err: String(err) },
        "could not destroy the run's idle instances",
      );
      return 0;
    });
    if (drained)
      log.info(
        { event: 'pool.drained', instances: drained },
        `run end: ${drained} idle instance(s) destroyed`,
      );
    const promoted: string[] = [];
    for (const s of d.trained) {
      if (ledger[s]?.decision !== 'promote') continue;
      try {
        const decision = await deps.store.getJson<{ promoted?: boolean }>(
          keys.candidate(s, d.date, 'decision.json'),
        );
        if (decision.promoted) promoted.push(s);
      } catch {
        /* no decision file: not promoted */
      }
    }
    const summary = buildSummary({
      date: d.date,
      runId: d.runId,
      symbols: d.symbols,
      ledger,
      startedAt: new Date(d.plannedAt),
      endedAt: new Date(),
      promoted,
      ...(deps.poolIdleUsd ? { poolIdleUsd: await deps.poolIdleUsd(d.runId).catch(() => 0) } : {}),
      ...(d.budgetUsd !== undefined ? { budgetUsd: d.budgetUsd } : {}),
    });
    await deps.store.putJson(keys.summary(d.date), summary);
    await deps.ledger.flushMirror(d.date);
    log.info(
      {
        event: EVENTS.jobCompleted,
        total: summary.total_symbols,
        succeeded: summary.succeeded,
        failed: summary.failed,
        skipped: summary.skipped,
        summary: deps.store.locate(keys.summary(d.date)),
      },
      `run ${d.runId} completed: ${summary.succeeded} succeeded, ${summary.failed} failed, ${summary.skipped} skipped`,
    );
    deps.notifier?.runCompleted(summary);
    return summary;
  };
}
