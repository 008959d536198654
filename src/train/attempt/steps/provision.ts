/**
 * PROVISIONING: a host to run on. A lease in the facts is reattached to; otherwise one is rented
 * or reserved, and its identity is saved before anything waits on it.
 */
import { rentalImage } from '../../../recipes/image.js';
import { failpoint } from '../../../util/failpoint.js';
import { capacityRecorder } from '../../capacity.js';
import { reached } from '../../states.js';
import { bookBootFailure, checkBudget, releaseLease } from '../billing.js';
import type { AttemptContext } from '../context.js';
import type { Step } from './step.js';

export const provision: Step = {
  name: 'PROVISIONING',
  // Once the artifacts are stored the host is no longer needed.
  holds: (ctx) => reached(ctx.state, 'RELEASING'),
  async ensure(ctx) {
    if (ctx.facts.lease) {
      ctx.lease = await ctx.provider.reattach(ctx.facts.lease, ctx.signal);
      // Gone or unusable (the provider destroyed it): book its time and rent again.
      if (!ctx.lease) await releaseLease(ctx, ctx.facts.lease, 'lost');
    }
    if (!ctx.lease) await acquire(ctx);
    ctx.checkDeadline();
  },
};

async function acquire(ctx: AttemptContext): Promise<void> {
  await ctx.enter('PROVISIONING');
  const lease = await ctx.provider.acquire(ctx.spec, {
    signal: ctx.signal,
    deadline: ctx.deadline,
    runId: ctx.runId,
    onCapacity: capacityRecorder({
      ledger: ctx.ledger,
      spec: ctx.spec,
      saveFacts: (patch) => ctx.save(patch),
      now: ctx.now,
    }),
    beforeRent: () => checkBudget(ctx),
    // Driver vast rents the recipe's image (with its registry login) and its minimum CUDA.
    ...(ctx.spec.driver === 'vast'
      ? { image: rentalImage(ctx.recipe, ctx.config.vast.image, ctx.secretSource) }
      : {}),
    ...(ctx.recipe.def.minCudaVersion ? { minCudaVersion: ctx.recipe.def.minCudaVersion } : {}),
    onLeaseCreated: async (info) => {
      await ctx.save({ lease: info });
      await ctx.deps.spend?.hold(ctx.runId, info);
      failpoint('provisioning:created');
    },
    onLeaseReleased: (info) => bookBootFailure(ctx, info),
  });
  ctx.lease = lease;
  // A new host: nothing of an earlier one's run is followed (no offset: from the start).
  await ctx.save({ lease: lease.info, workdir: undefined, pid: undefined, logOffset: undefined });
}
