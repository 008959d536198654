/**
 * The attempt runner: each step in order, skipped when the persisted facts say it is done; then
 * SUCCEEDED. Any failure goes through failure.ts; whatever the attempt still holds is given back
 * at the end, except on a hand-over.
 */
import { releaseHeld } from './billing.js';
import type { AttemptContext } from './context.js';
import { failAttempt } from './failure.js';
import { execute } from './steps/execute/index.js';
import { fetch } from './steps/fetch.js';
import { provision } from './steps/provision.js';
import { release, succeed } from './steps/release.js';
import type { Step } from './steps/step.js';
import { transfer } from './steps/transfer.js';
import type { TrainResult } from '../types.js';

export const STEPS: readonly Step[] = [provision, transfer, execute, fetch, release];

export async function runAttempt(ctx: AttemptContext, steps: readonly Step[] = STEPS): Promise<TrainResult> {
  try {
    ctx.checkCancelled();
    for (const step of steps) if (!step.holds(ctx)) await step.ensure(ctx);
    return await succeed(ctx);
  } catch (err) {
    throw await failAttempt(ctx, err);
  } finally {
    await releaseHeld(ctx);
  }
}
