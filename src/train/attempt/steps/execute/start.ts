/** EXECUTING, the start: the training runs detached from this process; a reattach finds the same pid. */
import { secretEnv } from '../../../../recipes/secrets.js';
import { startDetached } from '../../../../remote/runner.js';
import { failpoint } from '../../../../util/failpoint.js';
import type { AttemptContext } from '../../context.js';
import { LogSink } from './logSink.js';

/** Enters EXECUTING (unless resumed in it) and starts the training, or finds it running; its pid. */
export async function startTraining(ctx: AttemptContext): Promise<number> {
  if (ctx.state !== 'EXECUTING') {
    // Where this attempt's part of the local log begins rides with the state (no write of its own).
    await ctx.enter('EXECUTING', { executingSince: ctx.now().toISOString(), ...LogSink.baseFacts(ctx) });
  }
  const env = secretEnv(ctx.recipe, ctx.secretSource);
  const pid = await startDetached(ctx.lease!.transport, ctx.workdir, { env });
  if (ctx.facts.pid !== pid) await ctx.save({ pid });
  failpoint('executing:started');
  return pid;
}
