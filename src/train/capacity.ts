/**
 * What a symbol's wait for capacity (src/compute/capacityWait.ts) leaves in the ledger and the job:
 * `waiting_capacity` with since-when while it waits, then `running` again with the minutes waited
 * added up (`waitedMin`) and the GPU it got (`gpu`, `gpuClass`: the choice among the preferences).
 */
import type { CapacityEvent } from '../compute/provider.js';
import type { Ledger } from '../ledger/ledger.js';
import type { JobSpec } from '../jobspec/types.js';
import type { TrainFacts } from './types.js';

export function capacityRecorder(deps: {
  ledger: Ledger;
  spec: Pick<JobSpec, 'date' | 'symbol'>;
  saveFacts: (patch: Partial<TrainFacts>) => Promise<void>;
  now: () => Date;
}): (e: CapacityEvent) => Promise<void> {
  const { ledger, spec } = deps;
  return async (e) => {
    if (e.state === 'waiting') {
      // A waiting job is not stuck in PROVISIONING (src/train/stuck.ts reads capacityWaitSince).
      await deps.saveFacts({ capacityWaitSince: e.since });
      await ledger.apply(spec.date, spec.symbol, { status: 'waiting_capacity', waitingSince: e.since });
      return;
    }
    const entry = e.since || e.gpu ? await ledger.getEntry(spec.date, spec.symbol) : undefined;
    const patch: Parameters<Ledger['update']>[2] = {};
    if (e.since) {
      patch.waitingSince = undefined;
      patch.waitedMin = (entry?.waitedMin ?? 0) + e.waitedMs / 60_000;
      if (entry?.status === 'waiting_capacity') patch.status = 'running';
      // Provisioning proper starts now: the stuck-provisioning limit is measured from here.
      await deps.saveFacts({ capacityWaitSince: undefined, stateSince: deps.now().toISOString() });
    }
    if (e.gpu) patch.gpu = e.gpu;
    if (e.gpuClass) patch.gpuClass = e.gpuClass;
    if (Object.keys(patch).length > 0) await ledger.apply(spec.date, spec.symbol, patch);
  };
}
