/**
 * readWhole over ssh through the command agent (src/remote/ssh/wholeReads.ts), against a real sshd:
 * the reads asked together are one request, each answers as SFTP's readWhole does (bytes, null past
 * the bound, TransportError naming the file), a pipe is refused instead of waited on, and without an
 * agent the same calls go through SFTP.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TransportError } from '../../../src/errors.js';
import { SshAgent } from '../../../src/remote/ssh/agent.js';
import { ensureDeploymentKey, type DeploymentKey } from '../../../src/remote/ssh/keys.js';
import { SshTransport } from '../../../src/remote/sshTransport.js';
import { startSshd, type SshdHandle } from '../../helpers/sshd.js';
import { cleanupTmp, makeTmp } from '../remote/fixtures.js';

let key: DeploymentKey;
let sshd: SshdHandle;
let dir: string;
const open: SshTransport[] = [];
const binary = randomBytes(200_000);

beforeAll(async () => {
  const home = await makeTmp();
  key = await ensureDeploymentKey(join(home, 'keys'), 'reads');
  sshd = await startSshd({ authorizedKeys: [key.publicKey], extraConfig: ['SetEnv SHLVL=1'] });
  dir = join(home, 'files');
  await mkdir(join(dir, 'adir'), { recursive: true });
  await writeFile(join(dir, 'small.txt'), 'hello é\n');
  await writeFile(join(dir, 'empty'), '');
  await writeFile(join(dir, 'binary.bin'), binary);
  await writeFile(join(dir, 'big.bin'), Buffer.alloc(300 * 1024, 1));
  execFileSync('mkfifo', [join(dir, 'fifo')]);
});

afterAll(async () => {
  for (const t of open) await t.close();
  await sshd?.stop();
  await cleanupTmp();
});

async function connect(agent = true) {
  const t = await SshTransport.connect({
    host: sshd.host,
    port: sshd.port,
    username: sshd.user,
    privateKey: key.privateKey,
    agent,
  });
  open.push(t);
  return t;
}

/** Counts the agent's read requests (and the files in each) while `fn` runs. */
async function countingReads<T>(fn: () => Promise<T>): Promise<{ value: T; requests: number[] }> {
  const requests: number[] = [];
  const orig = SshAgent.prototype.read;
  SshAgent.prototype.read = function (this: SshAgent, files) {
    requests.push(files.length);
    return orig.call(this, files);
  };
  try {
    return { value: await fn(), requests };
  } finally {
    SshAgent.prototype.read = orig;
  }
}

describe('readWhole over ssh', () => {
  for (const agent of [true, false]) {
    it(`${agent ? 'through the agent' : 'over SFTP (no agent)'}: bytes, empty, binary, null past the bound, missing named`, async () => {
      const t = await connect(agent);
      const { value, requests } = await countingReads(() =>
        Promise.all([
          t.readWhole(join(dir, 'small.txt'), 1024),
          t.readWhole(join(dir, 'empty'), 1024),
          t.readWhole(join(dir, 'binary.bin'), 4 * 1024 * 1024),
          t.readWhole(join(dir, 'small.txt'), 4),
          t.readWhole(join(dir, 'big.bin'), 4 * 1024 * 1024),
        ]),
      );
      const [small, empty, bin, overMax, big] = value;
      expect(small?.toString('utf8')).toBe('hello é\n');
      expect(empty?.length).toBe(0);
      expect(bin?.equals(binary)).toBe(true);
      expect(overMax).toBeNull();
      // Past what one read brings (256 KiB): the caller streams it with getFile.
      expect(big).toBeNull();
      // All five in one request to the agent; none to it without one.
      expect(requests).toEqual(agent ? [5] : []);

      const missing = await t.readWhole(join(dir, 'nope.txt'), 1024).catch((e: unknown) => e);
      expect(missing).toBeInstanceOf(TransportError);
      expect((missing as Error).message).toMatch(/^ssh get failed for .*nope\.txt on .*: ENOENT$/);
      expect((missing as TransportError).retryable).toBe(true);
      const adir = await t.readWhole(join(dir, 'adir'), 1024).catch((e: unknown) => e);
      expect(adir).toBeInstanceOf(TransportError);
    }, 30_000);
  }

  it('refuses a pipe through the agent instead of waiting for a writer', async () => {
    const t = await connect();
    const started = Date.now();
    const err = await t.readWhole(join(dir, 'fifo'), 1024).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect((err as Error).message).toMatch(/fifo on .*: ENOTREG$/);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('reads through SFTP when the agent is lost during the read', async () => {
    const t = await connect();
    expect((await t.readWhole(join(dir, 'small.txt'), 1024))?.toString()).toBe('hello é\n');
    const pid = (await t.agentPid())!;
    // The agent dies as the read is asked: the read is asked again over SFTP.
    const orig = SshAgent.prototype.read;
    SshAgent.prototype.read = function (this: SshAgent, files) {
      process.kill(pid, 'SIGKILL');
      return orig.call(this, files);
    };
    try {
      expect((await t.readWhole(join(dir, 'small.txt'), 1024))?.toString()).toBe('hello é\n');
    } finally {
      SshAgent.prototype.read = orig;
    }
  }, 30_000);
});
