import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalProvider } from '../../../src/compute/local.js';
import { claimWorkdir } from '../../../src/remote/workdir.js';
import { CancelledError, InputError } from '../../../src/errors.js';
import type { JobSpec } from '../../../src/jobspec/types.js';
import type { LeaseInfo } from '../../../src/compute/provider.js';
import { LocalTransport } from '../../../src/remote/localTransport.js';
import { cleanupTmp, makeTmp } from './fixtures.js';

afterAll(cleanupTmp);
const spec = {} as JobSpec;

describe('LocalProvider', () => {
  it('leases this machine for free, reattaches, releases idempotently and lists nothing', async () => {
    const root = join(await makeTmp(), 'models');
    const p = new LocalProvider({ root });
    const created: LeaseInfo[] = [];
    const lease = await p.acquire(spec, {
      signal: new AbortController().signal,
      onLeaseCreated: async (i) => {
        created.push(i);
      },
    });
    expect(lease.info).toMatchObject({
      driver: 'local',
      id: 'local',
      host: 'localhost',
      workRoot: root,
      hourlyCostUsd: 0,
    });
    expect(Number.isNaN(Date.parse(lease.info.acquiredAt))).toBe(false);
    expect(created).toEqual([lease.info]);
    expect(lease.transport.kind).toBe('local');
    expect((await lease.transport.stat(root))?.isDirectory).toBe(true);

    const again = await p.reattach(lease.info);
    expect(again?.info).toEqual(lease.info);
    expect(await p.reattach({ ...lease.info, driver: 'vast' })).toBeNull();
    await p.release(lease.info);
    await p.release(lease.info);
    expect(await p.list()).toEqual([]);

    const ac = new AbortController();
    ac.abort();
    await expect(p.acquire(spec, { signal: ac.signal })).rejects.toBeInstanceOf(CancelledError);
  });
});

describe('claimWorkdir', () => {
  it('creates <root>/<SYMBOL>/<stamp> with inputs/, recipe/ and out/; _2, _3 when taken, also at once', async () => {
    const root = await makeTmp();
    const t = new LocalTransport();
    const now = new Date('2024-05-01T02:03:04Z');
    const first = await claimWorkdir(t, root, 'BTCUSDT', now);
    expect(first).toBe(join(root, 'BTCUSDT', '20240501_020304Z'));
    expect((await readdir(first)).sort()).toEqual(['inputs', 'out', 'recipe']);
    expect(await claimWorkdir(t, root, 'BTCUSDT', now)).toBe(`${first}_2`);
    // Two attempts claiming in the same second never share a dir.
    const [a, b] = await Promise.all([
      claimWorkdir(t, root, 'BTCUSDT', now),
      claimWorkdir(t, root, 'BTCUSDT', now),
    ]);
    expect([a, b].sort()).toEqual([`${first}_3`, `${first}_4`]);
    await expect(claimWorkdir(t, root, '../etc', now)).rejects.toBeInstanceOf(InputError);
    await expect(claimWorkdir(t, root, 'a/b', now)).rejects.toBeInstanceOf(InputError);
  });

  it('says why when the work root cannot be written', async () => {
    const root = join(await makeTmp(), 'file');
    await writeFile(root, 'not a dir');
    await expect(claimWorkdir(new LocalTransport(), root, 'BTCUSDT', new Date())).rejects.toThrow(
      /cannot create a work dir under .*file\/BTCUSDT/,
    );
  });
});
