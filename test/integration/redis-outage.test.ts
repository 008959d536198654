/**
 * Redis goes away under a running `retrain worker` (a private redis-server of this test, stopped
 * and restarted on the same port): the worker says so once, stays quiet, reports 503 on /healthz,
 * takes jobs again when Redis is back, and a SIGTERM while Redis is gone ends it within
 * worker.shutdownGraceMs + 5 s. The training running all along is never killed.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import {
  fakeRecipe,
  runCli,
  sandbox,
  startWorker,
  syntheticRun,
  type Sandbox,
  type WorkerProc,
} from '../helpers/harness.js';
import { freePort, privateRedis, type PrivateRedis } from '../helpers/privateRedis.js';

const DATE = '20260112';
const GRACE_MS = 2000;
/** What src/cli/shutdown.ts promises: the grace, then 5 s for the rest of the close. */
const BOUND_MS = GRACE_MS + 5000;
/** Slack for a loaded machine to deliver the signal and reap the process. */
const SLACK_MS = 3000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 30_000,
) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

interface Health {
  status: number;
  body: {
    status: string;
    failing?: string[];
    checks: Record<string, { ok: boolean; [k: string]: unknown }>;
    dependencies: Record<string, { up: boolean; downForSec?: number }>;
  };
}

async function healthz(port: number): Promise<Health | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(5000) });
    return { status: res.status, body: (await res.json()) as Health['body'] };
  } catch {
    return undefined;
  }
}

function lines(w: WorkerProc): string[] {
  return w
    .output()
    .split('\n')
    .filter((l) => l.trim() !== '');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('a worker when Redis goes away', () => {
  let redis: PrivateRedis | undefined;
  let sb: Sandbox | undefined;
  const workers: WorkerProc[] = [];
  let trainingPid: number | undefined;

  afterEach(async () => {
    for (const w of workers.splice(0))
      if (w.proc.exitCode === null && w.proc.signalCode === null) w.proc.kill('SIGKILL');
    // A failed test may leave the training running: its process group goes with the test.
    if (trainingPid && alive(trainingPid)) process.kill(-trainingPid, 'SIGKILL');
    await redis?.start();
    await sb?.cleanup();
    await redis?.cleanup();
  });

  it('is quiet during a 30 s outage, 503 then 200 on /healthz, resumes jobs, stops within its bound on SIGTERM; the training lives on', async () => {
    redis = await privateRedis();
    const healthPort = await freePort();
    const world = await sandbox(redis.url, {
      RETRAIN_LOCK_DURATION_MS: '2000',
      RETRAIN_STALLED_INTERVAL_MS: '1000',
      RETRAIN_SHUTDOWN_GRACE_MS: String(GRACE_MS),
      RETRAIN_HEALTH_PORT: String(healthPort),
    });
    sb = world;
    const events = join(world.home, 'events.txt');
    // The training sleeps until the test creates this file (at most 5 minutes): it spans every
    // phase below however slow the machine, and ends when the test is done with it.
    const finish = join(world.home, 'finish-training');
    const marks = () => (existsSync(events) ? readFileSync(events, 'utf8').trim().split('\n') : []);
    const enqueue = (symbol: string, sleepSec: number, extra: string[] = []) =>
      runCli(
        ['enqueue', ...syntheticRun(symbol, DATE, fakeRecipe)].concat([
          '--var',
          `sleep=${sleepSec}`,
          '--var',
          `events=${events}`,
          ...extra,
        ]),
        world.env,
      );
    const ledger = async (symbol: string) => {
      const v = await world.redis.hget(`${world.prefix}:ledger:${DATE}`, symbol);
      return v ? JSON.parse(v) : undefined;
    };

    // A training that spans the outage, the restart and a stopped worker.
    const enq = await enqueue('BTCUSDT', 300, ['--var', `until=${finish}`]);
    expect(enq.code, enq.stderr).toBe(0);
    const first = startWorker(world.env);
    workers.push(first);
    await waitFor('the training to execute', async () => (await ledger('BTCUSDT'))?.state === 'EXECUTING');
    const train = new Queue('train', { connection: world.redis, prefix: world.prefix });
    trainingPid = await waitFor('the training pid in the job facts', async () => {
      const [job] = await train.getJobs(['active']);
      return (job?.data as { facts?: { pid?: number } } | undefined)?.facts?.pid;
    });
    await train.close();
    expect(trainingPid, 'the training pid in the job facts').toBeTypeOf('number');
    expect((await healthz(healthPort))?.status).toBe(200);

    // ---- A 30 s outage: one warning, at most a reminder, 503 throughout.
    const quietBefore = lines(first).length;
    const stoppedAt = Date.now();
    await redis.stop();
    const down = await waitFor(
      '/healthz 503',
      async () => {
        const h = await healthz(healthPort);
        return h?.status === 503 ? h : undefined;
      },
      10_000,
    );
    expect(down.body.failing).toEqual(['redis']);
    expect(down.body.checks.redis!.ok).toBe(false);
    expect(down.body.dependencies.Redis!.up).toBe(false);
    await sleep(stoppedAt + 32_000 - Date.now());
    const late = await healthz(healthPort);
    expect(late?.status).toBe(503);
    const during = lines(first).slice(quietBefore);
    expect(during.length, during.join('\n')).toBeLessThanOrEqual(5);
    expect(during.filter((l) => l.includes('"outage_started"'))).toHaveLength(1);
    for (const r of during.filter((l) => l.includes('"outage_continues"')))
      expect(JSON.parse(r).downForSec).toBeGreaterThanOrEqual(30);
    // The password-free URL names where Redis was expected.
    expect(during[0]).toContain(`redis://127.0.0.1:${redis.port}`);
    expect(alive(trainingPid!)).toBe(true);

    // ---- Redis is back: one line, 200, and the worker takes a new job.
    await redis.start();
    const up = await waitFor(
      '/healthz 200',
      async () => {
        const h = await healthz(healthPort);
        return h?.status === 200 ? h : undefined;
      },
      20_000,
    );
    expect(up.body.checks.redis!.ok).toBe(true);
    expect(up.body.checks.loops!.ok).toBe(true);
    expect(lines(first).filter((l) => l.includes('"outage_ended"'))).toHaveLength(1);
    const eth = await enqueue('ETHUSDT', 0);
    expect(eth.code, eth.stderr).toBe(0);
    await waitFor(
      'ETHUSDT trained by the same worker',
      async () => (await ledger('ETHUSDT'))?.status === 'success',
    );
    expect(first.proc.exitCode).toBeNull();

    // ---- Redis gone again, then SIGTERM: the worker exits within its bound, non-zero, one line.
    expect(
      marks().filter((m) => m.startsWith('end BTCUSDT')),
      'BTCUSDT still training',
    ).toHaveLength(0);
    await redis.stop();
    await sleep(1000);
    const exited = new Promise<number | null>((r) => first.proc.once('exit', (code) => r(code)));
    const termAt = Date.now();
    first.proc.kill('SIGTERM');
    const code = await exited;
    const tookMs = Date.now() - termAt;
    expect(tookMs).toBeLessThanOrEqual(BOUND_MS + SLACK_MS);
    expect(code).not.toBe(0);
    const deadline = lines(first).filter((l) => l.includes('shutdown did not finish'));
    expect(deadline, first.output().slice(-2000)).toHaveLength(1);
    expect(deadline[0]).toMatch(/could not close: .*worker/);
    // The training was not touched.
    expect(alive(trainingPid!)).toBe(true);

    // ---- Redis back, a new worker reattaches to the same training: one start, one end.
    await redis.start();
    const second = startWorker({ ...world.env, RETRAIN_HEALTH_PORT: '' });
    workers.push(second);
    await waitFor(
      'the second worker to reattach',
      () => second.output().includes('resuming at EXECUTING'),
      60_000,
    );
    writeFileSync(finish, '');
    const entry = await waitFor(
      'BTCUSDT success',
      async () => {
        const e = await ledger('BTCUSDT');
        return e?.status === 'success' ? e : undefined;
      },
      90_000,
    );
    expect(entry.history).toHaveLength(1);
    expect(marks().filter((m) => m.startsWith('start BTCUSDT'))).toHaveLength(1);
    expect(marks().filter((m) => m.startsWith('end BTCUSDT'))).toHaveLength(1);
    expect(second.output()).toContain('resuming at EXECUTING');
    expect(await second.stop()).toBe(0);
  }, 150_000);
});
