/**
 * GPU detection at plan time for drivers local and ssh: the host is reached the way a training
 * reaches it (the provider's own lease), looked at once (src/compute/gpuDetect.ts) and let go.
 */
import type { Redis } from 'ioredis';
import type { Config } from '../config/schema.js';
import { asRetrainError } from '../errors.js';
import type { JobSpec } from '../jobspec/types.js';
import { createProvider } from './factory.js';
import { describeGpus, detectGpus, type GpuDetection } from './gpuDetect.js';

export interface HostGpus {
  /** Undefined when the host could not be looked at (then `line` says why). */
  detected?: GpuDetection;
  /** For the run line, e.g. `2 GPUs (CUDA_VISIBLE_DEVICES=0,1)`. */
  line: string;
}

/** Undefined for driver vast (a rental's GPUs are chosen by offer) or with nothing to train. */
export async function hostGpus(
  config: Config,
  redis: Redis,
  spec: JobSpec | undefined,
): Promise<HostGpus | undefined> {
  const driver = config.train.driver;
  if (!spec || (driver !== 'local' && driver !== 'ssh')) return undefined;
  const provider = await createProvider(config, { redis });
  const signal = AbortSignal.timeout(60_000);
  try {
    const lease = await provider.acquire(spec, { signal });
    try {
      const detected = await detectGpus(lease.transport);
      return { detected, line: describeGpus(detected) };
    } finally {
      await provider.release(lease.info).catch(() => undefined);
      await lease.transport.close().catch(() => undefined);
    }
  } catch (err) {
    return { line: `GPUs not detected (${asRetrainError(err).message.slice(0, 200)})` };
  } finally {
    await provider.close?.().catch(() => undefined);
  }
}

/**
 * Whether the run's hosts have GPUs, for the concurrency default: what was detected on a local or
 * ssh host; otherwise vast always, ssh when the recipe says `gpu: true` (the rule before detection).
 */
export function runHasGpus(config: Config, recipeGpu: boolean, gpus: HostGpus | undefined): boolean {
  if (gpus?.detected) return gpus.detected.count > 0;
  return config.train.driver === 'vast' || (config.train.driver === 'ssh' && recipeGpu);
}
