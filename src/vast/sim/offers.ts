/**
 * The offer book: `POST /api/v0/bundles/` (vast-api.md §2) with the CLI's filters, aliases, order
 * and pricing by allocated storage, and the market around us: offers rented by other renters for a
 * while (competitorRate, offerChurn) leave the results and come back.
 */
import type { SimContext } from './context.js';
import { matchOfferField } from './query.js';
import type { OfferEntry } from './types.js';
import { fail, isObj, json, num, type HttpReply } from './util.js';

export const CONTROL_KEYS = new Set([
  'order',
  'limit',
  'type',
  'allocated_storage',
  'select_cols',
  'disable_bundling',
  'extra_ids',
]);
export const ALIASES: Record<string, string> = {
  dph: 'dph_total',
  cuda_vers: 'cuda_max_good',
  dlperf_usd: 'dlperf_per_dphtotal',
  flops_usd: 'flops_per_dphtotal',
};

/** A stable pseudo-random number in [0, 1) for (seed, a, b): churn does not depend on call order. */
function hash01(seed: number, a: number, b: number): number {
  let h = (seed ^ Math.imul(a, 0x9e3779b1) ^ Math.imul(b, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return ((h ^ (h >>> 16)) >>> 0) / 4294967296;
}

/** Rented by another renter now: taken after a lost race, or hidden in this churn period. */
export function takenByOthers(ctx: SimContext, id: number, e: OfferEntry, now: number): boolean {
  if (e.takenUntil !== undefined && now < e.takenUntil) return true;
  const churn = ctx.faults.offerChurn ?? 0;
  if (churn <= 0 || e.takenBy !== undefined) return false;
  const period = (ctx.faults.offerChurnPeriodMs ?? 30_000) / ctx.timeScale;
  return hash01(ctx.seed, id, Math.floor(now / period)) < churn;
}

export function available(ctx: SimContext, id: number, e: OfferEntry, now: number): boolean {
  return e.takenBy === undefined && !e.gone && !takenByOthers(ctx, id, e, now);
}

export function pricedOffer(
  raw: Record<string, unknown>,
  alloc: number,
  type: string,
): Record<string, unknown> {
  const o: Record<string, unknown> = {
    ...raw,
    rented: false,
    rentable: raw.rentable ?? true,
    external: raw.external ?? false,
  };
  const base = num(raw.dph_base);
  const sc = num(raw.storage_cost);
  if (base !== undefined && sc !== undefined) {
    const storageHour = (sc * alloc) / 720;
    const gpuHour = type === 'bid' ? (num(raw.min_bid) ?? base) : base;
    const total = Math.round((gpuHour + storageHour) * 1e6) / 1e6;
    o.dph_total = total;
    o.search = {
      ...(isObj(raw.search) ? raw.search : {}),
      gpuCostPerHour: gpuHour,
      diskHour: storageHour,
      totalHour: total,
    };
    // No reserved discount is modelled: the discounted price is the price.
    o.discounted_dph_total = total;
    // Per-dollar figures follow the price the search was made at (CLI aliases dlperf_usd, flops_usd).
    const dl = num(raw.dlperf);
    const tf = num(raw.total_flops);
    if (dl !== undefined && total > 0) o.dlperf_per_dphtotal = Math.round((dl / total) * 1e4) / 1e4;
    if (tf !== undefined && total > 0) o.flops_per_dphtotal = Math.round((tf / total) * 1e4) / 1e4;
  }
  if (type === 'bid') o.is_bid = true;
  return o;
}

export function search(ctx: SimContext, body: unknown): HttpReply {
  if (!isObj(body)) return fail(400, 'invalid_request', 'Invalid json body');
  const alloc = num(body.allocated_storage) ?? 5;
  const type = typeof body.type === 'string' ? body.type : 'on-demand';
  if (!['on-demand', 'ondemand', 'bid', 'reserved'].includes(type)) {
    return fail(400, 'invalid_request', `invalid type ${type}`);
  }
  const now = Date.now();
  let list = [...ctx.offers.entries()]
    .filter(([id, o]) => available(ctx, id, o, now))
    .map(([, o]) => pricedOffer(o.raw, alloc, type));
  try {
    for (const [k, ops] of Object.entries(body)) {
      if (CONTROL_KEYS.has(k)) continue;
      const field = ALIASES[k] ?? k;
      if (isObj(ops)) {
        // `any`, `*`, `?` with eq remove the filter (CLI).
        const eq = ops.eq;
        if (eq === 'any' || eq === '*' || eq === '?') continue;
      }
      list = list.filter((o) => matchOfferField(field, o[field], ops));
    }
  } catch (e) {
    return fail(400, 'invalid_request', (e as Error).message);
  }
  const order = Array.isArray(body.order) ? (body.order as unknown[]) : [['score', 'desc']];
  const keys = order
    .filter((x): x is unknown[] => Array.isArray(x) && typeof x[0] === 'string')
    .map((x) => ({ f: ALIASES[x[0] as string] ?? (x[0] as string), desc: x[1] === 'desc' }));
  list.sort((a, b) => {
    for (const { f, desc } of keys) {
      const av = a[f];
      const bv = b[f];
      if (av === bv) continue;
      if (av === undefined || av === null) return 1;
      if (bv === undefined || bv === null) return -1;
      const c = (av as number) < (bv as number) ? -1 : 1;
      return desc ? -c : c;
    }
    return (num(a.id) ?? 0) - (num(b.id) ?? 0);
  });
  const limit = Math.min(Math.max(1, Math.floor(num(body.limit) ?? 64)), 1000);
  return json(200, { offers: list.slice(0, limit) });
}
