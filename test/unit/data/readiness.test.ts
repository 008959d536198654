import { describe, expect, it } from 'vitest';
import { checkReadiness } from '../../../src/data/readiness.js';
import { StoreError } from '../../../src/errors.js';
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
