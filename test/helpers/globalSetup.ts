import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import type { TestProject } from 'vitest/node';
import { freePort } from '../../src/util/net.js';
import { redisAnswers } from '../../src/util/redisPing.js';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

const answers = (url: string) => redisAnswers(url, 1000);

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
