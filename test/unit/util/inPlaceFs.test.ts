import { execFileSync } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ensureDir,
  IN_PLACE_MAX_BYTES,
  readAtInPlace,
  readSmallInPlace,
  removeIfPresent,
  withFileInPlace,
  writeAndClose,
} from '../../../src/util/inPlaceFs.js';

const roots: string[] = [];
async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'in-place-'));
  roots.push(d);
  return d;
}
afterAll(() => Promise.all(roots.map((d) => rm(d, { recursive: true, force: true }))));

describe('reads in place', () => {
  it('reads a whole small file, an empty one, and leaves a file over the bound to the pool (null)', async () => {
    const d = await tmp();
    await writeFile(join(d, 'small'), 'hello');
    await writeFile(join(d, 'empty'), '');
    await writeFile(join(d, 'at-bound'), Buffer.alloc(IN_PLACE_MAX_BYTES, 7));
    await writeFile(join(d, 'over'), Buffer.alloc(IN_PLACE_MAX_BYTES + 1, 7));
    expect(readSmallInPlace(join(d, 'small'))?.toString()).toBe('hello');
    expect(readSmallInPlace(join(d, 'empty'))?.length).toBe(0);
    expect(readSmallInPlace(join(d, 'at-bound'))?.equals(Buffer.alloc(IN_PLACE_MAX_BYTES, 7))).toBe(true);
    expect(readSmallInPlace(join(d, 'over'))).toBeNull();
  });

  it('throws the system error for a missing file, and closes what it opened', async () => {
    const d = await tmp();
    expect(() => readSmallInPlace(join(d, 'missing'))).toThrow(/ENOENT/);
    const before = (await readdir('/proc/self/fd')).length;
    await writeFile(join(d, 'f'), 'x');
    for (let i = 0; i < 50; i++) {
      expect(() =>
        withFileInPlace(join(d, 'f'), () => {
          throw new Error('used badly');
        }),
      ).toThrow('used badly');
    }
    expect((await readdir('/proc/self/fd')).length).toBeLessThanOrEqual(before + 2);
  });

  it('leaves what is not a regular file to the pool: a directory, a pipe with no writer (without waiting)', async () => {
    const d = await tmp();
    expect(readSmallInPlace(d)).toBeNull();
    execFileSync('mkfifo', [join(d, 'pipe')]);
    expect(readSmallInPlace(join(d, 'pipe'))).toBeNull();
    expect(withFileInPlace(join(d, 'pipe'), () => 'used')).toBeUndefined();
  });

  it('reads a range from an offset, short at the end of the file', async () => {
    const d = await tmp();
    await writeFile(join(d, 'f'), 'abcdefghij');
    expect(withFileInPlace(join(d, 'f'), (fd, size) => [size, readAtInPlace(fd, 3, 4).toString()])).toEqual([
      10,
      'defg',
    ]);
    expect(withFileInPlace(join(d, 'f'), (fd) => readAtInPlace(fd, 8, 10).toString())).toBe('ij');
    expect(withFileInPlace(join(d, 'f'), (fd) => readAtInPlace(fd, 20, 5).length)).toBe(0);
  });
});

describe('changes through the pool', () => {
  it('ensureDir makes a missing directory with its parents and leaves one that is there', async () => {
    const d = await tmp();
    await ensureDir(join(d, 'a/b/c'));
    expect((await lstat(join(d, 'a/b/c'))).isDirectory()).toBe(true);
    await writeFile(join(d, 'a/b/c/kept'), 'x');
    await ensureDir(join(d, 'a/b/c'));
    expect(await readdir(join(d, 'a/b/c'))).toEqual(['kept']);
    // A file in the way is an error, as mkdir -p gives.
    await writeFile(join(d, 'file'), 'x');
    await expect(ensureDir(join(d, 'file'))).rejects.toThrow(/EEXIST|ENOTDIR/);
  });

  it('removeIfPresent removes a tree, a dangling link, and nothing when there is nothing', async () => {
    const d = await tmp();
    await mkdir(join(d, 'tree/deep'), { recursive: true });
    await writeFile(join(d, 'tree/deep/f'), 'x');
    await symlink(join(d, 'nowhere'), join(d, 'dangling'));
    await removeIfPresent(join(d, 'tree'));
    await removeIfPresent(join(d, 'dangling'));
    await removeIfPresent(join(d, 'never-made'));
    expect(await readdir(d)).toEqual([]);
  });

  it('writeAndClose makes a new file with its mode, refuses one that is there, and appends', async () => {
    const d = await tmp();
    const big = Buffer.alloc(3 * 1024 * 1024 + 7, 'a');
    await writeAndClose(join(d, 'run.sh'), big, 'wx', 0o700);
    expect((await readFile(join(d, 'run.sh'))).equals(big)).toBe(true);
    expect((await stat(join(d, 'run.sh'))).mode & 0o777).toBe(0o700 & ~process.umask());
    // 'wx' never writes over a file (or through a link) that is there.
    await symlink(join(d, 'target'), join(d, 'link'));
    await expect(writeAndClose(join(d, 'run.sh'), Buffer.from('x'), 'wx')).rejects.toThrow(/EEXIST/);
    await expect(writeAndClose(join(d, 'link'), Buffer.from('x'), 'wx')).rejects.toThrow(/EEXIST/);
    expect(await readdir(d)).toEqual(['link', 'run.sh']);

    await writeAndClose(join(d, 'log'), Buffer.from('one\n'), 'a');
    await writeAndClose(join(d, 'log'), Buffer.from('two\n'), 'a');
    expect(await readFile(join(d, 'log'), 'utf8')).toBe('one\ntwo\n');
    await expect(writeAndClose(join(d, 'no/such/dir'), Buffer.from('x'), 'a')).rejects.toThrow(/ENOENT/);
  });

  it('writeAndClose closes what it opened, on success and on failure', async () => {
    const d = await tmp();
    const before = (await readdir('/proc/self/fd')).length;
    for (let i = 0; i < 40; i++) {
      await writeAndClose(join(d, `f${i}`), Buffer.from('x'), 'wx');
      await expect(writeAndClose(join(d, `f${i}`), Buffer.from('x'), 'wx')).rejects.toThrow(/EEXIST/);
    }
    expect((await readdir('/proc/self/fd')).length).toBeLessThanOrEqual(before + 2);
  });
});
