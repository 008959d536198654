/**
 * One command over ssh, alone: the mean time of BENCH_EXEC_N (default 20) `true` commands in a row
 * on one connection to a loopback sshd, through the command agent (src/remote/ssh/agent.ts) and as
 * plain execs (a session and a login shell each), with the login shell's rc files skipped
 * (`SetEnv SHLVL=1`) and read (root's ~/.bashrc; on this machine pyenv init). Also the orchestrator
 * CPU per command of each.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SshTransport } from '../src/remote/sshTransport.js';
import { startSshd } from '../test/helpers/sshd.js';
import { figures, machineLine, round, say } from './lib/world.js';

const run = promisify(execFile);

export async function exec(): Promise<void> {
  const n = Number(process.env.BENCH_EXEC_N ?? 20);
  const dir = await mkdtemp(join(tmpdir(), 'retrain-bench-exec-'));
  const keyPath = join(dir, 'key');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'retrain-bench', '-f', keyPath]);
  const privateKey = await readFile(keyPath);
  say(machineLine());
  say(`exec: ${n} commands in a row per case, one connection each`);
  const out: Record<string, number> = {};
  try {
    for (const rc of [false, true]) {
      const sshd = await startSshd({
        authorizedKeys: [await readFile(`${keyPath}.pub`, 'utf8')],
        extraConfig: rc ? [] : ['SetEnv SHLVL=1'],
      });
      try {
        for (const agent of [true, false]) {
          const t = await SshTransport.connect({
            host: sshd.host,
            port: sshd.port,
            username: sshd.user,
            privateKey,
            agent,
          });
          try {
            await t.exec('true'); // the agent's start (and the connection's first session) is not timed
            const cpu0 = process.cpuUsage();
            const t0 = performance.now();
            for (let i = 0; i < n; i++) await t.exec('true');
            const ms = (performance.now() - t0) / n;
            const cpu = process.cpuUsage(cpu0);
            const cpuMs = (cpu.user + cpu.system) / 1000 / n;
            const name = `${agent ? 'agent' : 'plain'}${rc ? '_rc' : ''}`;
            say(
              `${name}: ${round(ms, 1)} ms per command, orchestrator CPU ${round(cpuMs, 2)} ms per command`,
            );
            out[`${name}_ms`] = round(ms, 1);
            out[`${name}_cpu_ms`] = round(cpuMs, 2);
          } finally {
            await t.close();
          }
        }
      } finally {
        await sshd.stop();
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  figures({ ...out, n });
}
