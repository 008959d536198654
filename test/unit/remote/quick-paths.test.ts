/**
 * The runner's quick paths: a run that ends at once is seen at once (the first polls come sooner
 * than pollMs), and staging hashes big inputs on the host with openssl when it is there and with
 * sha256sum when it is not (small ones always with one sha256sum), with the same checks either way.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ChecksumError } from '../../../src/errors.js';
import { LocalTransport } from '../../../src/remote/localTransport.js';
import { packFiles } from '../../../src/remote/pack.js';
import { followRun, stageRun, startDetached, type StageArchive } from '../../../src/remote/runner.js';
import type { Transport } from '../../../src/remote/transport.js';
import { sha256File } from '../../../src/util/hash.js';
import { cleanupTmp, makeTmp, prepareRun, recipeYaml } from './fixtures.js';

afterAll(cleanupTmp);

describe('following a run that ends at once', () => {
  it('returns without waiting a whole pollMs', async () => {
    const r = await prepareRun(recipeYaml({ train: 'echo m > {{outdir}}/model.bin' }));
    const pid = await startDetached(r.t, r.workdir);
    // With pollMs a minute, only the quicker first polls can end this within the test's 20 s.
    const res = await followRun(r.t, r.workdir, { pid, deadline: Date.now() + 300_000, pollMs: 60_000 });
    expect(res.exitCode).toBe(0);
  }, 20_000);
});

/** A PATH holding only what staging needs on a host; openssl, when asked, logs its calls to `log`. */
async function hostPath(openssl: { log: string } | null): Promise<string> {
  const bin = await makeTmp('retrain-bin-');
  for (const tool of ['bash', 'mkdir', 'sha256sum', 'tar', 'chmod', 'mv']) {
    const found = ['/usr/bin', '/bin'].map((d) => join(d, tool)).find((f) => existsSync(f));
    if (!found) throw new Error(`${tool} not found in /usr/bin or /bin`);
    await symlink(found, join(bin, tool));
  }
  if (openssl) {
    const real = ['/usr/bin/openssl', '/bin/openssl'].find((f) => existsSync(f));
    if (!real) throw new Error('openssl not found in /usr/bin or /bin');
    await writeFile(
      join(bin, 'openssl'),
      `#!${join(bin, 'bash')}\nprintf '%s\\n' "$*" >> ${openssl.log}\nexec ${real} "$@"\n`,
      { mode: 0o755 },
    );
  }
  return bin;
}

/** An inputs tar of two entries, the features file `bytes` long. */
async function inputsArchive(bytes: number): Promise<StageArchive> {
  const dir = await makeTmp('retrain-inputs-');
  const row = 'a,b,c,d,e,f,g\n';
  const files: Record<string, string> = {
    'features.csv': row.repeat(Math.ceil(bytes / row.length)).slice(0, bytes),
    'costs.json': '{}\n',
  };
  const entries: Record<string, string> = {};
  for (const [name, text] of Object.entries(files)) {
    await writeFile(join(dir, name), text);
    entries[name] = (await sha256File(join(dir, name))).sha256;
  }
  const tar = join(dir, 'inputs.tar');
  const packed = await packFiles(
    Object.keys(files).map((name) => ({ name, path: join(dir, name) })),
    tar,
  );
  return { localPath: tar, remoteRel: 'inputs.tar', sha256: packed.sha256, into: 'inputs', entries };
}

const SCRIPT = '#!/usr/bin/env bash\n';
const BIG = 40 * 1024 * 1024;

async function expectStaged(workdir: string, archive: StageArchive): Promise<void> {
  for (const [name, sha] of Object.entries(archive.entries)) {
    expect((await sha256File(join(workdir, 'inputs', name))).sha256).toBe(sha);
  }
}

describe('hashing on the host while staging', () => {
  it('uses openssl for big inputs where the host has it, one sha256sum for small ones', async () => {
    const log = join(await makeTmp('retrain-log-'), 'openssl.log');
    await writeFile(log, '');
    const t = new LocalTransport({ baseEnv: { PATH: await hostPath({ log }) } });

    const small = await inputsArchive(10_000);
    const w1 = join(await makeTmp('retrain-work-'), 'BTCUSDT', 'w1');
    await stageRun(t, { workdir: w1, files: [], archives: [small], script: SCRIPT });
    await expectStaged(w1, small);
    expect(await readFile(log, 'utf8')).toBe('');

    const big = await inputsArchive(BIG);
    const w2 = join(await makeTmp('retrain-work-'), 'BTCUSDT', 'w2');
    await stageRun(t, { workdir: w2, files: [], archives: [big], script: SCRIPT });
    await expectStaged(w2, big);
    expect(await readFile(log, 'utf8')).toContain('dgst -sha256 -r inputs.tar');
  }, 60_000);

  it('falls back to sha256sum without openssl: extracts good inputs and refuses a damaged upload', async () => {
    const t = new LocalTransport({ baseEnv: { PATH: await hostPath(null) } });
    expect((await t.exec('command -v openssl')).code).not.toBe(0);

    const archive = await inputsArchive(BIG);
    const workdir = join(await makeTmp('retrain-work-'), 'BTCUSDT', 'w1');
    await stageRun(t, { workdir, files: [], archives: [archive], script: SCRIPT });
    await expectStaged(workdir, archive);

    const damaged = join(await makeTmp('retrain-work-'), 'BTCUSDT', 'w2');
    await mkdir(damaged, { recursive: true });
    const damaging: Transport = Object.create(t) as Transport;
    damaging.putFile = async (local, remote) => {
      await t.putFile(local, remote);
      if (remote.endsWith('inputs.tar')) await truncate(remote, (await stat(local)).size - 1);
    };
    const err = await stageRun(damaging, {
      workdir: damaged,
      files: [],
      archives: [archive],
      script: SCRIPT,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChecksumError);
    expect((err as Error).message).toMatch(/inputs\.tar has sha256 [0-9a-f]{64} on the host, expected/);
    await expect(readFile(join(damaged, 'inputs', 'features.csv'))).rejects.toThrow(/ENOENT/);
  }, 60_000);
});
