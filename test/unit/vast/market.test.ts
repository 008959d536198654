/**
 * The shared offer board: workers asking at once share one search; two workers (two Redis
 * connections) claiming from the same offers never get the same machine; the pick is among the
 * near-cheapest (within the price tolerance), and an offer tried once is not handed out again.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { OfferBoard } from '../../../src/vast/market.js';
import { VastOfferSchema, type VastOffer } from '../../../src/vast/types.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const offer = (id: number, dph: number): VastOffer =>
  VastOfferSchema.parse({
    id,
    machine_id: 1000 + id,
    gpu_name: 'RTX 3090',
    num_gpus: 1,
    gpu_ram: 24576,
    dph_total: dph,
    reliability: 0.99,
    verified: true,
    disk_space: 100,
    inet_down: 500,
    cuda_max_good: 12.4,
  });

describe('OfferBoard (real Redis)', () => {
  const opened: Redis[] = [];
  const prefix = `t-market-${randomUUID().slice(0, 8)}`;
  afterEach(() => {
    for (const r of opened.splice(0)) r.disconnect();
  });

  const board = (
    searchOffers: () => Promise<VastOffer[]>,
    opts: { tolerance?: number; random?: () => number; prefix?: string } = {},
  ) => {
    const redis = new Redis(REDIS_URL);
    opened.push(redis);
    return new OfferBoard({
      redis,
      prefix: opts.prefix ?? prefix,
      client: { searchOffers },
      cacheMs: 5000,
      claimMs: 5000,
      tolerance: opts.tolerance ?? 0.05,
      ...(opts.random ? { random: opts.random } : {}),
    });
  };

  it('workers asking at once share one search', async () => {
    let searches = 0;
    const search = async () => {
      searches++;
      await new Promise((r) => setTimeout(r, 200));
      return [offer(1, 0.2), offer(2, 0.3)];
    };
    const q = { gpu: randomUUID() };
    const boards = [board(search), board(search)];
    const got = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => boards[i % 2]!.offers(q)));
    expect(searches).toBe(1);
    for (const g of got) expect(g.offers.map((o) => o.id)).toEqual([1, 2]);
  });

  it('two workers claiming at once never get the same machine; an offer is handed out once', async () => {
    const offers = [offer(11, 0.2), offer(12, 0.201), offer(13, 0.202), offer(14, 0.5)];
    const [a, b] = [board(async () => offers), board(async () => offers)];
    const claims = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => (i % 2 ? a : b).claim(offers, `job${i}`)));
    const got = claims.filter((c) => c !== null).map((c) => c!.offer.machine_id);
    expect(got).toHaveLength(4);
    expect(new Set(got).size).toBe(4);
    // Tried offers stay taken after the claim is given back: nobody rents them again from this search.
    for (const c of claims) await c?.release();
    expect(await a.claim(offers, 'late')).toBeNull();
  });

  it('picks among the near-cheapest within the tolerance, never a dearer one while they are free', async () => {
    const offers = [offer(21, 0.2), offer(22, 0.205), offer(23, 0.209), offer(24, 0.3)];
    const picked = new Set<number>();
    for (let i = 0; i < 12; i++) {
      // A fresh deployment each time (nothing claimed), with the random draw spread over [0, 1).
      const r = board(async () => offers, { random: () => (i % 3) / 3 + 0.1, prefix: `${prefix}-${i}` });
      const c = await r.claim(offers, `j${i}`);
      picked.add(c!.offer.id);
    }
    expect([...picked].sort()).toEqual([21, 22, 23]);
  });
});
