/**
 * Offer selection: the search query sent to `POST /api/v0/bundles/` (the shape the official CLI
 * builds), and a client-side re-check of every constraint, since the server filter is not trusted.
 */
import { VastOfferSchema, offerReliability, offerVerified, type VastOffer } from './types.js';

export interface OfferConstraints {
  /** Vast spelling uses spaces ("RTX 4090"); underscores and case are normalised. Matched exactly. */
  gpuNames: string[];
  /** $/h against the full dph_total (storage included). */
  maxHourlyCost: number;
  minGpuMemoryGb: number;
  /** 0..1, checked against reliability2 (reliability when absent). */
  minReliability: number;
  verifiedOnly: boolean;
  /** Also the planned disk: the search prices storage at this size (allocated_storage). */
  minDiskGb: number;
  minInetDownMbps: number;
  minCudaVersion?: number;
  numGpus: number;
  /** Search bid prices (type "bid"); the rental is only interruptible when created with a price. */
  interruptible?: boolean;
  /** Renting with direct SSH: only hosts with a direct port (`direct_port_count >= 1`) can give it. */
  directSsh?: boolean;
  /** The search's `limit`: how many machines the server scans (default OFFER_SEARCH_LIMIT). */
  scanLimit?: number;
}

export interface OfferExclusions {
  machineIds: Set<number>;
  offerIds?: Set<number>;
}

/**
 * How many offers one search asks for by default. `limit` bounds how many machines the server scans,
 * not only how many it returns (vast-reality.md, "Offers and renting"): config `vast.offers.scanLimit`.
 */
export const OFFER_SEARCH_LIMIT = 64;

/** "rtx_4090" → "RTX 4090" (the server's spelling; upper case for comparison). */
export function normalizeGpuName(name: string): string {
  return name.replace(/_/g, ' ').trim().replace(/\s+/g, ' ').toUpperCase();
}

/** The spelling sent to the server: underscores become spaces (as the CLI does), case kept. */
function serverGpuName(name: string): string {
  return name.replace(/_/g, ' ').trim().replace(/\s+/g, ' ');
}

/**
 * Vast lists some GPUs only under variant names ("A100 SXM4", "A100 PCIE"): a configured family
 * name also asks for, and matches, its variants.
 */
const GPU_VARIANTS: Record<string, string[]> = {
  A100: ['A100 SXM4', 'A100 PCIE', 'A100X'],
  H100: ['H100 SXM', 'H100 PCIE', 'H100 NVL'],
  A800: ['A800 PCIE'],
  H200: ['H200 NVL'],
};

function withVariants(name: string): string[] {
  return [name, ...(GPU_VARIANTS[normalizeGpuName(name)] ?? [])];
}

/** True when the offer's GPU is one of the wanted names or a variant of a wanted family. */
export function gpuWanted(offerGpu: string, wanted: readonly string[]): boolean {
  const have = normalizeGpuName(offerGpu);
  return wanted.some((w) => withVariants(w).some((n) => normalizeGpuName(n) === have));
}

/** GB → MB the way the CLI does it (× 1000). */
function gbToMb(gb: number): number {
  return Math.round(gb * 1000);
}

/** The search body (`POST /api/v0/bundles/`), with numbers sent as numbers. */
export function buildOfferQuery(c: OfferConstraints): Record<string, unknown> {
  const q: Record<string, unknown> = {};
  if (c.verifiedOnly) q.verified = { eq: true };
  q.external = { eq: false };
  q.rentable = { eq: true };
  q.rented = { eq: false };
  const names = [...new Set(c.gpuNames.flatMap(withVariants).map(serverGpuName))];
  if (names.length > 0) q.gpu_name = { in: names };
  q.num_gpus = { eq: c.numGpus };
  q.gpu_ram = { gte: gbToMb(c.minGpuMemoryGb) };
  q.dph_total = { lte: c.maxHourlyCost };
  // The CLI's field (reliability2 is now an alias of it).
  q.reliability = { gte: c.minReliability };
  q.disk_space = { gte: c.minDiskGb };
  q.inet_down = { gte: c.minInetDownMbps };
  if (c.minCudaVersion !== undefined) q.cuda_max_good = { gte: c.minCudaVersion };
  if (c.directSsh) q.direct_port_count = { gte: 1 };
  q.order = [['dph_total', 'asc']];
  q.type = c.interruptible ? 'bid' : 'on-demand';
  q.allocated_storage = c.minDiskGb;
  q.limit = c.scanLimit ?? OFFER_SEARCH_LIMIT;
  return q;
}

export interface RejectedOffer {
  id: unknown;
  reason: string;
}

/** Why an offer fails the constraints, or null when it meets them all. */
export function offerRejection(o: VastOffer, c: OfferConstraints, excluded?: OfferExclusions): string | null {
  if (c.gpuNames.length > 0 && !gpuWanted(o.gpu_name, c.gpuNames)) return `gpu ${o.gpu_name} not wanted`;
  if (o.num_gpus !== c.numGpus) return `num_gpus ${o.num_gpus} != ${c.numGpus}`;
  if (o.gpu_ram < gbToMb(c.minGpuMemoryGb)) return `gpu_ram ${o.gpu_ram}MB < ${c.minGpuMemoryGb}GB`;
  if (!(o.dph_total <= c.maxHourlyCost)) return `dph_total ${o.dph_total} > ${c.maxHourlyCost}`;
  const rel = offerReliability(o);
  if (rel < c.minReliability) return `reliability ${rel} < ${c.minReliability}`;
  if (c.verifiedOnly && !offerVerified(o)) return 'not verified';
  if (o.disk_space < c.minDiskGb) return `disk_space ${o.disk_space} < ${c.minDiskGb}`;
  if (o.inet_down < c.minInetDownMbps) return `inet_down ${o.inet_down} < ${c.minInetDownMbps}`;
  if (c.minCudaVersion !== undefined && o.cuda_max_good < c.minCudaVersion) {
    return `cuda_max_good ${o.cuda_max_good} < ${c.minCudaVersion}`;
  }
  if (c.directSsh && o.direct_port_count !== undefined && o.direct_port_count < 1) return 'no direct port';
  if (o.rentable === false) return 'not rentable';
  if (o.rented === true) return 'already rented';
  if (excluded?.machineIds.has(o.machine_id)) return `machine ${o.machine_id} excluded`;
  if (excluded?.offerIds?.has(o.id)) return `offer ${o.id} excluded`;
  return null;
}

/** How an interruptible rental bids (config `vast.bidPrice`, `vast.bidMultiplier`, `vast.maxHourlyCost`). */
export interface BidPolicy {
  /** Absolute bid in $/h per machine (GPU part); unset: `bidMultiplier` × the offer's min_bid. */
  bidPrice?: number;
  bidMultiplier: number;
  /** Cap on bid + storage, $/h. */
  maxHourlyCost: number;
  /** Disk of the rental (GB): its storage is billed on top of the bid. */
  diskGb: number;
}

export interface Bid {
  /** The `price` sent with the create ($/h per machine). */
  price: number;
  /** The offer's bid floor: a lower bid never starts. */
  minBid: number;
  /** Storage of the planned disk, $/h, billed on top of the bid (also while outbid). */
  storageHour: number;
  /** What the rental costs per hour while it runs: price + storage. */
  hourly: number;
}

/**
 * The bid for an offer found by a bid search, or why it cannot be bid on. The bid is `bidPrice`, or
 * `bidMultiplier` × min_bid; it is capped so bid + storage stays within maxHourlyCost and never goes
 * below min_bid (vast-api.md §10.6: a bid below market never starts): an offer where both cannot
 * hold is rejected.
 */
export function bidFor(o: VastOffer, p: BidPolicy): Bid | { reject: string } {
  const storageHour =
    o.storage_cost !== undefined
      ? (o.storage_cost * p.diskGb) / 720
      : Math.max(0, o.dph_total - (o.min_bid ?? o.dph_total));
  // A bid search prices dph_total at min_bid: without min_bid, that price less storage is the floor.
  const minBid = o.min_bid ?? Math.max(0, o.dph_total - storageHour);
  const floor = Math.max(minBid, 0.001);
  if (p.bidPrice !== undefined && p.bidPrice < floor) {
    return { reject: `min_bid ${minBid} above the bid ${p.bidPrice}` };
  }
  const want = p.bidPrice ?? Math.ceil(floor * p.bidMultiplier * 1e6) / 1e6;
  const cap = Math.min(p.maxHourlyCost - storageHour, 128);
  const price = Math.min(want, cap);
  if (price < floor) {
    return {
      reject: `a bid within maxHourlyCost ${p.maxHourlyCost} (${Math.max(0, Math.round(cap * 1e6) / 1e6)} + storage) is below min_bid ${minBid}`,
    };
  }
  return { price, minBid, storageHour, hourly: price + storageHour };
}

/** Cheapest first; ties by reliability (higher first), then id (lower first). */
export function compareOffers(a: VastOffer, b: VastOffer): number {
  return a.dph_total - b.dph_total || offerReliability(b) - offerReliability(a) || a.id - b.id;
}

/** Like `chooseOffers`, and also says why every other offer was rejected (for logs). */
export function explainOffers(
  offers: readonly unknown[],
  c: OfferConstraints,
  excluded: OfferExclusions = { machineIds: new Set() },
): { chosen: VastOffer[]; rejected: RejectedOffer[] } {
  const chosen: VastOffer[] = [];
  const rejected: RejectedOffer[] = [];
  const seen = new Set<number>();
  for (const raw of offers) {
    const parsed = VastOfferSchema.safeParse(raw);
    if (!parsed.success) {
      const id = raw && typeof raw === 'object' ? (raw as Record<string, unknown>).id : undefined;
      const issue = parsed.error.issues[0];
      rejected.push({
        id,
        reason: `malformed: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid'}`,
      });
      continue;
    }
    const o = parsed.data;
    const why = seen.has(o.id) ? 'duplicate id' : offerRejection(o, c, excluded);
    if (why) rejected.push({ id: o.id, reason: why });
    else {
      seen.add(o.id);
      chosen.push(o);
    }
  }
  chosen.sort(compareOffers);
  return { chosen, rejected };
}

/**
 * The offers meeting every constraint (re-checked here: the server filter is not trusted), cheapest
 * first by full dph_total, deterministic ties. Malformed offers are dropped.
 */
export function chooseOffers(
  offers: readonly unknown[],
  c: OfferConstraints,
  excluded: OfferExclusions = { machineIds: new Set() },
): VastOffer[] {
  return explainOffers(offers, c, excluded).chosen;
}
