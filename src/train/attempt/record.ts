/**
 * Every ledger, job-log and lifecycle-event write of an attempt, in one place: what the ledger,
 * the BullMQ job log (the dashboard's state timings) and the structured log say about it. The train
 * processor records the attempt's end through here too.
 */
import type { Logger } from 'pino';
import { shortStack, type RetrainError } from '../../errors.js';
import type { JobSpec } from '../../jobspec/types.js';
import type { Ledger } from '../../ledger/ledger.js';
import { EVENTS, stateEvent } from '../../telemetry/events.js';
import { formatStateLine, type TrainState } from '../states.js';
import type { JobHandle, TrainResult } from '../types.js';

/** What the writes of a running attempt need (an AttemptContext). */
export interface AttemptRecordTarget {
  readonly job: JobHandle;
  readonly spec: JobSpec;
  readonly ledger: Ledger;
  readonly log: Logger;
  readonly now: () => Date;
  readonly state: TrainState;
}

/** A new attempt: the ledger entry is running again, with a history item for this attempt. */
export async function attemptStarted(a: AttemptRecordTarget, startedAt: string): Promise<void> {
  const { spec, job } = a;
  await a.ledger.apply(
    spec.date,
    spec.symbol,
    {
      status: 'running',
      attempts: job.attempt,
      jobId: spec.jobId,
      runId: job.data.runId,
      startedAt,
      reason: undefined,
      error: undefined,
    },
    { appendHistory: { attempt: job.attempt, startedAt } },
  );
  a.log.info(
    { event: EVENTS.coinStarted, driver: spec.driver },
    `${spec.symbol} started (attempt ${job.attempt}/${job.maxAttempts})`,
  );
}

export function attemptResumed(a: AttemptRecordTarget): void {
  a.log.info({ event: EVENTS.trainingResumed, state: a.state }, `${a.spec.symbol} resuming at ${a.state}`);
}

/** Runs `issue`, which starts writes, and has them sent to Redis in one write where the job handle can. */
export function together<T>(job: JobHandle, issue: () => T): T {
  return job.together ? job.together(issue) : issue();
}

/** The display writes of a transition (the ledger's state, the job's progress and its log line). */
export function stateWrites(a: AttemptRecordTarget, next: TrainState): Promise<unknown>[] {
  return [
    a.ledger.apply(a.spec.date, a.spec.symbol, { state: next }),
    a.job.progress({ state: next }),
    a.job.log(formatStateLine(a.now(), next)),
  ];
}

export function stateEntered(a: AttemptRecordTarget, next: TrainState): void {
  a.log.info({ event: stateEvent(next), state: next }, `${a.spec.symbol} ${next}`);
}

/** Adds a lease's cost to the symbol's entry (an increment in Redis: concurrent bookings all count). */
export async function costBooked(
  a: Pick<AttemptRecordTarget, 'spec' | 'ledger'>,
  usd: number,
): Promise<void> {
  await a.ledger.apply(a.spec.date, a.spec.symbol, {}, { increment: { costUsd: usd } });
}

/** A resume from a checkpoint: the training minutes it saves, on the entry and this attempt's history. */
export async function resumeBooked(
  a: AttemptRecordTarget,
  from: { name: string; trainedSec: number },
): Promise<void> {
  const savedMin = from.trainedSec / 60;
  const rounded = Math.round(savedMin * 1000) / 1000;
  await a.ledger.apply(
    a.spec.date,
    a.spec.symbol,
    {},
    { increment: { resumeSavedMin: rounded }, patchLastHistory: { resumedFromMin: rounded } },
  );
  a.log.info(
    { event: EVENTS.checkpointResume, file: from.name, trainedSec: from.trainedSec },
    `${a.spec.symbol} resumes from checkpoint ${from.name} (${savedMin.toFixed(1)} training min not redone)`,
  );
}

/** The attempt's end, as the train processor records it. */
export interface AttemptEnd {
  ledger: Ledger;
  log: Logger;
  spec: JobSpec;
}

/** A successful attempt: the entry is a success awaiting its promotion decision (or `off`). */
export async function attemptSucceeded(e: AttemptEnd, result: TrainResult, promote: boolean): Promise<void> {
  const { spec } = e;
  await e.ledger.apply(
    spec.date,
    spec.symbol,
    {
      status: 'success',
      endedAt: new Date().toISOString(),
      trainMinutes: result.trainMinutes,
      metricsKey: result.metricsKey,
      net_bps_after_costs: Number(result.metrics.net_bps_after_costs),
      decision: promote ? 'pending' : 'off',
      reason: undefined,
      error: undefined,
    },
    { patchLastHistory: { endedAt: new Date().toISOString(), outcome: 'success' } },
  );
  e.log.info(
    { event: EVENTS.coinSucceeded, trainMinutes: result.trainMinutes, metrics: result.metrics },
    `${spec.symbol} succeeded`,
  );
}

/** A failed attempt: the last one (`final`) fails the symbol, an earlier one leaves it pending a retry. */
export async function attemptFailed(
  e: AttemptEnd,
  err: RetrainError,
  attempt: number,
  final: boolean,
): Promise<void> {
  const { spec } = e;
  const endedAt = new Date().toISOString();
  await e.ledger.apply(
    spec.date,
    spec.symbol,
    {
      status: final ? 'failed' : 'pending',
      reason: err.code,
      error: { type: err.name, message: err.message, stack: shortStack(err) },
      ...(final ? { endedAt } : {}),
    },
    { patchLastHistory: { endedAt, outcome: final ? 'failed' : 'retrying', reason: err.code } },
  );
  if (final) {
    e.log.error(
      { event: EVENTS.coinFailed, reason: err.code, err: err.message, attempt },
      `${spec.symbol} failed: ${err.message}`,
    );
  } else {
    e.log.warn(
      { event: EVENTS.coinRetrying, reason: err.code, err: err.message, attempt },
      `${spec.symbol} attempt ${attempt} failed, will retry: ${err.message}`,
    );
  }
}

/** A shutdown hands the job back to another worker, which reattaches. */
export function attemptHandedBack(e: Pick<AttemptEnd, 'log' | 'spec'>): void {
  e.log.warn({ event: EVENTS.trainingHandedBack }, `${e.spec.symbol} handed back on shutdown`);
}
