/**
 * The API budget shared through Redis: two clients with their own Redis connections (two worker
 * processes) calling one endpoint at once take turns, so the simulator enforcing Vast's intervals
 * answers none of them 429; a turn that would come after the caller's deadline is refused at once;
 * the Redis keys never hold the API key.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { CancelledError } from '../../../src/errors.js';
import { ApiBudget, endpointOf } from '../../../src/vast/budget.js';
import { VastClient, VastRateLimitError } from '../../../src/vast/client.js';
import { defaultOffers, startVastSim, type VastSim } from '../../../src/vast/sim/server.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const KEY = `budget-test-key-${randomUUID()}`;

describe('ApiBudget (real Redis, simulator enforcing Vast intervals)', () => {
  const opened: { close(): Promise<void> | void }[] = [];
  afterEach(async () => {
    for (const o of opened.splice(0)) await o.close();
  });

  async function sim(): Promise<VastSim> {
    // Vast's intervals at 10x: search 600 ms, show 200 ms.
    const s = await startVastSim({
      apiKey: KEY,
      offers: defaultOffers(),
      sshEndpoint: { host: '127.0.0.1', port: 1 },
      timeScale: 10,
      faults: { rateLimits: true },
    });
    opened.push(s);
    return s;
  }

  function worker(s: VastSim): { client: VastClient; budget: ApiBudget; redis: Redis } {
    const redis = new Redis(REDIS_URL);
    opened.push({ close: () => void redis.disconnect() });
    const budget = new ApiBudget({
      redis,
      apiUrl: s.url,
      apiKey: KEY,
      intervalsSec: { search: 0.6, show: 0.2 },
      marginMs: 150,
    });
    // No retries: a 429 would show as a failure here.
    return { client: new VastClient({ apiUrl: s.url, apiKey: KEY, retries: 0, budget }), budget, redis };
  }

  it('two processes share one budget: every call accepted, none answered 429', async () => {
    const s = await sim();
    const a = worker(s);
    const b = worker(s);
    const t0 = Date.now();
    await Promise.all([
      ...Array.from({ length: 4 }, () => a.client.searchOffers({})),
      ...Array.from({ length: 4 }, () => b.client.searchOffers({})),
    ]);
    const took = Date.now() - t0;
    const calls = s.state().calls.search!;
    expect(calls).toEqual({ ok: 8, r429: 0 });
    // Eight turns 750 ms apart: the first at once, the last after about 5.2 s.
    expect(took).toBeGreaterThanOrEqual(7 * 600);
  }, 30_000);

  it('without the budget the same calls collect 429s (the check can fail)', async () => {
    const s = await sim();
    const client = new VastClient({ apiUrl: s.url, apiKey: KEY, retries: 0 });
    const r = await Promise.allSettled(Array.from({ length: 4 }, () => client.searchOffers({})));
    expect(r.filter((x) => x.status === 'rejected').length).toBeGreaterThan(0);
    expect(s.state().calls.search!.r429).toBeGreaterThan(0);
  }, 30_000);

  it('a turn after the deadline is refused at once; an abort cancels the wait', async () => {
    const s = await sim();
    const { budget } = worker(s);
    await budget.take('search');
    const t = Date.now();
    await expect(budget.take('search', { deadline: Date.now() + 50 })).rejects.toBeInstanceOf(
      VastRateLimitError,
    );
    expect(Date.now() - t).toBeLessThan(300);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    await expect(budget.take('search', { signal: ac.signal })).rejects.toBeInstanceOf(CancelledError);
  }, 30_000);

  it('after a 429 every worker holds off the endpoint for three intervals', async () => {
    const s = await sim();
    const a = worker(s);
    const b = worker(s);
    await a.budget.penalize('show');
    const t = Date.now();
    await b.budget.take('show');
    // show: 200 ms + 150 ms margin, three times.
    expect(Date.now() - t).toBeGreaterThanOrEqual(3 * 350 - 20);
  }, 30_000);

  it('without Redis a call goes out unpaced rather than not at all', async () => {
    const dead = new Redis('redis://127.0.0.1:1', {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    dead.on('error', () => undefined);
    opened.push({ close: () => void dead.disconnect() });
    const budget = new ApiBudget({ redis: dead, apiUrl: 'http://127.0.0.1:1', apiKey: KEY });
    await expect(budget.take('create')).resolves.toBeUndefined();
  });

  it('keys its Redis entries by a hash, never by the API key', async () => {
    const s = await sim();
    const { budget, redis } = worker(s);
    await budget.take('show');
    const keys = await redis.keys(`${budget.keyPrefix}*`);
    expect(keys.length).toBeGreaterThan(0);
    for (const k of keys) expect(k).not.toContain(KEY);
    expect(budget.keyPrefix).not.toContain(KEY);
  }, 30_000);

  it('classifies requests by endpoint as Vast limits them', () => {
    expect(endpointOf('POST', '/api/v0/bundles/')).toBe('search');
    expect(endpointOf('PUT', '/api/v0/asks/12/')).toBe('create');
    expect(endpointOf('GET', '/api/v0/instances/5/')).toBe('show');
    expect(endpointOf('DELETE', '/api/v0/instances/5/')).toBe('destroy');
    expect(endpointOf('PUT', '/api/v0/instances/5/')).toBe('manage');
    expect(endpointOf('GET', '/api/v1/instances/')).toBe('list');
    expect(endpointOf('POST', '/api/v0/instances/5/ssh/')).toBe('ssh');
    expect(endpointOf('POST', '/api/v0/ssh/')).toBe('ssh');
  });
});
