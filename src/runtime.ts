/**
 * What every process of a deployment builds from its config, built in one place: the artifact
 * store, the ledger and the run spend on a given Redis connection, and (for processes that train)
 * the compute provider. The workers and the CLI both start here, so a new shared part is one edit.
 */
import type { Redis } from 'ioredis';
import type { createProvider } from './compute/factory.js';
import type { ComputeProvider } from './compute/provider.js';
import type { Config } from './config/schema.js';
import { Ledger } from './ledger/ledger.js';
import { createStore } from './storage/index.js';
import type { ArtifactStore } from './storage/store.js';
import { RunSpend } from './train/spend.js';

export interface Runtime {
  config: Config;
  redis: Redis;
  store: ArtifactStore;
  ledger: Ledger;
  spend: RunSpend;
  /** The configured driver's provider; a pool books its idle time to the run's spend. */
  provider(opts?: ProviderOptions): Promise<ComputeProvider>;
}

type ProviderOptions = Omit<Parameters<typeof createProvider>[1], 'redis' | 'bookIdle'>;

export function createRuntime(
  config: Config,
  opts: {
    redis: Redis;
    onMirrorError?: (err: unknown, date: string) => void;
    /** Wraps the configured store (the workers' outage reporter). */
    wrapStore?: (store: ArtifactStore) => ArtifactStore;
  },
): Runtime {
  const { redis } = opts;
  const configured = createStore(config.store);
  const store = opts.wrapStore ? opts.wrapStore(configured) : configured;
  const ledger = new Ledger({
    redis,
    prefix: config.queuePrefix,
    store,
    retentionDays: config.ledger.retentionDays,
    ...(opts.onMirrorError ? { onMirrorError: opts.onMirrorError } : {}),
  });
  const spend = new RunSpend(redis, config.queuePrefix);
  return {
    config,
    redis,
    store,
    ledger,
    spend,
    // Loaded when asked for: a command that trains nothing does not pay for ssh2 or the Vast client.
    provider: async (p = {}) =>
      (await import('./compute/factory.js')).createProvider(config, {
        ...p,
        redis,
        bookIdle: (runId, usd) => spend.bookPoolIdle(runId, usd),
      }),
  };
}
