/**
 * The two steps of a rental that talk to the market: choosing an offer (from the deployment's
 * shared search, claimed so that our own workers never race each other for it) and creating the
 * instance (a create whose answer was lost is resolved by looking the label up: what Vast created
 * is adopted, extra copies destroyed, nothing left for the reaper).
 */
import { VastCreateUnknownError, type CreateInstanceRequest, type VastClient } from '../vast/client.js';
import type { TurnOptions } from '../vast/budget.js';
import type { OfferBoard } from '../vast/market.js';
import { bidFor, chooseOffers, type Bid, type BidPolicy, type OfferConstraints } from '../vast/offers.js';
import type { VastOffer } from '../vast/types.js';
import { CancelledError } from '../errors.js';

export interface OfferPick {
  offer: VastOffer;
  bid?: Bid;
  /** Gives the machine claim back once the create is over. */
  release(): Promise<void>;
}

export interface PickRequest {
  query: Record<string, unknown>;
  constraints: OfferConstraints;
  /** Machines bad for the run, offers this attempt tried. */
  badMachines: Set<number>;
  triedOffers: Set<number>;
  /** Set for an interruptible rental: only offers a bid within the policy can win. */
  bidPolicy?: BidPolicy;
  owner: string;
  turn: TurnOptions;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(new CancelledError());
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => (clearTimeout(t), reject(new CancelledError()));
    signal?.addEventListener('abort', onAbort, { once: true });
  });

/** The candidates meeting every constraint (with their bids when interruptible), cheapest first. */
function candidates(
  offers: readonly unknown[],
  r: PickRequest,
): { list: VastOffer[]; bids: Map<number, Bid>; skipped: string[] } {
  const list = chooseOffers(offers, r.constraints, { machineIds: r.badMachines, offerIds: r.triedOffers });
  const bids = new Map<number, Bid>();
  const skipped: string[] = [];
  if (!r.bidPolicy) return { list, bids, skipped };
  const biddable = list.filter((o) => {
    const b = bidFor(o, r.bidPolicy!);
    if ('reject' in b) {
      skipped.push(`offer ${o.id}: ${b.reject}`);
      return false;
    }
    bids.set(o.id, b);
    return true;
  });
  return { list: biddable, bids, skipped };
}

/** Why nothing could be picked, as the attempt's failure text. */
function noOffer(skipped: string[]): { fail: string } {
  return skipped.length
    ? { fail: `no offer to bid on (${skipped.slice(0, 2).join('; ')})` }
    : { fail: 'no offer meets the constraints' };
}

/**
 * Picks an offer: from the shared board when there is one (near-cheapest, claimed), else from a
 * search of its own (the cheapest).
 */
export async function pickOffer(
  client: Pick<VastClient, 'searchOffers'>,
  board: OfferBoard | undefined,
  r: PickRequest,
): Promise<OfferPick | { fail: string }> {
  if (!board) {
    const { list, bids, skipped } = candidates(await client.searchOffers(r.query, r.turn), r);
    const offer = list[0];
    if (!offer) return noOffer(skipped);
    return {
      offer,
      ...(bids.has(offer.id) ? { bid: bids.get(offer.id)! } : {}),
      release: async () => undefined,
    };
  }
  let stale: number | undefined;
  let skipped: string[] = [];
  for (let round = 0; round < 6; round++) {
    const cached = await board.offers(r.query, r.turn, stale);
    const c = candidates(cached.offers, r);
    skipped = c.skipped;
    const claimed = await board.claim(c.list, r.owner);
    if (claimed) {
      const bid = c.bids.get(claimed.offer.id);
      return { offer: claimed.offer, ...(bid ? { bid } : {}), release: claimed.release };
    }
    // All taken or claimed by our other workers: a new search shows what is left (one worker
    // searches; a search this recent is waited on rather than repeated).
    if (Date.now() - cached.at < 2000) await sleep(1000, r.turn.signal);
    stale = cached.at;
  }
  return noOffer(skipped);
}

export interface Created {
  instanceId: number;
  /** Found by its label after a create whose answer was lost. */
  adopted: boolean;
}

/** Lookups of the label after an ambiguous create: the instance can show up late. */
const ADOPT_WAITS_MS = [0, 2000, 4000, 8000, 15_000, 30_000];

/**
 * Creates the instance. A create that may have gone through without an answer is resolved by
 * listing the label: the instance on the offer's machine (else the newest) is adopted, any other
 * copy not in `known` is destroyed; null when nothing turned up (nothing was created).
 */
export async function createOrAdopt(
  client: Pick<VastClient, 'createInstance' | 'listInstances' | 'destroyInstance'>,
  offer: VastOffer,
  req: CreateInstanceRequest,
  opts: {
    /** Instances of this label we already know (earlier offers of this attempt). */
    known: Set<number>;
    turn: TurnOptions;
    waitsMs?: number[];
    onAmbiguous?: (err: VastCreateUnknownError) => void;
    destroyExtra?: (id: number) => Promise<void>;
  },
): Promise<Created | null> {
  try {
    const { instanceId } = await client.createInstance(offer.id, req, opts.turn);
    return { instanceId, adopted: false };
  } catch (err) {
    if (!(err instanceof VastCreateUnknownError)) throw err;
    opts.onAmbiguous?.(err);
  }
  for (const wait of opts.waitsMs ?? ADOPT_WAITS_MS) {
    if (wait > 0) await sleep(wait, opts.turn.signal);
    const rows = (await client.listInstances({ label: req.label, turn: opts.turn })).filter(
      (i) => !opts.known.has(i.id) && i.cur_state !== 'unloaded',
    );
    if (rows.length === 0) continue;
    rows.sort(
      (a, b) =>
        Number(b.machine_id === offer.machine_id) - Number(a.machine_id === offer.machine_id) || b.id - a.id,
    );
    const [keep, ...extra] = rows;
    for (const e of extra) {
      await (opts.destroyExtra ?? ((id: number) => client.destroyInstance(id, { turn: opts.turn })))(e.id);
    }
    return { instanceId: keep!.id, adopted: true };
  }
  return null;
}
