/**
 * RELEASING: the artifacts are stored and verified, so the host is given back (once) and the
 * attempt's local copies removed; then SUCCEEDED, with the attempt's result (the one place it is
 * built: from what FETCHING produced here, or from the store after a resume).
 */
import { asRetrainError, OutputContractError } from '../../../errors.js';
import { artifactsId } from '../../../jobspec/build.js';
import { parseMetricsText } from '../../../promotion/metrics.js';
import { keys } from '../../../storage/layout.js';
import { EVENTS } from '../../../telemetry/events.js';
import { failpoint } from '../../../util/failpoint.js';
import { parseSha256Txt } from '../../../util/hash.js';
import { removeIfPresent } from '../../../util/inPlaceFs.js';
import { reached } from '../../states.js';
import type { TrainResult } from '../../types.js';
import { releaseLease } from '../billing.js';
import type { AttemptContext, AttemptOutcome } from '../context.js';
import type { Step } from './step.js';

export const release: Step = {
  name: 'RELEASING',
  holds: (ctx) => ctx.state === 'SUCCEEDED' && !ctx.facts.lease,
  async ensure(ctx) {
    if (reached(ctx.state, 'RELEASING')) {
      // Resumed after the artifacts were stored: give the host back (once).
      if (ctx.facts.lease) await releaseLease(ctx, ctx.facts.lease);
      return;
    }
    await ctx.enter('RELEASING');
    const held = ctx.lease!;
    ctx.lease = null;
    // The artifacts are stored and verified: a host that cannot be given back now (the API down)
    // does not undo the training. It is still in facts.lease, so the attempt's end tries once more,
    // and it keeps its label, so the reaper destroys it once its job has ended.
    await releaseLease(ctx, held.info).catch((e) =>
      ctx.log.error(
        { event: EVENTS.instanceReleaseFailed, instance: held.info.id, err: asRetrainError(e).message },
        `${ctx.spec.symbol} could not release ${held.info.driver} ${held.info.id} after storing its artifacts`,
      ),
    );
    failpoint('releasing:released');
    await held.transport.close().catch(() => undefined);
    await removeIfPresent(ctx.stagingDir);
  },
};

/** Enters SUCCEEDED and returns the attempt's result. */
export async function succeed(ctx: AttemptContext): Promise<TrainResult> {
  const { spec } = ctx;
  const outcome = ctx.outcome ?? (await storedOutcome(ctx));
  await ctx.enter('SUCCEEDED');
  return {
    symbol: spec.symbol,
    date: spec.date,
    jobId: spec.jobId,
    metricsKey: keys.artifact(artifactsId(spec), 'metrics.json'),
    ...outcome,
  };
}

/** The outcome of an attempt whose artifacts were stored before a resume (sizes unknown: -1). */
async function storedOutcome(ctx: AttemptContext): Promise<AttemptOutcome> {
  const { spec, store } = ctx;
  const parsed = parseMetricsText(
    (await store.getBytes(keys.artifact(artifactsId(spec), 'metrics.json'))).toString('utf8'),
  );
  if (!parsed.ok)
    throw new OutputContractError(`${spec.symbol}: stored metrics.json is invalid: ${parsed.reason}`);
  const sums = parseSha256Txt(
    (await store.getBytes(keys.artifact(artifactsId(spec), 'sha256.txt'))).toString('utf8'),
  );
  const startedAt = ctx.facts.executingSince ? new Date(ctx.facts.executingSince).getTime() : Date.now();
  return {
    metrics: parsed.metrics as unknown as Record<string, unknown>,
    trainMinutes: (Date.now() - startedAt) / 60_000,
    artifacts: Object.entries(sums).map(([name, sha256]) => ({ name, sha256, bytes: -1 })),
  };
}
