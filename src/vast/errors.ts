/**
 * Vast.ai API errors. All carry code 'provisioning'. None of them holds the request config, the
 * headers or the API key: messages are one line with the method, path, status and a short,
 * sanitized snippet of the body.
 */
import { RetrainError } from '../errors.js';

export interface VastApiErrorOptions {
  status?: number;
  /** The `error` field of Vast's JSON error body (e.g. `no_such_ask`, `auth_error`). */
  vastError?: string;
  retryable?: boolean;
  /** Milliseconds to wait before a retry, from a Retry-After header. */
  retryAfterMs?: number;
}

/** A Vast.ai API call failed (HTTP error, `success:false`, unexpected or non-JSON body, network). */
export class VastApiError extends RetrainError {
  readonly status: number | undefined;
  readonly vastError: string | undefined;
  readonly retryAfterMs: number | undefined;
  constructor(message: string, opts: VastApiErrorOptions = {}) {
    super('provisioning', message, { retryable: opts.retryable ?? false });
    this.status = opts.status;
    this.vastError = opts.vastError;
    this.retryAfterMs = opts.retryAfterMs;
  }
}

/** The API key was refused (401/403, or 404 where Vast answers that for a bad key). Never retried. */
export class VastAuthError extends VastApiError {
  constructor(message: string, opts: VastApiErrorOptions = {}) {
    super(message, { ...opts, retryable: false });
  }
}

/** 429: rate limited. Retryable. */
export class VastRateLimitError extends VastApiError {
  constructor(message: string, opts: VastApiErrorOptions = {}) {
    super(message, { ...opts, retryable: true });
  }
}

/**
 * The offer was taken or cannot start (404/410, or `no_such_ask`). Retryable for the caller: rent the
 * next offer.
 */
export class VastOfferGoneError extends VastApiError {
  readonly offerId: number;
  constructor(offerId: number, message: string, opts: VastApiErrorOptions = {}) {
    super(message, { ...opts, retryable: true });
    this.offerId = offerId;
  }
}

/**
 * A create that was sent but whose outcome is unknown (timed out, connection dropped, 5xx, a reply
 * without an instance id): Vast may have created the instance anyway. The caller looks the label up
 * and adopts or destroys what it finds (vast-reality.md, "Offers and renting").
 */
export class VastCreateUnknownError extends VastApiError {
  readonly offerId: number;
  readonly label: string;
  constructor(offerId: number, label: string, message: string, opts: VastApiErrorOptions = {}) {
    super(message, { ...opts, retryable: true });
    this.offerId = offerId;
    this.label = label;
  }
}
