import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ChecksumError, StoreError } from '../../../src/errors.js';
import type { ArtifactStore } from '../../../src/storage/store.js';
import { sha256Hex } from '../../../src/util/hash.js';

export interface StoreFixture {
  store: ArtifactStore;
  cleanup(): Promise<void>;
}

/** Keys every backend must refuse, with what is wrong with them. */
export const INVALID_KEYS: [string, string][] = [
  ['', 'empty'],
  ['/abs/key', 'leading slash'],
  ['a/../b', 'dot-dot segment'],
  ['..', 'dot-dot alone'],
  ['a//b', 'empty segment'],
  ['a/b/', 'trailing slash'],
  ['./a', 'dot segment'],
  ['a\\b', 'backslash'],
  ['a\0b', 'NUL'],
];

async function expectStoreError(
  p: Promise<unknown>,
  match: string | RegExp,
  retryable = false,
): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StoreError);
  expect((err as StoreError).retryable).toBe(retryable);
  expect((err as StoreError).message).toMatch(match);
}

/**
 * The ArtifactStore contract, run against any backend: `makeStore` gives a fresh, empty store per
 * test and a cleanup that removes everything it created.
 */
export function runStoreContract(name: string, makeStore: () => Promise<StoreFixture>): void {
  describe(`ArtifactStore contract: ${name}`, () => {
    let fx: StoreFixture;
    let store: ArtifactStore;
    let scratch: string;

    beforeEach(async () => {
      fx = await makeStore();
      store = fx.store;
      scratch = await mkdtemp(join(tmpdir(), 'store-contract-'));
    });
    afterEach(async () => {
      await fx.cleanup();
      await rm(scratch, { recursive: true, force: true });
    });

    it('putBytes/getBytes round-trips text and binary, reporting sha256 and size', async () => {
      const r = await store.putBytes('a/b/text.txt', 'héllo\n');
      expect(r).toEqual({
        key: 'a/b/text.txt',
        sha256: sha256Hex('héllo\n'),
        bytes: Buffer.byteLength('héllo\n'),
      });
      expect((await store.getBytes('a/b/text.txt')).toString('utf8')).toBe('héllo\n');

      const bin = Buffer.from(Array.from({ length: 512 }, (_, i) => i % 256));
      const rb = await store.putBytes('bin/data.bin', bin);
      expect(rb.sha256).toBe(sha256Hex(bin));
      expect(Buffer.compare(await store.getBytes('bin/data.bin'), bin)).toBe(0);
    });

    it('overwrites an existing key', async () => {
      await store.putBytes('k/v', 'one');
      await store.putBytes('k/v', 'two');
      expect((await store.getBytes('k/v')).toString()).toBe('two');
      expect(await store.list('k/')).toEqual(['k/v']);
    });

    it('putJson/getJson round-trips', async () => {
      const value = { b: 1, a: [1, 'x', null, { n: 2.5 }], s: 'ü' };
      const r = await store.putJson('j/doc.json', value);
      expect(r.bytes).toBeGreaterThan(0);
      expect(await store.getJson('j/doc.json')).toEqual(value);
    });

    it('exists tells objects from missing keys and prefixes', async () => {
      expect(await store.exists('e/x.txt')).toBe(false);
      await store.putBytes('e/x.txt', 'x');
      expect(await store.exists('e/x.txt')).toBe(true);
      expect(await store.exists('e')).toBe(false);
    });

    it('list is recursive, sorted, prefix-filtered, and [] for an unknown prefix', async () => {
      const all = ['p/b/2.txt', 'p/a.txt', 'p/b/1.txt', 'p/c/d/e.txt', 'pq/z.txt', 'other/x.txt'];
      for (const k of all) await store.putBytes(k, k);
      expect(await store.list('p/')).toEqual(['p/a.txt', 'p/b/1.txt', 'p/b/2.txt', 'p/c/d/e.txt']);
      expect(await store.list('p/b/')).toEqual(['p/b/1.txt', 'p/b/2.txt']);
      expect(await store.list('p')).toEqual(['p/a.txt', 'p/b/1.txt', 'p/b/2.txt', 'p/c/d/e.txt', 'pq/z.txt']);
      expect(await store.list('p/b/1')).toEqual(['p/b/1.txt']);
      expect(await store.list('')).toEqual([...all].sort());
      expect(await store.list('nothing/here/')).toEqual([]);
    });

    it('putFile/getFile round-trip with verification', async () => {
      const src = join(scratch, 'src.bin');
      const data = Buffer.alloc(300_000, 7);
      await writeFile(src, data);
      const sha = sha256Hex(data);
      const r = await store.putFile('f/model.bin', src, sha);
      expect(r).toEqual({ key: 'f/model.bin', sha256: sha, bytes: data.length });
      const dest = join(scratch, 'out', 'model.bin');
      await store.getFile('f/model.bin', dest, sha);
      expect(sha256Hex(await readFile(dest))).toBe(sha);
    });

    it('putFile with a wrong expected sha256 throws ChecksumError naming the key and leaves nothing', async () => {
      const src = join(scratch, 'src.txt');
      await writeFile(src, 'payload');
      const err = await store.putFile('bad/obj.txt', src, 'f'.repeat(64)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ChecksumError);
      expect((err as Error).message).toContain('bad/obj.txt');
      expect(await store.exists('bad/obj.txt')).toBe(false);
      expect(await store.list('bad/')).toEqual([]);
      expect(await store.list('')).toEqual([]);
    });

    it('putBytes with the expected sha256 stores the bytes; with a wrong one it throws ChecksumError naming the key and leaves nothing', async () => {
      const data = Buffer.from('weights');
      const sha = sha256Hex(data);
      expect(await store.putBytes('held/model.bin', data, sha)).toEqual({
        key: 'held/model.bin',
        sha256: sha,
        bytes: data.length,
      });
      expect((await store.getBytes('held/model.bin')).equals(data)).toBe(true);
      const err = await store.putBytes('held/bad.bin', data, 'f'.repeat(64)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ChecksumError);
      expect((err as Error).message).toContain('held/bad.bin');
      expect(await store.list('held/')).toEqual(['held/model.bin']);
    });

    it('putFile of a missing local file fails with StoreError', async () => {
      await expectStoreError(store.putFile('x/y', join(scratch, 'nope')), /nope/);
      expect(await store.exists('x/y')).toBe(false);
    });

    it('getFile with a wrong expected sha256 throws ChecksumError and writes no file', async () => {
      await store.putBytes('g/obj', 'content');
      const dest = join(scratch, 'g.out');
      const err = await store.getFile('g/obj', dest, '0'.repeat(64)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ChecksumError);
      expect((err as Error).message).toContain('g/obj');
      await expect(readFile(dest)).rejects.toThrow();
    });

    it('copy duplicates an object; copying a missing key is a not-found StoreError', async () => {
      await store.putBytes('c/from.bin', 'copy me');
      await store.copy('c/from.bin', 'c/deep/to.bin');
      expect((await store.getBytes('c/deep/to.bin')).toString()).toBe('copy me');
      expect((await store.getBytes('c/from.bin')).toString()).toBe('copy me');
      await expectStoreError(store.copy('c/missing.bin', 'c/to2.bin'), /not found: c\/missing\.bin/);
      expect(await store.exists('c/to2.bin')).toBe(false);
    });

    it('delete removes the object and is idempotent', async () => {
      await store.putBytes('d/x', 'x');
      await store.putBytes('d/y', 'y');
      await store.delete('d/x');
      expect(await store.exists('d/x')).toBe(false);
      expect(await store.list('d/')).toEqual(['d/y']);
      await store.delete('d/x');
      await store.delete('never/was');
    });

    it('a missing key is a non-retryable StoreError "not found: <key>"', async () => {
      await expectStoreError(store.getBytes('missing/key.bin'), 'not found: missing/key.bin');
      await expectStoreError(store.getJson('missing/key.json'), 'not found: missing/key.json');
      await expectStoreError(store.getFile('missing/file', join(scratch, 'f')), 'not found: missing/file');
    });

    it.each(INVALID_KEYS)('rejects the invalid key %j (%s) everywhere', async (key) => {
      const src = join(scratch, 'src');
      await writeFile(src, 'x');
      const named = key.includes('\0')
        ? /invalid key/
        : new RegExp(`invalid key .*${escapeRe(JSON.stringify(key))}`);
      await expectStoreError(store.putBytes(key, 'x'), named);
      await expectStoreError(store.putJson(key, {}), named);
      await expectStoreError(store.putFile(key, src), named);
      await expectStoreError(store.getBytes(key), named);
      await expectStoreError(store.getFile(key, join(scratch, 'o')), named);
      await expectStoreError(store.exists(key), named);
      await expectStoreError(store.delete(key), named);
      await expectStoreError(store.copy(key, 'ok/key'), named);
      await expectStoreError(store.copy('ok/key', key), named);
      expect(() => store.locate(key)).toThrow(StoreError);
      expect(await store.list('')).toEqual([]);
    });

    it('rejects invalid list prefixes', async () => {
      await expectStoreError(store.list('/abs'), /invalid prefix/);
      await expectStoreError(store.list('a/../'), /invalid prefix/);
      await expectStoreError(store.list('a//'), /invalid prefix/);
    });
  });
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
