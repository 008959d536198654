import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import type { TestProject } from 'vitest/node';
import { Redis } from 'ioredis';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

async function answers(url: string): Promise<boolean> {
  const r = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 1000,
  });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

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

let spawned: ChildProcess | undefined;

/**
 * Finds a real Redis for the suite: REDIS_URL, else 127.0.0.1:6379, else a redis-server started
 * here on a free port (killed at teardown). Tests read the URL with inject('redisUrl').
 */
export default async function setup(project: TestProject) {
  let url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  if (!(await answers(url))) {
    if (process.env.REDIS_URL) throw new Error(`REDIS_URL=${process.env.REDIS_URL} does not answer PING`);
    if (spawnSync('redis-server', ['--version']).status !== 0) {
      throw new Error('no Redis: set REDIS_URL, run one on 127.0.0.1:6379, or install redis-server');
    }
    const port = await freePort();
    spawned = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    url = `redis://127.0.0.1:${port}`;
    for (let i = 0; i < 50 && !(await answers(url)); i++) await new Promise((r) => setTimeout(r, 100));
  }
  project.provide('redisUrl', url);
  return () => {
    spawned?.kill('SIGTERM');
  };
}
