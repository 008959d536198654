/**
 * A real OpenSSH server for the ssh tests: `/usr/sbin/sshd -D -e -f <tmp config>` on a free
 * loopback port, running as the current user with its own host key, authorized keys file and pid
 * file in a tmp dir. `dropConnections` kills the per-connection sshd processes (simulating a
 * network drop) and leaves the listener up.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../src/util/net.js';

const run = promisify(execFile);
export const SSHD_PATH = '/usr/sbin/sshd';

export interface SshdHandle {
  host: '127.0.0.1';
  port: number;
  user: string;
  /** `SHA256:<base64, no padding>` of the server's ed25519 host key (as `ssh-keygen -l` prints). */
  hostKeyFingerprint: string;
  dir: string;
  stop(): Promise<void>;
  dropConnections(): Promise<void>;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Pids of every process descended from `root` (via /proc), with their command names. */
async function descendants(root: number): Promise<{ pid: number; comm: string }[]> {
  const parent = new Map<number, number>();
  const comm = new Map<number, string>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      // pid (comm) state ppid ...
      const close = stat.lastIndexOf(')');
      const fields = stat.slice(close + 2).split(' ');
      parent.set(Number(name), Number(fields[1]));
      comm.set(Number(name), stat.slice(stat.indexOf('(') + 1, close));
    } catch {
      // gone
    }
  }
  const out: { pid: number; comm: string }[] = [];
  const walk = (p: number) => {
    for (const [child, pp] of parent) {
      if (pp === p) {
        out.push({ pid: child, comm: comm.get(child) ?? '' });
        walk(child);
      }
    }
  };
  walk(root);
  return out;
}

/**
 * `extraConfig`: more sshd_config lines (e.g. `SetEnv SHLVL=1`, which makes the login shell skip
 * ~/.bashrc: the benchmarks use it to measure retrain rather than this machine's rc files).
 */
export async function startSshd(opts: {
  authorizedKeys: string[];
  extraConfig?: string[];
}): Promise<SshdHandle> {
  if (!existsSync(SSHD_PATH)) {
    throw new Error(`${SSHD_PATH} is missing: install openssh-server to run the ssh tests`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'retrain-sshd-'));
  await chmod(dir, 0o700);
  // sshd (as root) wants its privilege separation dir.
  if (process.getuid?.() === 0) await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const hostKey = join(dir, 'host_ed25519');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'retrain-test-host', '-f', hostKey]);
  const fp = (await run('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${hostKey}.pub`])).stdout;
  const hostKeyFingerprint = /(SHA256:\S+)/.exec(fp)?.[1];
  if (!hostKeyFingerprint) throw new Error(`cannot read the host key fingerprint: ${fp}`);
  const authorized = join(dir, 'authorized_keys');
  await writeFile(authorized, opts.authorizedKeys.map((k) => k.trim()).join('\n') + '\n', { mode: 0o600 });

  const port = await freePort();
  const config = join(dir, 'sshd_config');
  await writeFile(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${authorized}`,
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'PermitRootLogin prohibit-password',
      'MaxStartups 100:30:200',
      'MaxSessions 50',
      'LogLevel ERROR',
      'Subsystem sftp internal-sftp',
      ...(opts.extraConfig ?? []),
      '',
    ].join('\n'),
    { mode: 0o600 },
  );

  const child: ChildProcess = spawn(SSHD_PATH, ['-D', '-e', '-f', config], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => {
    if (stderr.length < 8192) stderr += b.toString('utf8');
  });
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  const end = Date.now() + 10_000;
  while (!(await accepts(port))) {
    if (exited || Date.now() > end) {
      child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
      throw new Error(`sshd did not start on port ${port}: ${stderr.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  const listener = child.pid!;
  const dropConnections = async () => {
    for (const p of await descendants(listener)) {
      if (!p.comm.startsWith('sshd')) continue;
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  const stop = async () => {
    await dropConnections();
    if (!exited) {
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 3000))]);
      if (!exited) child.kill('SIGKILL');
    }
    await rm(dir, { recursive: true, force: true });
  };
  return {
    host: '127.0.0.1',
    port,
    user: userInfo().username,
    hostKeyFingerprint,
    dir,
    stop,
    dropConnections,
  };
}
