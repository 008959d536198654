/**
 * Profiles: `kind` (the default) injects only the faults a test asks for; `vast-like` turns on
 * every behaviour Vast really has (shared/reference/vast-reality.md) at realistic values, in
 * simulated time: real-time figures are divided by timeScale, as boot delays are.
 */
import type { VastSimBilling, VastSimFaults, VastSimOptions } from './types.js';

/** The faults of a profile at a time scale (before the caller's own faults are laid over them). */
export function profileFaults(profile: VastSimOptions['profile'], timeScale: number): VastSimFaults {
  if (profile !== 'vast-like') return {};
  return {
    rateLimits: true,
    competitorRate: 0.15,
    offerChurn: 0.1,
    badImageRate: 0.05,
    transientStatusRate: 0.1,
    transientStatusMs: 8000 / timeScale,
    transientAfterMs: 5000 / timeScale,
    slowCreateRate: 0.03,
    // Longer than the official CLI's 120 s timeout.
    slowCreateMs: 130_000 / timeScale,
    oddRows: true,
    attachKeyLossRate: 0.2,
  };
}

export function profileBilling(profile: VastSimOptions['profile']): VastSimBilling {
  // A CUDA/PyTorch image is about 10 GB compressed.
  return profile === 'vast-like' ? { storageAlways: true, imagePullGb: 10 } : {};
}

export function profileLogsDelayMs(profile: VastSimOptions['profile'], timeScale: number): number {
  return profile === 'vast-like' ? 1000 / timeScale : 0;
}
