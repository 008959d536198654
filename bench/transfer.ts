/**
 * Transfer: a dataset of BENCH_TRANSFER_MB MiB (default 1024, four files of random bytes) to a
 * loopback sshd. Ours, as a training's inputs travel: SHA-256 of each file, packFiles (one
 * deterministic tar), then stageRun over SshTransport (upload by SFTP, SHA-256 of the tar on the
 * host, extraction, SHA-256 of every entry on the host). Beside it, in the same run, with the same
 * key and sshd: `scp -r` and `tar cf - | ssh host tar xf -`. Then an upload cut off part-way (the
 * sshd's connections killed) and resumed: how many bytes the second try sends against what was
 * missing.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startSshd, type SshdHandle } from '../test/helpers/sshd.js';
import { packFiles } from '../src/remote/pack.js';
import { stageRun, type StageArchive } from '../src/remote/stage.js';
import { SshTransport } from '../src/remote/sshTransport.js';
import { sha256File } from '../src/util/hash.js';
import {
  figures,
  machineLine,
  round,
  say,
  sleep,
  world,
  benchRedisUrl,
  stopPrivateRedis,
} from './lib/world.js';

const run = promisify(execFile);
const FILES = 4;

async function writeRandom(path: string, bytes: number): Promise<void> {
  const out = createWriteStream(path);
  const chunk = 4 * 2 ** 20;
  for (let left = bytes; left > 0; left -= chunk) {
    if (!out.write(randomBytes(Math.min(chunk, left)))) await once(out, 'drain');
  }
  await new Promise<void>((res, rej) => out.end((err?: Error | null) => (err ? rej(err) : res())));
}

/** Runs `cmd` with bash; rejects with its stderr on a non-zero exit. */
function sh(cmd: string): Promise<void> {
  return new Promise((res, rej) => {
    const child = spawn('bash', ['-c', cmd], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('close', (code) =>
      code === 0 ? res() : rej(new Error(`${cmd.slice(0, 80)}...: ${err.trim()}`)),
    );
  });
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

export async function transfer(): Promise<void> {
  const mb = Number(process.env.BENCH_TRANSFER_MB ?? 1024);
  const total = mb * 2 ** 20;
  say(machineLine());
  const w = await world('transfer', await benchRedisUrl());
  let sshd: SshdHandle | undefined;
  try {
    const keyPath = join(w.home, 'bench_ed25519');
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'retrain-bench', '-f', keyPath]);
    // SHLVL=1: the login shell skips root's ~/.bashrc (see bench/overhead.ts); the same for every tool.
    sshd = await startSshd({
      authorizedKeys: [await readFile(`${keyPath}.pub`, 'utf8')],
      extraConfig: ['SetEnv SHLVL=1'],
    });
    const { host, port, user } = sshd;
    const sshOpts =
      `-i ${keyPath} -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null ` +
      `-o LogLevel=ERROR`;
    const dataset = join(w.home, 'dataset');
    const remote = join(w.home, 'remote');
    await mkdir(dataset, { recursive: true });
    await mkdir(remote, { recursive: true });
    const files = Array.from({ length: FILES }, (_, i) => ({
      name: `part-${i}.bin`,
      path: join(dataset, `part-${i}.bin`),
    }));
    for (const f of files) await writeRandom(f.path, total / FILES);
    say(`transfer: ${mb} MiB in ${FILES} files to sshd on ${host}:${port}; ssh client ${await sshVersion()}`);

    const t = await SshTransport.connect({
      host,
      port,
      username: user,
      privateKey: await readFile(keyPath),
    });
    try {
      // Ours: hash the inputs, pack, upload, verify and extract on the host.
      const tarPath = join(w.home, 'inputs.tar');
      let packS = 0;
      let stageS = 0;
      const oursS = await timed(async () => {
        let archive: StageArchive | undefined;
        packS = await timed(async () => {
          const entries: Record<string, string> = {};
          for (const f of files) entries[f.name] = (await sha256File(f.path)).sha256;
          const packed = await packFiles(files, tarPath);
          archive = {
            localPath: tarPath,
            remoteRel: 'inputs.tar',
            sha256: packed.sha256,
            into: 'inputs',
            entries,
          };
        });
        stageS = await timed(() =>
          stageRun(t, {
            workdir: join(remote, 'ours'),
            files: [],
            archives: [archive!],
            script: '#!/usr/bin/env bash\n',
          }),
        );
      });
      say(
        `ours (sha256 + pack + upload + verify + extract + verify): ${round(oursS, 2)} s, ` +
          `${round(mb / oursS)} MiB/s (hash + pack ${round(packS, 2)} s, stage ${round(stageS, 2)} s)`,
      );
      await rm(join(remote, 'ours'), { recursive: true, force: true });

      const scpS = await timed(() =>
        sh(`scp -q -r -P ${port} ${sshOpts} ${dataset} ${user}@${host}:${join(remote, 'scp')}`),
      );
      say(`scp -r: ${round(scpS, 2)} s, ${round(mb / scpS)} MiB/s`);
      await rm(join(remote, 'scp'), { recursive: true, force: true });

      const dest = join(remote, 'tarssh');
      const tarS = await timed(() =>
        sh(
          `tar cf - -C ${dataset} . | ssh -p ${port} ${sshOpts} ${user}@${host} ` +
            `'mkdir -p ${dest} && tar xf - -C ${dest}'`,
        ),
      );
      say(`tar cf - | ssh host tar xf -: ${round(tarS, 2)} s, ${round(mb / tarS)} MiB/s`);
      await rm(dest, { recursive: true, force: true });

      const best = Math.min(scpS, tarS);
      const ratio = best / oursS;
      say(`ours against the best of the two: ${round(ratio, 2)} of its speed (target >= 0.8)`);

      // An upload cut off a quarter in (the connection closed under it, as when a worker dies; a mere
      // network drop is retried inside putFile, resuming the same way), then resumed by a new one.
      const target = join(remote, 'resume', 'inputs.tar');
      await mkdir(join(remote, 'resume'), { recursive: true });
      const connect = async () =>
        SshTransport.connect({ host, port, username: user, privateKey: await readFile(keyPath) });
      const cut = await connect();
      const first = cut.putFile(tarPath, target).then(
        () => 'finished',
        (err: Error) => err.message,
      );
      const tarBytes = (await stat(tarPath)).size;
      for (;;) {
        const part = await stat(`${target}.part`).catch(() => null);
        if ((part?.size ?? 0) >= tarBytes / 4) break;
        await sleep(2);
      }
      await cut.close();
      const outcome = await first;
      if (outcome === 'finished') throw new Error('the upload finished before it could be cut off');
      await sleep(500); // what the server had received is written by now
      const partBytes = (await stat(`${target}.part`)).size;
      say(
        `upload cut off at ${round(partBytes / 2 ** 20)} MiB of ${round(tarBytes / 2 ** 20)} MiB (${outcome})`,
      );
      const again = await connect();
      let resumeS: number;
      let s;
      try {
        resumeS = await timed(() => again.putFile(tarPath, target));
        s = again.lastPutStats!;
      } finally {
        await again.close();
      }
      const missing = tarBytes - partBytes;
      const resumeRatio = s.sentBytes / missing;
      const same = (await sha256File(target)).sha256 === (await sha256File(tarPath)).sha256;
      say(
        `resumed in ${round(resumeS, 2)} s: kept ${round(s.resumedFrom / 2 ** 20)} MiB of the partial copy, ` +
          `sent ${round(s.sentBytes / 2 ** 20)} MiB: ${round(resumeRatio, 3)} of what was missing; ` +
          `the copy ${same ? 'matches' : 'DIFFERS'}`,
      );
      figures({
        ratio_vs_best: round(ratio, 2),
        resume_bytes_ratio: round(resumeRatio, 3),
        mb,
        ours_s: round(oursS, 2),
        scp_s: round(scpS, 2),
        tar_ssh_s: round(tarS, 2),
      });
    } finally {
      await t.close();
    }
  } finally {
    await sshd?.stop();
    await w.cleanup();
    stopPrivateRedis();
  }
}

async function sshVersion(): Promise<string> {
  const r = await run('ssh', ['-V']).catch((e: { stderr?: string }) => ({ stderr: e.stderr ?? '' }));
  return (r.stderr || '').trim().split(',')[0] ?? 'unknown';
}
