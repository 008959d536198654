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
import type { GpuClass } from '../vast/gpuPreferences.js';
import type { VastOffer } from '../vast/types.js';
import { sleepOrCancel } from '../util/sleep.js';

export interface OfferPick {
  offer: VastOffer;
  bid?: Bid;
  /** The preference class it was chosen from (vast.gpuNames). */
  gpuClass?: string;
  /** Gives the machine claim back once the create is over. */
  release(): Promise<void>;
}

export interface PickRequest {
  query: Record<string, unknown>;
  constraints: OfferConstraints;
  /** Machines bad for the run, offers this attempt tried. */
  badMachines: Set<number>;
  triedOffers: Set<number>;
  /** GPU classes in order of preference (src/vast/gpuPreferences.ts); unset: the constraints as they are. */
  classes?: readonly GpuClass[];
  /** Set for an interruptible rental: only offers a bid within the policy can win. */
  bidPolicy?: BidPolicy;
  owner: string;
  turn: TurnOptions;
}

interface Candidates {
  list: VastOffer[];
  bids: Map<number, Bid>;
  skipped: string[];
  gpuClass?: string;
}

/**
 * The candidates of each GPU class in order of preference (one group without classes), each
 * meeting every constraint under its class's names and cap, cheapest first.
 */
function candidateGroups(offers: readonly unknown[], r: PickRequest): Candidates[] {
  if (!r.classes?.length) return [candidates(offers, r, r.constraints)];
  return r.classes.map((c) => ({
    ...candidates(offers, r, { ...r.constraints, gpuNames: c.names, maxHourlyCost: c.maxHourlyCost }),
    gpuClass: c.label,
  }));
}

/** The candidates meeting every constraint (with their bids when interruptible), cheapest first. */
function candidates(offers: readonly unknown[], r: PickRequest, constraints: OfferConstraints): Candidates {
  const list = chooseOffers(offers, constraints, { machineIds: r.badMachines, offerIds: r.triedOffers });
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
    const groups = candidateGroups(await client.searchOffers(r.query, r.turn), r);
    // The first class with an offer: a later one only when the better ones have no capacity.
    const { list, bids, gpuClass } = groups.find((g) => g.list.length > 0) ?? groups[0]!;
    const offer = list[0];
    if (!offer) return noOffer(groups.flatMap((g) => g.skipped));
    return {
      offer,
      ...(bids.has(offer.id) ? { bid: bids.get(offer.id)! } : {}),
      ...(gpuClass ? { gpuClass } : {}),
      release: async () => undefined,
    };
  }
  let stale: number | undefined;
  let skipped: string[] = [];
  const started = Date.now();
  for (let round = 0; round < 6; round++) {
    const cached = await board.offers(r.query, r.turn, stale);
    const groups = candidateGroups(cached.offers, r);
    skipped = groups.flatMap((g) => g.skipped);
    // A fresh search with no candidate at all (not merely all claimed): no capacity now. Searching
    // again at once would only spend the API budget; the capacity wait comes back later.
    if (groups.every((g) => g.list.length === 0) && (cached.at >= started || Date.now() - cached.at < 2000)) {
      return noOffer(skipped);
    }
    // Class by class: a later class only when every offer of the better ones is gone or claimed.
    for (const c of groups) {
      const claimed = c.list.length > 0 ? await board.claim(c.list, r.owner) : null;
      if (claimed) {
        const bid = c.bids.get(claimed.offer.id);
        return {
          offer: claimed.offer,
          ...(bid ? { bid } : {}),
          ...(c.gpuClass ? { gpuClass: c.gpuClass } : {}),
          release: claimed.release,
        };
      }
    }
    // All taken or claimed by our other workers: a new search shows what is left (one worker
    // searches; a search this recent is waited on rather than repeated).
    if (Date.now() - cached.at < 2000) await sleepOrCancel(1000, r.turn.signal);
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
    if (wait > 0) await sleepOrCancel(wait, opts.turn.signal);
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
