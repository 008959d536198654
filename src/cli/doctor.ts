/**
 * `retrain doctor`: checks the setup one part at a time, each a line `ok` or `FAIL` with what to do.
 * Exit 0 only when every check passes. Checks are independent: a broken part never hides another.
 */
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { producerConnection, redisAnswers } from '../../queues/connection.js';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { vastClientFrom } from '../compute/factory.js';
import { SshProvider } from '../compute/ssh.js';
import { asRetrainError } from '../errors.js';
import { loadRecipe, shippedRecipesDir } from '../recipes/loader.js';
import { createStore } from '../storage/index.js';
import type { JobSpec } from '../jobspec/types.js';
import { displayUrl } from '../util/displayUrl.js';
import { VastAuthError } from '../vast/errors.js';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  /** What to do when it failed. */
  fix?: string;
}

/** Largest clock difference with Redis that passes (the ledger and leases compare timestamps). */
export const MAX_SKEW_MS = 2000;

const msg = (err: unknown) => asRetrainError(err).message.split('\n')[0]!;

async function checkRedis(config: Config): Promise<Check[]> {
  const url = displayUrl(config.redisUrl);
  if (!(await redisAnswers(config.redisUrl))) {
    return [
      {
        name: 'redis',
        ok: false,
        detail: `not reachable at ${url}`,
        fix: 'start Redis (redis-server) or set REDIS_URL',
      },
      { name: 'clock', ok: false, detail: 'not checked: Redis is not reachable', fix: 'fix Redis first' },
    ];
  }
  const redis = producerConnection(config.redisUrl);
  redis.on('error', () => undefined);
  try {
    const info = await redis.info('server');
    const version = /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
    const major = Number(version.split('.')[0]);
    const redisCheck: Check =
      major >= 6
        ? { name: 'redis', ok: true, detail: `${url}, version ${version}` }
        : {
            name: 'redis',
            ok: false,
            detail: `${url}, version ${version}`,
            fix: 'BullMQ needs Redis 6.2 or newer',
          };
    const before = Date.now();
    const [sec, usec] = await redis.time();
    const after = Date.now();
    const redisMs = Number(sec) * 1000 + Number(usec) / 1000;
    const skew = Math.round(redisMs - (before + after) / 2);
    const clock: Check =
      Math.abs(skew) <= MAX_SKEW_MS
        ? { name: 'clock', ok: true, detail: `skew with Redis ${skew} ms` }
        : {
            name: 'clock',
            ok: false,
            detail: `skew with Redis ${skew} ms (more than ${MAX_SKEW_MS} ms)`,
            fix: 'synchronise the clocks (chrony/ntp) of this machine and the Redis host',
          };
    return [redisCheck, clock];
  } catch (err) {
    return [{ name: 'redis', ok: false, detail: msg(err), fix: 'check REDIS_URL and the Redis server' }];
  } finally {
    redis.disconnect();
  }
}

async function checkStore(config: Config): Promise<Check> {
  const store = createStore(config.store);
  const key = `doctor/${hostname().replace(/[^A-Za-z0-9_.-]/g, '_')}-${randomUUID().slice(0, 8)}.txt`;
  const body = `retrain doctor ${new Date().toISOString()}`;
  const where = store.locate(key).replace(/doctor\/[^/]*$/, '');
  try {
    await store.putBytes(key, body);
  } catch (err) {
    return {
      name: 'store',
      ok: false,
      detail: `cannot write ${where}: ${msg(err)}`,
      fix: 'make the store writable (permissions, credentials, bucket)',
    };
  }
  try {
    const back = (await store.getBytes(key)).toString('utf8');
    if (back !== body)
      return {
        name: 'store',
        ok: false,
        detail: `${where}: read back something else`,
        fix: 'check the store backend',
      };
    return { name: 'store', ok: true, detail: `${where}: write, read and delete round trip` };
  } catch (err) {
    return {
      name: 'store',
      ok: false,
      detail: `cannot read ${where}: ${msg(err)}`,
      fix: 'make the store readable',
    };
  } finally {
    await store.delete(key).catch(() => undefined);
  }
}

async function checkVast(config: Config): Promise<Check> {
  if (!process.env.VAST_API_KEY) {
    return {
      name: 'vast',
      ok: false,
      detail: 'VAST_API_KEY is not set',
      fix: 'export VAST_API_KEY (console.vast.ai → Account → API keys)',
    };
  }
  try {
    const b = await vastClientFrom(config).getBalance();
    const ok = b.credit > 0;
    return {
      name: 'vast',
      ok,
      detail: `key valid at ${config.vast.apiUrl}, credit $${b.credit.toFixed(2)}`,
      ...(ok ? {} : { fix: 'add credit to the Vast account: at zero every instance stops' }),
    };
  } catch (err) {
    return err instanceof VastAuthError
      ? { name: 'vast', ok: false, detail: 'the API key was refused', fix: 'set VAST_API_KEY to a valid key' }
      : {
          name: 'vast',
          ok: false,
          detail: `${config.vast.apiUrl}: ${msg(err)}`,
          fix: 'check vast.apiUrl and the network',
        };
  }
}

/** Connects to the ssh driver's host with the configured key and asks for python3 there. */
async function checkSsh(config: Config): Promise<Check[]> {
  const s = config.ssh;
  if (!s.host || !s.keyPath) {
    return [
      {
        name: 'ssh',
        ok: false,
        detail: 'ssh.host or ssh.keyPath is not set',
        fix: 'set RETRAIN_SSH_HOST and RETRAIN_SSH_KEY (or ssh.* in the config)',
      },
    ];
  }
  const provider = new SshProvider({
    host: s.host,
    port: s.port,
    user: s.user,
    keyPath: s.keyPath,
    workRoot: s.workRoot,
    pinsFile: join(config.home, 'ssh', 'known_hosts.json'),
    readyTimeoutMs: 10_000,
    connectRetries: 0,
    commandAgent: s.commandAgent,
  });
  const where = `${s.user}@${s.host}:${s.port}`;
  try {
    const lease = await provider.acquire({} as JobSpec, { signal: AbortSignal.timeout(30_000) });
    try {
      const r = await lease.transport.exec('python3 --version 2>&1', { timeoutMs: 20_000 });
      const py: Check =
        r.code === 0
          ? { name: 'python3', ok: true, detail: `on ${where}: ${r.stdout.trim()}` }
          : {
              name: 'python3',
              ok: false,
              detail: `not found on ${where}`,
              fix: 'install python3 on the training host',
            };
      return [{ name: 'ssh', ok: true, detail: `${where} answers with the configured key` }, py];
    } finally {
      await lease.transport.close().catch(() => undefined);
      await provider.release(lease.info).catch(() => undefined);
    }
  } catch (err) {
    return [
      {
        name: 'ssh',
        ok: false,
        detail: `${where}: ${msg(err)}`,
        fix: 'check the host is up, the port, and that its authorized_keys has the key',
      },
      { name: 'python3', ok: false, detail: 'not checked: the host does not answer', fix: 'fix SSH first' },
    ];
  }
}

function checkLocalPython(): Check {
  const r = spawnSync('python3', ['--version'], { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0
    ? {
        name: 'python3',
        ok: true,
        detail: `on this machine (driver local): ${(r.stdout || r.stderr).trim()}`,
      }
    : {
        name: 'python3',
        ok: false,
        detail: 'python3 not found on this machine (driver local)',
        fix: 'install python3',
      };
}

async function checkRecipe(config: Config): Promise<Check> {
  try {
    const r = await loadRecipe(config.recipe, {
      recipesDir: shippedRecipesDir(),
      overrides: config.recipeVars,
    });
    const missing = r.def.secrets.filter((n) => !process.env[n]);
    if (missing.length) {
      return {
        name: 'recipe',
        ok: false,
        detail: `${r.def.name}@${r.def.version}: secrets not set: ${missing.join(', ')}`,
        fix: `export ${missing.join(', ')} in the workers' environment`,
      };
    }
    return {
      name: 'recipe',
      ok: true,
      detail: `${r.def.name}@${r.def.version} loads${r.def.secrets.length ? `, secrets set: ${r.def.secrets.join(', ')}` : ''}`,
    };
  } catch (err) {
    return { name: 'recipe', ok: false, detail: msg(err), fix: 'fix the recipe or --recipe/RETRAIN_RECIPE' };
  }
}

export async function runChecks(config: Config): Promise<Check[]> {
  const driver = config.train.driver;
  const checks = await Promise.all([
    checkRedis(config),
    checkStore(config).then((c) => [c]),
    driver === 'vast' ? checkVast(config).then((c) => [c]) : Promise.resolve([]),
    driver === 'ssh' ? checkSsh(config) : Promise.resolve(driver === 'local' ? [checkLocalPython()] : []),
    checkRecipe(config).then((c) => [c]),
  ]);
  return checks.flat();
}

export async function doctorCommand(flags: {
  config?: string;
  driver?: string;
  json?: boolean;
}): Promise<number> {
  const config = loadConfig({
    file: flags.config,
    ...(flags.driver ? { overrides: { train: { driver: flags.driver } } } : {}),
  });
  const checks = await runChecks(config);
  if (flags.json)
    process.stdout.write(JSON.stringify({ driver: config.train.driver, checks }, null, 2) + '\n');
  else {
    for (const c of checks) {
      process.stdout.write(
        `${c.ok ? 'ok  ' : 'FAIL'} ${c.name.padEnd(8)} ${c.detail}${c.ok || !c.fix ? '' : ` — ${c.fix}`}\n`,
      );
    }
    const failed = checks.filter((c) => !c.ok).length;
    process.stdout.write(
      failed ? `${failed} of ${checks.length} checks failed\n` : `all ${checks.length} checks passed\n`,
    );
  }
  return checks.every((c) => c.ok) ? 0 : 1;
}
