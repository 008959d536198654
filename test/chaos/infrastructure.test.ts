/**
 * Chaos: the infrastructure goes away mid-run — Redis restarted (a private redis-server with AOF),
 * the Vast API down (503, then refusing connections). The run must complete with nothing lost and
 * every rented instance destroyed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { fakeRecipe, runCli } from '../helpers/harness.js';
import {
  findFiles,
  rentedAllDestroyed,
  startVastWorld,
  waitFor,
  type VastWorld,
} from '../helpers/vastWorld.js';

const DATE = '20260113';
const SYMBOLS = ['BTCUSDT', 'ETHUSDT'];
let w: VastWorld | undefined;
const cleanups: (() => void | Promise<void>)[] = [];

afterEach(async () => {
  await w?.close();
  w = undefined;
  for (const c of cleanups.splice(0).reverse()) await c();
});

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

/** A private redis-server with an append-only file, restartable on the same port and data dir. */
async function privateRedis() {
  const dir = mkdtempSync(join(tmpdir(), 'retrain-redis-'));
  const port = await freePort();
  let proc: ChildProcess | undefined;
  const url = `redis://127.0.0.1:${port}`;
  const ping = async () => {
    const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    r.on('error', () => undefined);
    try {
      await r.connect();
      return (await r.ping()) === 'PONG';
    } catch {
      return false;
    } finally {
      r.disconnect();
    }
  };
  const start = async () => {
    proc = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', ''],
      { stdio: 'ignore' },
    );
    await waitFor('redis up', async () => (await ping()) || undefined, 10_000);
  };
  const stop = async () => {
    // SHUTDOWN flushes the AOF, as a restart by an operator or a supervisor would.
    const exited = new Promise((r) => proc!.once('exit', r));
    const r = new Redis(url);
    r.on('error', () => undefined);
    await r.call('SHUTDOWN').catch(() => undefined);
    r.disconnect();
    await exited;
  };
  await start();
  cleanups.push(async () => {
    if (proc && proc.exitCode === null) proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  return { url, start, stop };
}

function runArgs(extra: string[] = []) {
  return [
    'run',
    '--symbols',
    SYMBOLS.join(','),
    '--date',
    DATE,
    '--ensure-features',
    '--synthetic',
    '--recipe',
    fakeRecipe,
    '--var',
    'sleep=5',
    '--var',
    'lines=50',
    ...extra,
  ];
}

function status(home: string): Record<string, Record<string, unknown>> {
  return JSON.parse(readFileSync(join(home, 'store/runs', `${DATE}Z`, 'status.json'), 'utf8')).symbols;
}

describe('chaos: infrastructure lost mid-run', () => {
  it('Redis restarted while trainings run: workers reconnect and the run completes, nothing lost', async () => {
    const redis = await privateRedis();
    w = await startVastWorld(redis.url);
    const world = w;
    const running = runCli(runArgs(), world.sb.env, 180_000);
    await waitFor(
      'both trainings under way',
      () =>
        findFiles(world.remoteRoot, 'train.log').filter((f) => readFileSync(f, 'utf8').includes('line 10\n'))
          .length === 2 || undefined,
      60_000,
    );
    await redis.stop();
    await new Promise((r) => setTimeout(r, 2000));
    await redis.start();
    const r = await running;
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const st = status(world.sb.home);
    for (const s of SYMBOLS) expect(st[s], s).toMatchObject({ status: 'success', attempts: 1 });
    expect(world.sim.state().rented).toHaveLength(2);
    expect(rentedAllDestroyed(world.sim)).toBe(true);
  }, 180_000);

  it('Vast API down for a while (503, then refusing connections): the run waits, retries, and ends clean', async () => {
    w = await startVastWorld(inject('redisUrl'), { env: { RETRAIN_VAST_RETRY_MS: '200' } });
    const world = w;
    const running = runCli(runArgs(), world.sb.env, 180_000);
    // Down while the instances boot and while the trainings run.
    await waitFor('a rental', () => world.sim.state().rented.length > 0 || undefined, 30_000);
    world.sim.setDown('503');
    await new Promise((r) => setTimeout(r, 3000));
    world.sim.setDown('refuse');
    await new Promise((r) => setTimeout(r, 3000));
    world.sim.setDown('none');
    const r = await running;
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const st = status(world.sb.home);
    for (const s of SYMBOLS) expect(st[s], s).toMatchObject({ status: 'success' });
    expect(rentedAllDestroyed(world.sim)).toBe(true);
  }, 180_000);
});
