/**
 * `ledger.retentionDays`: every write of a date gives its Redis keys an expiry of the setting, so
 * the ledger's memory is bounded by the retention, not by the number of days ever run.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { Ledger, ledgerTtlSec, type LedgerMirrorDoc } from '../../../src/ledger/ledger.js';
import { LedgerMirror, RESTART_CHECK_AFTER_MS } from '../../../src/ledger/mirror.js';
import { keys } from '../../../src/storage/layout.js';
import { LocalStore } from '../../../src/storage/local.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const DATE = '20260115';
const DAY = 86_400;

describe('ledger retention (real Redis)', () => {
  let redis: Redis;
  let prefix: string;
  let root: string;
  let store: LocalStore;
  const made: Ledger[] = [];
  const make = (retentionDays?: number) => {
    const l = new Ledger({ redis, prefix, store, ...(retentionDays !== undefined ? { retentionDays } : {}) });
    made.push(l);
    return l;
  };
  const ttl = (key: string) => redis.ttl(`${prefix}:${key}`);

  beforeEach(async () => {
    redis = new Redis(REDIS_URL);
    prefix = `test-ledger-ttl-${randomBytes(6).toString('hex')}`;
    root = await mkdtemp(join(tmpdir(), 'ledger-ttl-'));
    store = new LocalStore(root);
    made.length = 0;
  });

  afterEach(async () => {
    for (const l of made) await l.mirrorIdle(DATE);
    const found = await redis.keys(`${prefix}:*`);
    if (found.length) await redis.del(...found);
    redis.disconnect();
    await rm(root, { recursive: true, force: true });
  });

  it('the default configuration keeps a date 30 days; the setting and its environment variable load', () => {
    const env = { RETRAIN_HOME: '/tmp/retrain-ttl' };
    expect(loadConfig({ env, cwd: '/tmp/nowhere' }).ledger.retentionDays).toBe(30);
    const c = loadConfig({ env: { ...env, RETRAIN_LEDGER_RETENTION_DAYS: '7' }, cwd: '/tmp/nowhere' });
    expect(c.ledger.retentionDays).toBe(7);
    expect(() =>
      loadConfig({ env: { ...env, RETRAIN_LEDGER_RETENTION_DAYS: '-1' }, cwd: '/tmp/nowhere' }),
    ).toThrow(/ledger.retentionDays/);
    expect(ledgerTtlSec(30)).toBe(30 * DAY);
    expect(ledgerTtlSec(0.5)).toBe(DAY / 2);
    expect(ledgerTtlSec(0)).toBe(0);
    expect(ledgerTtlSec(undefined)).toBe(-1);
  });

  it("a planned and updated date's hash and version counter carry the retention as TTL, refreshed by each write", async () => {
    const ledger = make(7);
    await ledger.init(DATE, [
      { symbol: 'BTCUSDT', status: 'pending' },
      { symbol: 'ETHUSDT', status: 'pending' },
    ]);
    for (const key of [`ledger:${DATE}`, `ledger:${DATE}:v`]) {
      const t = await ttl(key);
      expect(t, key).toBeGreaterThan(7 * DAY - 5);
      expect(t, key).toBeLessThanOrEqual(7 * DAY);
    }
    // Shorten the expiry by hand: the next update sets it back to the full retention.
    await redis.expire(`${prefix}:ledger:${DATE}`, 100);
    await redis.expire(`${prefix}:ledger:${DATE}:v`, 100);
    await ledger.update(DATE, 'BTCUSDT', { status: 'running' });
    expect(await ttl(`ledger:${DATE}`)).toBeGreaterThan(7 * DAY - 5);
    expect(await ttl(`ledger:${DATE}:v`)).toBeGreaterThan(7 * DAY - 5);
    // A blocked conditional update writes nothing and leaves the expiry alone.
    await ledger.update(DATE, 'ETHUSDT', { status: 'success' });
    await redis.expire(`${prefix}:ledger:${DATE}`, 100);
    const r = await ledger.tryUpdate(
      DATE,
      'ETHUSDT',
      { status: 'failed' },
      { onlyIf: { statusNot: ['success'] } },
    );
    expect(r.applied).toBe(false);
    expect(await ttl(`ledger:${DATE}`)).toBeLessThanOrEqual(100);
    // remove() keeps the version counter (versions never go back) but it expires too.
    await ledger.mirrorIdle(DATE);
    await ledger.remove(DATE);
    expect(await ttl(`ledger:${DATE}:v`)).toBeGreaterThan(7 * DAY - 5);
  });

  it('retentionDays 0 keeps a date for ever (an earlier expiry is removed); a ledger opened without the setting leaves the expiry alone', async () => {
    await make(7).update(DATE, 'BTCUSDT', { status: 'pending' });
    await make().update(DATE, 'BTCUSDT', { status: 'running' });
    expect(await ttl(`ledger:${DATE}`)).toBeGreaterThan(7 * DAY - 5);
    await make(0).update(DATE, 'BTCUSDT', { status: 'success' });
    expect(await ttl(`ledger:${DATE}`)).toBe(-1);
    expect(await ttl(`ledger:${DATE}:v`)).toBe(-1);
  });

  it('an expired date leaves dates(); used again it starts over and its status.json is written again', async () => {
    const ledger = make(7);
    await ledger.update('20260110', 'A1', { status: 'success' });
    await ledger.update(DATE, 'A1', { status: 'success' });
    await ledger.update(DATE, 'A2', { status: 'success' });
    await ledger.flushMirror(DATE);
    expect((await store.getJson<LedgerMirrorDoc>(keys.runStatus(DATE))).version).toBe(2);
    // Redis drops the date (as its TTL would).
    await redis.del(`${prefix}:ledger:${DATE}`, `${prefix}:ledger:${DATE}:v`);
    expect(await ledger.dates()).toEqual(['20260110']);
    expect(await redis.smembers(`${prefix}:ledger:dates`)).toEqual(['20260110']);
    // Re-planned: nothing is left to skip, and the mirror (this very process) writes version 1.
    const entries = await ledger.init(DATE, [{ symbol: 'A1', status: 'pending' }]);
    expect(entries.A1!.status).toBe('pending');
    await ledger.mirrorIdle(DATE);
    const doc = await store.getJson<LedgerMirrorDoc>(keys.runStatus(DATE));
    expect(doc.version).toBe(1);
    expect(Object.keys(doc.symbols)).toEqual(['A1']);
  });

  it('the mirror notices a restarted version after a quiet spell even when the change came from another process', async () => {
    let version = 5;
    const writes: number[] = [];
    let clockOffset = 0;
    const realNow = performance.now.bind(performance);
    const m = new LedgerMirror({
      store: {
        putBytes: async (_k: string, b: Buffer) =>
          void writes.push((JSON.parse(b.toString()) as LedgerMirrorDoc).version),
      } as never,
      snapshot: async () => ({ version, raw: {} }),
      version: async () => version,
      now: () => new Date(),
      minIntervalMs: 0,
    });
    m.notify(DATE, 5);
    await m.idle(DATE);
    expect(writes).toEqual([5]);
    // The date expired and started again; another process made versions 1 and 2, this one 3.
    version = 3;
    m.notify(DATE, 3);
    await m.idle(DATE);
    expect(writes).toEqual([5]); // within a burst a covered notify costs nothing and writes nothing
    performance.now = () => realNow() + clockOffset;
    try {
      clockOffset = RESTART_CHECK_AFTER_MS + 1;
      m.notify(DATE, 3);
      await m.idle(DATE);
    } finally {
      performance.now = realNow;
    }
    expect(writes).toEqual([5, 3]);
  });
});
