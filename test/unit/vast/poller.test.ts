/**
 * The deployment's one poller: two processes (two Redis connections) watching instances make one
 * list call per interval between them and both read the same rows; the list calls per minute do not
 * grow with the instance count (a list of two pages waits two intervals); nothing is called while
 * nothing is watched; a destroyed instance is confirmed gone from the snapshots.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { VastClient } from '../../../src/vast/client.js';
import { InstancePoller } from '../../../src/vast/poller.js';
import { defaultOffers, startVastSim, type VastSim } from '../../../src/vast/sim/server.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const KEY = 'poller-test-key';
const INTERVAL = 250;

describe('InstancePoller (real Redis, simulator over HTTP)', () => {
  const opened: { close(): Promise<void> | void }[] = [];
  afterEach(async () => {
    for (const o of opened.splice(0).reverse()) await o.close();
  });

  async function world(instances: number) {
    const base = defaultOffers()[0]!;
    const offers = Array.from({ length: instances + 2 }, (_, i) => ({
      ...base,
      id: 9_100_000 + i,
      machine_id: 91_000 + i,
    }));
    const sim: VastSim = await startVastSim({
      apiKey: KEY,
      offers,
      sshEndpoint: { host: '127.0.0.1', port: 1 },
    });
    opened.push(sim);
    const client = new VastClient({ apiUrl: sim.url, apiKey: KEY });
    const ids: number[] = [];
    for (let i = 0; i < instances; i++) {
      const { instanceId } = await client.createInstance(offers[i]!.id, {
        image: 'x',
        disk: 10,
        label: `retrain-pt-job${i}`,
      });
      ids.push(instanceId);
    }
    const prefix = `t-poll-${randomUUID().slice(0, 8)}`;
    const poller = () => {
      const redis = new Redis(REDIS_URL);
      const p = new InstancePoller({
        redis,
        prefix,
        client,
        intervalMs: INTERVAL,
        labelPrefix: 'retrain-pt-',
      });
      opened.push({ close: async () => (await p.close(), redis.disconnect()) });
      return p;
    };
    return { sim, client, ids, poller };
  }

  /** List calls the simulator answered during `ms` of polling by two processes watching every instance. */
  async function listCallsDuring(instances: number, ms: number) {
    const w = await world(instances);
    const [a, b] = [w.poller(), w.poller()];
    for (const id of w.ids) await (id % 2 ? a : b).watch(id);
    const before = w.sim.state().calls.list?.ok ?? 0;
    await new Promise((r) => setTimeout(r, ms));
    const snapA = await a.snapshot();
    const snapB = await b.snapshot();
    return { w, calls: (w.sim.state().calls.list?.ok ?? 0) - before, snapA, snapB };
  }

  it('two processes, one list call per interval; both read every row; calls do not grow with instances', async () => {
    const few = await listCallsDuring(3, 3000);
    expect(few.snapA?.rows.map((r) => r.id).sort()).toEqual([...few.w.ids].sort());
    expect(few.snapB).toEqual(few.snapA);
    // One leader: about 3000/250 = 12 calls, not 24.
    expect(few.calls).toBeGreaterThanOrEqual(6);
    expect(few.calls).toBeLessThanOrEqual(14);
    // 30 instances: two pages per list, one list per two intervals: the same calls per minute.
    const many = await listCallsDuring(30, 3000);
    expect(many.snapA?.rows).toHaveLength(30);
    expect(many.snapA?.pages).toBe(2);
    expect(many.calls).toBeLessThanOrEqual(14);
    expect(Math.abs(many.calls - few.calls)).toBeLessThanOrEqual(4);
  }, 60_000);

  it('calls nothing while nothing is watched; confirms a destroyed instance gone', async () => {
    const w = await world(2);
    const p = w.poller();
    p.start();
    await new Promise((r) => setTimeout(r, 4 * INTERVAL));
    expect(w.sim.state().calls.list?.ok ?? 0).toBe(0);
    await p.watch(w.ids[0]!);
    const snap = await p.fresh(Date.now());
    expect(snap?.rows.map((r) => r.id)).toContain(w.ids[0]);
    await w.client.destroyInstance(w.ids[0]!, { confirmGone: (id, ms) => p.confirmGone(id, ms) });
    expect(w.sim.state().destroyed).toEqual([w.ids[0]]);
    // Confirmed from the snapshots, without reading the instance back one by one.
    expect(w.sim.state().calls.show?.ok ?? 0).toBe(0);
  }, 30_000);
});
