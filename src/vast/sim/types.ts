/**
 * The simulator's public types (options, faults, state, handle) and its internal records.
 */
import type { VastInstance, VastOffer } from '../types.js';

/** Endpoint groups the rate limiter keys on (one budget per identity per group). */
export type SimEndpoint =
  | 'search'
  | 'create'
  | 'show'
  | 'list'
  | 'destroy'
  | 'manage'
  | 'ssh'
  | 'user'
  | 'logs'
  | 'charges'
  | 'default';

export interface RateLimitConfig {
  /** Minimum gap between two accepted calls per identity, in simulated ms (scaled by timeScale). */
  intervalsMs?: Partial<Record<SimEndpoint | string, number>>;
  /** At most `calls` accepted per `perMs` (simulated ms) per identity. */
  burst?: Partial<Record<SimEndpoint | string, { calls: number; perMs: number }>>;
  /** After a refused call, the endpoint stays closed this long (simulated ms); Vast's create has 12 s. */
  penaltyMs?: Partial<Record<SimEndpoint | string, number>>;
}

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
  /**
   * Vast's per-endpoint minimum intervals (and bursts) per identity: a call too soon gets a 429 with
   * a plain-text body and no Retry-After. `true` = the spec's values (ratelimit.ts DEFAULT_LIMITS).
   */
  rateLimits?: boolean | RateLimitConfig;
  /** Share of creates that lose the race to another renter (404 no_such_ask or 410); the offer is taken for a while. */
  competitorRate?: number;
  /** Share of offers hidden from the search (rented by others) in each churn period; they come back later. */
  offerChurn?: number;
  /** Length of one churn period in simulated ms (default 30000). */
  offerChurnPeriodMs?: number;
  /** Share of instances whose image never starts: `status_msg` shows a pull or OCI error, status stays loading/created. */
  badImageRate?: number;
  /** Instances on these machines never boot (image error), as badImageRate. */
  badImageMachineIds?: number[];
  /** Share of instances that show `unknown` or `rebooting` for transientStatusMs once while running. */
  transientStatusRate?: number;
  /** How long a transient status lasts, real ms (default 5000). */
  transientStatusMs?: number;
  /** How long after it started running an instance's transient status begins, real ms (default 1000). */
  transientAfterMs?: number;
  /** Share of creates answered only after slowCreateMs (the instance exists and bills from the request). */
  slowCreateRate?: number;
  /** Delay of a slow create's reply, real ms (default 35000). */
  slowCreateMs?: number;
  /** Instance rows carry loosely typed fields: `ports` `{}`/null/list, `extra_env` as strings, nulls. */
  oddRows?: boolean;
  /** Probability that a key attached to an instance (POST /instances/{id}/ssh/) before it runs is lost. */
  attachKeyLossRate?: number;
}

export interface VastSimBilling {
  /** Bill storage (storage_cost × disk / 720 per hour) from creation to destroy, booting included (Vast's rule). */
  storageAlways?: boolean;
  /** GB pulled for the image when an instance first starts, billed at the offer's inet_down_cost ($/GB). */
  imagePullGb?: number;
}

export interface VastSimOptions {
  port?: number;
  host?: '127.0.0.1';
  /** When unset any bearer key is accepted (instance keys stay restricted). */
  apiKey?: string;
  offers: VastOffer[] | Record<string, unknown>[] | string;
  sshEndpoint: { host: string; port: number };
  /**
   * The public keys the SSH endpoint accepts. When set, every instance gets its own loopback port
   * on the simulator that forwards to sshEndpoint only while the instance holds one of these keys
   * (account keys at create, attached keys that were not lost); otherwise the connection is closed.
   */
  sshAuthorizedKeys?: string[];
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
  /** `kind` (default): only the faults asked for. `vast-like`: every behaviour of Vast at realistic values (profile.ts). */
  profile?: 'kind' | 'vast-like';
  billing?: VastSimBilling;
  /** Delay before a requested log is readable at its result_url, real ms (default 0; vast-like 1000). */
  logsDelayMs?: number;
}

export interface InstanceCharges {
  gpu: number;
  disk: number;
  bwd: number;
  bwu: number;
  /** A deliberate difference added through the test hook (reported as part of `gpu` by the API). */
  surcharge: number;
  total: number;
}

/** Faults the simulator injected, by kind. */
export interface FaultCounts {
  '429': number;
  '5xx': number;
  offerGone: number;
  competitorWon: number;
  slowCreate: number;
  transient: number;
  badImage: number;
  keyLost: number;
}

export interface VastSimState {
  rented: number[];
  destroyed: number[];
  alive: number[];
  billedSeconds: Record<number, number>;
  billedUsd: Record<number, number>;
  /** What the charges endpoint bills each instance, by item. */
  charges: Record<number, InstanceCharges>;
  instances: VastInstance[];
  /** Container environment of each instance (CONTAINER_ID, CONTAINER_API_KEY and the user's env). */
  env: Record<number, Record<string, string>>;
  /** Public keys each instance holds (installed in its authorized_keys). */
  sshKeys: Record<number, string[]>;
  /** Keys attached before the instance ran that were lost (fault attachKeyLossRate). */
  sshKeysLost: Record<number, string[]>;
  /** Whether SSH to the instance would be accepted (it holds a key of sshAuthorizedKeys); null when no keys are configured. */
  sshAccess: Record<number, boolean | null>;
  /** Connections to the instance's SSH port refused because it holds no accepted key. */
  sshRefused: Record<number, number>;
  /** The `price` (bid, $/h) each instance was created with; null for on-demand rentals. */
  bids: Record<number, number | null>;
  /** Interruptible instances that were outbid (in the order it happened). */
  outbid: number[];
  /** Instances whose image never starts, with the error shown in status_msg. */
  badImage: Record<number, string>;
  /** The `image_login` each instance was created with; null when none was sent. */
  imageLogins: Record<number, string | null>;
  requests: number;
  authFailures: number;
  /** Requests that carried `api_key` in the query string (a client bug: keys never go in URLs). */
  apiKeyInUrl: number;
  faultsInjected: FaultCounts;
  /** Per endpoint group: calls accepted (`ok`, any status but a 429) and answered 429 (`r429`). */
  calls: Record<string, { ok: number; r429: number }>;
}

export interface VastSim {
  url: string;
  close(): Promise<void>;
  /** Replaces the faults (on top of the profile's). */
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
  /** A running instance shows `status` for `ms` real ms, then `running` again (its SSH keeps working). */
  transientStatus(id: number, status: 'unknown' | 'rebooting', ms: number): boolean;
  /** Adds `usd` to what Vast bills for this instance (a deliberate billing difference for cost reports). */
  surcharge(id: number, usd: number): boolean;
  setDown(mode: 'none' | '503' | 'refuse'): void;
  state(): VastSimState;
}

export interface OfferEntry {
  raw: Record<string, unknown>;
  /** Rented by one of our instances. */
  takenBy?: number;
  /** Gone for good (outbid machine, offer-gone fault). */
  gone?: boolean;
  /** Rented by another renter until then (real ms epoch). */
  takenUntil?: number;
}

export interface SimInstance {
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
  /** Image error shown in status_msg; the instance never runs. */
  badImage?: { kind: 'pull' | 'oci'; msg: string };
  /** The create's `image_login` (docker login arguments); null when none was sent. */
  imageLogin: string | null;
  killed?: { at: number; status: 'exited' | 'offline' | 'unknown' };
  /** When a doomed instance (fault `dieRate`) dies. */
  diesAt?: number;
  /** Outbid (a bid instance only): halted by the host, storage still billed. */
  outbid?: { at: number; status: 'stopped' | 'exited' };
  /** When a doomed bid instance (fault `outbidRate`) is outbid. */
  outbidAt?: number;
  /** Transient `unknown`/`rebooting` windows (real ms epoch). */
  transients: { from: number; to: number; status: 'unknown' | 'rebooting' }[];
  /** Times the container started booting: the create, then each start after a stop. */
  starts: number[];
  /** Times of user stops; stops[k] ends the run begun at starts[k]. */
  stops: number[];
  destroyedAt?: number;
  sshKeys: string[];
  sshKeysLost: string[];
  sshRefused: number;
  /** Loopback port of this instance's SSH gate (when sshAuthorizedKeys is set). */
  sshPort?: number;
  isBid: boolean;
  price: number | null;
  dphTotal: number;
  dphBase: number;
  storageHour: number;
  inetDownCost: number;
  surchargeUsd: number;
  jupyterToken: string;
}
