import { describe, expect, it } from 'vitest';
import { BoundedShutdown } from '../../../src/cli/shutdown.js';
import { StoreError } from '../../../src/errors.js';
import { LocalStore } from '../../../src/storage/local.js';
import { isStoreOutage, reportingStore } from '../../../src/storage/reporting.js';
import type { ArtifactStore } from '../../../src/storage/store.js';
import { healthReport } from '../../../src/telemetry/healthServer.js';
import { errorFunnel, isConnectionError, OutageReporter } from '../../../src/telemetry/outage.js';

function recorder() {
  const lines: { level: string; fields: Record<string, unknown>; msg: string }[] = [];
  return {
    lines,
    log: {
      warn: (fields: Record<string, unknown>, msg: string) => lines.push({ level: 'warn', fields, msg }),
      info: (fields: Record<string, unknown>, msg: string) => lines.push({ level: 'info', fields, msg }),
    },
  };
}

const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' });

describe('OutageReporter', () => {
  it('a flood of failures over 70 s: one warning, a reminder every 30 s with the length, one line when back', () => {
    let now = 1_000_000;
    const { lines, log } = recorder();
    const r = new OutageReporter({ name: 'Redis', target: 'redis://***@h:6379', log, now: () => now });
    // 20 errors a second (every queue and worker retrying) for 70 s.
    for (let i = 0; i < 1400; i++) {
      r.failure(refused);
      now += 50;
    }
    expect(r.up).toBe(false);
    expect(r.state()).toMatchObject({ up: false, downForSec: 70, outages: 1 });
    r.success();
    r.success();
    expect(lines.map((l) => l.fields.event)).toEqual([
      'outage_started',
      'outage_continues',
      'outage_continues',
      'outage_ended',
    ]);
    expect(lines[0]!.msg).toBe(
      'Redis is unreachable at redis://***@h:6379 (connect ECONNREFUSED 127.0.0.1:6379); waiting for it to come back',
    );
    expect(lines[1]!.fields.downForSec).toBe(30);
    expect(lines[2]!.fields.downForSec).toBe(60);
    expect(lines[3]!.msg).toBe('Redis is back at redis://***@h:6379 after 70 s');
    expect(r.state()).toEqual({
      name: 'Redis',
      target: 'redis://***@h:6379',
      up: true,
      outages: 1,
      lastError: 'connect ECONNREFUSED 127.0.0.1:6379',
    });
  });

  it('tells listeners of each change of state, once', () => {
    const r = new OutageReporter({ name: 'S3 store', target: 's3://b', log: recorder().log });
    const seen: boolean[] = [];
    r.onChange((up) => seen.push(up));
    r.failure(new Error('x'));
    r.failure(new Error('y'));
    r.success();
    r.failure(new Error('z'));
    expect(seen).toEqual([false, true, false]);
    expect(r.state().outages).toBe(2);
  });

  it('errorFunnel: connection errors are counted, any other error keeps its own line', () => {
    const { lines, log } = recorder();
    const r = new OutageReporter({ name: 'Redis', target: 'redis://h', log });
    const others: string[] = [];
    const funnel = errorFunnel(r, (e) => others.push(e.message));
    for (let i = 0; i < 50; i++) funnel(refused);
    funnel(new Error('Connection is closed.'));
    funnel(new Error('ERR unknown command'));
    expect(lines).toHaveLength(1);
    expect(others).toEqual(['ERR unknown command']);
    expect(isConnectionError(new Error('Reached the max retries per request limit (which is 2).'))).toBe(
      true,
    );
    expect(isConnectionError(new Error('WRONGTYPE Operation against a key'))).toBe(false);
  });
});

describe('BoundedShutdown', () => {
  it('after grace + margin it exits 1 with one line naming the steps still running', async () => {
    const written: string[] = [];
    const codes: number[] = [];
    const b = new BoundedShutdown({
      command: 'retrain worker',
      graceMs: 40,
      marginMs: 20,
      write: (l) => written.push(l),
      exit: (c) => codes.push(c),
    });
    expect(b.deadlineMs).toBe(60);
    b.arm();
    await b.step('notifier', async () => undefined);
    void b.step('train worker', () => new Promise(() => undefined));
    void b.step('redis connection', () => new Promise(() => undefined));
    await new Promise((r) => setTimeout(r, 150));
    expect(codes).toEqual([1]);
    expect(written).toHaveLength(1);
    expect(written[0]).toMatch(
      /^retrain worker: shutdown did not finish within 60 ms \(worker\.shutdownGraceMs \+ 20 ms\); /,
    );
    expect(written[0]).toContain('could not close: train worker, redis connection;');
    expect(written[0]).not.toContain('notifier');
  });

  it('a close that finishes in time exits nothing; a second signal gives up at once', async () => {
    const codes: number[] = [];
    const written: string[] = [];
    const b = new BoundedShutdown({
      command: 'x',
      graceMs: 10,
      marginMs: 10,
      exit: (c) => codes.push(c),
      write: (l) => written.push(l),
    });
    b.arm();
    await b.step('a', async () => undefined);
    b.finish();
    await new Promise((r) => setTimeout(r, 60));
    expect(codes).toEqual([]);
    const c = new BoundedShutdown({
      command: 'x',
      graceMs: 10_000,
      exit: (n) => codes.push(n),
      write: (l) => written.push(l),
    });
    c.arm();
    void c.step('queue', () => new Promise(() => undefined));
    c.giveUp('interrupted by a second SIGTERM');
    c.giveUp('again');
    expect(codes).toEqual([1]);
    expect(written).toEqual([
      'x: shutdown interrupted by a second SIGTERM; could not close: queue; exiting 1 (running trainings are left alone: the next worker reattaches)',
    ]);
    c.finish();
  });
});

describe('reportingStore', () => {
  it('an unreachable store is one outage; answers (not found) and successes are not', async () => {
    const { lines, log } = recorder();
    const outage = new OutageReporter({ name: 'S3 store', target: 's3://bucket', log });
    let down = true;
    const inner = new LocalStore('/nonexistent-root-for-test');
    const fake: ArtifactStore = Object.assign(Object.create(inner) as ArtifactStore, {
      exists: async () => {
        if (down)
          throw new StoreError('head s3://bucket/k failed at http://s3: connect ECONNREFUSED', {
            retryable: true,
          });
        return true;
      },
      getBytes: async () => {
        throw new StoreError('not found: k (s3://bucket/k)', { retryable: false });
      },
    });
    const store = reportingStore(fake, outage);
    for (let i = 0; i < 10; i++) await expect(store.exists('k')).rejects.toThrow(/ECONNREFUSED/);
    await expect(store.getBytes('k')).rejects.toThrow(/not found/);
    expect(outage.up).toBe(false);
    down = false;
    await expect(store.exists('k')).resolves.toBe(true);
    expect(lines.map((l) => l.fields.event)).toEqual(['outage_started', 'outage_ended']);
    expect(isStoreOutage(new StoreError('cannot read /x (for s3://b/k): EACCES', { retryable: true }))).toBe(
      false,
    );
  });
});

describe('healthReport', () => {
  it('200 when every check passes, 503 naming the failing ones; outages shown either way', async () => {
    const redis = new OutageReporter({ name: 'Redis', target: 'redis://h', log: recorder().log });
    const s3 = new OutageReporter({ name: 'S3 store', target: 's3://b', log: recorder().log });
    s3.failure(new Error('ETIMEDOUT'));
    let redisOk = true;
    const src = {
      outages: [redis, s3],
      checks: async () => ({ redis: { ok: redisOk }, loops: { ok: true } }),
    };
    const ok = await healthReport(src);
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ status: 'ok', dependencies: { 'S3 store': { up: false } } });
    redisOk = false;
    const bad = await healthReport(src);
    expect(bad.status).toBe(503);
    expect(bad.body).toMatchObject({ status: 'unhealthy', failing: ['redis'] });
  });
});
