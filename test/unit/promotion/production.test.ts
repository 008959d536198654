import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ProductionReadError } from '../../../src/errors.js';
import type { ProductionManifest } from '../../../src/promotion/manifest.js';
import { readProduction } from '../../../src/promotion/read.js';
import { keys } from '../../../src/storage/layout.js';
import { LocalStore } from '../../../src/storage/local.js';
import { sha256Hex } from '../../../src/util/hash.js';
import { pairOf, publish, putCandidate, runProductionContract, SYM } from './production-contract.js';

runProductionContract('LocalStore', async () => {
  const root = await mkdtemp(join(tmpdir(), 'production-'));
  return { store: new LocalStore(root), cleanup: () => rm(root, { recursive: true, force: true }) };
});

describe('readProduction (LocalStore)', () => {
  let root: string;
  let store: LocalStore;
  const at = (s: number) => new Date(Date.UTC(2026, 0, 16, 0, 30, s));

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'read-production-'));
    store = new LocalStore(root);
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  it('model as bytes, skipped, or downloaded to a verified file', async () => {
    const a = await putCandidate(store, 'A', '20260115', 0.55);
    await publish(store, a, at(1));
    const skipped = (await readProduction(store, SYM, { model: 'skip' }))!;
    expect(skipped.model).toBeUndefined();
    expect(skipped.metrics).toMatchObject({ ok: true, metrics: { directionalHitRate: 0.55 } });
    expect(skipped.keys['model.bin']).toBe(
      `models/production/${SYM}/versions/${skipped.manifest.version}/model.bin`,
    );

    const toFile = join(root, 'out', 'model.bin');
    const r = (await readProduction(store, SYM, { model: { toFile } }))!;
    expect(r.modelPath).toBe(toFile);
    expect(pairOf(await readFile(toFile), r.metricsBytes)).toBe('A');
    expect(r.attempts).toBe(1);
  });

  it('reads a manifest written before versioned publishing from the top-level keys, re-reading while they are replaced', async () => {
    const a = await putCandidate(store, 'A', '20260115', 0.55);
    const b = await putCandidate(store, 'B', '20260116', 0.6);
    // an older manifest (no version/files) that names B, while the top level still holds A's files:
    // what a reader of an older deployment sees in the middle of a publish
    const legacy = {
      symbol: SYM,
      jobId: b.jobId,
      date: b.date,
      promotedAt: at(0).toISOString(),
      rule: 'higher_hit_rate',
      rulesVersion: 'v1',
      metrics: JSON.parse(b.metricsBytes.toString()) as unknown,
      sha256: { 'model.bin': sha256Hex(b.model), 'metrics.json': sha256Hex(b.metricsBytes) },
      replaced: null,
      history: null,
    };
    await store.putBytes(keys.production(SYM, 'model.bin'), a.model);
    await store.putBytes(keys.production(SYM, 'metrics.json'), b.metricsBytes);
    await store.putJson(keys.production(SYM, 'manifest.json'), legacy);

    // The publish finishes right after the reader's first read of model.bin (A's, unlike the
    // manifest): its next read must get B's.
    let replaced = false;
    const racing = Object.create(store) as LocalStore;
    racing.getBytes = async (key: string) => {
      const bytes = await store.getBytes(key);
      if (!replaced && key === keys.production(SYM, 'model.bin')) {
        replaced = true;
        await store.putBytes(keys.production(SYM, 'model.bin'), b.model);
      }
      return bytes;
    };
    const snap = (await readProduction(racing, SYM, { attempts: 8, retryDelayMs: 20 }))!;
    expect(replaced).toBe(true);
    expect(pairOf(snap.model!, snap.metricsBytes)).toBe('B');
    expect(snap.attempts).toBeGreaterThan(1);
    expect(snap.keys['model.bin']).toBe(keys.production(SYM, 'model.bin'));

    // the next publish archives that production and replaces it with a versioned one
    const out = await publish(store, a, at(5));
    expect(out.manifest).toMatchObject({ replaced: { jobId: b.jobId }, version: '20260116T003005Z' });
    expect(pairOf(await store.getBytes(`${out.manifest.history}model.bin`), b.metricsBytes)).toBe('B');
  });

  it('gives up with ProductionReadError naming the file when it never matches the manifest', async () => {
    const a = await putCandidate(store, 'A', '20260115', 0.55);
    await publish(store, a, at(1));
    const m = await store.getJson<ProductionManifest>(keys.production(SYM, 'manifest.json'));
    await store.putBytes(m.files!['model.bin'], 'damaged');
    const err = await readProduction(store, SYM, { attempts: 3, retryDelayMs: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProductionReadError);
    expect((err as ProductionReadError).retryable).toBe(false);
    expect((err as Error).message).toBe(
      `production of ${SYM} could not be read consistently after 3 attempts: model.bin (${m.files!['model.bin']}) has sha256 ${sha256Hex('damaged')}, the manifest says ${m.sha256['model.bin']}`,
    );

    await store.delete(m.files!['model.bin']);
    await expect(readProduction(store, SYM, { attempts: 1 })).rejects.toThrow(
      `after 1 attempt: model.bin is missing (${m.files!['model.bin']})`,
    );
  });

  it('refuses a manifest that is malformed, of another symbol, or points outside the symbol', async () => {
    const a = await putCandidate(store, 'A', '20260115', 0.55);
    const { manifest } = await publish(store, a, at(1));
    const key = keys.production(SYM, 'manifest.json');
    for (const [bad, message] of [
      [{ ...manifest, sha256: { 'model.bin': 'x' } }, /manifest\.json is malformed: sha256\.model\.bin/],
      [{ ...manifest, symbol: 'ETHUSDT' }, /names symbol "ETHUSDT", not BTCUSDT/],
      [
        { ...manifest, files: { ...manifest.files, 'model.bin': 'models/production/ETHUSDT/model.bin' } },
        /points model\.bin outside models\/production\/BTCUSDT\//,
      ],
    ] as const) {
      await store.putJson(key, bad);
      const err = await readProduction(store, SYM).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProductionReadError);
      expect((err as Error).message).toMatch(message);
    }
  });

  it('no manifest is no production, whatever else lies there', async () => {
    await store.putBytes(keys.production(SYM, 'model.bin'), 'stray');
    expect(await readProduction(store, SYM)).toBeNull();
  });
});
