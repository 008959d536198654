/**
 * A small Vast.ai REST client (see shared/reference/vast-api.md). The API key travels only in the
 * `Authorization: Bearer` header; it is kept in a private field, never put in a URL, a message, a
 * log line or a thrown object (axios errors, which carry the request config and its headers, are
 * never rethrown or attached as a cause).
 *
 * Calls wait their turn in the shared API budget (./budget.ts) when one is given, so the whole
 * deployment stays within Vast's per-endpoint intervals. Retries: jittered exponential backoff
 * (p-retry) on network errors, 429 and 5xx. A Retry-After header is honoured when present (Vast
 * normally sends none). Creating an instance is not idempotent, so it is only retried when the
 * request cannot have been acted on (429, 503, refused connection); any other failure after it was
 * sent is a VastCreateUnknownError, which the caller resolves by looking the label up.
 */
import axios, { type AxiosInstance, type AxiosResponse } from 'axios';
import pRetry from 'p-retry';
import { CancelledError } from '../errors.js';
import { endpointOf, type ApiBudget, type TurnOptions } from './budget.js';
import {
  VastApiError,
  VastAuthError,
  VastCreateUnknownError,
  VastOfferGoneError,
  VastRateLimitError,
} from './errors.js';
import {
  VastInstanceSchema,
  parseOffers,
  type DroppedOffer,
  type VastBalance,
  type VastInstance,
  type VastOffer,
} from './types.js';

export * from './errors.js';
export type { TurnOptions } from './budget.js';

/** An instance row the list could not read (logged and skipped: one odd row never blinds the list). */
export interface DroppedRow {
  index: number;
  id?: unknown;
  reason: string;
}

export const DEFAULT_VAST_API_URL = 'https://console.vast.ai';

export interface VastRetryInfo {
  method: string;
  /** The path only (never a query string, never the key). */
  path: string;
  attempt: number;
  retriesLeft: number;
  status?: number;
  rateLimited: boolean;
  message: string;
}

export interface VastClientOptions {
  apiUrl?: string;
  apiKey: string;
  /** Per request. Default 30 s. */
  timeoutMs?: number;
  /** Retries after the first attempt. Default 5. */
  retries?: number;
  /** Default 500 ms. */
  minRetryDelayMs?: number;
  /** Default 30 s. */
  maxRetryDelayMs?: number;
  onRetry?: (info: VastRetryInfo) => void;
  /**
   * Told of every request's reachability (a network error or a 5xx is a failure, any other answer
   * a success), so that an API outage is logged once rather than per request and retry.
   */
  outage?: { failure(err: unknown): void; success(): void };
  /** Called with the offers a search returned that failed validation. */
  onDroppedOffers?: (dropped: DroppedOffer[]) => void;
  /** How long destroyInstance waits for the instance to be gone. Default 30 s. */
  destroyConfirmTimeoutMs?: number;
  /** The deployment's shared API budget (per endpoint, per key); none: calls go out at once. */
  budget?: ApiBudget;
  /** Timeout of a create (slow on Vast's side). Default 120 s, the official CLI's. */
  createTimeoutMs?: number;
  /** Called with the instance rows a list skipped because they could not be read. */
  onDroppedRows?: (dropped: DroppedRow[]) => void;
}

export interface CreateInstanceRequest {
  image: string;
  /** GB. */
  disk: number;
  label: string;
  onstart?: string;
  env?: Record<string, string>;
  /** Default `ssh_direct` (the only SSH runtype that maps port 22 on the public IP). */
  runtype?: 'ssh_direct' | 'ssh_proxy' | 'ssh';
  /** A bid in $/h: makes the instance interruptible. Leave out for on-demand. */
  price?: number;
  /** `image_login`: docker login arguments for a private image. A secret: never logged. */
  imageLogin?: string;
}

export interface ListInstancesOptions {
  /** Only instances with exactly this label (server-side filter, re-checked here). */
  label?: string;
  turn?: TurnOptions;
}

export interface DestroyOptions {
  turn?: TurnOptions;
  /**
   * Resolves true once the instance is seen gone (e.g. from the shared poller's snapshots), false
   * when it could not tell within `timeoutMs`; unset: the client reads the instance back itself.
   */
  confirmGone?: (id: number, timeoutMs: number) => Promise<boolean>;
}

type RetryPolicy = 'all' | 'unsent';

interface CallOptions {
  params?: Record<string, string | number>;
  body?: unknown;
  /** Statuses returned to the caller instead of thrown. */
  pass?: number[];
  retry?: RetryPolicy;
  turn?: TurnOptions;
  timeoutMs?: number;
}

interface CallResult {
  status: number;
  json: unknown;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Milliseconds from a Retry-After header (seconds or an HTTP date); undefined when absent or invalid. */
export function parseRetryAfter(value: unknown, now = Date.now()): number | undefined {
  if (typeof value !== 'string' && typeof value !== 'number') return undefined;
  const s = String(value).trim();
  if (s === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(s)) return Math.round(Number(s) * 1000);
  const t = Date.parse(s);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

/** One printable line, HTML stripped, long tokens (keys) masked, at most `max` characters. */
export function sanitizeSnippet(text: string, secret?: string, max = 160): string {
  let s = text
    .replace(/<(script|style)[\s\S]*?<\/\1\s*>/gi, ' ')
    .replace(/<[^>]*>/g, ' ')
    .replace(/&(#\d+|[a-z]+);/gi, ' ');
  if (secret) s = s.split(secret).join('***');
  s = s
    .replace(/[A-Za-z0-9_-]{32,}/g, '***')
    .replace(/[^\x20-\x7e]+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return s.length > max ? `${s.slice(0, max - 3)}...` : s;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const AUTH_CODES = new Set(['auth_error', 'unauthorized', 'not_authorized']);

export class VastClient {
  readonly apiUrl: string;
  readonly #apiKey: string;
  readonly #http: AxiosInstance;
  readonly #retries: number;
  readonly #minDelay: number;
  readonly #maxDelay: number;
  readonly #onRetry: ((info: VastRetryInfo) => void) | undefined;
  readonly #onDropped: ((dropped: DroppedOffer[]) => void) | undefined;
  readonly #destroyConfirmMs: number;
  readonly #budget: ApiBudget | undefined;
  readonly #createTimeoutMs: number;
  readonly #onDroppedRows: ((dropped: DroppedRow[]) => void) | undefined;
  readonly #outage: VastClientOptions['outage'];

  constructor(opts: VastClientOptions) {
    if (!opts.apiKey || typeof opts.apiKey !== 'string') {
      throw new VastAuthError('Vast.ai API key is missing');
    }
    if (/[\s\r\n]/.test(opts.apiKey)) throw new VastAuthError('Vast.ai API key contains whitespace');
    this.apiUrl = (opts.apiUrl ?? DEFAULT_VAST_API_URL).replace(/\/+$/, '');
    let loopback = false;
    try {
      const u = new URL(this.apiUrl);
      loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname);
    } catch {
      throw new VastApiError(`invalid Vast.ai API url: ${sanitizeSnippet(this.apiUrl)}`);
    }
    this.#apiKey = opts.apiKey;
    this.#retries = opts.retries ?? 5;
    this.#minDelay = opts.minRetryDelayMs ?? 500;
    this.#maxDelay = opts.maxRetryDelayMs ?? 30_000;
    this.#onRetry = opts.onRetry;
    this.#onDropped = opts.onDroppedOffers;
    this.#outage = opts.outage;
    this.#destroyConfirmMs = opts.destroyConfirmTimeoutMs ?? 30_000;
    this.#budget = opts.budget;
    this.#createTimeoutMs = opts.createTimeoutMs ?? 120_000;
    this.#onDroppedRows = opts.onDroppedRows;
    this.#http = axios.create({
      baseURL: this.apiUrl,
      timeout: opts.timeoutMs ?? 30_000,
      validateStatus: () => true,
      responseType: 'text',
      transformResponse: [(d: unknown) => d],
      maxRedirects: 0,
      ...(loopback ? { proxy: false as const } : {}),
      headers: { Accept: 'application/json', 'User-Agent': 'retrain-vast/0.1' },
    });
  }

  /** Never shows the key. */
  toJSON(): Record<string, unknown> {
    return { apiUrl: this.apiUrl };
  }

  // ---------------------------------------------------------------- offers and instances

  /** `POST /api/v0/bundles/`. Malformed offers are dropped (reported through onDroppedOffers). */
  async searchOffers(query: object, turn?: TurnOptions): Promise<VastOffer[]> {
    const { json } = await this.call('POST', '/api/v0/bundles/', { body: query, turn });
    if (!isObject(json) || !Array.isArray(json.offers)) {
      throw new VastApiError('POST /api/v0/bundles/: reply has no offers array');
    }
    const { offers, dropped } = parseOffers(json.offers);
    if (dropped.length > 0) this.#onDropped?.(dropped);
    return offers;
  }

  /**
   * `PUT /api/v0/asks/{id}/`. 404/410/`no_such_ask` → VastOfferGoneError; a failure after the request
   * went out (timeout, dropped connection, 5xx, no instance id) → VastCreateUnknownError.
   */
  async createInstance(
    offerId: number,
    req: CreateInstanceRequest,
    turn?: TurnOptions,
  ): Promise<{ instanceId: number; instanceApiKey?: string }> {
    if (!Number.isInteger(offerId) || offerId <= 0) throw new VastApiError(`invalid offer id ${offerId}`);
    validateCreate(req);
    const body: Record<string, unknown> = {
      client_id: 'me',
      image: req.image,
      disk: req.disk,
      label: req.label,
      runtype: req.runtype ?? 'ssh_direct',
    };
    if (req.onstart !== undefined) body.onstart = req.onstart;
    if (req.env !== undefined) body.env = req.env;
    if (req.price !== undefined) body.price = req.price;
    if (req.imageLogin !== undefined) body.image_login = req.imageLogin;
    const path = `/api/v0/asks/${offerId}/`;
    let res: CallResult;
    try {
      res = await this.call('PUT', path, {
        body,
        pass: [404, 410],
        retry: 'unsent',
        turn,
        timeoutMs: this.#createTimeoutMs,
      });
    } catch (err) {
      if (
        err instanceof VastApiError &&
        !(err instanceof VastAuthError) &&
        (err.vastError === 'no_such_ask' || err.message.includes('no_such_ask'))
      ) {
        throw new VastOfferGoneError(offerId, `offer ${offerId} is no longer available (${err.message})`, {
          status: err.status,
          vastError: err.vastError,
        });
      }
      if (err instanceof VastApiError && mayHaveCreated(err)) {
        throw new VastCreateUnknownError(
          offerId,
          req.label,
          `${err.message} (the create may have gone through)`,
          {
            status: err.status,
            vastError: err.vastError,
          },
        );
      }
      throw err;
    }
    if (res.status === 404 || res.status === 410) {
      throw new VastOfferGoneError(offerId, `offer ${offerId} is no longer available (HTTP ${res.status})`, {
        status: res.status,
        vastError: isObject(res.json) && typeof res.json.error === 'string' ? res.json.error : undefined,
      });
    }
    const j = res.json;
    const id = isObject(j) ? Number(j.new_contract) : NaN;
    if (!Number.isInteger(id) || id <= 0) {
      throw new VastCreateUnknownError(
        offerId,
        req.label,
        `PUT ${path}: reply has no new_contract (instance id); looking up label ${req.label}`,
      );
    }
    const key = isObject(j) && typeof j.instance_api_key === 'string' ? j.instance_api_key : undefined;
    return key ? { instanceId: id, instanceApiKey: key } : { instanceId: id };
  }

  /** `GET /api/v0/instances/{id}/?owner=me`; null when destroyed or unknown. */
  async getInstance(id: number, turn?: TurnOptions): Promise<VastInstance | null> {
    checkId(id);
    const path = `/api/v0/instances/${id}/`;
    const { status, json } = await this.call('GET', path, { params: { owner: 'me' }, pass: [404], turn });
    if (status === 404) return null;
    if (!isObject(json) || !('instances' in json)) {
      throw new VastApiError(`GET ${path}: unexpected reply shape (no "instances" field)`);
    }
    let inst = json.instances;
    if (inst === null || inst === undefined) return null;
    if (Array.isArray(inst)) {
      inst = inst.find((i) => isObject(i) && Number(i.id) === id) ?? null;
      if (inst === null) return null;
    }
    return parseInstance(inst, `GET ${path}`);
  }

  /**
   * `GET /api/v1/instances/`, following next_token to the end. A row that cannot be read is skipped
   * (reported through onDroppedRows): one odd row never hides the others.
   */
  async listInstances(opts: ListInstancesOptions = {}): Promise<VastInstance[]> {
    return (await this.listInstancePages(opts)).instances;
  }

  /** listInstances, also saying how many pages (calls) it took. */
  async listInstancePages(
    opts: ListInstancesOptions = {},
  ): Promise<{ instances: VastInstance[]; pages: number }> {
    const path = '/api/v1/instances/';
    const out: VastInstance[] = [];
    const dropped: DroppedRow[] = [];
    const seenTokens = new Set<string>();
    let token: string | null = null;
    for (let page = 0; page < 1000; page++) {
      const params: Record<string, string | number> = { limit: 25 };
      if (token) params.after_token = token;
      if (opts.label !== undefined) params.select_filters = JSON.stringify({ label: { eq: opts.label } });
      const { status, json } = await this.call('GET', path, { params, pass: [404], turn: opts.turn });
      if (status === 404) {
        throw new VastAuthError(`GET ${path}: HTTP 404 (Vast answers this for an invalid API key)`, {
          status,
        });
      }
      if (!isObject(json) || !Array.isArray(json.instances)) {
        throw new VastApiError(`GET ${path}: unexpected reply shape (no "instances" array)`);
      }
      json.instances.forEach((raw, index) => {
        const r = VastInstanceSchema.safeParse(raw);
        if (!r.success) {
          const i = r.error.issues[0];
          const id = isObject(raw) ? raw.id : undefined;
          dropped.push({ index, id, reason: i ? `${i.path.join('.')}: ${i.message}` : 'invalid' });
        } else if (opts.label === undefined || r.data.label === opts.label) out.push(r.data);
      });
      const next = json.next_token;
      if (typeof next !== 'string' || next === '' || json.instances.length === 0) {
        if (dropped.length > 0) {
          try {
            this.#onDroppedRows?.(dropped);
          } catch {
            /* listeners never break a call */
          }
        }
        return { instances: out, pages: page + 1 };
      }
      if (seenTokens.has(next)) throw new VastApiError(`GET ${path}: pagination loops (repeated next_token)`);
      seenTokens.add(next);
      token = next;
    }
    throw new VastApiError(`GET ${path}: too many pages`);
  }

  /**
   * `DELETE /api/v0/instances/{id}/`, then reads the instance back until it is gone. 404 = already
   * gone. Idempotent. Throws (retryable) when the instance is still there after the confirm timeout.
   */
  async destroyInstance(id: number, opts: DestroyOptions = {}): Promise<void> {
    checkId(id);
    const path = `/api/v0/instances/${id}/`;
    await this.call('DELETE', path, { body: {}, pass: [404], turn: opts.turn });
    if (opts.confirmGone && (await opts.confirmGone(id, this.#destroyConfirmMs))) return;
    const deadline = Date.now() + this.#destroyConfirmMs;
    let delay = 100;
    let last = 'unknown';
    for (;;) {
      const inst = await this.getInstance(id, opts.turn);
      if (inst === null || inst.cur_state === 'unloaded') return;
      last = `actual_status=${inst.actual_status ?? 'null'}, cur_state=${inst.cur_state ?? 'null'}`;
      if (Date.now() >= deadline) break;
      await sleep(Math.min(delay, Math.max(0, deadline - Date.now())));
      delay = Math.min(delay * 2, 4000);
    }
    throw new VastApiError(
      `destroy of instance ${id} not confirmed after ${this.#destroyConfirmMs} ms (${last})`,
      {
        retryable: true,
      },
    );
  }

  /** `PUT /api/v0/instances/{id}/` with `{label}`: renames an instance (a pooled one changes hands). */
  async setLabel(id: number, label: string, turn?: TurnOptions): Promise<void> {
    checkId(id);
    if (label.length > 256) throw new VastApiError('label longer than 256 characters');
    await this.call('PUT', `/api/v0/instances/${id}/`, { body: { label }, turn });
  }

  /** `POST /api/v0/instances/{id}/ssh/` with the public key text. */
  async attachSshKey(instanceId: number, publicKey: string, turn?: TurnOptions): Promise<void> {
    checkId(instanceId);
    const key = checkPublicKey(publicKey);
    await this.call('POST', `/api/v0/instances/${instanceId}/ssh/`, { body: { ssh_key: key }, turn });
  }

  /** `GET /api/v0/ssh/`: the public keys on the account (a bare list, or `{ssh_keys: [...]}`). */
  async listSshKeys(turn?: TurnOptions): Promise<string[]> {
    const { json } = await this.call('GET', '/api/v0/ssh/', { turn });
    const rows = Array.isArray(json)
      ? json
      : isObject(json) && Array.isArray(json.ssh_keys)
        ? json.ssh_keys
        : [];
    return rows
      .map((r: unknown) => (isObject(r) ? (r.public_key ?? r.key) : r))
      .filter((k: unknown): k is string => typeof k === 'string')
      .map((k: string) => k.trim());
  }

  /** `POST /api/v0/ssh/`: registers a public key on the account (applies to instances created later). */
  async registerSshKey(publicKey: string, turn?: TurnOptions): Promise<{ id: number | null }> {
    const key = checkPublicKey(publicKey);
    const { json } = await this.call('POST', '/api/v0/ssh/', { body: { ssh_key: key }, turn });
    const k = isObject(json) && isObject(json.key) ? Number(json.key.id) : NaN;
    return { id: Number.isFinite(k) ? k : null };
  }

  /** `GET /api/v0/users/current/`: credit and balance only (the reply's api_key is dropped). */
  async getBalance(): Promise<VastBalance> {
    const { json } = await this.call('GET', '/api/v0/users/current/');
    if (!isObject(json)) throw new VastApiError('GET /api/v0/users/current/: unexpected reply shape');
    const credit = Number(json.credit);
    if (json.credit === null || json.credit === undefined || !Number.isFinite(credit)) {
      throw new VastApiError('GET /api/v0/users/current/: reply has no numeric credit');
    }
    const b = json.balance === null || json.balance === undefined ? NaN : Number(json.balance);
    return { credit, balance: Number.isFinite(b) ? b : null };
  }

  /**
   * A GET of an endpoint this client has no method for (billing: src/vast/billing.ts), with the same
   * auth, retries and typed errors. Returns the parsed JSON reply.
   */
  async getJson(path: string, params?: Record<string, string | number>): Promise<unknown> {
    return (await this.call('GET', path, params ? { params } : {})).json;
  }

  // ---------------------------------------------------------------- HTTP

  private async call(method: string, path: string, opts: CallOptions = {}): Promise<CallResult> {
    const policy = opts.retry ?? 'all';
    const willRetry = (err: unknown): boolean => {
      if (!(err instanceof VastApiError) || !err.retryable || err instanceof VastOfferGoneError) return false;
      if (policy === 'all') return true;
      return err instanceof VastRateLimitError || err.status === 503 || err.vastError === 'ECONNREFUSED';
    };
    const endpoint = endpointOf(method, path);
    const attempt = async () => {
      await this.#budget?.take(endpoint, opts.turn);
      return this.once(method, path, opts);
    };
    const signal = opts.turn?.signal;
    return pRetry(attempt, {
      ...(opts.turn?.signal ? { signal: opts.turn.signal } : {}),
      retries: this.#retries,
      factor: 2,
      minTimeout: this.#minDelay,
      maxTimeout: this.#maxDelay,
      randomize: true,
      shouldRetry: ({ error }) =>
        willRetry(error) &&
        !(error instanceof VastRateLimitError && /budget/.test(error.message)) &&
        (opts.turn?.deadline === undefined || Date.now() < opts.turn.deadline),
      onFailedAttempt: async ({ error, attemptNumber, retriesLeft }) => {
        const e = error as VastApiError;
        // A real 429 (not our own budget's refusal): every worker holds off that endpoint a while.
        if (e instanceof VastRateLimitError && e.status === 429) {
          await this.#budget?.penalize(endpoint).catch(() => undefined);
        }
        if (retriesLeft <= 0 || !willRetry(error)) return;
        try {
          this.#onRetry?.({
            method,
            path,
            attempt: attemptNumber,
            retriesLeft,
            status: e.status,
            rateLimited: e instanceof VastRateLimitError,
            message: e.message,
          });
        } catch {
          /* listeners never break a call */
        }
        if (e.retryAfterMs !== undefined) await sleep(Math.min(e.retryAfterMs, this.#maxDelay));
      },
    }).catch((err: unknown) => {
      // An abort (the symbol's deadline or shutdown) is a cancellation, whatever layer noticed it.
      if (signal?.aborted) throw new CancelledError();
      throw err;
    });
  }

  private async once(method: string, path: string, opts: CallOptions): Promise<CallResult> {
    try {
      const r = await this.request(method, path, opts);
      this.#outage?.success();
      return r;
    } catch (err) {
      if (err instanceof VastApiError && err.retryable && !(err instanceof VastRateLimitError))
        this.#outage?.failure(err);
      else if (err instanceof VastApiError) this.#outage?.success(); // it answered
      throw err;
    }
  }

  private async request(method: string, path: string, opts: CallOptions): Promise<CallResult> {
    let res: AxiosResponse<unknown>;
    try {
      res = await this.#http.request({
        method,
        url: path,
        params: opts.params,
        ...(opts.timeoutMs !== undefined ? { timeout: opts.timeoutMs } : {}),
        ...(opts.turn?.signal ? { signal: opts.turn.signal } : {}),
        data: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        headers: {
          Authorization: `Bearer ${this.#apiKey}`,
          ...(opts.body === undefined ? {} : { 'Content-Type': 'application/json' }),
        },
      });
    } catch (err) {
      // Never rethrow the axios error: its config carries the Authorization header.
      const code = isObject(err) && typeof err.code === 'string' ? err.code : undefined;
      const msg = err instanceof Error ? sanitizeSnippet(err.message, this.#apiKey, 120) : 'request failed';
      throw new VastApiError(`${method} ${path}: network error${code ? ` ${code}` : ''}: ${msg}`, {
        retryable: true,
        vastError: code,
      });
    }
    const status = res.status;
    const text = typeof res.data === 'string' ? res.data : res.data === undefined ? '' : String(res.data);
    let json: unknown;
    let isJson = false;
    if (text.trim() !== '') {
      try {
        json = JSON.parse(text);
        isJson = true;
      } catch {
        isJson = false;
      }
    }
    const head = `${method} ${path}: HTTP ${status}${res.statusText ? ` ${sanitizeSnippet(res.statusText, this.#apiKey, 40)}` : ''}`;
    const vastError = isJson && isObject(json) && typeof json.error === 'string' ? json.error : undefined;
    const detail = (): string => {
      if (isJson && isObject(json)) {
        const m = [json.msg, json.message, json.detail].find((x) => typeof x === 'string') as
          string | undefined;
        const parts = [vastError, m]
          .filter((x): x is string => !!x)
          .map((x) => sanitizeSnippet(x, this.#apiKey));
        return parts.length > 0 ? parts.join(': ') : sanitizeSnippet(text, this.#apiKey);
      }
      const html = /^\s*</.test(text);
      const snip = sanitizeSnippet(text, this.#apiKey);
      return `${html ? 'HTML page' : 'non-JSON body'}${snip ? `: ${snip}` : ''}`;
    };
    if (status === 401 || status === 403 || (vastError && AUTH_CODES.has(vastError))) {
      throw new VastAuthError(`${head}: authentication failed (${detail()})`, { status, vastError });
    }
    if (opts.pass?.includes(status)) return { status, json };
    if (status === 429) {
      throw new VastRateLimitError(`${head}: rate limited (${detail()})`, {
        status,
        vastError,
        retryAfterMs: parseRetryAfter(res.headers['retry-after']),
      });
    }
    if (status >= 500) {
      throw new VastApiError(`${head}: ${detail()}`, {
        status,
        vastError,
        retryable: true,
        retryAfterMs: parseRetryAfter(res.headers['retry-after']),
      });
    }
    if (status < 200 || status >= 300) {
      throw new VastApiError(`${head}: ${detail()}`, { status, vastError });
    }
    if (!isJson) throw new VastApiError(`${head}: ${detail()}`, { status });
    if (isObject(json) && json.success === false) {
      throw new VastApiError(`${head}: success=false: ${detail()}`, { status, vastError });
    }
    return { status, json };
  }
}

/** Whether a failed create may still have created the instance (it was sent and not refused). */
function mayHaveCreated(err: VastApiError): boolean {
  if (err instanceof VastRateLimitError || err instanceof VastOfferGoneError) return false;
  if (err.vastError === 'ECONNREFUSED') return false;
  if (err.status === undefined) return true; // timeout, reset: sent, answer lost
  return err.status >= 500 && err.status !== 503;
}

function checkId(id: number): void {
  if (!Number.isInteger(id) || id <= 0) throw new VastApiError(`invalid instance id ${String(id)}`);
}

function checkPublicKey(publicKey: string): string {
  const key = publicKey.trim();
  if (!/^(ssh-|ecdsa-|sk-)/.test(key) || key.includes('PRIVATE KEY') || /[\r\n]/.test(key)) {
    throw new VastApiError('not an OpenSSH public key (one line starting with ssh-/ecdsa-)');
  }
  return key;
}

function validateCreate(req: CreateInstanceRequest): void {
  const bad = (m: string) => new VastApiError(`invalid create request: ${m}`, { vastError: 'invalid_args' });
  if (!req.image || req.image.length > 1024) throw bad('image must be 1..1024 characters');
  if (!Number.isFinite(req.disk) || req.disk < 1) throw bad('disk must be a positive number of GB');
  if (req.label.length > 256) throw bad('label longer than 256 characters');
  if (req.onstart !== undefined && req.onstart.length > 4096)
    throw bad('onstart longer than 4096 characters');
  if (req.env) {
    let total = 0;
    for (const [k, v] of Object.entries(req.env)) {
      if (typeof v !== 'string' || v.length > 256)
        throw bad(`env ${k} must be a string of at most 256 characters`);
      total += k.length + v.length;
    }
    if (total > 32768) throw bad('env larger than 32768 characters');
  }
  if (req.price !== undefined && !(req.price >= 0.001 && req.price <= 128))
    throw bad('price must be 0.001..128 $/h');
}

function parseInstance(raw: unknown, where: string): VastInstance {
  const r = VastInstanceSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new VastApiError(
      `${where}: malformed instance (${i ? `${i.path.join('.')}: ${i.message}` : 'invalid'})`,
    );
  }
  return r.data;
}
