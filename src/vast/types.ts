/**
 * What we read from the Vast.ai REST API, validated with zod. Unknown fields are kept (Vast adds
 * fields freely); the ones we rely on are coerced and checked. A malformed offer is dropped with a
 * reason instead of crashing the search (see `parseOffers`).
 */
import { z } from 'zod';

/** A finite number; numeric strings are accepted (the server and the CLI both send them). */
const num = z.preprocess((v) => {
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  return v;
}, z.number().finite());

const nonNeg = num.pipe(z.number().nonnegative());

const optNum = z.preprocess((v) => (v === null ? undefined : v), num.optional());
const optNonNeg = z.preprocess((v) => (v === null ? undefined : v), nonNeg.optional());

const bool = z.preprocess((v) => {
  if (v === 'true' || v === 1) return true;
  if (v === 'false' || v === 0) return false;
  return v;
}, z.boolean());

const optStr = z.preprocess((v) => (v === null ? undefined : v), z.string().optional());

export const VastOfferSchema = z
  .looseObject({
    id: num.pipe(z.number().int().positive()),
    machine_id: num.pipe(z.number().int().nonnegative()),
    host_id: optNum,
    gpu_name: z.string().trim().min(1),
    num_gpus: num.pipe(z.number().int().positive()),
    /** MB per GPU. */
    gpu_ram: nonNeg,
    /** MB, all GPUs. */
    gpu_total_ram: optNonNeg,
    /** $/h including storage at the searched allocated_storage. */
    dph_total: nonNeg,
    dph_base: optNonNeg,
    /** $/GB/month. */
    storage_cost: optNonNeg,
    min_bid: optNonNeg,
    is_bid: z.preprocess((v) => (v === null ? undefined : v), bool.optional()),
    reliability2: optNum,
    reliability: optNum,
    verified: z.preprocess((v) => (v === null ? undefined : v), bool.optional()),
    verification: optStr,
    rentable: z.preprocess((v) => (v === null ? undefined : v), bool.optional()),
    rented: z.preprocess((v) => (v === null ? undefined : v), bool.optional()),
    /** GB free on the machine. */
    disk_space: nonNeg,
    /** Mbit/s. */
    inet_down: nonNeg,
    inet_up: optNonNeg,
    cuda_max_good: nonNeg,
    driver_version: optStr,
    compute_cap: optNum,
    direct_port_count: optNonNeg,
    geolocation: optStr,
    cpu_cores_effective: optNonNeg,
    cpu_ram: optNonNeg,
  })
  .superRefine((o, ctx) => {
    const rel = o.reliability2 ?? o.reliability;
    if (rel === undefined)
      ctx.addIssue({ code: 'custom', message: 'no reliability2/reliability', path: ['reliability2'] });
    else if (rel < 0 || rel > 1)
      ctx.addIssue({ code: 'custom', message: 'reliability out of [0,1]', path: ['reliability2'] });
    if (o.verified === undefined && o.verification === undefined) {
      ctx.addIssue({ code: 'custom', message: 'no verified/verification', path: ['verified'] });
    }
  });

export type VastOffer = z.infer<typeof VastOfferSchema>;

/** reliability2 when present (what dstack and we filter on), else reliability. */
export function offerReliability(o: VastOffer): number {
  return o.reliability2 ?? o.reliability ?? 0;
}

/** `verified: true`, or `verification: "verified"` when the boolean is absent. */
export function offerVerified(o: VastOffer): boolean {
  if (o.verified !== undefined) return o.verified;
  return o.verification === 'verified';
}

export interface DroppedOffer {
  index: number;
  id?: unknown;
  reason: string;
}

function describeIssues(err: z.ZodError): string {
  return err.issues
    .slice(0, 3)
    .map((i) => `${i.path.join('.') || '(offer)'}: ${i.message}`)
    .join('; ');
}

/** Validates a list of raw offers; malformed ones are dropped with a reason. */
export function parseOffers(raw: readonly unknown[]): { offers: VastOffer[]; dropped: DroppedOffer[] } {
  const offers: VastOffer[] = [];
  const dropped: DroppedOffer[] = [];
  raw.forEach((item, index) => {
    const r = VastOfferSchema.safeParse(item);
    if (r.success) offers.push(r.data);
    else {
      const id = item && typeof item === 'object' ? (item as Record<string, unknown>).id : undefined;
      dropped.push({ index, id, reason: describeIssues(r.error) });
    }
  });
  return { offers, dropped };
}

const PortBinding = z.looseObject({
  HostIp: optStr,
  HostPort: z.preprocess((v) => (typeof v === 'number' ? String(v) : v), z.string()),
});

/**
 * Only `id` must be sound. Every other field reads as absent when it has a shape we do not expect
 * (the spec types `ports` as `{}`, null or a list, `extra_env` as pairs or strings): a field we do
 * not need never fails a read (vast-reality.md, "Instance rows").
 */
const lenient = <T extends z.ZodType>(t: T) => t.optional().catch(undefined);

export const VastInstanceSchema = z.looseObject({
  id: num.pipe(z.number().int().positive()),
  machine_id: lenient(optNum),
  host_id: lenient(optNum),
  label: lenient(z.string().nullish()),
  image_uuid: lenient(z.string().nullish()),
  image_runtype: lenient(z.string().nullish()),
  onstart: lenient(z.string().nullish()),
  extra_env: lenient(z.array(z.unknown()).nullish()),
  actual_status: lenient(z.string().nullish()),
  intended_status: lenient(z.string().nullish()),
  cur_state: lenient(z.string().nullish()),
  next_state: lenient(z.string().nullish()),
  status_msg: lenient(z.string().nullish()),
  start_date: lenient(optNum),
  end_date: lenient(optNum),
  num_gpus: lenient(optNum),
  gpu_name: lenient(z.string().nullish()),
  gpu_ram: lenient(optNum),
  disk_space: lenient(optNum),
  ssh_host: lenient(z.string().trim().nullish()),
  ssh_port: lenient(optNum),
  /** Stripped: Vast may send trailing whitespace. */
  public_ipaddr: lenient(z.string().trim().nullish()),
  /** `{"22/tcp": [{HostIp, HostPort}]}` once running; any other shape reads as no ports. */
  ports: lenient(z.record(z.string(), z.array(PortBinding).nullable().catch(null)).nullish()),
  direct_port_start: lenient(optNum),
  direct_port_end: lenient(optNum),
  dph_total: lenient(optNum),
  dph_base: lenient(optNum),
  is_bid: lenient(z.preprocess((v) => (v === null ? undefined : v), bool.optional())),
});

export type VastInstance = z.infer<typeof VastInstanceSchema>;

/** The part of `GET /api/v0/users/current/` we expose; the `api_key` field is never kept. */
export interface VastBalance {
  credit: number;
  balance: number | null;
}
