/**
 * What a run will cost on Vast before anything is rented: the live offers that meet the config's
 * constraints, priced all-in (dph_total; for interruptible rentals the bid plus storage), and an
 * estimate of instances, instance-hours and dollars for N symbols of M minutes each.
 *
 * Billing is per second from the rental (retrain books from acquiredAt to release), so each rental
 * costs its training minutes plus an overhead (boot, staging, fetch) that the caller supplies.
 */
import type { Config } from '../config/schema.js';
import { offerConstraints } from '../compute/vast.js';
import type { VastClient } from './client.js';
import { bidFor, buildOfferQuery, explainOffers, type RejectedOffer } from './offers.js';
import type { VastOffer } from './types.js';

export interface PricedOffer {
  offer: VastOffer;
  /** $/h the rental would cost while it runs, storage included. */
  hourly: number;
  /** The bid sent for an interruptible rental. */
  bid?: number;
}

/** The live offers meeting the constraints, cheapest all-in first. */
export async function liveOffers(
  client: VastClient,
  config: Config,
  interruptible: boolean,
): Promise<{ offers: PricedOffer[]; rejected: RejectedOffer[] }> {
  const c = offerConstraints(config, { interruptible });
  const { chosen, rejected } = explainOffers(await client.searchOffers(buildOfferQuery(c)), c);
  const offers: PricedOffer[] = [];
  for (const o of chosen) {
    if (!interruptible) {
      offers.push({ offer: o, hourly: o.dph_total });
      continue;
    }
    const b = bidFor(o, {
      ...(config.vast.bidPrice !== undefined ? { bidPrice: config.vast.bidPrice } : {}),
      bidMultiplier: config.vast.bidMultiplier,
      maxHourlyCost: config.vast.maxHourlyCost,
      diskGb: config.vast.diskGb,
    });
    if ('reject' in b) rejected.push({ id: o.id, reason: b.reject });
    else offers.push({ offer: o, hourly: b.hourly, bid: b.price });
  }
  offers.sort((a, b) => a.hourly - b.hourly || a.offer.id - b.offer.id);
  return { offers, rejected };
}

export interface EstimateInput {
  /** Hourly prices of the usable offers, cheapest first. */
  prices: number[];
  symbols: number;
  minutesPerSymbol: number;
  /** Billed minutes of a rental beyond its training (boot, staging, fetch, destroy). */
  overheadMinutes: number;
  /** Symbols training at once (concurrencyCap). */
  cap: number;
  /** vast.pool: instances shared by the run's symbols, `slotsPerHost` at a time. */
  pool?: { slotsPerHost: number };
}

export interface RunEstimate {
  symbols: number;
  instances: number;
  /** Billed instance-hours over the run. */
  instanceHours: number;
  usd: number;
  /** Mean $/h of the instances counted. */
  hourly: number;
  pool: boolean;
}

const round = (x: number, d: number) => Math.round(x * 10 ** d) / 10 ** d;

/**
 * Without the pool every symbol rents its own instance among the `cap` cheapest offers (an offer
 * rented leaves the search until destroyed, so the window of concurrent rentals spreads over them);
 * with the pool, `ceil(cap / slots)` instances each serve their share of the symbols in turn.
 */
export function estimateRun(i: EstimateInput): RunEstimate | null {
  if (i.symbols <= 0)
    return { symbols: 0, instances: 0, instanceHours: 0, usd: 0, hourly: 0, pool: !!i.pool };
  if (i.prices.length === 0) return null;
  const concurrent = Math.max(1, Math.min(i.symbols, i.cap));
  if (!i.pool) {
    const used = i.prices.slice(0, Math.min(concurrent, i.prices.length));
    const hourly = used.reduce((a, b) => a + b, 0) / used.length;
    const hours = (i.symbols * (i.minutesPerSymbol + i.overheadMinutes)) / 60;
    return {
      symbols: i.symbols,
      instances: i.symbols,
      instanceHours: round(hours, 4),
      usd: round(hours * hourly, 6),
      hourly: round(hourly, 4),
      pool: false,
    };
  }
  const slots = Math.max(1, i.pool.slotsPerHost);
  const instances = Math.min(Math.ceil(concurrent / slots), i.prices.length);
  const rounds = Math.ceil(i.symbols / (instances * slots));
  // Boot and first staging once per instance; each later symbol on it only stages and fetches.
  const perInstance =
    (i.overheadMinutes + rounds * i.minutesPerSymbol + ((rounds - 1) * i.overheadMinutes) / 2) / 60;
  const used = i.prices.slice(0, instances);
  const usd = used.reduce((a, p) => a + p * perInstance, 0);
  return {
    symbols: i.symbols,
    instances,
    instanceHours: round(perInstance * instances, 4),
    usd: round(usd, 6),
    hourly: round(used.reduce((a, b) => a + b, 0) / instances, 4),
    pool: true,
  };
}

/** One line for the start message and the CLI. */
export function estimateLine(e: RunEstimate | null, minutes: number, upperBound = false): string {
  if (!e) return 'estimate: no offer meets the constraints right now';
  return (
    `estimate: ${upperBound ? 'at most ' : ''}$${e.usd.toFixed(2)} for ${e.symbols} symbols × ${round(minutes, 2)} min ` +
    `(${e.instances} instance${e.instances === 1 ? '' : 's'}${e.pool ? ', pooled' : ''}, ` +
    `${e.instanceHours.toFixed(2)} instance-hours at ~$${e.hourly.toFixed(3)}/h)`
  );
}
