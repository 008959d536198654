/**
 * The ledger mirror under a burst of changes: written at most once per interval, the latest version
 * always written last, and a change after a quiet spell written at once. The ledger side is a
 * counter in memory (the mirror only needs a snapshot and a version); the store is a real LocalStore.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LedgerMirror, pace, PACED_FROM_ENTRIES, type LedgerMirrorDoc } from '../../../src/ledger/mirror.js';
import { parseEntry, type LedgerEntry } from '../../../src/ledger/types.js';
import { keys } from '../../../src/storage/layout.js';
import { LocalStore } from '../../../src/storage/local.js';

const DATE = '20260115';

/** An entry's text as Redis holds it (Lua's cjson: an empty history is {}). */
const entry = (sym: string, over: Record<string, unknown> = {}) =>
  JSON.stringify({
    symbol: sym,
    status: 'pending',
    attempts: 0,
    costUsd: 0,
    history: {},
    updatedAt: '2026-01-15T00:00:01.000Z',
    ...over,
  });

describe('LedgerMirror', () => {
  let root: string;
  let store: LocalStore;
  let version: number;
  let writes: { version: number; at: number }[];
  let recording: LocalStore;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'mirror-'));
    store = new LocalStore(root);
    version = 0;
    writes = [];
    recording = Object.assign(Object.create(store) as LocalStore, {
      putBytes: async (key: string, data: Buffer) => {
        writes.push({
          version: (JSON.parse(data.toString()) as LedgerMirrorDoc).version,
          at: performance.now(),
        });
        return store.putBytes(key, data);
      },
    });
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const mirror = (minIntervalMs: number) =>
    new LedgerMirror({
      store: recording,
      snapshot: async () => ({ version, raw: {} }),
      version: async () => version,
      now: () => new Date(0),
      minIntervalMs,
    });

  it('writes a burst at most once per interval, ending with the latest version', async () => {
    const m = mirror(1500);
    const start = performance.now();
    for (let i = 0; i < 30; i++) {
      version++;
      m.notify(DATE, version);
      await new Promise((r) => setTimeout(r, 20));
    }
    await m.idle(DATE);
    const doc = await store.getJson<LedgerMirrorDoc>(keys.runStatus(DATE));
    expect(doc.version).toBe(30);
    expect(writes.at(-1)!.version).toBe(30);
    // 600 ms or more of changes every 20 ms: the first written at once, then one per 1.5 s, not 30.
    expect(writes[0]!.at - start).toBeLessThan(1000);
    expect(writes.length).toBeLessThanOrEqual(1 + Math.ceil((performance.now() - start) / 1500));
    for (let i = 1; i < writes.length; i++) {
      expect(writes[i]!.at - writes[i - 1]!.at).toBeGreaterThanOrEqual(1490);
      expect(writes[i]!.version).toBeGreaterThan(writes[i - 1]!.version);
    }
  });

  it('writes a change that follows a quiet spell at once, and flush() does not wait', async () => {
    const m = mirror(1500);
    version = 1;
    m.notify(DATE, 1);
    await m.idle(DATE);
    await new Promise((r) => setTimeout(r, 1600));
    version = 2;
    const t = performance.now();
    m.notify(DATE, 2);
    await m.idle(DATE);
    expect(performance.now() - t).toBeLessThan(1000);
    version = 3;
    const f = performance.now();
    await m.flush(DATE);
    expect(performance.now() - f).toBeLessThan(1000);
    expect(writes.map((w) => w.version)).toEqual([1, 2, 3]);
  });

  it('writes a large date less often, in proportion to its entries, still ending with the latest', async () => {
    // 1,000 entries at an interval of 40 ms: a write every 200 ms at most (5 intervals).
    const raw: Record<string, string> = {};
    for (let i = 0; i < 1000; i++) {
      const sym = `S${String(i).padStart(4, '0')}`;
      raw[sym] = entry(sym);
    }
    const m = new LedgerMirror({
      store: recording,
      snapshot: async () => ({ version, raw }),
      version: async () => version,
      now: () => new Date(0),
      minIntervalMs: 40,
    });
    const start = performance.now();
    while (performance.now() - start < 900) {
      version++;
      m.notify(DATE, version);
      await new Promise((r) => setTimeout(r, 10));
    }
    await m.idle(DATE);
    const doc = await store.getJson<LedgerMirrorDoc>(keys.runStatus(DATE));
    expect(doc.version).toBe(version);
    expect(Object.keys(doc.symbols)).toHaveLength(1000);
    expect(writes.at(-1)!.version).toBe(version);
    expect(writes.length).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < writes.length; i++) {
      expect(writes[i]!.at - writes[i - 1]!.at).toBeGreaterThanOrEqual(195);
    }
  });

  it('paces by the interval up to PACED_FROM_ENTRIES entries, then in proportion, up to 30 intervals', () => {
    expect(pace(1000, 0)).toBe(1000);
    expect(pace(1000, PACED_FROM_ENTRIES)).toBe(1000);
    expect(pace(1000, 1000)).toBe(5000);
    expect(pace(1000, 100_000)).toBe(30_000);
    expect(pace(0, 10_000)).toBe(0);
  });

  it('writes what printing the whole ledger would, byte for byte, as entries change, come and go', async () => {
    // What Redis holds (Lua's cjson: an empty history is {}), changed between writes.
    const raw: Record<string, string> = {};
    const errors: unknown[] = [];
    const m = new LedgerMirror({
      store: recording,
      snapshot: async () => ({ version, raw: { ...raw } }),
      version: async () => version,
      now: () => new Date(0),
      minIntervalMs: 0,
      onError: (err) => errors.push(err),
    });
    const expected = () => {
      const symbols: Record<string, LedgerEntry> = {};
      let updatedAt = '';
      for (const sym of Object.keys(raw).sort()) {
        symbols[sym] = parseEntry(raw[sym]!, sym);
        if (symbols[sym].updatedAt > updatedAt) updatedAt = symbols[sym].updatedAt;
      }
      const doc = { date: DATE, updatedAt: updatedAt || new Date(0).toISOString(), version, symbols };
      return JSON.stringify(doc, null, 2) + '\n';
    };
    const written = async () => (await store.getBytes(keys.runStatus(DATE))).toString();
    const step = async () => {
      version++;
      await m.flush(DATE);
      expect(await written()).toBe(expected());
    };

    await step(); // no symbols yet
    raw.ETHUSDT = entry('ETHUSDT');
    raw.BTCUSDT = entry('BTCUSDT', {
      status: 'running',
      attempts: 1,
      history: [{ attempt: 1, startedAt: 'x' }],
    });
    await step();
    raw.BTCUSDT = entry('BTCUSDT', {
      status: 'failed',
      attempts: 1,
      error: {
        type: 'TrainError',
        message: 'bad "quote"\nsecond line \u00e9 \u{1F4A5}',
        stack: 'at a\nat b',
      },
      history: [{ attempt: 1, startedAt: 'x', endedAt: 'y', outcome: 'failed' }],
      updatedAt: '2026-01-15T00:00:09.000Z',
    });
    raw.AAVEUSDT = entry('AAVEUSDT', { costUsd: 0.125, net_bps_after_costs: -3.5 });
    await step(); // one changed, one new, one as it was
    delete raw.ETHUSDT;
    await step(); // one gone
    raw.ETHUSDT = entry('ETHUSDT', { updatedAt: '2026-01-15T00:00:10.000Z' });
    await step(); // back, changed

    // A damaged entry fails the write (reported), and the document stays the last good one.
    const before = await written();
    raw.SOLUSDT = '{not json';
    version++;
    await expect(m.flush(DATE)).rejects.toThrow();
    expect(await written()).toBe(before);
    delete raw.SOLUSDT;
    await step();
    expect(errors).toEqual([]);
  });
});
