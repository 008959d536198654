/**
 * Runs (or resumes) one attempt of one symbol's training. Every step is an "ensure": state and
 * the facts a later step needs are persisted before that step, so a worker that picks up a stalled
 * job reattaches to the same host and the same remote process instead of starting again.
 * Where each part lives: src/train/README.md.
 */
import { openAttempt, type TrainDeps } from './attempt/context.js';
import { runAttempt } from './attempt/run.js';
import type { JobHandle, TrainResult } from './types.js';

export type { TrainDeps };

/**
 * Throws a RetrainError on failure; the lease is released on every path except cancellation
 * (a deploy hands the job back without touching the remote training).
 */
export async function trainSymbol(job: JobHandle, deps: TrainDeps): Promise<TrainResult> {
  const ctx = await openAttempt(job, deps);
  try {
    return await runAttempt(ctx);
  } finally {
    ctx.close();
  }
}
