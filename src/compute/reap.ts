import type { ComputeProvider, LeaseInfo } from './provider.js';

export interface ReapResult {
  destroyed: { id: string; label?: string; reason: 'no_active_job' | 'max_runtime' }[];
  kept: { id: string; label?: string }[];
}

/**
 * Destroys this deployment's instances that no active job owns, or that outlived maxRuntimeMin.
 * `provider.list()` returns only instances carrying this deployment's label; others are never touched.
 */
export async function reapOrphans(opts: {
  provider: Pick<ComputeProvider, 'list' | 'release'>;
  jobIdOf: (lease: LeaseInfo) => string | null;
  isJobActive: (jobId: string) => Promise<boolean>;
  maxRuntimeMin: number;
  dryRun: boolean;
  now?: () => number;
  onDestroyed?: (lease: LeaseInfo, reason: string) => void;
}): Promise<ReapResult> {
  const now = opts.now ?? Date.now;
  const result: ReapResult = { destroyed: [], kept: [] };
  for (const lease of await opts.provider.list()) {
    const jobId = opts.jobIdOf(lease);
    const ageMin = lease.acquiredAt ? (now() - Date.parse(lease.acquiredAt)) / 60_000 : 0;
    let reason: 'no_active_job' | 'max_runtime' | null = null;
    if (ageMin > opts.maxRuntimeMin) reason = 'max_runtime';
    else if (!jobId || !(await opts.isJobActive(jobId))) reason = 'no_active_job';
    if (!reason) {
      result.kept.push({ id: lease.id, label: lease.label });
      continue;
    }
    if (!opts.dryRun) {
      await opts.provider.release(lease);
      opts.onDestroyed?.(lease, reason);
    }
    result.destroyed.push({ id: lease.id, label: lease.label, reason });
  }
  return result;
}

/** Dollars billed for a lease held from acquiredAt until `until`. */
export function leaseCostUsd(lease: LeaseInfo, until: Date = new Date()): number {
  if (!lease.hourlyCostUsd || !lease.acquiredAt) return 0;
  const seconds = Math.max(0, (until.getTime() - Date.parse(lease.acquiredAt)) / 1000);
  return (lease.hourlyCostUsd * seconds) / 3600;
}
