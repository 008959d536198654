/**
 * Chaos: a worker SIGKILLed at every step of the GPU path (through failpoints, src/util/failpoint.ts,
 * and once by timing in the middle of a training), then a new worker started. Real processes: the
 * workers, an sshd on loopback, the Vast simulator over HTTP, the real Redis.
 *
 * Must hold every time: the symbol completes in one attempt, one instance is rented (never a second
 * for the same attempt), a training that had started is reattached rather than restarted (one
 * start, every log line once and in order), nothing is left alive in the simulator, the ledger and
 * the summary agree, and the stored artifacts verify.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { fakeRecipe, runCli, startWorker, syntheticRun, type WorkerProc } from '../helpers/harness.js';
import {
  findFiles,
  rentedAllDestroyed,
  startVastWorld,
  verifyStoredArtifacts,
  waitFor,
  type VastWorld,
} from '../helpers/vastWorld.js';

const DATE = '20260112';
const JOB = `train__BTCUSDT__${DATE}`;
const LINES = 40;

let w: VastWorld;
const workers: WorkerProc[] = [];

afterEach(async () => {
  await Promise.all(workers.splice(0).map((p) => p.stop()));
  await w?.close();
});

async function world() {
  // Short locks so a killed worker's job is noticed within seconds (production values: docs/failure-model.md).
  w = await startVastWorld(inject('redisUrl'), {
    env: { RETRAIN_LOCK_DURATION_MS: '2000', RETRAIN_STALLED_INTERVAL_MS: '1000' },
  });
  return w;
}

async function enqueue(events: string) {
  const r = await runCli(
    [
      'enqueue',
      ...syntheticRun('BTCUSDT', DATE, fakeRecipe),
      '--var',
      'sleep=3',
      '--var',
      `lines=${LINES}`,
      '--var',
      `events=${events}`,
    ],
    w.sb.env,
  );
  expect(r.code, r.stderr).toBe(0);
}

function exitOf(p: WorkerProc): Promise<NodeJS.Signals | number | null> {
  return new Promise((r) => {
    if (p.proc.exitCode !== null || p.proc.signalCode !== null)
      return r(p.proc.signalCode ?? p.proc.exitCode);
    p.proc.once('exit', (code, sig) => r(sig ?? code));
  });
}

async function ledgerEntry(): Promise<Record<string, unknown> | undefined> {
  const v = await w.sb.redis.hget(`${w.sb.prefix}:ledger:${DATE}`, 'BTCUSDT');
  return v ? (JSON.parse(v) as Record<string, unknown>) : undefined;
}

/** What must hold after any crash once the second worker has finished the symbol. */
async function expectWholeRun(events: string): Promise<void> {
  try {
    await checkWholeRun(events);
  } catch (err) {
    // What the workers said, for the CI log.
    for (const p of workers) process.stderr.write(`--- worker ${p.proc.pid}\n${p.output().slice(-4000)}\n`);
    throw err;
  }
}

async function checkWholeRun(events: string) {
  const summaryPath = join(w.sb.home, 'store/summary', `${DATE}Z`, 'engine_summary.json');
  const summary = await waitFor(
    'the run summary',
    () => {
      try {
        return JSON.parse(readFileSync(summaryPath, 'utf8')) as Record<string, unknown>;
      } catch {
        return undefined;
      }
    },
    60_000,
  );
  const entry = (await ledgerEntry())!;
  expect(entry).toMatchObject({ status: 'success', attempts: 1 });
  expect(summary).toMatchObject({ succeeded: 1, failed: 0 });
  expect((summary.by_symbol as Record<string, { status: string }>).BTCUSDT!.status).toBe('success');
  // One rental for the one attempt, destroyed; its cost booked once in the ledger and the summary.
  const st = w.sim.state();
  expect(st.rented).toHaveLength(1);
  expect(rentedAllDestroyed(w.sim)).toBe(true);
  expect(entry.costUsd as number).toBeGreaterThan(0);
  expect((summary.costs as { total_usd: number }).total_usd).toBeCloseTo(entry.costUsd as number, 5);
  // One training process, start to end.
  const marks = readFileSync(events, 'utf8').trim().split('\n');
  expect(marks.filter((m) => m.startsWith('start'))).toHaveLength(1);
  expect(marks.filter((m) => m.startsWith('end'))).toHaveLength(1);
  // The symbol's log has every line once, in order, and equals the host's.
  const local = readFileSync(join(w.sb.home, 'logs', `${DATE}Z`, 'BTCUSDT', 'training.log'), 'utf8');
  expect(local.split('\n').filter((l) => /^line \d+$/.test(l))).toEqual(
    Array.from({ length: LINES }, (_, i) => `line ${i + 1}`),
  );
  const [remoteLog] = findFiles(w.remoteRoot, 'train.log');
  expect(local).toBe(readFileSync(remoteLog!, 'utf8'));
  expect(verifyStoredArtifacts(w.sb.home, JOB)).toEqual([]);
}

describe('chaos: kill -9 the worker at any step, start another', () => {
  const points = [
    'provisioning:created',
    'enter:TRANSFERRING',
    'transferring:staged',
    'executing:started',
    'enter:FETCHING',
    'fetching:collected',
    'enter:RELEASING',
    'releasing:released',
  ];
  for (const point of points) {
    it(`killed at ${point}`, async () => {
      await world();
      const events = join(w.sb.home, 'events.txt');
      await enqueue(events);
      const first = startWorker({ ...w.sb.env, RETRAIN_FAILPOINTS: point });
      workers.push(first);
      expect(await exitOf(first), first.output()).toBe('SIGKILL');
      expect(first.output()).toContain(`failpoint ${point}`);
      const second = startWorker(w.sb.env);
      workers.push(second);
      await expectWholeRun(events);
    }, 90_000);
  }

  it('killed by timing in the middle of the training: reattached to the same remote process', async () => {
    await world();
    const events = join(w.sb.home, 'events.txt');
    await enqueue(events);
    const first = startWorker(w.sb.env);
    workers.push(first);
    await waitFor('the training half-way', () =>
      findFiles(w.remoteRoot, 'train.log').some((f) => readFileSync(f, 'utf8').includes('line 15\n')),
    );
    const pidBefore = readFileSync(findFiles(w.remoteRoot, 'pid')[0]!, 'utf8').trim();
    first.proc.kill('SIGKILL');
    await exitOf(first);
    const second = startWorker(w.sb.env);
    workers.push(second);
    await expectWholeRun(events);
    expect(second.output()).toContain('resuming at EXECUTING');
    expect(readFileSync(findFiles(w.remoteRoot, 'pid')[0]!, 'utf8').trim()).toBe(pidBefore);
  }, 90_000);

  it('graceful deploy: SIGTERM hands the training back without a stall and without destroying the GPU', async () => {
    await world();
    const events = join(w.sb.home, 'events.txt');
    await enqueue(events);
    const first = startWorker(w.sb.env);
    workers.push(first);
    await waitFor('the training half-way', () =>
      findFiles(w.remoteRoot, 'train.log').some((f) => readFileSync(f, 'utf8').includes('line 10\n')),
    );
    first.proc.kill('SIGTERM');
    expect(await exitOf(first)).toBe(0);
    expect(first.output()).toContain('handed back on shutdown');
    // The deploy destroyed nothing: the instance is still alive, the training still running.
    expect(w.sim.state().destroyed).toEqual([]);
    expect(w.sim.state().alive).toHaveLength(1);
    const second = startWorker(w.sb.env);
    workers.push(second);
    await expectWholeRun(events);
    expect(second.output()).toContain('resuming at EXECUTING');
    // No stall was counted: the job was handed back, not abandoned.
    const { Queue } = await import('bullmq');
    const q = new Queue('train', { connection: w.sb.redis, prefix: w.sb.prefix });
    const job = await q.getJob(JOB);
    await q.close();
    expect(job?.stalledCounter ?? 0).toBe(0);
    expect(second.output()).not.toMatch(/stalled/i);
  }, 90_000);
});
