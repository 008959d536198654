import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import type { Config } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import { HostKeyPins } from '../remote/ssh/hostKeys.js';
import { ensureDeploymentKey } from '../remote/ssh/keys.js';
import { SECRET_ENV_NAMES } from '../telemetry/logger.js';
import { ensureAccountKey } from '../vast/accountKey.js';
import { ApiBudget } from '../vast/budget.js';
import type { OutageReporter } from '../telemetry/outage.js';
import { VastClient } from '../vast/client.js';
import { OfferBoard } from '../vast/market.js';
import { InstancePoller } from '../vast/poller.js';
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

/**
 * The Vast client of the deployment. With `redis`, every call waits its turn in the API budget
 * shared by all workers using the same key (src/vast/budget.ts); `outage` reports an API outage once.
 */
export function vastClientFrom(
  config: Config,
  env: NodeJS.ProcessEnv = process.env,
  deps: {
    redis?: Redis;
    onEvent?: (event: string, data: Record<string, unknown>) => void;
    /** Told of every call's outcome, so that an API outage is logged once. */
    outage?: OutageReporter;
  } = {},
): VastClient {
  const apiKey = env.VAST_API_KEY;
  if (!apiKey) throw new ConfigError('driver vast needs VAST_API_KEY in the environment');
  const v = config.vast;
  const budget =
    deps.redis && v.apiBudget.enabled
      ? new ApiBudget({
          redis: deps.redis,
          apiUrl: v.apiUrl,
          apiKey,
          intervalsSec: v.apiBudget.intervalsSec,
          marginMs: v.apiBudget.marginMs,
          timeScale: v.apiBudget.timeScale,
        })
      : undefined;
  return new VastClient({
    apiUrl: v.apiUrl,
    apiKey,
    retries: v.apiRetries,
    minRetryDelayMs: v.apiRetryBaseMs,
    createTimeoutMs: v.createTimeoutSec * 1000,
    ...(budget ? { budget } : {}),
    onDroppedRows: (rows) =>
      deps.onEvent?.('instance_row_skipped', {
        rows: rows.map((r) => ({ id: typeof r.id === 'number' ? r.id : null, reason: r.reason })),
      }),
    ...(deps.outage ? { outage: deps.outage } : {}),
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
        commandAgent: s.commandAgent,
      });
    }
    case 'vast': {
      const client = vastClientFrom(config, process.env, {
        redis: deps.redis,
        ...(deps.onEvent ? { onEvent: deps.onEvent } : {}),
        ...(deps.vastOutage ? { outage: deps.vastOutage } : {}),
      });
      const key = await ensureDeploymentKey(sshDir, config.deployment);
      const v = config.vast;
      const prefix = config.queuePrefix;
      const poller = new InstancePoller({
        redis: deps.redis,
        prefix,
        client,
        intervalMs: v.pollSec * 1000,
        labelPrefix: `retrain-${config.deployment}-`,
        onError: (err) =>
          deps.onEvent?.('instance_poll_failed', { err: String((err as Error)?.message ?? err) }),
      });
      const board = new OfferBoard({
        redis: deps.redis,
        prefix,
        client,
        cacheMs: v.offers.cacheSec * 1000,
        // Held until the create is answered (or timed out), whatever it takes.
        claimMs: (v.createTimeoutSec + 30) * 1000,
        tolerance: v.offers.priceTolerance,
      });
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
        poller,
        board,
        ensureAccountKey: (turn) =>
          ensureAccountKey({ redis: deps.redis, prefix, client, publicKey: key.publicKey, turn }),
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
