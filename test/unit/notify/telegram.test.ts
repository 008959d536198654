import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import {
  AlertNotifier,
  createNotifier,
  noopNotifier,
  TelegramSink,
  type MessageSink,
} from '../../../src/notify/index.js';
import type { SymbolFailure } from '../../../src/notify/format.js';
import { buildSummary } from '../../../src/telemetry/summary.js';
import { startTelegramStandIn, type TelegramStandIn } from '../../helpers/telegramStandIn.js';

const TOKEN = '123456789:AAF-unit-test-token-do-not-leak_xyz';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(10);
  }
}

const failure = (symbol: string, runId = 'r1'): SymbolFailure => ({
  runId,
  date: '20260110',
  symbol,
  reason: 'recipe_failed',
  message: 'step 1 exited with code 1',
  attempts: 1,
});

const summary = (runId = 'r1') =>
  buildSummary({
    date: '20260110',
    runId,
    symbols: ['AAAUSDT'],
    ledger: {},
    startedAt: new Date(0),
    endedAt: new Date(0),
  });

/** A sink that keeps what it is given. */
function listSink(): MessageSink & { sent: { text: string; kind: string }[] } {
  const sent: { text: string; kind: string }[] = [];
  return { sent, send: (m) => void sent.push(m), flush: async () => undefined };
}

describe('AlertNotifier', () => {
  it('groups failures of a run that come within the window into one message', async () => {
    const sink = listSink();
    const n = new AlertNotifier(sink, { groupWindowMs: 150, flushTimeoutMs: 100 });
    n.symbolFailed(failure('AAAUSDT'));
    await sleep(30);
    n.symbolFailed(failure('BBBUSDT'));
    n.symbolFailed(failure('CCCUSDT'));
    expect(sink.sent).toEqual([]);
    await until(() => sink.sent.length === 1);
    expect(sink.sent[0]!.kind).toBe('failures');
    expect(sink.sent[0]!.text.split('\n')).toEqual([
      'retrain run r1 (2026-01-10): 3 symbols failed',
      'AAAUSDT: recipe_failed — step 1 exited with code 1',
      'BBBUSDT: recipe_failed — step 1 exited with code 1',
      'CCCUSDT: recipe_failed — step 1 exited with code 1',
    ]);
    // A later failure starts a new group.
    n.symbolFailed(failure('DDDUSDT'));
    await until(() => sink.sent.length === 2);
    expect(sink.sent[1]!.text).toMatch(/^retrain run r1 \(2026-01-10\): DDDUSDT failed\n/);
  });

  it('keeps runs apart, and the completion summary sends its run pending failures first', async () => {
    const sink = listSink();
    const n = new AlertNotifier(sink, { groupWindowMs: 60_000, flushTimeoutMs: 100 });
    n.symbolFailed(failure('AAAUSDT', 'r1'));
    n.symbolFailed(failure('BBBUSDT', 'r2'));
    n.runCompleted(summary('r1'));
    expect(sink.sent.map((m) => m.kind)).toEqual(['failures', 'completed']);
    expect(sink.sent[0]!.text).toContain('AAAUSDT');
    expect(sink.sent[0]!.text).not.toContain('BBBUSDT');
    await n.flush();
    expect(sink.sent.map((m) => m.kind)).toEqual(['failures', 'completed', 'failures']);
    expect(sink.sent[2]!.text).toContain('run r2');
  });

  it('removes secret values from texts, and never throws at its caller', () => {
    const errors: unknown[] = [];
    const throwing: MessageSink = {
      send: () => {
        throw new Error('boom');
      },
      flush: async () => {
        throw new Error('boom');
      },
    };
    const n = new AlertNotifier(throwing, {
      groupWindowMs: 0,
      flushTimeoutMs: 10,
      onError: (e) => errors.push(e),
    });
    expect(() => n.runStarted({} as never)).not.toThrow();
    expect(() => n.runCompleted(summary())).not.toThrow();
    return n.flush().then(() => {
      expect(errors.length).toBeGreaterThanOrEqual(2);
      const sink = listSink();
      const m = new AlertNotifier(sink, {
        groupWindowMs: 0,
        flushTimeoutMs: 10,
        scrub: (t) => t.replaceAll('hunter22', '[REDACTED]'),
      });
      m.symbolFailed({ ...failure('AAAUSDT'), message: 'auth failed with key hunter22' });
      return m.flush().then(() => expect(sink.sent[0]!.text).toContain('auth failed with key [REDACTED]'));
    });
  });
});

describe('TelegramSink against a local Bot API stand-in', () => {
  let api: TelegramStandIn;
  let warnings: { fields: Record<string, unknown>; msg: string }[];
  afterEach(async () => api?.close());

  const sink = (over: Partial<ConstructorParameters<typeof TelegramSink>[0]> = {}) => {
    warnings = [];
    return new TelegramSink({
      apiUrl: api.url,
      token: TOKEN,
      chatId: '-1001234',
      timeoutMs: 1000,
      maxAttempts: 3,
      maxRetryAfterSec: 60,
      retryBaseMs: 50,
      warn: (fields, msg) => void warnings.push({ fields, msg }),
      ...over,
    });
  };
  const leaked = () => JSON.stringify(warnings).includes(TOKEN) || JSON.stringify(warnings).includes('/bot');

  it('posts sendMessage with chat_id and plain text, in order, and flush waits for delivery', async () => {
    api = await startTelegramStandIn();
    const s = sink();
    s.send({ text: 'one', kind: 'start' });
    s.send({ text: 'two & <three>', kind: 'completed' });
    await s.flush(2000);
    expect(api.requests.map((r) => [r.method, r.path])).toEqual([
      ['POST', `/bot${TOKEN}/sendMessage`],
      ['POST', `/bot${TOKEN}/sendMessage`],
    ]);
    expect(api.requests[0]!.body).toEqual({
      chat_id: '-1001234',
      text: 'one',
      disable_web_page_preview: true,
    });
    expect(api.texts()).toEqual(['one', 'two & <three>']);
    expect(warnings).toEqual([]);
  });

  it('send() returns at once even when Telegram never answers; the request times out and is retried', async () => {
    api = await startTelegramStandIn({ kind: 'hang' });
    const s = sink({ timeoutMs: 200, maxAttempts: 2 });
    const t0 = performance.now();
    s.send({ text: 'x', kind: 'start', date: '20260110' });
    // Well under the 200 ms a wait on the hanging API would take (and loose enough for a loaded machine).
    expect(performance.now() - t0).toBeLessThan(150);
    await until(() => warnings.length === 1);
    expect(api.requests.length).toBe(2);
    expect(warnings[0]!.msg).toBe('telegram: start message dropped (no answer within 200 ms)');
    expect(leaked()).toBe(false);
  });

  it('500: retried with growing delays, then dropped with a warning naming the status, not the URL', async () => {
    api = await startTelegramStandIn({ kind: '500' });
    const s = sink({ retryBaseMs: 100 });
    s.send({ text: 'x', kind: 'failures' });
    await until(() => warnings.length === 1);
    expect(api.requests.length).toBe(3);
    const [a, b, c] = api.requests.map((r) => r.at);
    expect(b! - a!).toBeGreaterThanOrEqual(70);
    expect(c! - b!).toBeGreaterThanOrEqual(140);
    expect(warnings[0]!.fields).toMatchObject({
      event: 'telegram_dropped',
      reason: 'HTTP 500: Internal Server Error',
      attempts: 3,
    });
    expect(leaked()).toBe(false);
  });

  it('400 (chat not found) is not retried', async () => {
    api = await startTelegramStandIn({ kind: '400' });
    const s = sink();
    s.send({ text: 'x', kind: 'start' });
    await until(() => warnings.length === 1);
    await sleep(150);
    expect(api.requests.length).toBe(1);
    expect(warnings[0]!.msg).toBe('telegram: start message dropped (HTTP 400: Bad Request: chat not found)');
  });

  it('429: waits retry_after before sending anything again, then delivers', async () => {
    api = await startTelegramStandIn({ kind: '429', retryAfter: 1 });
    const s = sink();
    s.send({ text: 'first', kind: 'start' });
    s.send({ text: 'second', kind: 'completed' });
    await until(() => api.requests.length === 1);
    api.mode = { kind: 'ok' };
    await until(() => api.texts().length === 2);
    const [a, b] = api.requests.map((r) => r.at);
    expect(b! - a!).toBeGreaterThanOrEqual(950);
    expect(api.texts()).toEqual(['first', 'second']);
  });

  it('429 with a long retry_after is capped at maxRetryAfterSec', async () => {
    api = await startTelegramStandIn({ kind: '429', retryAfter: 30 });
    const s = sink({ maxRetryAfterSec: 0.2 });
    s.send({ text: 'x', kind: 'start' });
    await until(() => api.requests.length === 2, 3000);
    const [a, b] = api.requests.map((r) => r.at);
    expect(b! - a!).toBeGreaterThanOrEqual(180);
    expect(b! - a!).toBeLessThan(1500);
  });

  it('flush gives up at once while rate-limited or backing off, says what was not sent, and a second flush does not wait again', async () => {
    api = await startTelegramStandIn({ kind: '429', retryAfter: 30 });
    const s = sink();
    s.send({ text: 'a', kind: 'start', date: '20260110' });
    s.send({ text: 'b', kind: 'completed', date: '20260110' });
    let t0 = performance.now();
    await s.flush(3000);
    // Bounds far from the 3 s a waiting flush would take, not a measure of speed.
    expect(performance.now() - t0).toBeLessThan(1500);
    expect(api.requests.length).toBe(1);
    expect(warnings.at(-1)!.msg).toBe('telegram: 2 message(s) not sent before shutdown');
    t0 = performance.now();
    await s.flush(3000);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(leaked()).toBe(false);
  });

  it('flush waits at most its bound for a request Telegram holds open', async () => {
    api = await startTelegramStandIn({ kind: 'hang' });
    const s = sink({ timeoutMs: 10_000 });
    s.send({ text: 'a', kind: 'start' });
    const t0 = performance.now();
    await s.flush(300);
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(280);
    expect(took).toBeLessThan(2000); // the request's own timeout is 10 s
    expect(s.pending).toBe(1);
  });

  it('a connection refused is a network error with its code, retried then dropped', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    api = await startTelegramStandIn();
    const s = sink({ apiUrl: `http://127.0.0.1:${port}`, maxAttempts: 2 });
    s.send({ text: 'x', kind: 'start' });
    await until(() => warnings.length === 1);
    expect(warnings[0]!.msg).toBe('telegram: start message dropped (network error (ECONNREFUSED))');
    expect(leaked()).toBe(false);
  });

  it('a full queue drops the oldest waiting message (never the one in flight)', async () => {
    api = await startTelegramStandIn({ kind: 'hang' });
    const s = sink({ maxQueue: 3, timeoutMs: 300, maxAttempts: 1 });
    for (const t of ['m1', 'm2', 'm3', 'm4']) s.send({ text: t, kind: t });
    expect(warnings.map((w) => w.fields.kind)).toEqual(['m2']);
    expect(s.pending).toBe(3);
  });
});

describe('createNotifier', () => {
  const config = (env: Record<string, string>) =>
    loadConfig({ env: { RETRAIN_HOME: '/tmp/x', ...env }, cwd: '/tmp' });

  it('sends nothing unless both TELEGRAM_TOKEN and a chat id are set', () => {
    expect(createNotifier(config({}), { env: {} })).toBe(noopNotifier);
    expect(createNotifier(config({ TELEGRAM_CHAT_ID: '42' }), { env: {} })).toBe(noopNotifier);
    expect(createNotifier(config({}), { env: { TELEGRAM_TOKEN: TOKEN } })).toBe(noopNotifier);
    expect(
      createNotifier(config({ TELEGRAM_CHAT_ID: '42' }), { env: { TELEGRAM_TOKEN: TOKEN } }),
    ).toBeInstanceOf(AlertNotifier);
  });

  it('reads TELEGRAM_CHAT_ID / TELEGRAM_API_URL into config (never the token) and rejects bad ones in one line', () => {
    const c = config({
      TELEGRAM_CHAT_ID: '-1001',
      TELEGRAM_API_URL: 'http://127.0.0.1:9',
      TELEGRAM_TOKEN: TOKEN,
    });
    expect(c.notify.telegram).toMatchObject({
      chatId: '-1001',
      apiUrl: 'http://127.0.0.1:9',
      groupWindowMs: 3000,
    });
    expect(JSON.stringify(c)).not.toContain(TOKEN);
    expect(() => config({ TELEGRAM_CHAT_ID: 'my chat' })).toThrow(
      'invalid configuration: notify.telegram.chatId: must be a numeric chat id or @channelname',
    );
    expect(() => config({ TELEGRAM_API_URL: 'ftp://x' })).toThrow(
      /notify\.telegram\.apiUrl: must be an http\(s\) URL/,
    );
  });

  it('sends end to end: start, grouped failures and summary reach the stand-in, secrets scrubbed from texts', async () => {
    const api = await startTelegramStandIn();
    try {
      const c = config({ TELEGRAM_CHAT_ID: '42', TELEGRAM_API_URL: api.url, RETRAIN_TELEGRAM_GROUP_MS: '0' });
      const n = createNotifier(c, { env: { TELEGRAM_TOKEN: TOKEN, VAST_API_KEY: 'vast-key-1234567' } });
      n.symbolFailed({ ...failure('AAAUSDT'), message: 'bad key vast-key-1234567' });
      n.symbolFailed(failure('BBBUSDT'));
      n.runCompleted(summary());
      await n.flush(2000);
      expect(api.texts().length).toBe(2);
      expect(api.texts()[0]).toContain('2 symbols failed');
      expect(api.texts()[0]).toContain('AAAUSDT: recipe_failed — bad key [REDACTED]');
      expect(api.texts()[1]).toContain('finished');
    } finally {
      await api.close();
    }
  });
});
