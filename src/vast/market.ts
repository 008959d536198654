/**
 * The offers every worker of a deployment rents from, shared through Redis so that workers neither
 * search one at a time each (search is Vast's slowest limit, about 10 a minute per key) nor race
 * each other for the cheapest offer (SkyPilot PR #9117: parallel launches rented the same offer
 * twice):
 *
 * - one search serves every worker for `cacheMs` (one searcher at a time, the others wait for it);
 * - a worker claims the machine it is about to rent (SET NX, `claimMs`), and marks the offer taken
 *   once it tried it, so no other worker tries it again while the search is in use;
 * - among the near-cheapest offers (within `tolerance` of the cheapest free one) the pick is random,
 *   which spreads concurrent workers instead of lining them up on one offer.
 *
 *   <prefix>:vast:offers:<query hash>       JSON {at, offers} (PX cacheMs)
 *   <prefix>:vast:offers:<query hash>:lock  the searcher (PX 2 min)
 *   <prefix>:vast:claim:<machine id>        who is renting it (PX claimMs)
 *   <prefix>:vast:taken:<offer id>          tried (rented or gone) (PX 2 × cacheMs)
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { sleepOrCancel } from '../util/sleep.js';
import type { TurnOptions } from './budget.js';
import type { VastClient } from './client.js';
import type { VastOffer } from './types.js';

export interface OfferBoardOptions {
  redis: Redis;
  prefix: string;
  client: Pick<VastClient, 'searchOffers'>;
  /** How long one search serves every worker. */
  cacheMs: number;
  /** How long a machine stays claimed by the worker renting it (at least the create timeout). */
  claimMs: number;
  /** Offers up to this fraction dearer than the cheapest free one count as near-cheapest. */
  tolerance: number;
  random?: () => number;
}

interface Cached {
  at: number;
  offers: VastOffer[];
}

const DROP_IF_AT = `
local v = redis.call('GET', KEYS[1])
if v and cjson.decode(v).at == tonumber(ARGV[1]) then redis.call('DEL', KEYS[1]) end
return 1`;

const UNCLAIM = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export interface ClaimedOffer {
  offer: VastOffer;
  /** Gives the machine back (the offer stays marked taken). */
  release(): Promise<void>;
}

export class OfferBoard {
  private readonly random: () => number;

  constructor(private readonly opts: OfferBoardOptions) {
    this.random = opts.random ?? Math.random;
  }

  private cacheKey(query: object): string {
    const h = createHash('sha256').update(JSON.stringify(query)).digest('hex').slice(0, 16);
    return `${this.opts.prefix}:vast:offers:${h}`;
  }

  /**
   * The offers of `query`, from the shared search when it is recent; else one worker searches and
   * the others wait for its result. `stale`: the `at` of a search the caller found used up, dropped
   * so that a new search is made.
   */
  async offers(query: object, turn: TurnOptions = {}, stale?: number): Promise<Cached> {
    const { redis } = this.opts;
    const key = this.cacheKey(query);
    if (stale !== undefined) await redis.eval(DROP_IF_AT, 1, key, String(stale));
    const me = randomUUID();
    for (;;) {
      const raw = await redis.get(key);
      if (raw) return JSON.parse(raw) as Cached;
      if ((await redis.set(`${key}:lock`, me, 'PX', 120_000, 'NX')) === 'OK') {
        try {
          const at = Date.now();
          const offers = await this.opts.client.searchOffers(query, turn);
          const fresh: Cached = { at, offers };
          await redis.set(key, JSON.stringify(fresh), 'PX', this.opts.cacheMs);
          return fresh;
        } finally {
          await redis.eval(UNCLAIM, 1, `${key}:lock`, me);
        }
      }
      if (turn.deadline !== undefined && Date.now() > turn.deadline) {
        // The searcher is slow: search ourselves rather than wait past the deadline.
        return { at: Date.now(), offers: await this.opts.client.searchOffers(query, turn) };
      }
      await sleepOrCancel(200, turn.signal);
    }
  }

  /**
   * Claims one of `candidates` (cheapest first, every constraint already met) for `owner`: a random
   * one of the near-cheapest that no other worker claimed or tried, else the next free one in
   * order. The offer is marked taken. null when every candidate is claimed or taken.
   */
  async claim(candidates: readonly VastOffer[], owner: string): Promise<ClaimedOffer | null> {
    const { redis, prefix } = this.opts;
    if (candidates.length === 0) return null;
    const claimKey = (o: VastOffer) => `${prefix}:vast:claim:${o.machine_id}`;
    const takenKey = (o: VastOffer) => `${prefix}:vast:taken:${o.id}`;
    const marks = await redis.mget(...candidates.flatMap((o) => [claimKey(o), takenKey(o)]));
    const free = candidates.filter((_, i) => marks[2 * i] === null && marks[2 * i + 1] === null);
    if (free.length === 0) return null;
    const limit = free[0]!.dph_total * (1 + this.opts.tolerance) + 1e-9;
    const near = free.filter((o) => o.dph_total <= limit);
    const rest = free.slice(near.length);
    for (let i = near.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [near[i], near[j]] = [near[j]!, near[i]!];
    }
    for (const offer of [...near, ...rest]) {
      const got = await redis.set(claimKey(offer), owner, 'PX', this.opts.claimMs, 'NX');
      if (got !== 'OK') continue;
      const taken = await redis.set(takenKey(offer), owner, 'PX', this.opts.cacheMs * 2, 'NX');
      if (taken !== 'OK') {
        await redis.eval(UNCLAIM, 1, claimKey(offer), owner);
        continue;
      }
      return {
        offer,
        release: async () => {
          await redis.eval(UNCLAIM, 1, claimKey(offer), owner);
        },
      };
    }
    return null;
  }
}
