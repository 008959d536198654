import { describe, expect, it } from 'vitest';
import { FEATURES_V1_HEADER } from '../../../src/data/features.js';
import { checkReadiness, ensureFeatures } from '../../../src/data/readiness.js';
import { generateOhlcv, ohlcvToCsv } from '../../../src/data/synthetic.js';
import { InputError, StoreError } from '../../../src/errors.js';
import { keys } from '../../../src/storage/layout.js';
import type { ArtifactStore, PutResult } from '../../../src/storage/store.js';
import { sha256Hex } from '../../../src/util/hash.js';

/** In-memory stand-in for the artifact store; counts writes per key. */
class MemoryStore implements ArtifactStore {
  readonly kind = 'local' as const;
  readonly objects = new Map<string, Buffer>();
  readonly puts: string[] = [];
  locate(key: string): string {
    return `mem://${key}`;
  }
  async putBytes(key: string, data: Buffer | string): Promise<PutResult> {
    const buf = Buffer.from(data);
    this.objects.set(key, buf);
    this.puts.push(key);
    return { key, sha256: sha256Hex(buf), bytes: buf.length };
  }
  async putJson(key: string, value: unknown): Promise<PutResult> {
    return this.putBytes(key, JSON.stringify(value));
  }
  async putFile(): Promise<PutResult> {
    throw new Error('not used');
  }
  async getBytes(key: string): Promise<Buffer> {
    const buf = this.objects.get(key);
    if (!buf) throw new StoreError(`no such key: ${key}`, { retryable: false });
    return buf;
  }
  async getJson<T>(key: string): Promise<T> {
    return JSON.parse((await this.getBytes(key)).toString('utf8')) as T;
  }
  async getFile(): Promise<void> {
    throw new Error('not used');
  }
  async exists(key: string): Promise<boolean> {
    return this.objects.has(key);
  }
  async list(prefix: string): Promise<string[]> {
    return [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort();
  }
  async copy(from: string, to: string): Promise<void> {
    await this.putBytes(to, await this.getBytes(from));
  }
  async delete(key: string): Promise<void> {
    this.objects.delete(key);
  }
}

const DATE = '20260115';

describe('checkReadiness', () => {
  it('is not ready without a features file, naming where it looked', async () => {
    const store = new MemoryStore();
    const r = await checkReadiness(store, 'v1', 'BTCUSDT', DATE);
    expect(r).toEqual({
      ready: false,
      key: 'datasets/v1/BTCUSDT/20260115/features.csv',
      reason: 'no features at mem://datasets/v1/BTCUSDT/20260115/features.csv',
    });
  });

  it('is ready with the sha256 and size of the stored file', async () => {
    const store = new MemoryStore();
    const key = keys.features('v2', 'ETHUSDT', DATE);
    await store.putBytes(key, 'ts,close\n1,2\n');
    expect(await checkReadiness(store, 'v2', 'ETHUSDT', DATE)).toEqual({
      ready: true,
      key,
      sha256: sha256Hex('ts,close\n1,2\n'),
      bytes: 13,
    });
  });
});

describe('ensureFeatures', () => {
  it('builds once: synthetic bars, then features; a second call reuses them', async () => {
    const store = new MemoryStore();
    const first = await ensureFeatures(store, 'v1', 'BTCUSDT', DATE);
    expect(first.built).toBe(true);
    expect(first.key).toBe(keys.features('v1', 'BTCUSDT', DATE));
    expect(store.puts).toEqual([keys.market('BTCUSDT', DATE), first.key]);
    const csv = (await store.getBytes(first.key)).toString('utf8');
    expect(csv.split('\n')[0]).toBe(FEATURES_V1_HEADER.join(','));
    expect(first.sha256).toBe(sha256Hex(csv));
    expect(first.bytes).toBe(Buffer.byteLength(csv));

    const second = await ensureFeatures(store, 'v1', 'BTCUSDT', DATE);
    expect(second).toEqual({ ...first, built: false });
    expect(store.puts).toHaveLength(2);
    expect(await checkReadiness(store, 'v1', 'BTCUSDT', DATE)).toMatchObject({
      ready: true,
      sha256: first.sha256,
    });
  });

  it('is deterministic across stores', async () => {
    const a = await ensureFeatures(new MemoryStore(), 'v1', 'SOLUSDT', DATE);
    const b = await ensureFeatures(new MemoryStore(), 'v1', 'SOLUSDT', DATE);
    expect(a.sha256).toBe(b.sha256);
  });

  it('uses raw bars already in the store instead of generating them', async () => {
    const store = new MemoryStore();
    const bars = generateOhlcv('XRPUSDT', DATE, { lookbackDays: 10 });
    await store.putBytes(keys.market('XRPUSDT', DATE), ohlcvToCsv(bars));
    const r = await ensureFeatures(store, 'v1', 'XRPUSDT', DATE);
    const rows = (await store.getBytes(r.key)).toString('utf8').trimEnd().split('\n').length - 1;
    expect(rows).toBe(10 * 24 - 168 - 1);
  });

  it('reports bad stored raw bars as InputError naming the key', async () => {
    const store = new MemoryStore();
    await store.putBytes(keys.market('XRPUSDT', DATE), 'ts,open,high,low,close,volume\n1,2,3\n');
    await expect(ensureFeatures(store, 'v1', 'XRPUSDT', DATE)).rejects.toThrow(
      /mem:\/\/market\/XRPUSDT\/20260115\/ohlcv\.csv: OHLCV CSV line 2/,
    );
  });

  it('rejects an unknown featureset when it has to build', async () => {
    const store = new MemoryStore();
    const err = await ensureFeatures(store, 'v9', 'BTCUSDT', DATE).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toMatch(/unknown featureset "v9"/);
    expect(store.puts).toEqual([]);
  });

  it('returns existing features of any featureset without building', async () => {
    const store = new MemoryStore();
    await store.putBytes(keys.features('custom', 'BTCUSDT', DATE), 'x');
    expect(await ensureFeatures(store, 'custom', 'BTCUSDT', DATE)).toMatchObject({ built: false, bytes: 1 });
  });
});
