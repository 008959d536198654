/**
 * The ledger mirror under a burst of changes: written at most once per interval, the latest version
 * always written last, and a change after a quiet spell written at once. The ledger side is a
 * counter in memory (the mirror only needs a snapshot and a version); the store is a real LocalStore.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LedgerMirror, type LedgerMirrorDoc } from '../../../src/ledger/mirror.js';
import { keys } from '../../../src/storage/layout.js';
import { LocalStore } from '../../../src/storage/local.js';

const DATE = '20260115';

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
      putJson: async (key: string, value: unknown) => {
        writes.push({ version: (value as LedgerMirrorDoc).version, at: performance.now() });
        return store.putJson(key, value);
      },
    });
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const mirror = (minIntervalMs: number) =>
    new LedgerMirror({
      store: recording,
      snapshot: async () => ({ version, entries: {} }),
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
});
