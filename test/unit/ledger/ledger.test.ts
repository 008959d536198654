import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InputError } from '../../../src/errors.js';
import { Ledger, type LedgerMirrorDoc } from '../../../src/ledger/ledger.js';
import { keys } from '../../../src/storage/layout.js';
import { LocalStore } from '../../../src/storage/local.js';
import type { ArtifactStore } from '../../../src/storage/store.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const DATE = '20260115';

describe('Ledger (real Redis)', () => {
  let redis: Redis;
  let redis2: Redis;
  let prefix: string;
  let root: string;
  let store: LocalStore;
  let clock: number;
  const now = () => new Date(clock++ * 1000 + Date.UTC(2026, 0, 16));

  let made: Ledger[] = [];
  const make = (opts: { conn?: Redis; store?: ArtifactStore; onMirrorError?: (e: unknown) => void } = {}) => {
    const ledger = new Ledger({
      redis: opts.conn ?? redis,
      prefix,
      store: opts.store ?? store,
      now,
      ...(opts.onMirrorError ? { onMirrorError: opts.onMirrorError } : {}),
    });
    made.push(ledger);
    return ledger;
  };
  const mirrorDoc = () => store.getJson<LedgerMirrorDoc>(keys.runStatus(DATE));

  beforeEach(async () => {
    redis = new Redis(REDIS_URL);
    redis2 = new Redis(REDIS_URL);
    prefix = `test-ledger-${randomBytes(6).toString('hex')}`;
    root = await mkdtemp(join(tmpdir(), 'ledger-'));
    store = new LocalStore(root);
    clock = 0;
    made = [];
  });

  afterEach(async () => {
    // Let queued mirror writes finish before the keys and the folder go away.
    const dates = await made[0]?.dates().catch(() => []);
    await Promise.all(made.flatMap((l) => [DATE, ...(dates ?? [])].map((d) => l.mirrorIdle(d))));
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      if (found.length) await redis.del(...found);
      cursor = next;
    } while (cursor !== '0');
    redis.disconnect();
    redis2.disconnect();
    await rm(root, { recursive: true, force: true });
  });

  it('creates a pending entry on first update and merges patches', async () => {
    const ledger = make();
    expect(await ledger.getEntry(DATE, 'BTCUSDT')).toBeNull();
    const e1 = await ledger.update(DATE, 'BTCUSDT', {
      status: 'running',
      attempts: 1,
      jobId: 'train__BTCUSDT__20260115',
    });
    expect(e1).toMatchObject({ symbol: 'BTCUSDT', status: 'running', attempts: 1, costUsd: 0, history: [] });
    expect(e1.updatedAt).toBe(new Date(Date.UTC(2026, 0, 16)).toISOString());
    const e2 = await ledger.update(DATE, 'BTCUSDT', { costUsd: 0.125, state: 'EXECUTING' });
    expect(e2).toMatchObject({
      status: 'running',
      attempts: 1,
      costUsd: 0.125,
      state: 'EXECUTING',
      jobId: e1.jobId,
    });
    expect(await ledger.getEntry(DATE, 'BTCUSDT')).toEqual(e2);
    expect(await ledger.version(DATE)).toBe(2);
  });

  it('round-trips an empty history as [] (cjson turns [] into {})', async () => {
    const ledger = make();
    await ledger.update(DATE, 'ETHUSDT', { status: 'pending' });
    await ledger.update(DATE, 'ETHUSDT', { history: [] });
    const raw = await redis.hget(`${prefix}:ledger:${DATE}`, 'ETHUSDT');
    expect(raw).toContain('"history":{}');
    expect((await ledger.getEntry(DATE, 'ETHUSDT'))!.history).toEqual([]);
    expect((await ledger.get(DATE)).ETHUSDT!.history).toEqual([]);
    await ledger.mirrorIdle(DATE);
    expect((await mirrorDoc()).symbols.ETHUSDT!.history).toEqual([]);
  });

  it('an undefined patch value clears an optional field, never a required one', async () => {
    const ledger = make();
    await ledger.update(DATE, 'SOLUSDT', {
      status: 'failed',
      reason: 'timeout',
      error: { type: 'TimeoutError', message: 'slow' },
      costUsd: 1.5,
    });
    const e = await ledger.update(DATE, 'SOLUSDT', {
      status: 'running',
      reason: undefined,
      error: undefined,
      costUsd: undefined,
    });
    expect(e.reason).toBeUndefined();
    expect(e.error).toBeUndefined();
    expect('error' in e).toBe(false);
    expect(e.costUsd).toBe(1.5);
    expect(e.status).toBe('running');
  });

  it('50 parallel appendHistory calls over two connections lose nothing', async () => {
    const a = make();
    const b = make({ conn: redis2 });
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        (i % 2 ? a : b).update(
          DATE,
          'BTCUSDT',
          { attempts: i + 1 },
          { appendHistory: { attempt: i + 1, startedAt: `t${i}` } },
        ),
      ),
    );
    const e = (await a.getEntry(DATE, 'BTCUSDT'))!;
    expect(e.history).toHaveLength(50);
    expect(new Set(e.history.map((h) => h.attempt)).size).toBe(50);
    expect(await a.version(DATE)).toBe(50);
  });

  it('parallel patches of different fields and symbols all land', async () => {
    const a = make();
    const b = make({ conn: redis2 });
    const syms = ['AAUSDT', 'BBUSDT', 'CCUSDT'];
    const work: Promise<unknown>[] = [];
    for (const s of syms) {
      work.push(a.update(DATE, s, { state: 'EXECUTING' }));
      work.push(b.update(DATE, s, { costUsd: 2 }));
      work.push(a.update(DATE, s, { metricsKey: `ml-artifacts/${s}/metrics.json` }));
      work.push(b.update(DATE, s, { trainMinutes: 3 }));
    }
    await Promise.all(work);
    const all = await a.get(DATE);
    expect(Object.keys(all)).toEqual(syms);
    for (const s of syms) {
      expect(all[s]).toMatchObject({
        state: 'EXECUTING',
        costUsd: 2,
        metricsKey: `ml-artifacts/${s}/metrics.json`,
        trainMinutes: 3,
      });
    }
  });

  it('patchLastHistory merges into the last attempt only', async () => {
    const ledger = make();
    await ledger.update(DATE, 'XRPUSDT', { status: 'running' }, { patchLastHistory: { outcome: 'ignored' } });
    await ledger.update(DATE, 'XRPUSDT', { attempts: 1 }, { appendHistory: { attempt: 1, startedAt: 's1' } });
    await ledger.update(DATE, 'XRPUSDT', { attempts: 2 }, { appendHistory: { attempt: 2, startedAt: 's2' } });
    const e = await ledger.update(
      DATE,
      'XRPUSDT',
      { status: 'failed' },
      { patchLastHistory: { endedAt: 'e2', outcome: 'failed', reason: 'timeout' } },
    );
    expect(e.history).toEqual([
      { attempt: 1, startedAt: 's1' },
      { attempt: 2, startedAt: 's2', endedAt: 'e2', outcome: 'failed', reason: 'timeout' },
    ]);
  });

  it('apply makes the change update makes (fields, history, increments, onlyIf), without an answer', async () => {
    const ledger = make();
    // The same writes, with apply on one date and update on another.
    for (const [date, write] of [
      ['20240501', ledger.apply.bind(ledger)],
      ['20240502', ledger.update.bind(ledger)],
    ] as const) {
      await write(
        date,
        'ADAUSDT',
        { status: 'running', attempts: 1 },
        {
          appendHistory: { attempt: 1, startedAt: 's1' },
        },
      );
      await write(date, 'ADAUSDT', {}, { increment: { costUsd: 0.25 } });
      await write(date, 'ADAUSDT', { status: 'success' }, { patchLastHistory: { outcome: 'success' } });
      await write(date, 'ADAUSDT', { status: 'failed' }, { onlyIf: { statusNot: ['success'] } });
    }
    expect(await ledger.apply('20240501', 'ADAUSDT', { state: 'FETCHING' })).toBeUndefined();
    await ledger.update('20240502', 'ADAUSDT', { state: 'FETCHING' });
    const applied = (await ledger.get('20240501')).ADAUSDT!;
    const updated = (await ledger.get('20240502')).ADAUSDT!;
    expect(applied).toMatchObject({ status: 'success', costUsd: 0.25, state: 'FETCHING', attempts: 1 });
    expect(applied.history).toEqual([{ attempt: 1, startedAt: 's1', outcome: 'success' }]);
    expect({ ...applied, updatedAt: '' }).toEqual({ ...updated, updatedAt: '' });
    await expect(ledger.apply('20240501', 'ADAUSDT', { status: 'bogus' as never })).rejects.toThrow(
      InputError,
    );
  });

  it('onlyIf.statusNot blocks the update and reports it', async () => {
    const ledger = make();
    await ledger.update(DATE, 'BTCUSDT', { status: 'success', decision: 'promote' });
    const v = await ledger.version(DATE);
    const r = await ledger.tryUpdate(
      DATE,
      'BTCUSDT',
      { status: 'failed' },
      { onlyIf: { statusNot: ['success'] } },
    );
    expect(r.applied).toBe(false);
    expect(r.entry.status).toBe('success');
    expect(await ledger.version(DATE)).toBe(v);
    const r2 = await ledger.tryUpdate(
      DATE,
      'NEWUSDT',
      { status: 'running' },
      { onlyIf: { statusNot: ['pending'] } },
    );
    expect(r2.applied).toBe(true);
    const r3 = await ledger.tryUpdate(
      DATE,
      'BTCUSDT',
      { decision: 'reject' },
      { onlyIf: { statusNot: ['failed'] } },
    );
    expect(r3.applied).toBe(true);
    expect(r3.entry.decision).toBe('reject');
  });

  it('init keeps attempts and history, keeps success unless forced, leaves other symbols alone', async () => {
    const ledger = make();
    await ledger.update(
      DATE,
      'BTCUSDT',
      { status: 'failed', attempts: 2, reason: 'timeout', costUsd: 4 },
      {
        appendHistory: { attempt: 2, startedAt: 'x', outcome: 'failed' },
      },
    );
    await ledger.update(DATE, 'ETHUSDT', { status: 'success', attempts: 1, decision: 'promote' });
    await ledger.update(DATE, 'OTHERUSDT', { status: 'running' });

    const res = await ledger.init(DATE, [
      { symbol: 'BTCUSDT', status: 'pending', jobId: 'train__BTCUSDT__20260115', runId: 'r2' },
      { symbol: 'ETHUSDT', status: 'pending', jobId: 'train__ETHUSDT__20260115', runId: 'r2' },
      { symbol: 'NODATA', status: 'skipped', reason: 'no_data', runId: 'r2' },
    ]);
    expect(res.BTCUSDT).toMatchObject({ status: 'pending', attempts: 2, costUsd: 0, runId: 'r2' });
    expect(res.BTCUSDT!.reason).toBeUndefined();
    expect(res.BTCUSDT!.history).toEqual([{ attempt: 2, startedAt: 'x', outcome: 'failed' }]);
    expect(res.ETHUSDT).toMatchObject({ status: 'success', decision: 'promote' });
    expect(res.NODATA).toMatchObject({ status: 'skipped', reason: 'no_data', attempts: 0, history: [] });
    expect((await ledger.getEntry(DATE, 'OTHERUSDT'))!.status).toBe('running');

    const forced = await ledger.init(DATE, [{ symbol: 'ETHUSDT', status: 'pending', runId: 'r3' }], true);
    expect(forced.ETHUSDT).toMatchObject({ status: 'pending', attempts: 1, runId: 'r3' });
    expect(forced.ETHUSDT!.decision).toBeUndefined();
  });

  it('the mirror equals Redis after a burst from two ledgers', async () => {
    const writes: number[] = [];
    const recording: ArtifactStore = Object.assign(Object.create(store) as LocalStore, {
      putBytes: async (key: string, data: Buffer) => {
        writes.push((JSON.parse(data.toString()) as LedgerMirrorDoc).version);
        return store.putBytes(key, data);
      },
    });
    const a = make({ store: recording });
    const b = make({ conn: redis2 });
    await a.init(DATE, [
      { symbol: 'BTCUSDT', status: 'pending' },
      { symbol: 'ETHUSDT', status: 'pending' },
    ]);
    const work: Promise<unknown>[] = [];
    for (let i = 0; i < 40; i++) {
      const l = i % 2 ? a : b;
      work.push(
        l.update(
          DATE,
          i % 3 ? 'BTCUSDT' : 'ETHUSDT',
          { costUsd: i },
          { appendHistory: { attempt: i, startedAt: `s${i}` } },
        ),
      );
    }
    await Promise.all(work);
    await Promise.all([a.mirrorIdle(DATE), b.mirrorIdle(DATE)]);

    const snap = await a.snapshot(DATE);
    const doc = await mirrorDoc();
    expect(doc.date).toBe(DATE);
    expect(doc.version).toBe(snap.version);
    expect(doc.symbols).toEqual(snap.entries);
    expect(Object.keys(doc.symbols)).toEqual(['BTCUSDT', 'ETHUSDT']);
    expect(doc.updatedAt).toBe(
      Object.values(snap.entries)
        .map((e) => e.updatedAt)
        .sort()
        .pop(),
    );
    // This process's writes never go back, and a burst coalesces into few writes.
    expect(writes).toEqual([...writes].sort((x, y) => x - y));
    expect(new Set(writes).size).toBe(writes.length);
    expect(writes.length).toBeLessThan(41);
  });

  it('flushMirror forces a full write; mirror failures never fail an update', async () => {
    const errors: unknown[] = [];
    let fail = true;
    const flaky: ArtifactStore = Object.assign(Object.create(store) as LocalStore, {
      putBytes: async (key: string, data: Buffer) => {
        if (fail) throw new Error('disk full');
        return store.putBytes(key, data);
      },
    });
    const ledger = make({ store: flaky, onMirrorError: (e) => errors.push(e) });
    const e = await ledger.update(DATE, 'BTCUSDT', { status: 'running' });
    expect(e.status).toBe('running');
    await ledger.mirrorIdle(DATE);
    expect(errors).toHaveLength(1);
    expect(String(errors[0])).toContain('disk full');
    await expect(ledger.flushMirror(DATE)).rejects.toThrow('disk full');
    expect(await store.exists(keys.runStatus(DATE))).toBe(false);

    fail = false;
    await ledger.flushMirror(DATE);
    const doc = await mirrorDoc();
    expect(doc.version).toBe(1);
    expect(doc.symbols.BTCUSDT!.status).toBe('running');

    // Another process changed Redis behind this one's back: flush still writes the fresh state.
    await make({ conn: redis2, store: flaky }).update(DATE, 'ETHUSDT', { status: 'pending' });
    await ledger.flushMirror(DATE);
    expect(Object.keys((await mirrorDoc()).symbols)).toEqual(['BTCUSDT', 'ETHUSDT']);
  });

  it('dates() lists known dates newest first; remove() forgets a date but keeps versions monotonic', async () => {
    const ledger = make();
    await ledger.update('20260110', 'A1', { status: 'pending' });
    await ledger.update('20260112', 'A1', { status: 'pending' });
    await ledger.init('20260111', [{ symbol: 'A1', status: 'pending' }]);
    expect(await ledger.dates()).toEqual(['20260112', '20260111', '20260110']);
    const v = await ledger.version('20260111');
    await ledger.mirrorIdle('20260111');
    await ledger.remove('20260111');
    expect(await ledger.dates()).toEqual(['20260112', '20260110']);
    expect(await ledger.get('20260111')).toEqual({});
    expect(await ledger.version('20260111')).toBeGreaterThan(v);
  });

  it('rejects bad dates, symbols and statuses with InputError', async () => {
    const ledger = make();
    await expect(ledger.update('2026-01-15', 'BTC', {})).rejects.toBeInstanceOf(InputError);
    await expect(ledger.update(DATE, '', {})).rejects.toBeInstanceOf(InputError);
    await expect(ledger.update(DATE, 'BTC', { status: 'done' as never })).rejects.toBeInstanceOf(InputError);
    await expect(ledger.init(DATE, [{ symbol: 'BTC', status: 'nope' as never }])).rejects.toBeInstanceOf(
      InputError,
    );
  });
});
