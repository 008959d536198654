/** The recipe runner over a real SSH connection, with the connection dropped mid-run. */
import { randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TransportError } from '../../../src/errors.js';
import type { Transport } from '../../../src/remote/transport.js';
import {
  claimWorkdir,
  collectOutputs,
  followRun,
  inspectRun,
  killRun,
  startDetached,
} from '../../../src/remote/runner.js';
import { HostKeyPins } from '../../../src/remote/ssh/hostKeys.js';
import { ensureDeploymentKey } from '../../../src/remote/ssh/keys.js';
import { SshTransport } from '../../../src/remote/sshTransport.js';
import { sha256Hex } from '../../../src/util/hash.js';
import { startSshd, type SshdHandle } from '../../helpers/sshd.js';
import {
  cleanupTmp,
  followToEnd,
  makeTmp,
  processes,
  recipeYaml,
  runProcesses,
  stageOn,
  waitFor,
} from '../remote/fixtures.js';

let sshd: SshdHandle;
let t: SshTransport;

beforeAll(async () => {
  const home = await makeTmp();
  const key = await ensureDeploymentKey(join(home, 'keys'), 'runner');
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

describe('runner over ssh', () => {
  it('keeps the run going through an SSH drop and follows it to the end with the whole log', async () => {
    const step = [
      // ~6 s: still running when the drop (after "line 5" came back over SSH) is checked, on a loaded machine.
      'for i in $(seq 1 30); do echo "line $i"; sleep 0.2; done',
      'echo "RETRAIN_PROGRESS step=1 total=1"',
      'cat {{dataset}} > {{outdir}}/model.bin',
    ].join('\n');
    const { recipe, workdir } = await stageOn(t, recipeYaml({ train: step }));
    const pid = await startDetached(t, workdir);

    let logText = '';
    let dropped = false;
    let aliveAfterDrop = false;
    let interrupted = 0;
    const connectsBefore = t.connectCount;
    let res;
    for (;;) {
      try {
        res = await followRun(t, workdir, {
          pid,
          deadline: Date.now() + 30_000,
          pollMs: 100,
          logOffset: Buffer.byteLength(logText),
          onLog: async (text) => {
            logText += text;
            if (!dropped && logText.includes('line 5\n')) {
              dropped = true;
              await sshd.dropConnections();
              aliveAfterDrop = runProcesses(pid).length > 0;
            }
          },
        });
        break;
      } catch (err) {
        // A call in flight at the drop fails retryably; following again resumes at the offset.
        expect(err).toBeInstanceOf(TransportError);
        expect((err as TransportError).retryable).toBe(true);
        if (++interrupted > 3) throw err;
      }
    }
    expect(dropped).toBe(true);
    expect(aliveAfterDrop).toBe(true);
    expect(t.connectCount).toBeGreaterThan(connectsBefore);
    expect(res.exitCode).toBe(0);
    const log = await readFile(join(workdir, 'train.log'), 'utf8');
    expect(logText).toBe(log);
    expect(res.logOffset).toBe(Buffer.byteLength(log));
    for (let i = 1; i <= 30; i++) expect(log).toContain(`line ${i}\n`);

    const outs = await collectOutputs(t, workdir, await makeTmp(), recipe);
    expect(outs).toEqual([{ name: 'model.bin', sha256: sha256Hex('a,b\n1,2\n'), bytes: 8 }]);
    expect(runProcesses(pid)).toEqual([]);
  }, 30_000);

  it('claims a work dir on the host with one exec: inputs/, recipe/ and out/ inside; _2, _3 when taken, also at once', async () => {
    const root = await makeTmp('retrain-claim-');
    const now = new Date('2024-05-01T02:03:04Z');
    const first = await claimWorkdir(t, root, 'BTCUSDT', now);
    expect(first).toBe(join(root, 'BTCUSDT', '20240501_020304Z'));
    expect((await readdir(first)).sort()).toEqual(['inputs', 'out', 'recipe']);
    const [a, b] = await Promise.all([
      claimWorkdir(t, root, 'BTCUSDT', now),
      claimWorkdir(t, root, 'BTCUSDT', now),
    ]);
    expect([a, b].sort()).toEqual([`${first}_2`, `${first}_3`]);
    await writeFile(join(root, 'file'), 'not a dir');
    await expect(claimWorkdir(t, join(root, 'file'), 'BTCUSDT', now)).rejects.toThrow(
      /cannot create a work dir under .*file\/BTCUSDT/,
    );
  });

  it('killRun over ssh leaves no process of the run, also after a drop', async () => {
    const s = `${300 + (randomBytes(2).readUInt16BE(0) % 500)}.${randomBytes(2).readUInt16BE(0)}`;
    const { workdir } = await stageOn(t, recipeYaml({ train: `sleep ${s} & (sleep ${s}; true) & wait` }));
    const pid = await startDetached(t, workdir);
    await waitFor(() => processes().filter((p) => p.args === `sleep ${s}`).length === 2);
    await sshd.dropConnections();
    expect(runProcesses(pid).length).toBeGreaterThan(0);
    expect(await inspectRun(t, workdir)).toMatchObject({ pid, alive: true });
    await killRun(t, workdir, pid, 1000);
    expect(runProcesses(pid)).toEqual([]);
    expect(processes().filter((p) => p.args === `sleep ${s}`)).toEqual([]);
    expect((await inspectRun(t, workdir)).alive).toBe(false);
  }, 30_000);

  it('brings the log in the probe: a small one needs no separate read, a long one arrives whole, characters uncut', async () => {
    let reads = 0;
    let noBase64 = false;
    const counted = Object.create(t) as Transport;
    // A host without base64 answers an empty tail.
    counted.exec = (c, o) => t.exec(noBase64 ? c.replace('| base64 ', '| no-such-base64 ') : c, o);
    counted.readRange = (p, off, max) => {
      reads++;
      return t.readRange(p, off, max);
    };
    const follow = async (train: string) => {
      const { workdir } = await stageOn(t, recipeYaml({ train: `${train}; echo m > {{outdir}}/model.bin` }));
      reads = 0;
      const { res, text } = await followToEnd(counted, workdir, { pollMs: 200, deadlineMs: 30_000 });
      expect(res.exitCode).toBe(0);
      expect(text).toBe(await readFile(join(workdir, 'train.log'), 'utf8'));
      return text;
    };

    expect(await follow('echo "héllo wörld"')).toContain('héllo wörld\n');
    expect(reads).toBe(0);

    // ~150 KB of two-byte characters: more than a probe carries, so the rest is read after it, and
    // the tail's end (64 KiB from an offset the first line sets) may fall inside a character.
    const long = await follow(`s=$(printf 'é%.0s' {1..50}); for i in {1..1500}; do echo "$s"; done`);
    expect(long).not.toContain('\uFFFD');
    expect(long.split('\n').filter((l) => l === 'é'.repeat(50))).toHaveLength(1500);

    noBase64 = true;
    expect(await follow('echo "héllo wörld"')).toContain('héllo wörld\n');
    expect(reads).toBeGreaterThan(0);
  }, 60_000);
});
