/**
 * A real container runtime for the container-mode tests, with no registry: podman imports a
 * root file system made from this machine's own bash, coreutils and Debian python3 (stdlib only)
 * as `localhost/retrain-test-py:1`. Where podman needs other settings than its defaults to run a
 * container here (crun refusing hybrid cgroups, rlimits it may not raise), a containers.conf in
 * the test's own dir selects runc and lower rlimits; CONTAINERS_CONF points podman at it.
 *
 * `prepareContainer()` answers `{ok: false, reason}` (the test then says why and skips) when
 * podman is missing or cannot run the image on this machine.
 */
import { execFile } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const TEST_IMAGE = 'localhost/retrain-test-py:1';
const BINARIES = [
  'bash',
  'sleep',
  'cat',
  'env',
  'timeout',
  'sha256sum',
  'mv',
  'rm',
  'mkdir',
  'ls',
  'touch',
  'python3.11',
];

export type ContainerSetup =
  { ok: true; env: NodeJS.ProcessEnv; confDir: string } | { ok: false; reason: string };

function podmanEnv(confDir: string): NodeJS.ProcessEnv {
  return { ...process.env, CONTAINERS_CONF: join(confDir, 'containers.conf') };
}

async function podman(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 120_000) {
  return run('podman', args, { env, timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 });
}

/** Libraries a binary loads (ldd), as absolute paths. */
async function libsOf(bin: string): Promise<string[]> {
  const { stdout } = await run('ldd', [bin]);
  return [...stdout.matchAll(/(\/[^\s)]+)/g)].map((m) => m[1]!);
}

async function buildRootfs(dir: string): Promise<void> {
  for (const d of ['usr/bin', 'tmp', 'proc', 'sys', 'dev', 'etc', 'root'])
    mkdirSync(join(dir, d), { recursive: true });
  for (const name of BINARIES) {
    const src = ['/usr/bin', '/bin'].map((p) => join(p, name)).find((p) => existsSync(p));
    if (!src) throw new Error(`${name} not found on this machine`);
    cpSync(src, join(dir, 'usr/bin', name), { dereference: true });
    for (const lib of await libsOf(src)) {
      mkdirSync(join(dir, dirname(lib)), { recursive: true });
      if (!existsSync(join(dir, lib))) cpSync(lib, join(dir, lib), { dereference: true });
    }
  }
  symlinkSync('python3.11', join(dir, 'usr/bin/python3'));
  symlinkSync('bash', join(dir, 'usr/bin/sh'));
  symlinkSync('usr/bin', join(dir, 'bin'));
  cpSync('/usr/lib/python3.11', join(dir, 'usr/lib/python3.11'), {
    recursive: true,
    dereference: true,
    filter: (p) => !/\/(test|tests|idlelib|tkinter|ensurepip|__pycache__)(\/|$)/.test(p),
  });
  writeFileSync(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\n');
}

/** Builds the image (once per machine) and checks a container runs; see the module comment. */
export async function prepareContainer(): Promise<ContainerSetup> {
  const confDir = mkdtempSync(join(tmpdir(), 'retrain-podman-'));
  writeFileSync(
    join(confDir, 'containers.conf'),
    [
      '[containers]',
      'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]',
      '[engine]',
      'runtime = "runc"',
      '',
    ].join('\n'),
  );
  const env = podmanEnv(confDir);
  try {
    await run('podman', ['--version']);
  } catch {
    return { ok: false, reason: 'podman is not installed on this machine' };
  }
  try {
    await podman(['image', 'exists', TEST_IMAGE], env);
  } catch {
    const root = mkdtempSync(join(tmpdir(), 'retrain-rootfs-'));
    try {
      await buildRootfs(root);
      await run('tar', ['-C', root, '-cf', `${root}.tar`, '.'], { maxBuffer: 1024 * 1024 });
      await podman(['import', `${root}.tar`, TEST_IMAGE], env, 300_000);
    } catch (err) {
      return { ok: false, reason: `could not build ${TEST_IMAGE}: ${(err as Error).message.split('\n')[0]}` };
    } finally {
      rmSync(root, { recursive: true, force: true });
      rmSync(`${root}.tar`, { force: true });
    }
  }
  try {
    const { stdout } = await podman(
      ['run', '--rm', '--network=none', TEST_IMAGE, 'python3', '-c', 'print("container ok")'],
      env,
    );
    if (!stdout.includes('container ok')) return { ok: false, reason: `podman run printed ${stdout}` };
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    return {
      ok: false,
      reason: `podman cannot run a container here: ${(e.stderr || e.message).trim().split('\n').pop()}`,
    };
  }
  return { ok: true, env: { CONTAINERS_CONF: join(confDir, 'containers.conf') }, confDir };
}

/** Names of the podman containers (running or not) whose name starts with `retrain-`. */
export async function retrainContainers(env: NodeJS.ProcessEnv): Promise<string[]> {
  const { stdout } = await podman(['ps', '-a', '--format', '{{.Names}}'], { ...process.env, ...env });
  return stdout.split('\n').filter((n) => n.startsWith('retrain-'));
}

export function readText(path: string): string {
  return existsSync(path) ? readFileSync(path, 'utf8') : '';
}
