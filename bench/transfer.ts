/**
 * Transfer: a dataset of BENCH_TRANSFER_MB MiB (default 1024, four files of random bytes) to a
 * loopback sshd. Ours, as a training's inputs travel: planInputs (large files as themselves, small
 * ones in one deterministic tar; the dataset's checksum is known, as a training's is from the store),
 * then stageRun over SshTransport (upload by SFTP, SHA-256 of every file on the host). The time to
 * hash the files here is measured apart. Beside it, in the same run, with the same
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
import { planInputs } from '../src/remote/inputs.js';
import { stageRun } from '../src/remote/stage.js';
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
const ROUNDS = Number(process.env.BENCH_TRANSFER_ROUNDS ?? 3);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

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
      // Ours, as a training's dataset travels: its checksum is known (the store's, verified when it
      // was downloaded), so planning hashes nothing big; the inputs are staged (large files as
      // themselves, small ones in one tar), verified by SHA-256 on the host.
      const tarPath = join(w.home, 'inputs.tar');
      const known: Record<string, string> = {};
      const hashS = await timed(async () => {
        for (const f of files) known[f.name] = (await sha256File(f.path)).sha256;
      });
      const ours = async () => {
        const planned = await planInputs(
          files.map((f) => ({ ...f, sha256: known[f.name] })),
          { tarPath, tarRel: 'inputs.tar', into: 'inputs' },
        );
        await stageRun(t, {
          workdir: join(remote, 'ours'),
          files: planned.files,
          archives: planned.archive ? [planned.archive] : [],
          script: '#!/usr/bin/env bash\n',
        });
      };
      const scp = () =>
        sh(`scp -q -r -P ${port} ${sshOpts} ${dataset} ${user}@${host}:${join(remote, 'scp')}`);
      const tarSsh = () =>
        sh(
          `tar cf - -C ${dataset} . | ssh -p ${port} ${sshOpts} ${user}@${host} ` +
            `'mkdir -p ${join(remote, 'tarssh')} && tar xf - -C ${join(remote, 'tarssh')}'`,
        );
      // Rounds in a rotating order, each copy started with no dirty pages left by the one before
      // (sync, not timed): the first writer after a gigabyte was written would otherwise pay for
      // its writeback. Each method's figure is its median.
      const methods = { ours, scp, tarSsh } as const;
      const times: Record<keyof typeof methods, number[]> = { ours: [], scp: [], tarSsh: [] };
      const names = Object.keys(methods) as (keyof typeof methods)[];
      for (let r = 0; r < ROUNDS; r++) {
        for (let k = 0; k < names.length; k++) {
          const name = names[(r + k) % names.length]!;
          await sh('sync');
          times[name].push(await timed(methods[name]));
          await rm(join(remote, name === 'tarSsh' ? 'tarssh' : name), { recursive: true, force: true });
        }
      }
      const oursS = median(times.ours);
      const scpS = median(times.scp);
      const tarS = median(times.tarSsh);
      const all = (xs: number[]) => xs.map((x) => round(x, 2)).join(', ');
      say(
        `ours (plan + upload + verify on the host): ${round(oursS, 2)} s, ${round(mb / oursS)} MiB/s ` +
          `(${all(times.ours)}); hashing the files here first, for a dataset without a checksum, ` +
          `would add ${round(hashS, 2)} s`,
      );
      say(`scp -r: ${round(scpS, 2)} s, ${round(mb / scpS)} MiB/s (${all(times.scp)})`);
      say(
        `tar cf - | ssh host tar xf -: ${round(tarS, 2)} s, ${round(mb / tarS)} MiB/s (${all(times.tarSsh)})`,
      );
      const best = Math.min(scpS, tarS);
      const ratio = best / oursS;
      say(`ours against the best of the two: ${round(ratio, 2)} of its speed (target >= 0.8)`);

      // An upload cut off a quarter in (the connection closed under it, as when a worker dies; a mere
      // network drop is retried inside putFile, resuming the same way), then resumed by a new one.
      const target = join(remote, 'resume', files[0]!.name);
      const sent = files[0]!.path;
      await mkdir(join(remote, 'resume'), { recursive: true });
      const connect = async () =>
        SshTransport.connect({ host, port, username: user, privateKey: await readFile(keyPath) });
      const cut = await connect();
      const first = cut.putFile(sent, target).then(
        () => 'finished',
        (err: Error) => err.message,
      );
      const tarBytes = (await stat(sent)).size;
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
        resumeS = await timed(() => again.putFile(sent, target));
        s = again.lastPutStats!;
      } finally {
        await again.close();
      }
      const missing = tarBytes - partBytes;
      const resumeRatio = s.sentBytes / missing;
      const same = (await sha256File(target)).sha256 === (await sha256File(sent)).sha256;
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
        hash_s: round(hashS, 2),
        rounds: ROUNDS,
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
