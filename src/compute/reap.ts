import type { ComputeProvider, LeaseInfo } from './provider.js';

export type ReapReason = 'no_active_job' | 'max_runtime';

export interface ReapResult {
  destroyed: { id: string; label?: string; reason: ReapReason; ageMin: number }[];
  kept: { id: string; label?: string }[];
  /** Instances that should have been destroyed but whose destroy failed (tried again next time). */
  failed: { id: string; label?: string; reason: ReapReason; error: string }[];
}

/**
 * Destroys this deployment's instances that no live job owns, or that outlived maxRuntimeMin.
 * `provider.list()` returns only instances carrying this deployment's label; others are never touched.
 * `isInUse` decides ownership (see processors/reaper.ts); one failed destroy does not stop the rest.
 */
export async function reapOrphans(opts: {
  provider: Pick<ComputeProvider, 'list' | 'release'>;
  jobIdOf: (lease: LeaseInfo) => string | null;
  isInUse: (lease: LeaseInfo, jobId: string, ageMin: number) => Promise<boolean>;
  maxRuntimeMin: number;
  dryRun: boolean;
  now?: () => number;
  onDestroyed?: (lease: LeaseInfo, reason: ReapReason) => void;
}): Promise<ReapResult> {
  const now = opts.now ?? Date.now;
  const result: ReapResult = { destroyed: [], kept: [], failed: [] };
  for (const lease of await opts.provider.list()) {
    const jobId = opts.jobIdOf(lease);
    const ageMin = lease.acquiredAt ? (now() - Date.parse(lease.acquiredAt)) / 60_000 : 0;
    let reason: ReapReason | null = null;
    if (ageMin > opts.maxRuntimeMin) reason = 'max_runtime';
    else if (!jobId || !(await opts.isInUse(lease, jobId, ageMin))) reason = 'no_active_job';
    if (!reason) {
      result.kept.push({ id: lease.id, label: lease.label });
      continue;
    }
    if (!opts.dryRun) {
      try {
        await opts.provider.release(lease);
      } catch (err) {
        result.failed.push({ id: lease.id, label: lease.label, reason, error: (err as Error).message });
        continue;
      }
      opts.onDestroyed?.(lease, reason);
    }
    result.destroyed.push({ id: lease.id, label: lease.label, reason, ageMin: Math.round(ageMin * 10) / 10 });
  }
  return result;
}

/**
 * Dollars billed to a lease's holder from when it got the host (heldSince, else acquiredAt) until
 * `until`: a pooled slot pays its share (1/slots) of the instance's price.
 */
export function leaseCostUsd(lease: LeaseInfo, until: Date = new Date()): number {
  const since = lease.heldSince ?? lease.acquiredAt;
  if (!lease.hourlyCostUsd || !since) return 0;
  const seconds = Math.max(0, (until.getTime() - Date.parse(since)) / 1000);
  return (lease.hourlyCostUsd * seconds) / 3600 / (lease.pool?.slots ?? 1);
}
