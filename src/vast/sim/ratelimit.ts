/**
 * Vast's rate limits (docs api-reference/rate-limits-and-errors; the spec's `x-rate-limit`): a
 * minimum interval between accepted calls per endpoint and per identity (the bearer token, or the
 * client address when there is none), some endpoints with a burst cap or a penalty when hammered.
 * A refused call is a 429 with a plain-text body and no Retry-After.
 *
 * Intervals are given in simulated ms and divided by timeScale, as boot delays are: a bench at 10x
 * keeps the same calls per simulated second as Vast allows per real second.
 */
import type { RateLimitConfig, SimEndpoint } from './types.js';
import { text, type HttpReply } from './util.js';

/** The spec's thresholds read as seconds between calls (vast-api.md §1, §9), in ms. */
export const DEFAULT_LIMITS: Required<RateLimitConfig> = {
  intervalsMs: {
    search: 6000,
    create: 4500,
    show: 2000,
    list: 1000,
    destroy: 3000,
    manage: 1000,
    ssh: 1000,
    user: 1000,
    logs: 1000,
    charges: 1000,
    default: 1000,
  },
  burst: { search: { calls: 10, perMs: 60_000 } },
  penaltyMs: { create: 12_000 },
};

/** The endpoint group of a request (the limiter's and the call counters' key). */
export function endpointOf(method: string, path: string): SimEndpoint {
  const seg = path.split('/').filter(Boolean).slice(1); // ['v0', ...]
  const [ver, a, b, c] = seg;
  if (ver === 'v0' && a === 'bundles' && method === 'POST') return 'search';
  if (ver === 'v0' && a === 'asks' && method === 'PUT') return 'create';
  if (ver === 'v1' && a === 'instances' && b === undefined) return 'list';
  if (ver === 'v0' && a === 'instances' && b === 'request_logs') return 'logs';
  if (ver === 'v0' && a === 'instances' && c === 'ssh') return 'ssh';
  if (ver === 'v0' && a === 'ssh') return 'ssh';
  if (ver === 'v0' && a === 'instances' && b !== undefined && /^\d+$/.test(b) && c === undefined) {
    if (method === 'GET') return 'show';
    if (method === 'DELETE') return 'destroy';
    if (method === 'PUT') return 'manage';
  }
  if (ver === 'v0' && a === 'users' && b === 'current') return 'user';
  if ((ver === 'v0' && a === 'charges') || (ver === 'v1' && a === 'invoices')) return 'charges';
  return 'default';
}

export function resolveLimits(cfg: boolean | RateLimitConfig | undefined): Required<RateLimitConfig> | null {
  if (cfg === undefined || cfg === false) return null;
  if (cfg === true) return DEFAULT_LIMITS;
  return {
    intervalsMs: { ...DEFAULT_LIMITS.intervalsMs, ...cfg.intervalsMs },
    burst: { ...DEFAULT_LIMITS.burst, ...cfg.burst },
    penaltyMs: { ...DEFAULT_LIMITS.penaltyMs, ...cfg.penaltyMs },
  };
}

interface Budget {
  last: number;
  closedUntil: number;
  recent: number[];
}

export class RateLimiter {
  private readonly budgets = new Map<string, Budget>();
  constructor(private readonly timeScale: number) {}

  /** A 429 reply when `identity` may not call `ep` at `now`; otherwise the call is counted and null returned. */
  check(limits: Required<RateLimitConfig>, identity: string, ep: SimEndpoint, now: number): HttpReply | null {
    const scale = (ms: number) => ms / this.timeScale;
    const interval = limits.intervalsMs[ep] ?? limits.intervalsMs.default ?? 0;
    const burst = limits.burst[ep];
    const penalty = limits.penaltyMs[ep] ?? 0;
    const k = `${identity}\u0000${ep}`;
    const b = this.budgets.get(k) ?? { last: -Infinity, closedUntil: -Infinity, recent: [] };
    this.budgets.set(k, b);
    const refuse = (body: string) => {
      if (penalty > 0) b.closedUntil = Math.max(b.closedUntil, now + scale(penalty));
      return text(429, body);
    };
    const threshold = `API requests too frequent: endpoint threshold=${(interval / 1000).toFixed(1)}`;
    if (now < b.closedUntil) return refuse(threshold);
    if (now - b.last < scale(interval)) return refuse(threshold);
    if (burst) {
      b.recent = b.recent.filter((t) => now - t < scale(burst.perMs));
      if (b.recent.length >= burst.calls) return refuse('API requests too frequent');
      b.recent.push(now);
    }
    b.last = now;
    return null;
  }
}
