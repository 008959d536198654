/**
 * Shipping the inputs as one deterministic tar over a real SSH connection: skipped when the host
 * already has those bytes, resumed from a partial copy, and refused when the host's copy is not
 * what was sent.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChecksumError } from '../../../src/errors.js';
import { planInputs } from '../../../src/remote/inputs.js';
import { packFiles } from '../../../src/remote/pack.js';
import { stageRun, type StageArchive } from '../../../src/remote/runner.js';
import { HostKeyPins } from '../../../src/remote/ssh/hostKeys.js';
import { ensureDeploymentKey } from '../../../src/remote/ssh/keys.js';
import { SshTransport } from '../../../src/remote/sshTransport.js';
import type { Transport } from '../../../src/remote/transport.js';
import { sha256File } from '../../../src/util/hash.js';
import { startSshd, type SshdHandle } from '../../helpers/sshd.js';
import { cleanupTmp, makeTmp } from '../remote/fixtures.js';

let sshd: SshdHandle;
let t: SshTransport;

beforeAll(async () => {
  const home = await makeTmp();
  const key = await ensureDeploymentKey(join(home, 'keys'), 'stage');
  sshd = await startSshd({ authorizedKeys: [key.publicKey] });
  t = await SshTransport.connect({
    host: sshd.host,
    port: sshd.port,
    username: sshd.user,
    privateKey: key.privateKey,
    pins: new HostKeyPins(join(home, 'pins.json')),
  });
});

afterAll(async () => {
  await t?.close();
  await sshd?.stop();
  await cleanupTmp();
});

/** Records what was uploaded through `inner`. */
function counting(inner: Transport): { t: Transport; puts: string[] } {
  const puts: string[] = [];
  const wrapped: Transport = Object.create(inner) as Transport;
  wrapped.putFile = async (local, remote) => {
    puts.push(remote);
    await inner.putFile(local, remote);
  };
  wrapped.putData = async (data, remote, mode) => {
    puts.push(remote);
    await inner.putData(data, remote, mode);
  };
  return { t: wrapped, puts };
}

async function inputsArchive(): Promise<StageArchive> {
  const dir = await makeTmp('retrain-inputs-');
  const files = {
    'features.csv': randomBytes(300_000).toString('base64'),
    'costs.json': '{"taker_fee_bps":1}\n',
    'job.json': '{"symbol":"BTCUSDT"}\n',
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

const SCRIPT = '#!/usr/bin/env bash\necho hi\n';

describe('staging the inputs tar over ssh', () => {
  it('extracts and verifies the entries, and sends nothing the second time', async () => {
    const archive = await inputsArchive();
    const workdir = join(await makeTmp('retrain-work-'), 'BTCUSDT', 'w1');
    const first = counting(t);
    await stageRun(first.t, { workdir, files: [], archives: [archive], script: SCRIPT });
    expect(first.puts).toEqual([`${workdir}/inputs.tar`, `${workdir}/run.sh.tmp`]);
    for (const [name, sha] of Object.entries(archive.entries)) {
      expect((await sha256File(join(workdir, 'inputs', name))).sha256).toBe(sha);
    }

    const second = counting(t);
    await stageRun(second.t, { workdir, files: [], archives: [archive], script: SCRIPT });
    expect(second.puts).toEqual([]);
  });

  it('resumes a partial copy left by an interrupted upload', async () => {
    const archive = await inputsArchive();
    const workdir = join(await makeTmp('retrain-work-'), 'BTCUSDT', 'w2');
    // What an upload cut off half-way leaves on the host.
    const whole = await readFile(archive.localPath!);
    await mkdir(workdir, { recursive: true });
    await writeFile(join(workdir, 'inputs.tar.part'), whole.subarray(0, 200_000));
    const stats: unknown[] = [];
    const observing: Transport = Object.create(t) as Transport;
    observing.putFile = async (local, remote) => {
      await t.putFile(local, remote);
      stats.push({ remote, ...t.putStats.get(remote) });
    };
    await stageRun(observing, { workdir, files: [], archives: [archive], script: SCRIPT });
    // run.sh travels beside it (uploads run side by side): the tar's own record is the one.
    expect(stats.find((r) => (r as { remote: string }).remote === `${workdir}/inputs.tar`)).toEqual({
      remote: `${workdir}/inputs.tar`,
      sentBytes: whole.length - 200_000,
      resumedFrom: 200_000,
      totalBytes: whole.length,
    });
    expect((await sha256File(join(workdir, 'inputs.tar'))).sha256).toBe(archive.sha256);
  });

  it('refuses a host copy that differs from what was sent (corrupted upload)', async () => {
    const archive = await inputsArchive();
    const workdir = join(await makeTmp('retrain-work-'), 'BTCUSDT', 'w4');
    // A transport whose uploads arrive damaged: the last byte is lost on the way.
    const damaging: Transport = Object.create(t) as Transport;
    damaging.putFile = async (local, remote) => {
      await t.putFile(local, remote);
      if (remote.endsWith('inputs.tar')) await truncate(remote, (await readFile(local)).length - 1);
    };
    const err = await stageRun(damaging, { workdir, files: [], archives: [archive], script: SCRIPT }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ChecksumError);
    expect((err as Error).message).toMatch(/inputs\.tar has sha256 [0-9a-f]{64} on the host, expected/);
    // Nothing was extracted from the damaged copy and no run.sh was installed.
    await expect(readFile(join(workdir, 'inputs', 'features.csv'))).rejects.toThrow(/ENOENT/);
    await expect(readFile(join(workdir, 'run.sh'))).rejects.toThrow(/ENOENT/);
  });

  it('re-extracts when an entry on the host was altered after extraction', async () => {
    const archive = await inputsArchive();
    const workdir = join(await makeTmp('retrain-work-'), 'BTCUSDT', 'w5');
    await stageRun(t, { workdir, files: [], archives: [archive], script: SCRIPT });
    await writeFile(join(workdir, 'inputs', 'costs.json'), '{"taker_fee_bps":999}\n');
    await stageRun(t, { workdir, files: [], archives: [archive], script: SCRIPT });
    expect(await readFile(join(workdir, 'inputs', 'costs.json'), 'utf8')).toBe('{"taker_fee_bps":1}\n');
  });

  it('stages a big input as itself, verified on the host, and refuses a damaged copy of it', async () => {
    const dir = await makeTmp('retrain-inputs-');
    const big = join(dir, 'features.csv');
    await writeFile(big, randomBytes(33 * 2 ** 20));
    await writeFile(join(dir, 'job.json'), '{"symbol":"BTCUSDT"}\n');
    const planned = await planInputs(
      [
        { name: 'features.csv', path: big },
        { name: 'job.json', path: join(dir, 'job.json') },
      ],
      { tarPath: join(dir, 'inputs.tar'), tarRel: 'inputs.tar', into: 'inputs' },
    );
    const stage = (tr: Transport, workdir: string) =>
      stageRun(tr, { workdir, files: planned.files, archives: [planned.archive!], script: SCRIPT });

    const workdir = join(await makeTmp('retrain-work-'), 'BTCUSDT', 'w6');
    const first = counting(t);
    await stage(first.t, workdir);
    expect(first.puts).toEqual([
      `${workdir}/inputs/features.csv`,
      `${workdir}/inputs.tar`,
      `${workdir}/run.sh.tmp`,
    ]);
    expect((await sha256File(join(workdir, 'inputs', 'features.csv'))).sha256).toBe(
      planned.entries['features.csv'],
    );
    expect(await readFile(join(workdir, 'inputs', 'job.json'), 'utf8')).toBe('{"symbol":"BTCUSDT"}\n');
    const second = counting(t);
    await stage(second.t, workdir);
    expect(second.puts).toEqual([]);

    const damaged = join(await makeTmp('retrain-work-'), 'BTCUSDT', 'w7');
    const damaging: Transport = Object.create(t) as Transport;
    damaging.putFile = async (local, remote) => {
      await t.putFile(local, remote);
      if (remote.endsWith('features.csv')) await truncate(remote, 2 ** 20);
    };
    const err = await stage(damaging, damaged).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChecksumError);
    expect((err as Error).message).toMatch(
      /staged file inputs\/features\.csv has sha256 [0-9a-f]{64} on the host, expected/,
    );
    await expect(readFile(join(damaged, 'run.sh'))).rejects.toThrow(/ENOENT/);
  });
});
