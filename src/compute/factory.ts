import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import type { Config } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import { HostKeyPins } from '../remote/ssh/hostKeys.js';
import { ensureDeploymentKey } from '../remote/ssh/keys.js';
import { SECRET_ENV_NAMES } from '../telemetry/logger.js';
import type { OutageReporter } from '../telemetry/outage.js';
import { VastClient } from '../vast/client.js';
import { LocalProvider } from './local.js';
import { InstancePool } from './pool.js';
import { PooledProvider } from './pooled.js';
import type { ComputeProvider } from './provider.js';
import { SshProvider } from './ssh.js';
import { VastProvider } from './vast.js';

/** The worker's environment minus the orchestrator's own secrets (what a local training sees). */
export function trainingBaseEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of [...SECRET_ENV_NAMES, 'REDIS_URL']) delete env[name];
  return env;
}

export function vastClientFrom(
  config: Config,
  env: NodeJS.ProcessEnv = process.env,
  outage?: OutageReporter,
): VastClient {
  const apiKey = env.VAST_API_KEY;
  if (!apiKey) throw new ConfigError('driver vast needs VAST_API_KEY in the environment');
  return new VastClient({
    apiUrl: config.vast.apiUrl,
    apiKey,
    retries: config.vast.apiRetries,
    minRetryDelayMs: config.vast.apiRetryBaseMs,
    ...(outage ? { outage } : {}),
  });
}

/** Builds the compute provider of the configured driver. Reads secrets from the environment only. */
export async function createProvider(
  config: Config,
  deps: {
    redis: Redis;
    onEvent?: (event: string, data: Record<string, unknown>) => void;
    /** Pool: how many train jobs wait (a free instance nobody waits for is destroyed at once). */
    symbolsWaiting?: (runId: string) => Promise<number>;
    /** Pool: books a run's instance time that no symbol held (RunSpend.bookPoolIdle). */
    bookIdle?: (runId: string, usd: number) => Promise<void>;
    /** The Vast API's outage reporter (one line per outage, not per request). */
    vastOutage?: OutageReporter;
  },
): Promise<ComputeProvider> {
  const sshDir = join(config.home, 'ssh');
  switch (config.train.driver) {
    case 'local':
      return new LocalProvider({ root: join(config.home, 'models'), baseEnv: trainingBaseEnv() });
    case 'ssh': {
      const s = config.ssh;
      if (!s.host) throw new ConfigError('driver ssh needs ssh.host (config file or RETRAIN_SSH_HOST)');
      if (!s.keyPath) throw new ConfigError('driver ssh needs ssh.keyPath (config file or RETRAIN_SSH_KEY)');
      return new SshProvider({
        host: s.host,
        port: s.port,
        user: s.user,
        keyPath: s.keyPath,
        workRoot: s.workRoot,
        pinsFile: join(sshDir, 'known_hosts.json'),
      });
    }
    case 'vast': {
      const client = vastClientFrom(config, process.env, deps.vastOutage);
      const key = await ensureDeploymentKey(sshDir, config.deployment);
      const privateKey = await readFile(key.privateKeyPath);
      const badKey = (date: string) => `${config.queuePrefix}:vast:bad-machines:${date}`;
      const vast = new VastProvider({
        config,
        client,
        privateKey,
        publicKey: key.publicKey,
        pins: new HostKeyPins(join(sshDir, 'known_hosts.json')),
        badMachines: (spec) => ({
          add: async (id) => {
            await deps.redis.sadd(badKey(spec.date), String(id));
            await deps.redis.expire(badKey(spec.date), 3 * 86400);
          },
          list: async () => (await deps.redis.smembers(badKey(spec.date))).map(Number),
        }),
        onEvent: deps.onEvent,
      });
      if (!config.vast.pool.enabled) return vast;
      return new PooledProvider({
        config,
        inner: vast,
        pool: new InstancePool(deps.redis, config.queuePrefix),
        client,
        ...(deps.symbolsWaiting ? { symbolsWaiting: deps.symbolsWaiting } : {}),
        ...(deps.bookIdle ? { bookIdle: deps.bookIdle } : {}),
        ...(deps.onEvent ? { onEvent: deps.onEvent } : {}),
      });
    }
  }
}
