/**
 * The ssh command agent (src/remote/ssh/agent.ts) against a real sshd whose login shell reads an rc
 * file (BASH_ENV, which counts each reading in a file): one login shell per connection with the
 * agent, one per command without it, the fallback when the agent cannot start, and a connection
 * dropped while a detached run is followed.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { createProvider } from '../../../src/compute/factory.js';
import { loadConfig } from '../../../src/config/load.js';
import { TransportError } from '../../../src/errors.js';
import type { JobSpec } from '../../../src/jobspec/types.js';
import { shellQuote as q } from '../../../src/recipes/template.js';
import { followRun, startDetached } from '../../../src/remote/runner.js';
import { ensureDeploymentKey, type DeploymentKey } from '../../../src/remote/ssh/keys.js';
import { SshTransport } from '../../../src/remote/sshTransport.js';
import { startSshd, type SshdHandle } from '../../helpers/sshd.js';
import {
  cleanupTmp,
  makeTmp,
  processes,
  recipeYaml,
  runProcesses,
  stageOn,
  waitFor,
} from '../remote/fixtures.js';

let key: DeploymentKey;
let sshd: SshdHandle;
let rcCount: string;
const open: SshTransport[] = [];

beforeAll(async () => {
  const home = await makeTmp();
  key = await ensureDeploymentKey(join(home, 'keys'), 'agent');
  rcCount = join(home, 'rc-count');
  const rc = join(home, 'rc.sh');
  // The login shell of every session sources this once (then unsets it, as an rc file is read by
  // the login shell only); SHLVL=1 keeps root's own ~/.bashrc out of the count.
  await writeFile(rc, `echo sourced >> ${q(rcCount)}\nunset BASH_ENV\n`);
  sshd = await startSshd({
    authorizedKeys: [key.publicKey],
    extraConfig: [`SetEnv SHLVL=1 BASH_ENV=${rc}`],
  });
});

afterAll(async () => {
  for (const t of open) await t.close();
  await sshd?.stop();
  await cleanupTmp();
});

async function connect(
  extra: { agent?: boolean; agentInterpreter?: string; onNotice?: (l: string) => void } = {},
) {
  const t = await SshTransport.connect({
    host: sshd.host,
    port: sshd.port,
    username: sshd.user,
    privateKey: key.privateKey,
    ...extra,
  });
  open.push(t);
  return t;
}

async function rcReads(): Promise<number> {
  if (!existsSync(rcCount)) return 0;
  return (await readFile(rcCount, 'utf8')).split('\n').filter(Boolean).length;
}

describe('ssh command agent', () => {
  it('runs every command of a connection through one login shell; without it, one per command', async () => {
    const withAgent = await connect();
    let before = await rcReads();
    for (let i = 0; i < 6; i++) {
      expect(await withAgent.exec(`echo ${i}; echo e${i} >&2; exit ${i}`)).toEqual({
        code: i,
        stdout: `${i}\n`,
        stderr: `e${i}\n`,
      });
    }
    // Concurrent commands share the agent too.
    const many = await Promise.all([1, 2, 3, 4].map((i) => withAgent.exec(`sleep 0.0${i}; echo ${i}`)));
    expect(many.map((r) => r.stdout)).toEqual(['1\n', '2\n', '3\n', '4\n']);
    expect(await rcReads()).toBe(before + 1);
    expect(withAgent.agentStarts).toBe(1);
    const pid = await withAgent.agentPid();
    expect(pid).toBeGreaterThan(1);
    // The agent runs with what the login shell set up (rc files' environment), like a plain exec.
    expect((await withAgent.exec('printf %s "$SHLVL"')).stdout).not.toBe('');

    const plain = await connect({ agent: false });
    before = await rcReads();
    for (let i = 0; i < 6; i++) expect((await plain.exec(`echo ${i}`)).stdout).toBe(`${i}\n`);
    expect(await rcReads()).toBe(before + 6);
    expect(plain.agentStarts).toBe(0);
  }, 30_000);

  it('ssh.commandAgent (RETRAIN_SSH_COMMAND_AGENT=false) reaches the ssh driver: one login shell per command then', async () => {
    const home = await makeTmp();
    const env = {
      RETRAIN_HOME: home,
      RETRAIN_DRIVER: 'ssh',
      RETRAIN_SSH_HOST: sshd.host,
      RETRAIN_SSH_PORT: String(sshd.port),
      RETRAIN_SSH_USER: sshd.user,
      RETRAIN_SSH_KEY: key.privateKeyPath,
      RETRAIN_REMOTE_ROOT: join(home, 'work'),
    };
    const shellsFor3 = async (extra: Record<string, string>) => {
      const config = loadConfig({ env: { ...env, ...extra }, cwd: '/tmp/nowhere' });
      // The ssh driver touches no Redis.
      const provider = await createProvider(config, { redis: undefined as unknown as Redis });
      try {
        const before = await rcReads();
        const lease = await provider.acquire({} as JobSpec, { signal: new AbortController().signal });
        for (let i = 0; i < 3; i++) expect((await lease.transport.exec(`echo ${i}`)).stdout).toBe(`${i}\n`);
        await lease.transport.close();
        return { on: config.ssh.commandAgent, shells: (await rcReads()) - before };
      } finally {
        await provider.close?.();
      }
    };
    // The lease's own setup commands and the three share one login shell with the agent.
    expect(await shellsFor3({})).toEqual({ on: true, shells: 1 });
    const off = await shellsFor3({ RETRAIN_SSH_COMMAND_AGENT: 'false' });
    expect(off.on).toBe(false);
    expect(off.shells).toBeGreaterThanOrEqual(3);
  }, 30_000);

  it('keeps secrets off command lines and hostile strings inert through the agent', async () => {
    const t = await connect();
    const secret = `s3cr3t-${Math.random().toString(36).slice(2)}`;
    const marker = join(await makeTmp(), 'pwned');
    const hostile = `$(touch ${marker})\`touch ${marker}\`;touch ${marker}'"\n`;
    const s = `${(300 + Math.random() * 400).toFixed(3)}`;
    const running = t.exec(
      `printf %s ${q(hostile)}; printf %s "$V"; sleep ${s}; printf %s "$RETRAIN_SECRET"`,
      {
        env: { V: hostile, RETRAIN_SECRET: secret },
        timeoutMs: 20_000,
      },
    );
    await waitFor(() => processes().some((p) => p.args === `sleep ${s}`));
    expect(processes().some((p) => p.args.includes(secret))).toBe(false);
    await t.exec(`pkill -f ${q(`^sleep ${s}$`)}; true`);
    const r = await running;
    expect(r.stdout).toBe(hostile + hostile + secret);
    expect(existsSync(marker)).toBe(false);
    await expect(t.exec('true', { env: { 'BAD NAME': 'x' } })).rejects.toThrow(TransportError);
    expect(t.agentStarts).toBe(1);
  }, 30_000);

  it('falls back to plain execs, with one notice, when the agent cannot start on the host', async () => {
    const notices: string[] = [];
    const t = await connect({
      agentInterpreter: 'python3-not-on-this-host',
      onNotice: (l) => notices.push(l),
    });
    const before = await rcReads();
    expect(await t.exec('echo out; echo err >&2; exit 3')).toEqual({
      code: 3,
      stdout: 'out\n',
      stderr: 'err\n',
    });
    expect((await t.exec('printf %s "$X"', { env: { X: "it's" } })).stdout).toBe("it's");
    // The failed start's session, then one login shell per command (a reconnect on a loaded host
    // brings one more failed start with it).
    expect((await rcReads()) - t.reconnects).toBe(before + 1 + 2);
    const timedOut = t.exec('sleep 30', { timeoutMs: 300 });
    await expect(timedOut).rejects.toThrow(/timed out/);
    expect(t.agentStarts).toBe(0);
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatch(/command agent \(python3-not-on-this-host\) could not start/);
    expect(notices[0]).toMatch(/plain exec/);
    // The timed-out command's own login shell, and one more for its kill unless the timeout came
    // before its shell had even said its pid (a loaded host): then the closed session ends it.
    const after = (await rcReads()) - t.reconnects;
    expect(after).toBeGreaterThanOrEqual(before + 1 + 3);
    expect(after).toBeLessThanOrEqual(before + 1 + 3 + 1);
  }, 30_000);

  it("brings a command's whole output back with its exit: both streams, many chunks, characters uncut", async () => {
    const t = await connect();
    // 'é' is two bytes: 70,000 of them on stdout, 30,000 'ü' on stderr, written in many pieces.
    const r = await t.exec(
      'for i in $(seq 1 100); do printf "é%.0s" $(seq 1 700); printf "ü%.0s" $(seq 1 300) >&2; done; exit 4',
    );
    expect(r.code).toBe(4);
    expect(r.stdout).toBe('é'.repeat(70_000));
    expect(r.stderr).toBe('ü'.repeat(30_000));
    const capped = await t.exec('printf "é%.0s" $(seq 1 5000)', { maxOutputBytes: 4001 });
    expect(Buffer.byteLength(capped.stdout)).toBeLessThanOrEqual(4003);
    expect(capped.stdout.startsWith('é'.repeat(2000))).toBe(true);
    expect(t.agentStarts).toBe(1);
  }, 30_000);

  it('kills the command on a timeout through the agent, which keeps serving', async () => {
    const t = await connect();
    const s = `${(300 + Math.random() * 400).toFixed(3)}`;
    await expect(t.exec(`sleep ${s}`, { timeoutMs: 300 })).rejects.toThrow(/timed out/);
    await waitFor(() => !processes().some((p) => p.args === `sleep ${s}`));
    expect((await t.exec('echo still')).stdout).toBe('still\n');
    expect(t.agentStarts).toBe(1);
  }, 30_000);

  it('a connection dropped mid-follow ends the agent, not the run; the follow resumes on a new agent', async () => {
    const t = await connect();
    const step =
      'for i in $(seq 1 30); do echo "line $i"; sleep 0.2; done\ncat {{dataset}} > {{outdir}}/model.bin';
    const { workdir } = await stageOn(t, recipeYaml({ train: step }));
    const rcBefore = await rcReads();
    const pid = await startDetached(t, workdir);
    const firstAgent = await t.agentPid();
    expect(firstAgent).toBeGreaterThan(1);

    let logText = '';
    let dropped = false;
    let interrupted = 0;
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
            }
          },
        });
        break;
      } catch (err) {
        expect(err).toBeInstanceOf(TransportError);
        expect((err as TransportError).retryable).toBe(true);
        if (++interrupted > 3) throw err;
      }
    }
    expect(dropped).toBe(true);
    expect(res.exitCode).toBe(0);
    for (let i = 1; i <= 30; i++) expect(logText).toContain(`line ${i}\n`);
    // The old agent is gone with its connection; the follow went on through a new one.
    await waitFor(() => !existsSync(`/proc/${firstAgent}`));
    expect(t.reconnects).toBeGreaterThan(0);
    expect(t.agentStarts).toBe(2);
    const secondAgent = await t.agentPid();
    expect(secondAgent).toBeGreaterThan(1);
    expect(secondAgent).not.toBe(firstAgent);
    // Every poll went through the agents: one login shell per connection, not one per poll.
    expect(await rcReads()).toBe(rcBefore + 1);
    expect(runProcesses(pid)).toEqual([]);
  }, 45_000);
});
