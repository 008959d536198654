/**
 * The simulator's state: offers, instances, keys and counters, shared by every module.
 */
import { readFileSync } from 'node:fs';
import type { VastOffer } from '../types.js';
import { profileBilling, profileFaults, profileLogsDelayMs } from './profile.js';
import { RateLimiter } from './ratelimit.js';
import type {
  FaultCounts,
  OfferEntry,
  SimInstance,
  VastSimBilling,
  VastSimFaults,
  VastSimOptions,
} from './types.js';
import { num, prng } from './util.js';

export interface AccountKey {
  id: number;
  public_key: string;
  created_at: number;
}

export interface SimContext {
  opts: VastSimOptions;
  url: string;
  bootDelayMs: number;
  timeScale: number;
  rand: () => number;
  seed: number;
  /** The profile's faults; setFaults lays the caller's over them. */
  baseFaults: VastSimFaults;
  faults: VastSimFaults;
  billing: VastSimBilling;
  logsDelayMs: number;
  down: 'none' | '503' | 'refuse';
  offers: Map<number, OfferEntry>;
  instances: Map<number, SimInstance>;
  instanceKeys: Map<string, number>;
  rentedOrder: number[];
  destroyedOrder: number[];
  outbidOrder: number[];
  accountKeys: AccountKey[];
  nextInstanceId: number;
  nextKeyId: number;
  counters: { requests: number; authFailures: number; apiKeyInUrl: number };
  injected: FaultCounts;
  calls: Record<string, { ok: number; r429: number }>;
  limiter: RateLimiter;
  initialCredit: number;
  /** Logs requested: token → [instance id, readable from]. */
  logs: Map<string, { id: number; at: number }>;
}

/** The shipped fixture: 12 offers across RTX 3090/4090, A100, H100 and others. A fresh copy each call. */
export function defaultOffers(): VastOffer[] {
  return JSON.parse(readFileSync(new URL('./offers.json', import.meta.url), 'utf8')) as VastOffer[];
}

export function createContext(opts: VastSimOptions): SimContext {
  const timeScale = opts.timeScale ?? 1;
  const seed = opts.seed ?? 1;
  const rand = prng(seed);
  const rawOffers: Record<string, unknown>[] =
    typeof opts.offers === 'string'
      ? (JSON.parse(readFileSync(opts.offers, 'utf8')) as Record<string, unknown>[])
      : (structuredClone(opts.offers) as Record<string, unknown>[]);
  if (!Array.isArray(rawOffers)) throw new Error('vast-sim: offers must be an array');
  const offers = new Map<number, OfferEntry>();
  for (const o of rawOffers) {
    const id = num(o.id);
    if (id !== undefined) offers.set(id, { raw: o });
  }
  const baseFaults = profileFaults(opts.profile, timeScale);
  return {
    opts,
    url: '',
    bootDelayMs: Math.max(0, opts.bootDelayMs ?? 2000),
    timeScale,
    rand,
    seed,
    baseFaults,
    faults: withFaults(baseFaults, opts.faults),
    billing: { ...profileBilling(opts.profile), ...opts.billing },
    logsDelayMs: opts.logsDelayMs ?? profileLogsDelayMs(opts.profile, timeScale),
    down: 'none',
    offers,
    instances: new Map(),
    instanceKeys: new Map(),
    rentedOrder: [],
    destroyedOrder: [],
    outbidOrder: [],
    accountKeys: [],
    nextInstanceId: 27_000_000 + Math.floor(rand() * 1_000_000),
    nextKeyId: 500,
    counters: { requests: 0, authFailures: 0, apiKeyInUrl: 0 },
    injected: {
      '429': 0,
      '5xx': 0,
      offerGone: 0,
      competitorWon: 0,
      slowCreate: 0,
      transient: 0,
      badImage: 0,
      keyLost: 0,
    },
    calls: {},
    limiter: new RateLimiter(timeScale),
    initialCredit: opts.credit ?? 25,
    logs: new Map(),
  };
}

/** The caller's faults over the profile's; an undefined field keeps the profile's value. */
export function withFaults(base: VastSimFaults, f: VastSimFaults | undefined): VastSimFaults {
  const defined = Object.entries(f ?? {}).filter(([, v]) => v !== undefined);
  return { ...base, ...(Object.fromEntries(defined) as VastSimFaults) };
}

export const alive = (ctx: SimContext) =>
  [...ctx.instances.values()].filter((i) => i.destroyedAt === undefined);
