/**
 * The capacity wait in front of a provider (src/compute/capacityWait.ts), against real Redis with a
 * scripted inner provider: no offer is waited out, never past the wait limit, without hammering the
 * search however many symbols wait, a freed pooled slot wakes a waiter at once, and a run that gets
 * nothing is alerted once.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CapacityWaitProvider,
  capacityWaitUntil,
  type NoCapacityAlert,
} from '../../../src/compute/capacityWait.js';
import type { CapacityEvent, ComputeProvider, Lease, LeaseInfo } from '../../../src/compute/provider.js';
import { loadConfig } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';
import { NoCapacityError, ProvisionError } from '../../../src/errors.js';
import type { JobSpec } from '../../../src/jobspec/types.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const spec = (symbol: string, timeoutMinutes = 60) =>
  ({ jobId: `train__${symbol}__20260114`, symbol, date: '20260114', timeoutMinutes }) as JobSpec;

/** An inner provider whose market has no offer until `open()`; counts its searches. */
function market() {
  const calls: { symbol: string; at: number }[] = [];
  let open = false;
  const inner: ComputeProvider = {
    driver: 'vast',
    acquire: async (s) => {
      calls.push({ symbol: s.symbol, at: Date.now() });
      if (!open)
        throw new NoCapacityError(`${s.symbol}: no offer meets the constraints`, 'RTX_4090 ≤ $0.60/h');
      const info: LeaseInfo = {
        driver: 'vast',
        id: s.symbol,
        host: 'h',
        workRoot: '/w',
        acquiredAt: new Date().toISOString(),
        hourlyCostUsd: 0.5,
        gpu: 'RTX 4090',
        gpuClass: 'RTX_4090 ≤ $0.60/h',
      };
      return { info, transport: {} as Lease['transport'] };
    },
    reattach: async () => null,
    release: async () => undefined,
    list: async () => [],
  };
  return { inner, calls, open: () => void (open = true) };
}

describe('CapacityWaitProvider (real Redis)', () => {
  let redis: Redis;
  let config: Config;
  beforeEach(() => {
    redis = new Redis(REDIS_URL);
    config = loadConfig({ env: { RETRAIN_QUEUE_PREFIX: `t-cap-${randomUUID().slice(0, 8)}` } });
    config.vast.capacityPollSec = 0.2;
  });
  afterEach(async () => {
    const found = await redis.keys(`${config.queuePrefix}:*`);
    if (found.length) await redis.del(...found);
    redis.disconnect();
  });

  const ctx = (events: CapacityEvent[] = [], runId = 'run-1') => ({
    signal: new AbortController().signal,
    runId,
    onCapacity: async (e: CapacityEvent) => void events.push(e),
  });

  it('waits through "no offer" and takes the offer that appears, telling the ledger since when and for how long', async () => {
    const m = market();
    const p = new CapacityWaitProvider({ config, inner: m.inner, redis });
    const events: CapacityEvent[] = [];
    setTimeout(m.open, 700);
    const lease = await p.acquire(spec('BTCUSDT'), ctx(events));
    expect(lease.info.gpu).toBe('RTX 4090');
    expect(m.calls.length).toBeGreaterThan(1);
    expect(events[0]).toMatchObject({ state: 'waiting', unmet: 'RTX_4090 ≤ $0.60/h' });
    const done = events[1] as Extract<CapacityEvent, { state: 'done' }>;
    expect(done).toMatchObject({ state: 'done', gpu: 'RTX 4090', gpuClass: 'RTX_4090 ≤ $0.60/h' });
    expect(done.waitedMs).toBeGreaterThanOrEqual(600);
    expect(done.since).toBe((events[0] as { since: string }).since);
    // No longer counted as waiting once it has a host.
    expect(await redis.zcard(`${config.queuePrefix}:capacity:run-1:waiting`)).toBe(0);
  });

  it('a symbol with an offer at once is told so, with no wait', async () => {
    const m = market();
    m.open();
    const events: CapacityEvent[] = [];
    await new CapacityWaitProvider({ config, inner: m.inner, redis }).acquire(spec('BTCUSDT'), ctx(events));
    expect(events).toEqual([{ state: 'done', waitedMs: 0, gpu: 'RTX 4090', gpuClass: 'RTX_4090 ≤ $0.60/h' }]);
  });

  it('gives up at its wait limit with no_capacity, not retryable, naming what no offer met', async () => {
    config.vast.capacityWaitMin = 0.01; // 0.6 s
    const m = market();
    const events: CapacityEvent[] = [];
    const started = Date.now();
    const err = await new CapacityWaitProvider({ config, inner: m.inner, redis })
      .acquire(spec('BTCUSDT'), ctx(events))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoCapacityError);
    expect(err).toBeInstanceOf(ProvisionError);
    expect((err as NoCapacityError).code).toBe('no_capacity');
    expect((err as NoCapacityError).retryable).toBe(false);
    expect((err as Error).message).toMatch(/wait limit.*RTX_4090 ≤ \$0\.60\/h/);
    const waited = Date.now() - started;
    expect(waited).toBeGreaterThanOrEqual(600);
    expect(waited).toBeLessThan(5000);
    expect(events.at(-1)).toMatchObject({ state: 'done' });
    expect((events.at(-1) as { waitedMs: number }).waitedMs).toBeGreaterThanOrEqual(600);
  });

  it('capacityWaitMin 0 fails at once; unset, the limit leaves a third of the time limit for the training', () => {
    const since = Date.parse('2026-01-14T00:00:00Z');
    expect(capacityWaitUntil(config, { timeoutMinutes: 45 }, since)).toBe(since + 30 * 60_000);
    // Measured from the attempt's deadline when there is one.
    expect(capacityWaitUntil(config, { timeoutMinutes: 45 }, since, since + 40 * 60_000)).toBe(
      since + 25 * 60_000,
    );
    config.vast.capacityWaitMin = 0;
    expect(capacityWaitUntil(config, { timeoutMinutes: 45 }, since)).toBe(since);
    config.vast.capacityWaitMin = 60;
    expect(capacityWaitUntil(config, { timeoutMinutes: 45 }, since)).toBe(since + 45 * 60_000);
  });

  it('ten symbols waiting search no more often than the deployment gate allows', async () => {
    config.vast.capacityPollSec = 0.4; // gate: one waiter search per 100 ms
    config.vast.capacityWaitMin = 0.05; // 3 s
    const m = market();
    const p = new CapacityWaitProvider({ config, inner: m.inner, redis });
    const symbols = Array.from({ length: 10 }, (_, i) => `S${i}USDT`);
    const started = Date.now();
    await Promise.all(symbols.map((s) => p.acquire(spec(s), ctx()).catch(() => undefined)));
    const elapsed = Date.now() - started;
    // Each symbol's first look, then turns through the gate (100 ms) — not 10 waiters × their own pace.
    const later = m.calls.length - symbols.length;
    expect(later).toBeLessThanOrEqual(Math.ceil(elapsed / 100) + 2);
    expect(later).toBeGreaterThan(0);
    // Each waiter's own pace alone (first pause 0.4 s, growing) would have allowed far more: the
    // waiters did not each search as often as they could.
    const perSymbol = symbols.map((s) => m.calls.filter((c) => c.symbol === s).length);
    expect(Math.max(...perSymbol)).toBeLessThan(elapsed / 200);
  });

  it('a pooled slot freed while it waits wakes the waiter at once', async () => {
    config.vast.capacityPollSec = 30; // its own pause alone would be 21 s or more
    const m = market();
    let free = 0;
    const p = new CapacityWaitProvider({ config, inner: m.inner, redis, freeSlots: async () => free });
    setTimeout(() => {
      free = 1;
      m.open();
    }, 500);
    const started = Date.now();
    await p.acquire(spec('BTCUSDT'), ctx());
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('a run that gets no GPU for alerts.noCapacityMin is alerted once, whatever its waiters', async () => {
    config.alerts.noCapacityMin = 0.01; // 0.6 s
    config.vast.capacityWaitMin = 0.04; // 2.4 s
    const m = market();
    const alerts: NoCapacityAlert[] = [];
    const p = new CapacityWaitProvider({
      config,
      inner: m.inner,
      redis,
      onNoCapacity: (a) => alerts.push(a),
    });
    await Promise.all(
      ['A', 'B', 'C'].map((s) => p.acquire(spec(s), ctx([], 'run-x')).catch(() => undefined)),
    );
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ runId: 'run-x', date: '20260114', unmet: 'RTX_4090 ≤ $0.60/h' });
    expect(alerts[0]!.minutes).toBeGreaterThanOrEqual(0.01);
    expect(alerts[0]!.waiting).toBeGreaterThanOrEqual(1);
  });

  it('a run that keeps getting GPUs is not alerted, though its symbols wait in turn', async () => {
    config.alerts.noCapacityMin = 0.02; // 1.2 s
    const m = market();
    const alerts: NoCapacityAlert[] = [];
    const p = new CapacityWaitProvider({
      config,
      inner: m.inner,
      redis,
      onNoCapacity: (a) => alerts.push(a),
    });
    // A GPU got every half second by someone in the run.
    const got = setInterval(
      () => void redis.set(`${config.queuePrefix}:capacity:run-y:got`, String(Date.now())),
      400,
    );
    await redis.set(`${config.queuePrefix}:capacity:run-y:got`, String(Date.now()));
    setTimeout(m.open, 2500);
    await p.acquire(spec('A'), ctx([], 'run-y'));
    clearInterval(got);
    expect(alerts).toEqual([]);
  });
});
