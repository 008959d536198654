/**
 * `retrain doctor` against the real parts: Redis, the local store, a real sshd (driver ssh) and the
 * Vast simulator over HTTP (driver vast). A sound setup passes with exit 0; each broken part is named
 * on its own FAIL line with what to do, and the others still pass.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ensureDeploymentKey } from '../../src/remote/ssh/keys.js';
import { runCli } from '../helpers/harness.js';
import { startVastWorld, type VastWorld } from '../helpers/vastWorld.js';

/** A port nothing listens on. */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** `{name: 'ok'|'FAIL'}` from doctor's lines. */
function verdicts(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of stdout.matchAll(/^(ok|FAIL) +(\S+) /gm)) out[m[2]!] = m[1]!;
  return out;
}

describe('retrain doctor', () => {
  let w: VastWorld;
  let sshEnv: NodeJS.ProcessEnv;
  beforeAll(async () => {
    w = await startVastWorld(inject('redisUrl'));
    // The ssh driver's host is the same sshd, reached with the deployment key it trusts.
    const key = await ensureDeploymentKey(join(w.sb.home, 'ssh'), 'default');
    sshEnv = {
      ...w.sb.env,
      RETRAIN_DRIVER: 'ssh',
      RETRAIN_SSH_HOST: w.sshd.host,
      RETRAIN_SSH_PORT: String(w.sshd.port),
      RETRAIN_SSH_USER: w.sshd.user,
      RETRAIN_SSH_KEY: key.privateKeyPath,
    };
  }, 60_000);
  afterAll(async () => {
    await w?.close();
  });

  it('passes on a sound setup, driver ssh and driver vast', async () => {
    const ssh = await runCli(['doctor'], sshEnv);
    expect(ssh.code, ssh.stdout + ssh.stderr).toBe(0);
    expect(verdicts(ssh.stdout)).toEqual({
      redis: 'ok',
      clock: 'ok',
      store: 'ok',
      ssh: 'ok',
      python3: 'ok',
      recipe: 'ok',
    });
    expect(ssh.stdout).toMatch(/^ok +redis +redis:\/\/\S+, version \d+\.\d+/m);
    expect(ssh.stdout).toMatch(/^ok +python3 +on \S+: Python 3\./m);
    expect(ssh.stdout).toContain('all 6 checks passed');

    const vast = await runCli(['doctor'], w.sb.env);
    expect(vast.code, vast.stdout + vast.stderr).toBe(0);
    expect(verdicts(vast.stdout)).toEqual({
      redis: 'ok',
      clock: 'ok',
      store: 'ok',
      vast: 'ok',
      recipe: 'ok',
    });
    expect(vast.stdout).toMatch(/^ok +vast +key valid at \S+, credit \$25\.00/m);
  }, 120_000);

  it('names each broken part: Redis down, store read-only, bad Vast key; SSH refused', async () => {
    let storeRoot = join(w.sb.home, 'store-ro');
    mkdirSync(storeRoot, { recursive: true });
    // Root ignores file modes: the immutable attribute makes the directory read-only even for root.
    // Where the filesystem has no such attribute (tmpfs), a root under a regular file cannot be
    // written either.
    let immutable = true;
    try {
      execFileSync('chattr', ['+i', storeRoot], { stdio: 'ignore' });
    } catch {
      immutable = false;
      writeFileSync(join(w.sb.home, 'store-ro-file'), '');
      storeRoot = join(w.sb.home, 'store-ro-file', 'store-ro');
    }
    try {
      const broken = await runCli(['doctor'], {
        ...w.sb.env,
        REDIS_URL: `redis://127.0.0.1:${await closedPort()}`,
        RETRAIN_STORE_ROOT: storeRoot,
        VAST_API_KEY: 'not-the-account-key',
      });
      expect(broken.code).toBe(1);
      expect(verdicts(broken.stdout)).toEqual({
        redis: 'FAIL',
        clock: 'FAIL',
        store: 'FAIL',
        vast: 'FAIL',
        recipe: 'ok',
      });
      expect(broken.stdout).toMatch(
        /^FAIL redis +not reachable at redis:\/\/127\.0\.0\.1:\d+ — start Redis/m,
      );
      expect(broken.stdout).toMatch(/^FAIL store +cannot write .*store-ro.* — make the store writable/m);
      expect(broken.stdout).toMatch(/^FAIL vast +the API key was refused — set VAST_API_KEY/m);
      expect(broken.stdout).not.toContain('not-the-account-key');
      expect(broken.stdout).toContain('4 of 5 checks failed');
    } finally {
      if (immutable) execFileSync('chattr', ['-i', storeRoot]);
    }

    const refused = await runCli(['doctor'], { ...sshEnv, RETRAIN_SSH_PORT: String(await closedPort()) });
    expect(refused.code).toBe(1);
    expect(verdicts(refused.stdout)).toEqual({
      redis: 'ok',
      clock: 'ok',
      store: 'ok',
      ssh: 'FAIL',
      python3: 'FAIL',
      recipe: 'ok',
    });
    expect(refused.stdout).toMatch(/^FAIL ssh +root@127\.0\.0\.1:\d+: .* — check the host is up/m);
  }, 120_000);
});
