import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, isAbsolute } from 'node:path';
import { describe, expect, it } from 'vitest';
import { StoreError } from '../../../src/errors.js';
import { createStore } from '../../../src/storage/index.js';
import { TEMP_MARKER } from '../../../src/storage/keys.js';
import { LocalStore } from '../../../src/storage/local.js';
import { IN_PLACE_MAX_BYTES } from '../../../src/util/inPlaceFs.js';
import { runStoreContract } from './store-contract.js';

runStoreContract('LocalStore', async () => {
  const root = await mkdtemp(join(tmpdir(), 'local-store-'));
  return { store: new LocalStore(root), cleanup: () => rm(root, { recursive: true, force: true }) };
});

describe('LocalStore specifics', () => {
  async function withStore(fn: (store: LocalStore, root: string) => Promise<void>): Promise<void> {
    const root = await mkdtemp(join(tmpdir(), 'local-store-'));
    try {
      await fn(new LocalStore(root), root);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  }

  it('locate gives the absolute path under the root', async () => {
    await withStore(async (store, root) => {
      expect(store.locate('a/b/c.txt')).toBe(join(root, 'a', 'b', 'c.txt'));
      expect(isAbsolute(new LocalStore('relative/root').locate('k'))).toBe(true);
    });
  });

  it('leaves no temp files behind, and list skips temp files of in-flight writes', async () => {
    await withStore(async (store, root) => {
      await store.putBytes('t/a.txt', 'a');
      const src = join(root, '..', `${root.split('/').pop()}-src`);
      await writeFile(src, 'b');
      await store.putFile('t/b.txt', src).finally(() => rm(src, { force: true }));
      await store.copy('t/a.txt', 't/c.txt');
      await store.putFile('t/bad.txt', join(root, 't', 'a.txt'), '0'.repeat(64)).catch(() => undefined);
      expect((await readdir(join(root, 't'))).sort()).toEqual(['a.txt', 'b.txt', 'c.txt']);

      await writeFile(join(root, 't', `${TEMP_MARKER}abc-d.txt`), 'partial');
      expect(await store.list('t/')).toEqual(['t/a.txt', 't/b.txt', 't/c.txt']);
    });
  });

  it('a folder removed after a put is made again by the next put into it', async () => {
    await withStore(async (store, root) => {
      await store.putBytes('gone/a.txt', 'a');
      await rm(join(root, 'gone'), { recursive: true });
      await store.putBytes('gone/b.txt', 'b');
      expect(await store.list('gone/')).toEqual(['gone/b.txt']);
      const src = join(root, 'src.txt');
      await writeFile(src, 'c');
      await rm(join(root, 'gone'), { recursive: true });
      await store.putFile('gone/c.txt', src);
      expect(await store.list('gone/')).toEqual(['gone/c.txt']);
      expect((await store.getBytes('gone/c.txt')).toString()).toBe('c');
      // A source that is missing is still told as such, not taken for a lost folder.
      await expect(store.putFile('gone/d.txt', join(root, 'nope.txt'))).rejects.toThrow(
        /source file not found/,
      );
    });
  });

  it('concurrent writers of one key leave one complete value', async () => {
    await withStore(async (store) => {
      const values = Array.from({ length: 20 }, (_, i) => String(i).repeat(10_000));
      await Promise.all(values.map((v) => store.putBytes('race/key', v)));
      expect(values).toContain((await store.getBytes('race/key')).toString());
      expect(await store.list('race/')).toEqual(['race/key']);
    });
  });

  it('objects on both sides of the in-place read bound round-trip byte for byte', async () => {
    await withStore(async (store, root) => {
      for (const size of [0, IN_PLACE_MAX_BYTES, IN_PLACE_MAX_BYTES + 1, 3 * IN_PLACE_MAX_BYTES + 17]) {
        const data = randomBytes(size);
        const put = await store.putBytes(`big/${size}.bin`, data);
        expect(put).toMatchObject({ bytes: size, sha256: createHash('sha256').update(data).digest('hex') });
        expect((await store.getBytes(`big/${size}.bin`)).equals(data)).toBe(true);
        // Given the known hash, the written file is held to it.
        await store.putBytes(`big/${size}-known.bin`, data, put.sha256);
        expect((await readFile(join(root, 'big', `${size}-known.bin`))).equals(data)).toBe(true);
      }
    });
  });

  it('a loop of reads lets timers and other I/O run (small reads are done in place)', async () => {
    await withStore(async (store) => {
      await store.putBytes('poll/k', 'x');
      let fired = false;
      setTimeout(() => (fired = true), 5);
      // Bounded: reads that never yield would spin here for good.
      for (let i = 0; i < 20_000 && !fired; i++) {
        await store.getBytes('poll/k');
        await store.exists('poll/k');
      }
      expect(fired).toBe(true);
    });
  });

  it('a key that is a folder on disk reads as not found', async () => {
    await withStore(async (store, root) => {
      await mkdir(join(root, 'dir', 'sub'), { recursive: true });
      await expect(store.getBytes('dir/sub')).rejects.toThrow('not found: dir/sub');
      expect(await store.exists('dir/sub')).toBe(false);
    });
  });

  it('putJson refuses a value JSON cannot represent', async () => {
    await withStore(async (store) => {
      await expect(store.putJson('u.json', undefined)).rejects.toBeInstanceOf(StoreError);
    });
  });

  it('getJson on invalid JSON is a non-retryable StoreError naming the key', async () => {
    await withStore(async (store) => {
      await store.putBytes('bad.json', '{nope');
      const err = await store.getJson('bad.json').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreError);
      expect((err as StoreError).retryable).toBe(false);
      expect((err as Error).message).toContain('bad.json');
    });
  });

  it('createStore builds a LocalStore from config', () => {
    const s = createStore({ kind: 'local', root: '/tmp/x' });
    expect(s).toBeInstanceOf(LocalStore);
    expect(s.kind).toBe('local');
    expect(s.locate('a/b')).toBe('/tmp/x/a/b');
  });
});
