import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { CancelledError, TransportError } from '../../../src/errors.js';
import { LocalTransport } from '../../../src/remote/localTransport.js';
import { IN_PLACE_MAX_BYTES } from '../../../src/util/inPlaceFs.js';
import { cleanupTmp, makeTmp, processes, waitFor } from './fixtures.js';

afterAll(cleanupTmp);
const t = new LocalTransport();

describe('LocalTransport.exec', () => {
  it('returns code, stdout and stderr, with extra env', async () => {
    const r = await t.exec('echo "out $RT_X"; echo err >&2; exit 3', { env: { RT_X: 'v' } });
    expect(r).toEqual({ code: 3, stdout: 'out v\n', stderr: 'err\n' });
  });

  it('keeps at most maxOutputBytes of output', async () => {
    const r = await t.exec('head -c 100000 /dev/zero | tr "\\0" a', { maxOutputBytes: 1000 });
    expect(r.code).toBe(0);
    expect(r.stdout.length).toBe(1000);
  });

  it('kills the whole command tree on timeout', async () => {
    const marker = `29${randomBytes(3).readUIntBE(0, 3) % 1000}.5`;
    const started = Date.now();
    await expect(t.exec(`sleep ${marker} & sleep ${marker} & wait`, { timeoutMs: 300 })).rejects.toThrow(
      TransportError,
    );
    expect(Date.now() - started).toBeLessThan(5000);
    await waitFor(() => !processes().some((p) => p.args.includes(`sleep ${marker}`)), 3000);
  });

  it('rejects with CancelledError when aborted, before or during the command', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    await expect(t.exec('sleep 10', { signal: ac.signal })).rejects.toBeInstanceOf(CancelledError);
    await expect(t.exec('true', { signal: ac.signal })).rejects.toBeInstanceOf(CancelledError);
  });
});

describe('LocalTransport files', () => {
  it('puts, gets, stats, reads ranges and makes dirs', async () => {
    const dir = await makeTmp();
    const src = join(dir, 'src.bin');
    await writeFile(src, 'hello world');
    await t.mkdirp(join(dir, 'a/b/c'));
    await t.putFile(src, join(dir, 'a/b/c/remote.bin'));
    await t.getFile(join(dir, 'a/b/c/remote.bin'), join(dir, 'back/local.bin'));
    expect(await readFile(join(dir, 'back/local.bin'), 'utf8')).toBe('hello world');

    expect(await t.stat(join(dir, 'a/b/c/remote.bin'))).toMatchObject({ size: 11, isDirectory: false });
    expect(await t.stat(join(dir, 'a'))).toMatchObject({ isDirectory: true });
    expect(await t.stat(join(dir, 'missing'))).toBeNull();

    expect((await t.readRange(src, 6, 3)).toString()).toBe('wor');
    expect((await t.readRange(src, 6, 100)).toString()).toBe('world');
    expect((await t.readRange(src, 50, 10)).length).toBe(0);
    await expect(t.readRange(join(dir, 'missing'), 0, 10)).rejects.toBeInstanceOf(TransportError);
    await expect(t.putFile(join(dir, 'missing'), join(dir, 'x'))).rejects.toBeInstanceOf(TransportError);
    // A missing source is an error whether or not the local dir had to be made.
    await expect(t.getFile(join(dir, 'missing'), join(dir, 'back/x'))).rejects.toThrow(/local get failed/);
    await expect(t.getFile(join(dir, 'missing'), join(dir, 'new/x'))).rejects.toThrow(/local get failed/);
    await t.getFile(src, join(dir, 'back/again.bin'));
    expect(await readFile(join(dir, 'back/again.bin'), 'utf8')).toBe('hello world');
  });

  it('writes bytes from memory with their mode and reads a whole file only within the bound', async () => {
    const dir = await makeTmp();
    const to = join(dir, 'run.sh.tmp');
    await writeFile(to, 'an older copy, longer than the new one');
    await t.putData(Buffer.from('echo hi\n'), to, 0o600);
    expect(await readFile(to, 'utf8')).toBe('echo hi\n');
    expect((await stat(to)).mode & 0o777).toBe(0o600);
    await t.putData(Buffer.alloc(0), join(dir, 'empty'));
    expect((await stat(join(dir, 'empty'))).size).toBe(0);
    // No temp file is left beside either, and a missing dir is an error that names the file.
    expect((await readdir(dir)).sort()).toEqual(['empty', 'run.sh.tmp']);
    await expect(t.putData(Buffer.from('x'), join(dir, 'no/dir/f'))).rejects.toThrow(
      /local put failed for .*no\/dir\/f: ENOENT/,
    );

    expect((await t.readWhole(to, 8))?.toString()).toBe('echo hi\n');
    expect(await t.readWhole(to, 7)).toBeNull();
    expect((await t.readWhole(join(dir, 'empty'), 0))?.length).toBe(0);
    await expect(t.readWhole(join(dir, 'missing'), 10)).rejects.toBeInstanceOf(TransportError);
    await expect(t.readWhole(dir, 1 << 20)).rejects.toThrow(/local read failed .*EISDIR/);
  });

  it('reads files on both sides of the in-place bound the same way (ranges, whole, the bound)', async () => {
    const dir = await makeTmp();
    const big = randomBytes(IN_PLACE_MAX_BYTES + 4099);
    const path = join(dir, 'big.bin');
    await writeFile(path, big);
    expect((await t.readWhole(path, big.length))?.equals(big)).toBe(true);
    expect(await t.readWhole(path, big.length - 1)).toBeNull();
    expect((await t.readRange(path, 0, big.length + 10)).equals(big)).toBe(true);
    expect(
      (await t.readRange(path, 5, IN_PLACE_MAX_BYTES)).equals(big.subarray(5, 5 + IN_PLACE_MAX_BYTES)),
    ).toBe(true);
    expect(
      (await t.readRange(path, 17, IN_PLACE_MAX_BYTES + 1)).equals(big.subarray(17, 18 + IN_PLACE_MAX_BYTES)),
    ).toBe(true);
    expect((await t.readRange(path, big.length - 3, 100)).equals(big.subarray(-3))).toBe(true);
    await t.putData(big, join(dir, 'copy.bin'));
    expect((await readFile(join(dir, 'copy.bin'))).equals(big)).toBe(true);
  });

  it('a loop of small reads lets timers run (they are done in place)', async () => {
    const dir = await makeTmp();
    await writeFile(join(dir, 'log'), 'line\n');
    let fired = false;
    setTimeout(() => (fired = true), 5);
    // Bounded: reads that never yield would spin here for good.
    for (let i = 0; i < 20_000 && !fired; i++) {
      await t.readRange(join(dir, 'log'), 0, 100);
      await t.readWhole(join(dir, 'log'), 100);
      await t.stat(join(dir, 'log'));
    }
    expect(fired).toBe(true);
  });
});
