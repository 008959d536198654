import type { MessageSink } from './notifier.js';

/**
 * Telegram Bot API sink: `POST {apiUrl}/bot<token>/sendMessage`, one message at a time from an
 * in-memory queue, in the background. A send never blocks its caller; a message that cannot go
 * (Telegram down, slow, refusing) is retried a bounded number of times and then dropped with a
 * warning. 429 answers are honoured (`parameters.retry_after`, else the Retry-After header, capped
 * at `maxRetryAfterSec`): nothing is sent to the bot before that time.
 *
 * The token is part of the request path, so neither the URL nor a raw fetch error is ever logged:
 * warnings carry only an HTTP status, Telegram's description, or an error code.
 */
export interface TelegramSinkOptions {
  /** Bot API base, e.g. https://api.telegram.org (a local stand-in in tests). */
  apiUrl: string;
  token: string;
  chatId: string;
  /** Per-request limit (connect + answer). */
  timeoutMs: number;
  /** Tries per message, the first included. */
  maxAttempts: number;
  /** A 429's retry_after is waited for, up to this. */
  maxRetryAfterSec: number;
  /** First delay after a 5xx or network error; doubles per attempt (±25 % jitter). */
  retryBaseMs?: number;
  /** Messages waiting beyond this drop the oldest. */
  maxQueue?: number;
  /** Where failures are told: never receives the token or a URL. */
  warn: (fields: Record<string, unknown>, msg: string, date?: string) => void;
}

interface Outgoing {
  text: string;
  date?: string | undefined;
  kind: string;
}

type PostResult =
  { ok: true } | { ok: false; retryable: boolean; reason: string; retryAfterMs?: number | undefined };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A sleep whose timer does not keep the process alive. */
function pause(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.max(0, ms)).unref());
}

/** One printable line, at most `max` characters, long token-like runs masked. */
function snippet(text: string, max = 120): string {
  const s = text
    .replace(/[A-Za-z0-9_:-]{32,}/g, '***')
    .replace(/[^\x20-\x7e]+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return s.length > max ? `${s.slice(0, max - 3)}...` : s;
}

/** What went wrong with a request, without its URL (which holds the token). */
function describeFetchError(err: unknown, timeoutMs: number): string {
  if (isObject(err) && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
    return `no answer within ${timeoutMs} ms`;
  }
  const cause = isObject(err) ? err.cause : undefined;
  const code = isObject(cause) && typeof cause.code === 'string' ? cause.code : undefined;
  return `network error${code ? ` (${snippet(code, 40)})` : ''}`;
}

/** Seconds from a 429: Telegram's `parameters.retry_after`, else a numeric Retry-After header. */
function retryAfterMs(body: unknown, header: string | null): number | undefined {
  const params = isObject(body) ? body.parameters : undefined;
  const fromBody = isObject(params) ? Number(params.retry_after) : NaN;
  if (Number.isFinite(fromBody) && fromBody >= 0) return fromBody * 1000;
  const fromHeader = header !== null && /^\d+(\.\d+)?$/.test(header.trim()) ? Number(header) : NaN;
  return Number.isFinite(fromHeader) ? fromHeader * 1000 : undefined;
}

export class TelegramSink implements MessageSink {
  readonly #url: string;
  readonly #opts: TelegramSinkOptions;
  readonly #queue: Outgoing[] = [];
  #running = false;
  /** While waiting before a retry: when the next try is due (epoch ms); 0 otherwise. */
  #wakeAt = 0;
  /** Messages finished (sent or dropped); lets a flush see whether anything moved. */
  #done = 0;
  /** `#done` when the last flush gave up: a later flush with no progress since returns at once. */
  #gaveUpAt = -1;
  #listeners: (() => void)[] = [];

  constructor(opts: TelegramSinkOptions) {
    this.#opts = opts;
    this.#url = `${opts.apiUrl.replace(/\/+$/, '')}/bot${opts.token}/sendMessage`;
  }

  /** Messages not yet sent or dropped. */
  get pending(): number {
    return this.#queue.length;
  }

  send(message: Outgoing): void {
    if (this.#queue.length >= (this.#opts.maxQueue ?? 50)) {
      const dropped = this.#queue.splice(this.#running ? 1 : 0, 1)[0];
      if (dropped) this.#warnDropped(dropped, 'too many messages waiting');
    }
    this.#queue.push(message);
    if (!this.#running) void this.#pump();
  }

  async flush(timeoutMs: number): Promise<void> {
    if (!this.#running && this.#queue.length === 0) return;
    if (this.#gaveUpAt === this.#done) return;
    const deadline = Date.now() + timeoutMs;
    while (this.#running || this.#queue.length > 0) {
      const left = deadline - Date.now();
      // Waiting on a rate limit or a retry backoff: Telegram is refusing or failing; shutting down
      // is not held up for it (only a request in flight, or one never tried, is waited for).
      if (left <= 0 || this.#wakeAt > 0) break;
      await Promise.race([new Promise<void>((r) => this.#listeners.push(r)), pause(left)]);
    }
    if (this.#running || this.#queue.length > 0) {
      this.#gaveUpAt = this.#done;
      this.#opts.warn(
        { event: 'telegram_not_sent', pending: this.#queue.length },
        `telegram: ${this.#queue.length} message(s) not sent before shutdown`,
        this.#queue[0]?.date,
      );
    }
  }

  #changed(): void {
    const ls = this.#listeners;
    this.#listeners = [];
    for (const l of ls) l();
  }

  async #pump(): Promise<void> {
    this.#running = true;
    try {
      while (this.#queue.length > 0) {
        const msg = this.#queue[0]!;
        await this.#deliver(msg);
        if (this.#queue[0] === msg) this.#queue.shift();
        this.#done++;
        this.#changed();
      }
    } catch (err) {
      // Not expected (deliver never throws); keep the queue usable.
      this.#opts.warn({ event: 'telegram_error', err: snippet(String(err)) }, 'telegram: sender failed');
    } finally {
      this.#running = false;
      this.#wakeAt = 0;
      this.#changed();
    }
  }

  async #deliver(msg: Outgoing): Promise<void> {
    const { maxAttempts, maxRetryAfterSec } = this.#opts;
    const base = this.#opts.retryBaseMs ?? 1000;
    for (let attempt = 1; ; attempt++) {
      const r = await this.#post(msg.text);
      if (r.ok) return;
      if (!r.retryable || attempt >= maxAttempts) {
        this.#warnDropped(msg, r.reason, attempt);
        return;
      }
      const delay =
        r.retryAfterMs !== undefined
          ? Math.min(r.retryAfterMs, maxRetryAfterSec * 1000)
          : base * 2 ** (attempt - 1) * (0.75 + Math.random() * 0.5);
      this.#wakeAt = Date.now() + delay;
      this.#changed();
      await pause(delay);
      this.#wakeAt = 0;
    }
  }

  async #post(text: string): Promise<PostResult> {
    const { timeoutMs } = this.#opts;
    let res: Response;
    let body: unknown;
    try {
      res = await fetch(this.#url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ chat_id: this.#opts.chatId, text, disable_web_page_preview: true }),
        signal: AbortSignal.timeout(timeoutMs),
      });
      const raw = await res.text();
      try {
        body = JSON.parse(raw);
      } catch {
        body = undefined;
      }
    } catch (err) {
      return { ok: false, retryable: true, reason: describeFetchError(err, timeoutMs) };
    }
    if (res.ok && !(isObject(body) && body.ok === false)) return { ok: true };
    const description =
      isObject(body) && typeof body.description === 'string' ? `: ${snippet(body.description)}` : '';
    const reason = `HTTP ${res.status}${description}`;
    if (res.status === 429) {
      return {
        ok: false,
        retryable: true,
        reason,
        retryAfterMs: retryAfterMs(body, res.headers.get('retry-after')),
      };
    }
    return { ok: false, retryable: res.status >= 500 || res.status === 408, reason };
  }

  #warnDropped(msg: Outgoing, reason: string, attempts?: number): void {
    this.#opts.warn(
      { event: 'telegram_dropped', kind: msg.kind, reason, ...(attempts ? { attempts } : {}) },
      `telegram: ${msg.kind} message dropped (${reason})`,
      msg.date,
    );
  }
}
