import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { loadConfig } from '../config/load.js';
import { redisAnswers } from '../../queues/connection.js';
import { executeRun } from './executeRun.js';
import { RedisUnreachableError } from './redis.js';
import { parseRunOptions } from './runOptions.js';
import { displayUrl } from '../util/displayUrl.js';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Starts a private, non-persistent redis-server for the demo; null when none is installed. */
async function startPrivateRedis(home: string): Promise<{ url: string; proc: ChildProcess } | null> {
  if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status !== 0) return null;
  const port = await freePort();
  const dir = join(home, 'redis');
  mkdirSync(dir, { recursive: true });
  const proc = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    {
      stdio: 'ignore',
    },
  );
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 50; i++) {
    if (await redisAnswers(url, 300)) return { url, proc };
    await new Promise((r) => setTimeout(r, 100));
  }
  proc.kill('SIGKILL');
  return null;
}

/**
 * `retrain demo` (`npm run demo`): the daily job for the top 20 symbols on the embedded defaults —
 * local driver, local store, synthetic data (--synthetic) where none exists, the reference recipe,
 * promotion dry.
 */
export async function demoCommand(opts: {
  symbols?: string;
  date?: string;
  force?: boolean;
}): Promise<number> {
  const base = loadConfig();
  let privateRedis: { url: string; proc: ChildProcess } | null = null;
  if (!(await redisAnswers(base.redisUrl))) {
    privateRedis = await startPrivateRedis(base.home);
    if (!privateRedis) throw new RedisUnreachableError(base.redisUrl);
    process.stdout.write(
      `Redis not reachable at ${displayUrl(base.redisUrl)}: started a private one at ${privateRedis.url}\n`,
    );
    process.env.REDIS_URL = privateRedis.url;
  }
  try {
    const req = parseRunOptions(
      { symbols: opts.symbols ?? 'top20', date: opts.date, force: opts.force, driver: 'local' },
      { promote: 'dry', ensureFeatures: true, synthetic: true },
    );
    process.stdout.write(`retrain demo: RETRAIN_HOME=${req.config.home}, date ${req.plan.date}\n`);
    return await executeRun(req, { inProcessWorkers: true });
  } finally {
    privateRedis?.proc.kill('SIGTERM');
  }
}
