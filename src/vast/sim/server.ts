/**
 * A local Vast.ai simulator over real HTTP (node:http), faithful to shared/reference/vast-api.md:
 * same paths (with or without trailing slash), methods, bearer auth (401 `auth_error`), JSON shapes
 * and wrappers, status transitions, per-second billing and the instance-scoped key. Every instance
 * is backed by one real SSH endpoint given by the caller. The official `vastai` CLI works against it
 * (docs/gpu-path.md; test/integration/vastai-cli.test.ts, test/unit/vast/sim-cli-contract.test.ts).
 *
 * Time: bootDelayMs is real time; billing is real running time × timeScale.
 * Billing: dph_total × seconds while `running` (loading is free); an interruptible (bid) instance that was
 * outbid keeps paying its storage (storage_cost × disk / 720 per hour) until it is destroyed. Other
 * storage-only billing (loading, a killed instance) is not modelled.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { VastInstance, VastOffer } from '../types.js';

export interface VastSimFaults {
  /** Probability (0..1) that any /api request gets a 429 (one of Vast's three body forms). */
  rate429?: number;
  /** Probability that any /api request gets a 502/504 HTML gateway page or a 503. */
  rate5xx?: number;
  /** Probability that a create finds the offer just taken (410 no_such_ask). */
  offerGoneOnCreate?: number;
  /** Instances on these machines stay `loading` forever. */
  stuckLoadingMachineIds?: number[];
  /** Probability that a new instance stays `loading` forever. */
  stuckLoadingRate?: number;
  /** Probability that a new instance dies (`exited`) `dieAfterMs` after it started running. */
  dieRate?: number;
  /** How long a doomed instance runs before it dies (default 5000). */
  dieAfterMs?: number;
  /** Send `Retry-After: <s>` with injected 429s (Vast itself sends none). */
  retryAfterSec?: number;
  /** Probability that a new interruptible (bid) instance is outbid `outbidAfterMs` after it started running. */
  outbidRate?: number;
  /** How long a doomed bid instance runs before it is outbid (default 5000). */
  outbidAfterMs?: number;
}

export interface VastSimOptions {
  port?: number;
  host?: '127.0.0.1';
  /** When unset any bearer key is accepted (instance keys stay restricted). */
  apiKey?: string;
  offers: VastOffer[] | Record<string, unknown>[] | string;
  sshEndpoint: { host: string; port: number };
  bootDelayMs?: number;
  faults?: VastSimFaults;
  seed?: number;
  timeScale?: number;
  /** Prepaid credit in $ (default 25). */
  credit?: number;
  /**
   * Private images: image → the `image_login` that pulls it. A create of such an image with
   * another login (or none) stays `loading` with Docker's pull error in `status_msg`, as on Vast.
   */
  privateImages?: Record<string, string>;
}

export interface VastSimState {
  rented: number[];
  destroyed: number[];
  alive: number[];
  billedSeconds: Record<number, number>;
  billedUsd: Record<number, number>;
  instances: VastInstance[];
  /** Container environment of each instance (CONTAINER_ID, CONTAINER_API_KEY and the user's env). */
  env: Record<number, Record<string, string>>;
  /** Public keys attached to each instance. */
  sshKeys: Record<number, string[]>;
  /** The `price` (bid, $/h) each instance was created with; null for on-demand rentals. */
  bids: Record<number, number | null>;
  /** Interruptible instances that were outbid (in the order it happened). */
  outbid: number[];
  /** The `image_login` each instance was created with; null when none was sent. */
  imageLogins: Record<number, string | null>;
  requests: number;
  authFailures: number;
  /** Requests that carried `api_key` in the query string (a client bug: keys never go in URLs). */
  apiKeyInUrl: number;
  faultsInjected: { '429': number; '5xx': number; offerGone: number };
}

export interface VastSim {
  url: string;
  close(): Promise<void>;
  setFaults(f: VastSimFaults): void;
  /** The instance goes `exited` (or `offline`/`unknown`) as if the container or host died. */
  killInstance(id: number, status?: 'exited' | 'offline' | 'unknown'): void;
  /**
   * An interruptible (bid) instance is outbid (vast-api.md §9): `actual_status` becomes `stopped` (or
   * `exited`), `intended_status` stays `running`, the GPU goes to the higher bidder (its offer leaves
   * the search for good) and storage keeps billing until the instance is destroyed. False when the
   * instance is unknown, destroyed, already stopped, or not a bid.
   */
  outbidInstance(id: number, status?: 'stopped' | 'exited'): boolean;
  setDown(mode: 'none' | '503' | 'refuse'): void;
  state(): VastSimState;
}

interface SimInstance {
  id: number;
  offer: Record<string, unknown>;
  offerId: number;
  machineId: number;
  label: string | null;
  image: string;
  disk: number;
  runtype: string;
  onstart: string | null;
  userEnv: Record<string, string>;
  containerEnv: Record<string, string>;
  key: string;
  createdAt: number;
  stuck: boolean;
  killed?: { at: number; status: 'exited' | 'offline' | 'unknown' };
  /** When a doomed instance (fault `dieRate`) dies. */
  diesAt?: number;
  /** Outbid (a bid instance only): halted by the host, storage still billed. */
  outbid?: { at: number; status: 'stopped' | 'exited' };
  /** When a doomed bid instance (fault `outbidRate`) is outbid. */
  outbidAt?: number;
  destroyedAt?: number;
  sshKeys: string[];
  isBid: boolean;
  price: number | null;
  dphTotal: number;
  dphBase: number;
  storageHour: number;
  jupyterToken: string;
  imageLogin: string | null;
  /** The image cannot be pulled (a private image without the right login). */
  pullDenied: boolean;
}

/** The shipped fixture: 12 offers across RTX 3090/4090, A100, H100 and others. A fresh copy each call. */
export function defaultOffers(): VastOffer[] {
  return JSON.parse(readFileSync(new URL('./offers.json', import.meta.url), 'utf8')) as VastOffer[];
}

/** mulberry32: a small seeded PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class HttpReply {
  constructor(
    readonly status: number,
    readonly body: unknown,
    readonly contentType = 'application/json',
    readonly headers: Record<string, string> = {},
  ) {}
}

const json = (status: number, body: unknown) => new HttpReply(status, body);
const fail = (status: number, error: string, msg: string, extra: Record<string, unknown> = {}) =>
  json(status, { success: false, error, msg, ...extra });

const NGINX_502 =
  '<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n';
const NGINX_504 =
  '<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n<center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n';

const CONTROL_KEYS = new Set([
  'order',
  'limit',
  'type',
  'allocated_storage',
  'select_cols',
  'disable_bundling',
  'extra_ids',
]);
const ALIASES: Record<string, string> = {
  dph: 'dph_total',
  cuda_vers: 'cuda_max_good',
  dlperf_usd: 'dlperf_per_dphtotal',
  flops_usd: 'flops_per_dphtotal',
};
const RUNTYPE_TOKENS = new Set([
  'ssh',
  'ssh_proxy',
  'ssh_direct',
  'ssh_direc',
  'jupyter',
  'jupyter_proxy',
  'jupyter_direct',
  'jupyter_direc',
  'args',
]);
/** Columns the v1 list can filter on (stored); computed ones get 400. */
const STORED_COLUMNS = new Set([
  'id',
  'label',
  'actual_status',
  'intended_status',
  'cur_state',
  'gpu_name',
  'machine_id',
  'host_id',
  'image_uuid',
  'verification',
]);

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function coerceLike(sample: unknown, v: unknown): unknown {
  if (typeof sample === 'number') return typeof v === 'number' ? v : Number(v);
  if (typeof sample === 'boolean') return v === true || v === 'true' || v === 1 || v === '1';
  if (typeof sample === 'string') return String(v);
  return v;
}

/** Applies one `{op: value}` filter; throws on an unknown op. */
function matchOps(actual: unknown, ops: unknown): boolean {
  const o: Record<string, unknown> = isObj(ops) ? ops : { eq: ops };
  for (const [op, raw] of Object.entries(o)) {
    if (actual === undefined || actual === null) {
      const isNull = (x: unknown) => x === null || x === 'null';
      const l = Array.isArray(raw) ? raw : [raw];
      if (op === 'neq' && !isNull(raw)) continue;
      if ((op === 'notin' || op === 'nin') && !l.some(isNull)) continue;
      if (op === 'eq' && isNull(raw)) continue;
      // `show instances --label ''` sends {"label":{"in":[null]}} for unlabeled instances.
      if (op === 'in' && l.some(isNull)) continue;
      return false;
    }
    const list = (): unknown[] => (Array.isArray(raw) ? raw : [raw]).map((x) => coerceLike(actual, x));
    const v = coerceLike(actual, raw);
    let ok: boolean;
    switch (op) {
      case 'eq':
        ok = actual === v;
        break;
      case 'neq':
        ok = actual !== v;
        break;
      case 'gt':
        ok = (actual as number) > (v as number);
        break;
      case 'gte':
        ok = (actual as number) >= (v as number);
        break;
      case 'lt':
        ok = (actual as number) < (v as number);
        break;
      case 'lte':
        ok = (actual as number) <= (v as number);
        break;
      case 'in':
        ok = list().includes(actual);
        break;
      case 'notin':
      case 'nin':
        ok = !list().includes(actual);
        break;
      default:
        throw new Error(`unknown operator ${op}`);
    }
    if (!ok) return false;
  }
  return true;
}

/** `535.86.05` → 535086005, the integer form the CLI sends for driver_version (vastai/api/query.py). */
function numericDriverVersion(v: unknown): unknown {
  if (typeof v !== 'string') return v;
  const m = /^\s*(\d+)\.(\d+)\.(\d+)\s*$/.exec(v);
  if (m) return Number(m[1]) * 1_000_000 + Number(m[2]) * 1000 + Number(m[3]);
  return /^\s*\d+\s*$/.test(v) ? Number(v) : v;
}

/**
 * One search filter on one offer field. Like matchOps, plus the server-side conversions the CLI
 * relies on: driver_version compares as the integer 535086005 (the CLI converts `535.86.05`), and
 * geolocation matches the whole string (`"California, US"`) or its two-letter country code
 * (`geolocation in [US,CA]`).
 */
function matchOfferField(field: string, actual: unknown, ops: unknown): boolean {
  if (field === 'driver_version') {
    const o: Record<string, unknown> = isObj(ops) ? ops : { eq: ops };
    const conv = Object.fromEntries(
      Object.entries(o).map(([op, v]) => [
        op,
        Array.isArray(v) ? v.map(numericDriverVersion) : numericDriverVersion(v),
      ]),
    );
    return matchOps(numericDriverVersion(actual), conv);
  }
  if (field === 'geolocation' && typeof actual === 'string') {
    const code = /,\s*([A-Za-z]{2})\s*$/.exec(actual)?.[1]?.toUpperCase();
    const hits = (v: unknown) =>
      (Array.isArray(v) ? v : [v]).some(
        (x) => typeof x === 'string' && (x === actual || (code !== undefined && x.toUpperCase() === code)),
      );
    const o: Record<string, unknown> = isObj(ops) ? ops : { eq: ops };
    for (const [op, v] of Object.entries(o)) {
      if (op === 'eq' || op === 'in') {
        if (!hits(v)) return false;
      } else if (op === 'neq' || op === 'notin' || op === 'nin') {
        if (hits(v)) return false;
      } else if (!matchOps(actual, { [op]: v })) return false;
    }
    return true;
  }
  return matchOps(actual, ops);
}

/** CLI `--env` string form: `-e K=V -p 8000:8000`. */
function parseEnvString(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  const toks = s.match(/"[^"]*"|'[^']*'|\S+/g) ?? [];
  for (let i = 0; i < toks.length; i++) {
    const t = toks[i]!;
    const next = toks[i + 1]?.replace(/^["']|["']$/g, '');
    if (t === '-e' && next !== undefined) {
      const eq = next.indexOf('=');
      if (eq > 0) out[next.slice(0, eq)] = next.slice(eq + 1);
      i++;
    } else if ((t === '-p' || t === '-v') && next !== undefined) {
      out[`${t} ${next}`] = '1';
      i++;
    } else if (t === '-h' && next !== undefined) {
      out['-h'] = next;
      i++;
    }
  }
  return out;
}

function num(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : undefined;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    const b = c as Buffer;
    size += b.length;
    if (size > 1_048_576) throw new Error('body too large');
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export async function startVastSim(opts: VastSimOptions): Promise<VastSim> {
  const host = opts.host ?? '127.0.0.1';
  const bootDelayMs = Math.max(0, opts.bootDelayMs ?? 2000);
  const timeScale = opts.timeScale ?? 1;
  const rand = prng(opts.seed ?? 1);
  let faults: VastSimFaults = { ...(opts.faults ?? {}) };
  let down: 'none' | '503' | 'refuse' = 'none';
  const rawOffers: Record<string, unknown>[] =
    typeof opts.offers === 'string'
      ? (JSON.parse(readFileSync(opts.offers, 'utf8')) as Record<string, unknown>[])
      : (structuredClone(opts.offers) as Record<string, unknown>[]);
  if (!Array.isArray(rawOffers)) throw new Error('vast-sim: offers must be an array');
  const offers = new Map<number, { raw: Record<string, unknown>; takenBy?: number; gone?: boolean }>();
  for (const o of rawOffers) {
    const id = num(o.id);
    if (id !== undefined) offers.set(id, { raw: o });
  }
  const instances = new Map<number, SimInstance>();
  const instanceKeys = new Map<string, number>();
  const rentedOrder: number[] = [];
  const destroyedOrder: number[] = [];
  const outbidOrder: number[] = [];
  const accountKeys: { id: number; public_key: string; created_at: number }[] = [];
  let nextInstanceId = 27_000_000 + Math.floor(rand() * 1_000_000);
  let nextKeyId = 500;
  const counters = { requests: 0, authFailures: 0, apiKeyInUrl: 0 };
  const injected = { '429': 0, '5xx': 0, offerGone: 0 };
  const initialCredit = opts.credit ?? 25;

  // ------------------------------------------------------------ instance model

  /** The higher bidder takes the GPU: the instance halts and its offer is rented by someone else. */
  const markOutbid = (i: SimInstance, at: number, status: 'stopped' | 'exited') => {
    i.outbid = { at, status };
    outbidOrder.push(i.id);
    const entry = offers.get(i.offerId);
    if (entry) entry.gone = true;
  };
  const phase = (i: SimInstance, now: number): string | null => {
    if (!i.killed && i.diesAt !== undefined && now >= i.diesAt && i.destroyedAt === undefined) {
      i.killed = { at: i.diesAt, status: 'exited' };
    }
    if (
      !i.killed &&
      !i.outbid &&
      i.outbidAt !== undefined &&
      now >= i.outbidAt &&
      i.destroyedAt === undefined
    ) {
      markOutbid(i, i.outbidAt, 'stopped');
    }
    if (i.killed) return i.killed.status;
    if (i.outbid) return i.outbid.status;
    const t = now - i.createdAt;
    if (t < bootDelayMs * 0.15) return null;
    if (t < bootDelayMs * 0.35) return 'created';
    if (i.stuck || i.pullDenied || t < bootDelayMs) return 'loading';
    return 'running';
  };
  const runningMs = (i: SimInstance, now: number): number => {
    if (i.stuck || i.pullDenied) return 0;
    const since = i.createdAt + bootDelayMs;
    const until = Math.min(
      now,
      i.killed?.at ?? Infinity,
      i.outbid?.at ?? Infinity,
      i.destroyedAt ?? Infinity,
    );
    return Math.max(0, until - since);
  };
  /** Time an outbid instance has sat halted, paying for its storage only. */
  const outbidMs = (i: SimInstance, now: number): number =>
    i.outbid ? Math.max(0, Math.min(now, i.destroyedAt ?? Infinity) - i.outbid.at) : 0;
  const billedSeconds = (i: SimInstance, now: number) => (runningMs(i, now) / 1000) * timeScale;
  const billedUsd = (i: SimInstance, now: number) =>
    (billedSeconds(i, now) * i.dphTotal + (outbidMs(i, now) / 1000) * timeScale * i.storageHour) / 3600;
  const totalBilled = (now: number) => [...instances.values()].reduce((s, i) => s + billedUsd(i, now), 0);

  const view = (i: SimInstance, now: number): VastInstance => {
    const o = i.offer;
    const status = i.destroyedAt !== undefined ? 'exited' : phase(i, now);
    const running = status === 'running' && i.destroyedAt === undefined;
    const direct = /(^|\s)(ssh_direc|ssh_direct|jupyter_direc|jupyter_direct)(\s|$)/.test(i.runtype);
    const ep = opts.sshEndpoint;
    let msg: string | null = null;
    if (status === 'created') msg = null;
    else if (status === 'loading' && i.pullDenied)
      msg = `Error response from daemon: pull access denied for ${i.image}, repository does not exist or may require 'docker login': denied: requested access to the resource is denied`;
    else if (status === 'loading') msg = i.stuck ? 'Pulling image: waiting for layers' : 'Loading image';
    else if (status === 'running') msg = `success, running ${i.image}/ssh`;
    else if (i.outbid && !i.killed) msg = 'Instance stopped: outbid by a higher bid on this machine';
    else if (status === 'exited') msg = 'Error: container exited unexpectedly (code 137)';
    else if (status === 'offline') msg = 'host is offline';
    const n = num(o.num_gpus) ?? 1;
    const gpuRam = num(o.gpu_ram) ?? 0;
    const upMs = Math.max(0, now - i.createdAt);
    return {
      id: i.id,
      machine_id: i.machineId,
      host_id: num(o.host_id),
      label: i.label,
      image_uuid: i.image,
      image_runtype: i.runtype,
      image_args: [],
      onstart: i.onstart,
      extra_env: Object.entries(i.userEnv).map(([k, v]) => [k, v]),
      actual_status: status,
      intended_status: i.destroyedAt !== undefined ? 'stopped' : 'running',
      // Outbid: the contract is halted while the intent stays `running` (it would resume if it won again).
      cur_state: i.destroyedAt !== undefined ? 'unloaded' : i.outbid && !i.killed ? 'stopped' : 'running',
      next_state: i.destroyedAt !== undefined ? 'unloaded' : 'running',
      status_msg: msg,
      start_date: i.createdAt / 1000,
      end_date: i.destroyedAt !== undefined ? i.destroyedAt / 1000 : null,
      uptime_mins: running ? runningMs(i, now) / 60000 : 0,
      duration: upMs / 1000,
      num_gpus: n,
      gpu_name: o.gpu_name,
      gpu_ram: gpuRam,
      gpu_totalram: gpuRam * n,
      gpu_util: running ? 37.5 : 0,
      cpu_ram: num(o.cpu_ram) ?? null,
      cpu_cores_effective: num(o.cpu_cores_effective) ?? null,
      disk_space: i.disk,
      disk_usage: 0.1,
      disk_util: 0.01,
      ssh_host: ep.host,
      ssh_port: ep.port,
      // Vast may send trailing whitespace here; clients must strip it.
      public_ipaddr: `${ep.host} `,
      ports: running && direct ? { '22/tcp': [{ HostIp: '0.0.0.0', HostPort: String(ep.port) }] } : null,
      direct_port_start: direct ? ep.port : -1,
      direct_port_end: direct ? ep.port : -1,
      geolocation: o.geolocation ?? null,
      inet_up: num(o.inet_up) ?? null,
      inet_down: num(o.inet_down) ?? null,
      dph_base: i.dphBase,
      dph_total: i.dphTotal,
      is_bid: i.isBid,
      min_bid: num(o.min_bid) ?? null,
      storage_cost: num(o.storage_cost) ?? null,
      reliability2: num(o.reliability2) ?? num(o.reliability) ?? null,
      verification: o.verification ?? (o.verified ? 'verified' : 'unverified'),
      cuda_max_good: num(o.cuda_max_good) ?? null,
      jupyter_token: i.jupyterToken,
      instance: {
        gpuCostPerHour: running ? i.dphBase : 0,
        diskHour: i.storageHour,
        totalHour: running ? i.dphTotal : i.storageHour,
      },
      search: { gpuCostPerHour: i.dphBase, diskHour: i.storageHour, totalHour: i.dphTotal },
    } as VastInstance;
  };

  const alive = () => [...instances.values()].filter((i) => i.destroyedAt === undefined);

  const state = (): VastSimState => {
    const now = Date.now();
    const bs: Record<number, number> = {};
    const bu: Record<number, number> = {};
    const env: Record<number, Record<string, string>> = {};
    const keys: Record<number, string[]> = {};
    const bids: Record<number, number | null> = {};
    const imageLogins: Record<number, string | null> = {};
    for (const i of instances.values()) {
      imageLogins[i.id] = i.imageLogin;
      bs[i.id] = billedSeconds(i, now);
      bu[i.id] = billedUsd(i, now);
      env[i.id] = { ...i.containerEnv };
      keys[i.id] = [...i.sshKeys];
      bids[i.id] = i.price;
    }
    return {
      rented: [...rentedOrder],
      destroyed: [...destroyedOrder],
      alive: alive().map((i) => i.id),
      billedSeconds: bs,
      billedUsd: bu,
      instances: [...instances.values()].map((i) => view(i, now)),
      env,
      sshKeys: keys,
      bids,
      outbid: [...outbidOrder],
      imageLogins,
      ...counters,
      faultsInjected: { ...injected },
    };
  };

  // ------------------------------------------------------------ offers

  const pricedOffer = (
    raw: Record<string, unknown>,
    alloc: number,
    type: string,
  ): Record<string, unknown> => {
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
  };

  const search = (body: unknown): HttpReply => {
    if (!isObj(body)) return fail(400, 'invalid_request', 'Invalid json body');
    const alloc = num(body.allocated_storage) ?? 5;
    const type = typeof body.type === 'string' ? body.type : 'on-demand';
    if (!['on-demand', 'ondemand', 'bid', 'reserved'].includes(type)) {
      return fail(400, 'invalid_request', `invalid type ${type}`);
    }
    let list = [...offers.values()]
      .filter((o) => o.takenBy === undefined && !o.gone)
      .map((o) => pricedOffer(o.raw, alloc, type));
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
  };

  // ------------------------------------------------------------ create

  const create = (offerId: number, body: unknown): HttpReply => {
    if (!isObj(body)) return fail(400, 'invalid_request', 'Invalid json body');
    const entry = offers.get(offerId);
    if (!entry) {
      return json(404, {
        success: false,
        error: 'invalid_args',
        msg: `error 404/3603: no_such_ask Instance type by id ${offerId} is not available.`,
        ask_id: offerId,
      });
    }
    if (entry.takenBy !== undefined || entry.gone) {
      return fail(410, 'no_such_ask', `Instance type by id ${offerId} is no longer available.`);
    }
    if ((faults.offerGoneOnCreate ?? 0) > 0 && rand() < (faults.offerGoneOnCreate ?? 0)) {
      injected.offerGone++;
      entry.gone = true; // someone else rented it
      return fail(410, 'no_such_ask', `Instance type by id ${offerId} is no longer available.`);
    }
    if (body.client_id !== 'me') return fail(400, 'invalid_args', 'client_id must be "me"');
    if (typeof body.image !== 'string' || body.image.length === 0 || body.image.length > 1024) {
      return fail(400, 'invalid_args', 'image is required (at most 1024 characters)');
    }
    const disk = num(body.disk) ?? 10;
    if (disk <= 0) return fail(400, 'invalid_args', 'disk must be positive');
    if (disk > (num(entry.raw.disk_space) ?? Infinity)) {
      return fail(400, 'invalid_args', `disk ${disk} exceeds the machine's free space`);
    }
    if (
      body.label !== undefined &&
      body.label !== null &&
      (typeof body.label !== 'string' || body.label.length > 256)
    ) {
      return fail(400, 'invalid_args', 'label must be a string of at most 256 characters');
    }
    let userEnv: Record<string, string> = {};
    if (typeof body.env === 'string') userEnv = parseEnvString(body.env);
    else if (isObj(body.env)) {
      let total = 0;
      for (const [k, v] of Object.entries(body.env)) {
        const s = typeof v === 'string' ? v : String(v);
        if (s.length > 256) return fail(400, 'invalid_args', `env value of ${k} longer than 256 characters`);
        total += k.length + s.length;
        userEnv[k] = s;
      }
      if (total > 32768) return fail(400, 'invalid_args', 'env too large');
    } else if (body.env !== undefined && body.env !== null)
      return fail(400, 'invalid_args', 'env must be an object');
    const onstart = typeof body.onstart === 'string' ? body.onstart : null;
    const argsLen = (onstart?.length ?? 0) + (typeof body.args_str === 'string' ? body.args_str.length : 0);
    if (argsLen > 4096) return fail(400, 'invalid_args', 'onstart and args must fit in 4096 characters');
    const runtype = typeof body.runtype === 'string' && body.runtype.trim() ? body.runtype.trim() : 'ssh';
    if (!runtype.split(/\s+/).every((t) => RUNTYPE_TOKENS.has(t))) {
      return fail(400, 'invalid_args', `invalid runtype ${runtype}`);
    }
    let price: number | null = null;
    if (body.price !== undefined && body.price !== null) {
      const p = num(body.price);
      if (p === undefined || p < 0.001 || p > 128)
        return fail(400, 'invalid_price', 'price must be 0.001 to 128');
      price = p;
    }
    const machineId = num(entry.raw.machine_id) ?? 0;
    const minBid = num(entry.raw.min_bid);
    const stuck =
      (faults.stuckLoadingMachineIds ?? []).includes(machineId) ||
      ((faults.stuckLoadingRate ?? 0) > 0 && rand() < (faults.stuckLoadingRate ?? 0)) ||
      (price !== null && minBid !== undefined && price < minBid); // a bid below market never starts
    const id = nextInstanceId++;
    const key = randomBytes(32).toString('hex');
    const priced = pricedOffer(entry.raw, disk, price !== null ? 'bid' : 'on-demand');
    const storageHour = ((num(entry.raw.storage_cost) ?? 0) * disk) / 720;
    const dphBase = price ?? num(entry.raw.dph_base) ?? num(priced.dph_total) ?? 0;
    const dphTotal = price !== null ? price + storageHour : (num(priced.dph_total) ?? dphBase);
    const inst: SimInstance = {
      id,
      offer: entry.raw,
      offerId,
      machineId,
      label: typeof body.label === 'string' ? body.label : null,
      image: body.image,
      disk,
      runtype,
      onstart,
      userEnv,
      containerEnv: {
        ...Object.fromEntries(Object.entries(userEnv).filter(([k]) => !k.startsWith('-'))),
        CONTAINER_ID: String(id),
        CONTAINER_API_KEY: key,
        VAST_CONTAINERLABEL: `C.${id}`,
      },
      key,
      createdAt: Date.now(),
      stuck,
      ...((faults.dieRate ?? 0) > 0 && !stuck && rand() < (faults.dieRate ?? 0)
        ? { diesAt: Date.now() + bootDelayMs + (faults.dieAfterMs ?? 5000) }
        : {}),
      ...(price !== null && (faults.outbidRate ?? 0) > 0 && !stuck && rand() < (faults.outbidRate ?? 0)
        ? { outbidAt: Date.now() + bootDelayMs + (faults.outbidAfterMs ?? 5000) }
        : {}),
      sshKeys: [...accountKeys.map((k) => k.public_key)],
      isBid: price !== null,
      price,
      dphTotal,
      dphBase,
      storageHour,
      jupyterToken: randomBytes(16).toString('hex'),
      imageLogin: typeof body.image_login === 'string' ? body.image_login : null,
      pullDenied:
        opts.privateImages !== undefined &&
        Object.hasOwn(opts.privateImages, body.image) &&
        opts.privateImages[body.image] !== body.image_login,
    };
    instances.set(id, inst);
    instanceKeys.set(key, id);
    entry.takenBy = id;
    rentedOrder.push(id);
    return json(200, { success: true, new_contract: id, instance_api_key: key });
  };

  // ------------------------------------------------------------ list (v1)

  /**
   * The cursor is opaque to clients: the sort key of the last row returned, so a page boundary
   * survives rows that are destroyed between calls. It only fits the order_by it was made for.
   */
  const encodeToken = (key: unknown[]) => Buffer.from(JSON.stringify({ k: key })).toString('base64url');
  const decodeToken = (t: string, width: number): unknown[] | null => {
    try {
      const v = JSON.parse(Buffer.from(t, 'base64url').toString('utf8')) as unknown;
      return isObj(v) && Array.isArray(v.k) && v.k.length === width ? v.k : null;
    } catch {
      return null;
    }
  };
  /** Nulls sort last ascending, first descending (PostgreSQL's default). */
  const cmpValue = (a: unknown, b: unknown): number => {
    const an = a === null || a === undefined;
    const bn = b === null || b === undefined;
    if (an || bn) return an && bn ? 0 : an ? 1 : -1;
    if (typeof a === 'number' && typeof b === 'number') return a - b;
    const as = String(a);
    const bs = String(b);
    return as < bs ? -1 : as > bs ? 1 : 0;
  };

  const project = (rows: Record<string, unknown>[], cols: string[] | null) =>
    cols === null ? rows : rows.map((r) => Object.fromEntries(cols.map((c) => [c, r[c] ?? null])));

  const list = (q: URLSearchParams): HttpReply => {
    const now = Date.now();
    let limit = Number(q.get('limit') ?? 25);
    if (!Number.isFinite(limit)) limit = 25;
    limit = limit <= 0 ? 5 : Math.min(25, Math.floor(limit));
    let filters: Record<string, unknown> = {};
    const sf = q.get('select_filters');
    if (sf) {
      try {
        const p = JSON.parse(sf) as unknown;
        if (!isObj(p)) throw new Error('not an object');
        filters = p;
      } catch {
        return fail(400, 'invalid_request', 'select_filters must be a JSON object');
      }
      for (const k of Object.keys(filters)) {
        if (!STORED_COLUMNS.has(k)) return fail(400, 'invalid_request', `cannot filter on column ${k}`);
      }
    }
    // order_by: JSON [{"col":"id","dir":"asc"}, ...]; `id` is always appended as the tie-break.
    const order: { col: string; desc: boolean }[] = [];
    const ob = q.get('order_by');
    if (ob) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(ob);
      } catch {
        return fail(400, 'invalid_request', 'order_by must be a JSON array');
      }
      if (!Array.isArray(parsed)) return fail(400, 'invalid_request', 'order_by must be a JSON array');
      for (const e of parsed) {
        if (!isObj(e) || typeof e.col !== 'string') {
          return fail(400, 'invalid_request', 'order_by entries are {"col":..., "dir":"asc"|"desc"}');
        }
        if (!STORED_COLUMNS.has(e.col))
          return fail(400, 'invalid_request', `cannot order by column ${e.col}`);
        const dir = e.dir === undefined ? 'asc' : String(e.dir).toLowerCase();
        if (dir !== 'asc' && dir !== 'desc') return fail(400, 'invalid_request', `invalid order dir ${dir}`);
        order.push({ col: e.col, desc: dir === 'desc' });
      }
    }
    if (!order.some((o) => o.col === 'id')) order.push({ col: 'id', desc: false });
    // select_cols: JSON array of column names; absent or ["*"] = full rows.
    let cols: string[] | null = null;
    const sc = q.get('select_cols');
    if (sc) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(sc);
      } catch {
        return fail(400, 'invalid_request', 'select_cols must be a JSON array');
      }
      if (!Array.isArray(parsed) || !parsed.every((c) => typeof c === 'string')) {
        return fail(400, 'invalid_request', 'select_cols must be a JSON array of column names');
      }
      cols = parsed.includes('*') ? null : (parsed as string[]);
    }
    const keyOf = (v: VastInstance) => order.map((o) => (v as Record<string, unknown>)[o.col] ?? null);
    const cmpKeys = (a: unknown[], b: unknown[]) => {
      for (let n = 0; n < order.length; n++) {
        const c = cmpValue(a[n], b[n]);
        if (c !== 0) return order[n]!.desc ? -c : c;
      }
      return 0;
    };
    let after: unknown[] | null = null;
    const tok = q.get('after_token');
    if (tok) {
      after = decodeToken(tok, order.length);
      if (after === null) return fail(400, 'invalid_token', 'Invalid pagination token');
    }
    const all = alive().map((i) => view(i, now));
    let matched: VastInstance[];
    try {
      matched = all.filter((v) =>
        Object.entries(filters).every(([k, ops]) => matchOps((v as Record<string, unknown>)[k], ops)),
      );
    } catch (e) {
      return fail(400, 'invalid_request', (e as Error).message);
    }
    matched.sort((a, b) => cmpKeys(keyOf(a), keyOf(b)));
    const rest = after === null ? matched : matched.filter((v) => cmpKeys(keyOf(v), after) > 0);
    const page = rest.slice(0, limit);
    const more = rest.length > page.length;
    const labelCounts: Record<string, number> = {};
    for (const v of matched) {
      const l = v.label ?? '';
      labelCounts[l] = (labelCounts[l] ?? 0) + 1;
    }
    // Only the list carries volume_info (vast-api.md §4); the simulator has no volumes.
    const rows = page.map((v) => ({ ...v, volume_info: [] }) as Record<string, unknown>);
    return json(200, {
      success: true,
      instances_found: matched.length,
      total_instances: all.length,
      label_counts: labelCounts,
      next_token: more && page.length > 0 ? encodeToken(keyOf(page[page.length - 1]!)) : null,
      instances: project(rows, cols),
    });
  };

  /** `GET /api/v0/instances/filters/`: the distinct (status, verification, GPU) values the CLI offers as filters. */
  const listFilters = (): HttpReply => {
    const now = Date.now();
    const seen = new Map<string, Record<string, unknown>>();
    for (const i of alive()) {
      const v = view(i, now) as Record<string, unknown>;
      const row = { actual_status: v.actual_status, verification: v.verification, gpu_name: v.gpu_name };
      seen.set(JSON.stringify(row), row);
    }
    return json(200, { success: true, filters: [...seen.values()] });
  };

  // ------------------------------------------------------------ routing

  type Who = { kind: 'account'; token: string } | { kind: 'instance'; id: number; token: string } | null;
  const identify = (req: IncomingMessage, q: URLSearchParams): Who => {
    const h = req.headers.authorization;
    const m = typeof h === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(h) : null;
    let token = m?.[1];
    if (q.has('api_key')) {
      counters.apiKeyInUrl++;
      token ??= q.get('api_key') ?? undefined; // the server accepts it; the client must never send it
    }
    if (!token) return null;
    const inst = instanceKeys.get(token);
    if (inst !== undefined) return { kind: 'instance', id: inst, token };
    if (opts.apiKey === undefined || token === opts.apiKey) return { kind: 'account', token };
    return null;
  };

  const route = async (req: IncomingMessage): Promise<HttpReply> => {
    const url = new URL(req.url ?? '/', 'http://sim.invalid');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const method = (req.method ?? 'GET').toUpperCase();
    const raw = await readBody(req);
    if (path === '/_sim/state' && method === 'GET') return json(200, state());
    const kill = /^\/_sim\/instances\/(\d+)\/kill$/.exec(path);
    if (kill && method === 'POST') {
      const i = instances.get(Number(kill[1]));
      if (!i || i.destroyedAt !== undefined) return fail(404, 'no_such_instance', 'no such instance');
      i.killed ??= { at: Date.now(), status: 'exited' };
      return json(200, { success: true });
    }
    const outbid = /^\/_sim\/instances\/(\d+)\/outbid$/.exec(path);
    if (outbid && method === 'POST') {
      const i = instances.get(Number(outbid[1]));
      if (!i || i.destroyedAt !== undefined) return fail(404, 'no_such_instance', 'no such instance');
      if (!i.isBid) return fail(409, 'not_a_bid', 'only an interruptible (bid) instance can be outbid');
      let status: 'stopped' | 'exited' = 'stopped';
      if (raw.trim() !== '') {
        let b: unknown;
        try {
          b = JSON.parse(raw);
        } catch {
          return fail(400, 'invalid_request', 'Invalid json body');
        }
        const st = isObj(b) ? b.status : undefined;
        if (st !== undefined && st !== 'stopped' && st !== 'exited')
          return fail(400, 'invalid_args', 'status must be stopped or exited');
        if (st === 'exited') status = 'exited';
      }
      phase(i, Date.now());
      if (i.killed || i.outbid) return fail(409, 'not_running', 'the instance is already halted');
      markOutbid(i, Date.now(), status);
      return json(200, { success: true });
    }
    if (!path.startsWith('/api/')) return fail(404, 'not_found', `no route ${method} ${path}`);
    counters.requests++;
    if (down === '503') {
      return new HttpReply(503, 'Service Temporarily Unavailable', 'text/plain');
    }
    const r429 = faults.rate429 ?? 0;
    if (r429 > 0 && rand() < r429) {
      injected['429']++;
      const form = Math.floor(rand() * 3);
      const hdr: Record<string, string> =
        faults.retryAfterSec !== undefined ? { 'Retry-After': String(faults.retryAfterSec) } : {};
      if (form === 0)
        return new HttpReply(429, 'API requests too frequent: endpoint threshold=2.0', 'text/plain', hdr);
      if (form === 1)
        return new HttpReply(
          429,
          { detail: 'API requests too frequent endpoint threshold=2.0' },
          undefined,
          hdr,
        );
      return new HttpReply(
        429,
        { success: false, error: 'rate_limit_exceeded', msg: 'API requests too frequent' },
        undefined,
        hdr,
      );
    }
    const r5 = faults.rate5xx ?? 0;
    if (r5 > 0 && rand() < r5) {
      injected['5xx']++;
      const form = Math.floor(rand() * 3);
      if (form === 0) return new HttpReply(502, NGINX_502, 'text/html');
      if (form === 1) return new HttpReply(504, NGINX_504, 'text/html');
      return fail(503, 'service_unavailable', 'Service temporarily unavailable');
    }
    // Public: the CLI fetches it without a key on every start (vastai/cli/util.py _get_gpu_names).
    if (path === '/api/v0/gpu_names/unique' && method === 'GET') {
      const names = [...new Set([...offers.values()].map((o) => o.raw.gpu_name))].filter(
        (n): n is string => typeof n === 'string',
      );
      return json(200, { gpu_names: names.sort() });
    }
    const who = identify(req, url.searchParams);
    if (!who) {
      counters.authFailures++;
      return fail(401, 'auth_error', 'Invalid user key');
    }
    let body: unknown = {};
    if (method !== 'GET' && raw.trim() !== '') {
      try {
        body = JSON.parse(raw);
      } catch {
        return fail(400, 'invalid_request', 'Invalid json body');
      }
    }
    const seg = path.split('/').filter(Boolean); // ['api','v0',...]
    const ver = seg[1];
    const rest = seg.slice(2);
    const idOf = (s: string | undefined) => (s !== undefined && /^\d+$/.test(s) ? Number(s) : NaN);
    const now = Date.now();
    const notAuthorized = () => {
      counters.authFailures++;
      return fail(403, 'not_authorized', 'This key can only manage its own instance');
    };

    // The instance-scoped key may only destroy (or relabel/stop) its own instance.
    if (who.kind === 'instance') {
      const target = ver === 'v0' && rest[0] === 'instances' && rest.length === 2 ? idOf(rest[1]) : NaN;
      if (!(target === who.id && (method === 'DELETE' || method === 'PUT'))) return notAuthorized();
    }

    if (ver === 'v0' && rest[0] === 'bundles' && rest.length === 1 && method === 'POST') return search(body);
    if (ver === 'v0' && rest[0] === 'asks' && rest.length === 2 && method === 'PUT') {
      const id = idOf(rest[1]);
      if (Number.isNaN(id)) return fail(400, 'invalid_args', 'bad offer id');
      return create(id, body);
    }
    if (ver === 'v0' && rest[0] === 'instances' && rest.length === 1) {
      if (method === 'GET') {
        return fail(
          410,
          'deprecated_endpoint',
          'This endpoint has been retired. Use /api/v1/instances/ instead.',
        );
      }
      return fail(405, 'method_not_allowed', `${method} not supported here by the simulator`);
    }
    if (ver === 'v1' && rest[0] === 'instances' && rest.length === 1 && method === 'GET') {
      return list(url.searchParams);
    }
    if (ver === 'v0' && rest[0] === 'instances' && rest[1] === 'filters' && rest.length === 2) {
      if (method === 'GET') return listFilters();
      return fail(405, 'method_not_allowed', `${method} not supported here by the simulator`);
    }
    if (ver === 'v0' && rest[0] === 'instances' && rest.length >= 2) {
      const id = idOf(rest[1]);
      const inst = Number.isNaN(id) ? undefined : instances.get(id);
      const live = inst && inst.destroyedAt === undefined ? inst : undefined;
      if (rest.length === 2 && method === 'GET')
        return json(200, { instances: live ? view(live, now) : null });
      if (rest.length === 2 && method === 'DELETE') {
        if (!live) return fail(404, 'not_found', `Instance ${rest[1]} not found.`);
        live.destroyedAt = now;
        destroyedOrder.push(live.id);
        const offer = offers.get(live.offerId);
        if (offer && offer.takenBy === live.id) offer.takenBy = undefined;
        return json(200, { success: true });
      }
      if (rest.length === 2 && method === 'PUT') {
        if (!live) return fail(404, 'no_such_instance', `Instance ${rest[1]} not found.`);
        if (!isObj(body)) return fail(400, 'invalid_args', 'body must be an object');
        if (typeof body.label === 'string') {
          if (body.label.length > 1024) return fail(400, 'invalid_args', 'label too long');
          live.label = body.label;
          return json(200, { success: true });
        }
        return fail(400, 'invalid_args', 'the simulator supports only {label} here');
      }
      if (rest.length === 3 && rest[2] === 'ssh') {
        if (!live) return fail(404, 'no_such_instance', `Instance ${rest[1]} not found.`);
        if (method === 'POST') {
          const k = isObj(body) ? body.ssh_key : undefined;
          if (typeof k !== 'string' || !k.trim().startsWith('ssh') || k.includes('PRIVATE KEY')) {
            return fail(400, 'invalid_args', 'ssh_key must be a public key text');
          }
          if (!live.sshKeys.includes(k.trim())) live.sshKeys.push(k.trim());
          return json(200, { success: true, msg: 'SSH key added to instance.' });
        }
        if (method === 'GET') {
          const keys = live.sshKeys.map((public_key, n) => ({ id: n + 1, public_key }));
          return json(200, { success: true, ssh_keys: JSON.stringify(keys) });
        }
      }
    }
    if (ver === 'v0' && rest[0] === 'ssh' && rest.length === 1) {
      if (method === 'GET') {
        return json(
          200,
          accountKeys.map((k) => ({
            id: k.id,
            user_id: 424242,
            public_key: k.public_key,
            key: k.public_key,
            created_at: k.created_at,
            deleted_at: null,
          })),
        );
      }
      if (method === 'POST') {
        const k = isObj(body) ? body.ssh_key : undefined;
        if (typeof k !== 'string' || k.trim() === '') return fail(400, 'no_ssh_key', 'No ssh key given');
        if (!k.trim().startsWith('ssh') || k.includes('PRIVATE KEY'))
          return fail(400, 'invalid_args', 'not a public key');
        const rec = { id: nextKeyId++, public_key: k.trim(), created_at: now / 1000 };
        accountKeys.push(rec);
        return json(200, {
          success: true,
          key: {
            id: rec.id,
            user_id: 424242,
            public_key: rec.public_key,
            created_at: rec.created_at,
            deleted_at: null,
          },
        });
      }
    }
    if (
      ver === 'v0' &&
      rest[0] === 'users' &&
      rest[1] === 'current' &&
      rest.length === 2 &&
      method === 'GET'
    ) {
      const spent = totalBilled(now);
      return json(200, {
        id: 424242,
        username: 'sim',
        email: 'sim@example.invalid',
        credit: Math.max(0, Math.round((initialCredit - spent) * 1e6) / 1e6),
        balance: 0,
        balance_threshold: 0,
        can_pay: true,
        has_billing: true,
        ssh_key: accountKeys[accountKeys.length - 1]?.public_key ?? null,
        // The real API returns the caller's key here; clients must drop it.
        api_key: who.token,
      });
    }
    return fail(404, 'not_found', `no route ${method} ${path}`);
  };

  // ------------------------------------------------------------ server

  const sockets = new Set<Socket>();
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    route(req).then(
      (r) => send(res, r),
      (e: unknown) => send(res, fail(500, 'internal', `simulator error: ${(e as Error).message}`)),
    );
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const send = (res: ServerResponse, r: HttpReply) => {
    const text = typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
    res.writeHead(r.status, {
      'Content-Type':
        r.contentType === 'application/json' ? 'application/json' : `${r.contentType}; charset=utf-8`,
      'Content-Length': Buffer.byteLength(text),
      ...r.headers,
    });
    res.end(text);
  };

  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve((server.address() as { port: number }).port);
      });
    });
  const port = await listen(opts.port ?? 0);
  let listening = true;
  let pending: Promise<unknown> = Promise.resolve();

  const stopListening = () =>
    new Promise<void>((resolve) => {
      if (!listening) return resolve();
      listening = false;
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    });

  return {
    url: `http://${host}:${port}`,
    async close() {
      await pending.catch(() => undefined);
      await stopListening();
    },
    setFaults(f: VastSimFaults) {
      faults = { ...f };
    },
    killInstance(id: number, status: 'exited' | 'offline' | 'unknown' = 'exited') {
      const i = instances.get(id);
      if (!i || i.destroyedAt !== undefined || i.killed) return;
      i.killed = { at: Date.now(), status };
    },
    outbidInstance(id: number, status: 'stopped' | 'exited' = 'stopped') {
      const i = instances.get(id);
      if (!i || i.destroyedAt !== undefined || !i.isBid) return false;
      phase(i, Date.now());
      if (i.killed || i.outbid) return false;
      markOutbid(i, Date.now(), status);
      return true;
    },
    setDown(mode) {
      down = mode;
      if (mode === 'refuse') {
        if (listening) pending = Promise.all([pending, stopListening()]);
      } else if (!listening) {
        pending = pending.then(async () => {
          if (listening) return;
          await listen(port);
          listening = true;
        });
      }
    },
    state,
  };
}
