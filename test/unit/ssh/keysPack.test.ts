import { execFileSync } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { packFiles, untarCommand } from '../../../src/remote/pack.js';
import { ensureDeploymentKey } from '../../../src/remote/ssh/keys.js';
import { sha256Hex } from '../../../src/util/hash.js';
import { cleanupTmp, makeTmp } from '../remote/fixtures.js';

afterAll(cleanupTmp);

describe('deployment keys', () => {
  it('generates an ed25519 pair once (0600 key, 0700 dir) and reuses it', async () => {
    const dir = join(await makeTmp(), 'keys');
    const a = await ensureDeploymentKey(dir, 'prod');
    expect(a.privateKeyPath).toBe(join(dir, 'prod_ed25519'));
    expect(a.publicKey).toMatch(/^ssh-ed25519 AAAA[A-Za-z0-9+/=]+ retrain-prod$/);
    expect((await stat(a.privateKeyPath)).mode & 0o777).toBe(0o600);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await readFile(`${a.privateKeyPath}.pub`, 'utf8')).trim()).toBe(a.publicKey);
    // ssh-keygen agrees the files are a pair.
    const derived = execFileSync('ssh-keygen', ['-y', '-f', a.privateKeyPath], { encoding: 'utf8' });
    expect(derived.split(' ').slice(0, 2)).toEqual(a.publicKey.split(' ').slice(0, 2));

    const b = await ensureDeploymentKey(dir, 'prod');
    expect(b.publicKey).toBe(a.publicKey);
    expect(b.privateKey.equals(a.privateKey)).toBe(true);
    const other = await ensureDeploymentKey(dir, 'staging');
    expect(other.publicKey).not.toBe(a.publicKey);
    await expect(ensureDeploymentKey(dir, '../x')).rejects.toThrow(/cannot name a key file/);
  });
});

describe('deterministic packing', () => {
  it('gives the same bytes for the same inputs whatever their order, and tar reads it', async () => {
    const d = await makeTmp();
    await writeFile(join(d, 'a.csv'), 'x,y\n1,2\n');
    await writeFile(join(d, 'b.json'), '{"k":1}\n');
    await writeFile(join(d, 'c.bin'), Buffer.alloc(70_000, 7));
    const files = [
      { name: 'inputs/features.csv', path: join(d, 'a.csv') },
      { name: 'costs.json', path: join(d, 'b.json') },
      { name: 'blob.bin', path: join(d, 'c.bin') },
    ];
    const one = await packFiles(files, join(d, 'one.tar'));
    await new Promise((r) => setTimeout(r, 20));
    const two = await packFiles([...files].reverse(), join(d, 'two.tar'));
    const bytes1 = await readFile(join(d, 'one.tar'));
    expect(bytes1.equals(await readFile(join(d, 'two.tar')))).toBe(true);
    expect(one).toEqual(two);
    expect(one).toEqual({ sha256: sha256Hex(bytes1), bytes: bytes1.length });

    const list = execFileSync('tar', ['-tvf', join(d, 'one.tar')], { encoding: 'utf8' })
      .trim()
      .split('\n');
    expect(list.map((l) => l.split(/\s+/).pop())).toEqual(['blob.bin', 'costs.json', 'inputs/features.csv']);
    for (const l of list) expect(l).toMatch(/^-rw-r--r-- 0\/0 .* 1970-01-01 00:00 /);

    const dest = join(d, 'out dir');
    execFileSync('bash', ['-c', untarCommand(join(d, 'one.tar'), dest)]);
    expect(await readFile(join(dest, 'inputs/features.csv'), 'utf8')).toBe('x,y\n1,2\n');

    await expect(packFiles([{ name: '../x', path: join(d, 'a.csv') }], join(d, 'z.tar'))).rejects.toThrow(
      /not a plain relative path/,
    );
  });

  it('packs the same bytes in memory (small inputs) as streamed (big ones)', async () => {
    const d = await makeTmp();
    await writeFile(join(d, 'a.csv'), 'x,y\n1,2\n'.repeat(40_000));
    await writeFile(join(d, 'b.json'), '{"k":1}\n');
    await writeFile(join(d, 'empty'), '');
    const files = [
      { name: 'inputs/features.csv', path: join(d, 'a.csv') },
      { name: 'costs.json', path: join(d, 'b.json') },
      { name: 'empty', path: join(d, 'empty') },
    ];
    const held = await packFiles(files, join(d, 'held.tar'));
    const streamed = await packFiles(files, join(d, 'streamed.tar'), { inMemoryBytes: 0 });
    expect(held).toEqual(streamed);
    expect((await readFile(join(d, 'held.tar'))).equals(await readFile(join(d, 'streamed.tar')))).toBe(true);
    expect(held.bytes).toBeGreaterThan(320_000);

    // Entries given as bytes in memory make the same tar, either way.
    const inMemory = await Promise.all(
      files.map(async (f) => ({ name: f.name, data: await readFile(f.path) })),
    );
    const mixed = [inMemory[0]!, files[1]!, inMemory[2]!];
    expect(await packFiles(inMemory, join(d, 'data.tar'))).toEqual(held);
    expect(await packFiles(mixed, join(d, 'mixed.tar'), { inMemoryBytes: 0 })).toEqual(held);
    expect((await readFile(join(d, 'mixed.tar'))).equals(await readFile(join(d, 'held.tar')))).toBe(true);
  });
});
