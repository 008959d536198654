/**
 * The instance pool against the Vast simulator over real HTTP, every "instance" a real sshd: what a
 * user checks — fewer rentals than symbols when symbols wait, every symbol verified, the previous
 * symbol's work dir gone from the host, host-failed instances never reused, idle instances destroyed
 * after the grace and at run end, rented == destroyed, and the cost booked equal to what was billed.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { createProvider } from '../../src/compute/factory.js';
import { PooledProvider } from '../../src/compute/pooled.js';
import type { LeaseInfo } from '../../src/compute/provider.js';
import { loadConfig } from '../../src/config/load.js';
import type { JobSpec } from '../../src/jobspec/types.js';
import { fakeRecipe } from '../helpers/harness.js';
import {
  rentedAllDestroyed,
  startVastWorld,
  vastRun,
  verifyStoredArtifacts,
  waitFor,
  type VastWorld,
} from '../helpers/vastWorld.js';

const DATE = '20260112';
const spec = (symbol: string) =>
  ({ jobId: `train__${symbol}__${DATE}`, symbol, date: DATE, timeoutMinutes: 10 }) as JobSpec;

describe('instance pool (driver vast)', () => {
  let w: VastWorld | undefined;
  const opened: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const o of opened.splice(0)) await o.close().catch(() => undefined);
    await w?.close();
    w = undefined;
  });

  /** A pooled provider of the world's deployment, built as a worker builds it. */
  const provider = async (opts: { waiting?: number; idle?: string; slots?: number } = {}) => {
    const env: NodeJS.ProcessEnv = {
      ...w!.sb.env,
      RETRAIN_POOL_IDLE_SEC: opts.idle ?? '60',
      RETRAIN_POOL_SLOTS: String(opts.slots ?? 1),
    };
    const config = loadConfig({ env });
    const redis = new Redis(w!.sb.redisUrl);
    opened.push({ close: async () => void redis.disconnect() });
    const saved = process.env.VAST_API_KEY;
    process.env.VAST_API_KEY = env.VAST_API_KEY;
    try {
      const p = await createProvider(config, {
        redis,
        symbolsWaiting: async () => opts.waiting ?? 0,
      });
      expect(p).toBeInstanceOf(PooledProvider);
      opened.push({ close: () => p.close!() });
      return p as PooledProvider;
    } finally {
      if (saved === undefined) delete process.env.VAST_API_KEY;
      else process.env.VAST_API_KEY = saved;
    }
  };
  const ctx = (saved: LeaseInfo[] = []) => ({
    signal: new AbortController().signal,
    runId: 'run-1',
    onLeaseCreated: async (info: LeaseInfo) => void saved.push(info),
  });

  it('a run with symbols waiting: fewer rentals than symbols, each handed on with the old work dir removed; billed == booked', async () => {
    w = await startVastWorld(inject('redisUrl'));
    const symbols = ['BTCUSDT', 'ETHUSDT', 'SOLUSDT', 'BNBUSDT', 'XRPUSDT'];
    const r = await vastRun(w.sb.env, {
      symbols,
      date: DATE,
      recipe: fakeRecipe,
      extra: ['--var', 'sleep=1', '--mode', 'hybrid', '--max-concurrent', '2'],
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const st = w.sim.state();
    // Two at a time: the instances of the first two carry the other three.
    expect(st.rented.length).toBeLessThan(symbols.length);
    expect(st.rented.length).toBeLessThanOrEqual(3);
    expect(rentedAllDestroyed(w.sim)).toBe(true);
    const status = JSON.parse(readFileSync(join(w.sb.home, 'store/runs', `${DATE}Z`, 'status.json'), 'utf8'))
      .symbols as Record<string, { status: string; costUsd: number }>;
    for (const s of symbols) {
      expect(status[s]).toMatchObject({ status: 'success' });
      expect(status[s]!.costUsd).toBeGreaterThan(0);
      expect(verifyStoredArtifacts(w.sb.home, `train__${s}__${DATE}`)).toEqual([]);
    }
    // Each instance's disk keeps only its last holder's work dir: the others were removed at handoff
    // (every simulated instance is the same sshd, so they all show in one remote root).
    const left = readdirSync(w.remoteRoot).filter((d) => d.startsWith('train__'));
    expect(left).toHaveLength(st.rented.length);
    // Nothing billed is missing from the figures: the symbols' costs plus the pool's idle time are
    // what the simulator billed, give or take the boot (booked from the rental, billed from running)
    // and the last API round trips.
    const summary = JSON.parse(
      readFileSync(join(w.sb.home, 'store/summary', `${DATE}Z`, 'engine_summary.json'), 'utf8'),
    ) as { costs: { total_usd: number; pool_idle_usd: number; by_symbol: Record<string, number> } };
    const billed = Object.values(st.billedUsd).reduce((a, b) => a + b, 0);
    const bySymbol = Object.values(summary.costs.by_symbol).reduce((a, b) => a + b, 0);
    expect(summary.costs.total_usd).toBeCloseTo(bySymbol + summary.costs.pool_idle_usd, 5);
    const dph = Math.max(...st.instances.map((i) => Number(i.dph_total)));
    const slackUsd = (st.rented.length * 2.5 * dph) / 3600; // 0.3 s boot + API time (under load) per instance
    expect(Math.abs(summary.costs.total_usd - billed)).toBeLessThan(slackUsd);
  }, 180_000);

  it('an instance released after a host failure is destroyed at once, never pooled', async () => {
    w = await startVastWorld(inject('redisUrl'));
    const p = await provider({ waiting: 5 });
    const a = await p.acquire(spec('BTCUSDT'), ctx());
    await a.transport.close();
    await p.release(a.info, { reusable: false });
    expect(w.sim.state().alive).toEqual([]);
    const b = await p.acquire(spec('ETHUSDT'), ctx());
    await b.transport.close();
    expect(b.info.id).not.toBe(a.info.id);
    expect(w.sim.state().rented).toHaveLength(2);
    await p.release(b.info, { reusable: false });
    expect(rentedAllDestroyed(w.sim)).toBe(true);
  }, 60_000);

  it('idle instances are destroyed after idleGraceSec, and at run end', async () => {
    w = await startVastWorld(inject('redisUrl'));
    const p = await provider({ waiting: 5, idle: '1' });
    const [a, b] = await Promise.all([p.acquire(spec('BTCUSDT'), ctx()), p.acquire(spec('ETHUSDT'), ctx())]);
    for (const l of [a!, b!]) await l.transport.close();
    await p.release(a!.info, { reusable: true });
    // Pooled, alive, and destroyed once idle for a second with nobody taking it.
    expect(w.sim.state().alive).toContain(Number(a!.info.id));
    await waitFor(
      'the idle instance to be destroyed',
      () => !w!.sim.state().alive.includes(Number(a!.info.id)),
      10_000,
    );
    // Run end: a pooled instance goes at once, whatever its grace.
    const slow = await provider({ waiting: 5, idle: '3600' });
    await slow.release(b!.info, { reusable: true });
    expect(w.sim.state().alive).toEqual([Number(b!.info.id)]);
    expect(await slow.drainRun('run-1')).toBe(1);
    expect(rentedAllDestroyed(w.sim)).toBe(true);
  }, 60_000);

  it('no symbol waiting: a released instance is destroyed at once rather than idled', async () => {
    w = await startVastWorld(inject('redisUrl'));
    const p = await provider({ waiting: 0 });
    const a = await p.acquire(spec('BTCUSDT'), ctx());
    await a.transport.close();
    await p.release(a.info, { reusable: true });
    expect(rentedAllDestroyed(w.sim)).toBe(true);
  }, 60_000);

  it('slotsPerHost 2: two symbols at once on one instance, each in its own work dir, each paying half', async () => {
    w = await startVastWorld(inject('redisUrl'));
    const p = await provider({ waiting: 5, slots: 2 });
    const a = await p.acquire(spec('BTCUSDT'), ctx());
    const b = await p.acquire(spec('ETHUSDT'), ctx());
    expect(b.info.id).toBe(a.info.id);
    expect(w.sim.state().rented).toHaveLength(1);
    expect(a.info.pool).toMatchObject({ slot: 0, slots: 2 });
    expect(b.info.pool).toMatchObject({ slot: 1, slots: 2 });
    expect(b.info.workRoot).not.toBe(a.info.workRoot);
    // A third waits for a slot: it gets an instance of its own.
    const c = await p.acquire(spec('SOLUSDT'), ctx());
    expect(c.info.id).not.toBe(a.info.id);
    for (const l of [a, b, c]) await l.transport.close();
    // The first to finish leaves the instance to the other; the last one out lets it go.
    await p.release(a.info, { reusable: true });
    expect(w.sim.state().alive).toContain(Number(a.info.id));
    await p.release(c.info, { reusable: false });
    await p.release(b.info, { reusable: false });
    expect(rentedAllDestroyed(w.sim)).toBe(true);
  }, 60_000);

  it('a worker that dies holding a handed-on instance: its successor reattaches to the same one', async () => {
    w = await startVastWorld(inject('redisUrl'));
    const p = await provider({ waiting: 5 });
    const a = await p.acquire(spec('BTCUSDT'), ctx());
    await a.transport.exec(`mkdir -p '${a.info.workRoot}/x' && echo hi > '${a.info.workRoot}/x/f'`);
    await a.transport.close();
    await p.release(a.info, { reusable: true });
    const saved: LeaseInfo[] = [];
    const b = await p.acquire(spec('ETHUSDT'), ctx(saved));
    expect(b.info.id).toBe(a.info.id);
    expect(saved[0]).toMatchObject({ id: a.info.id, pool: { jobId: `train__ETHUSDT__${DATE}` } });
    // The previous holder's work dir is gone from the host's disk; the instance is relabelled.
    expect(existsSync(a.info.workRoot)).toBe(false);
    expect(w.sim.state().instances.find((i) => String(i.id) === a.info.id)?.label).toBe(
      `retrain-default-train__ETHUSDT__${DATE}`,
    );
    // "Crash": this worker's process state is gone; a new one reattaches from the job's facts.lease.
    await b.transport.close();
    await p.close();
    const successor = await provider({ waiting: 5 });
    const again = await successor.reattach(saved[0]!);
    expect(again?.info.id).toBe(a.info.id);
    expect((await again!.transport.exec('echo ok')).stdout.trim()).toBe('ok');
    await again!.transport.close();
    // Nobody else can take it while it is held.
    const c = await successor.acquire(spec('SOLUSDT'), ctx());
    await c.transport.close();
    expect(c.info.id).not.toBe(a.info.id);
    await successor.release(again!.info, { reusable: true });
    await successor.release(c.info, { reusable: true });
    await successor.drainRun('run-1');
    expect(rentedAllDestroyed(w.sim)).toBe(true);
  }, 90_000);
});
