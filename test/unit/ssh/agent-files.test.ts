/**
 * readWhole and putData over ssh through the command agent (src/remote/ssh/agentFiles.ts), against
 * a real sshd: the calls made together are one request; each answers as its SFTP version does
 * (bytes, null past the bound, TransportError naming the file; a file in place with its mode); a
 * pipe is refused instead of waited on, a link planted at the temp name is not written through;
 * without an agent, or when it is lost, the same calls go through SFTP.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readFile, readlink, stat, symlink, writeFile } from 'node:fs/promises';
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

/**
 * Runs `fn` while every agent `op` request first calls `before` (default: nothing); the number of
 * files of each request made.
 */
async function counting<T>(
  op: 'read' | 'write',
  fn: () => Promise<T>,
  before: () => void = () => undefined,
): Promise<{ value: T; requests: number[] }> {
  const requests: number[] = [];
  const proto = SshAgent.prototype as unknown as Record<string, (files: unknown[]) => Promise<unknown>>;
  const orig = proto[op]!;
  proto[op] = function (this: SshAgent, files: unknown[]) {
    requests.push(files.length);
    before();
    return orig.call(this, files);
  };
  try {
    return { value: await fn(), requests };
  } finally {
    proto[op] = orig;
  }
}

describe('readWhole over ssh', () => {
  for (const agent of [true, false]) {
    it(`${agent ? 'through the agent' : 'over SFTP (no agent)'}: bytes, empty, binary, null past the bound, missing named`, async () => {
      const t = await connect(agent);
      const { value, requests } = await counting('read', () =>
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

  for (const agent of [true, false]) {
    it(`putData ${agent ? 'through the agent' : 'over SFTP (no agent)'}: in place with its mode, over an old file, a missing dir named`, async () => {
      const t = await connect(agent);
      const to = join(dir, `put-${agent}`);
      await mkdir(to);
      await writeFile(join(to, 'old.txt'), 'old');
      const { requests } = await counting('write', () =>
        Promise.all([
          t.putData(Buffer.from('#!/bin/bash\necho hi\n'), join(to, 'run.sh'), 0o700),
          t.putData(binary, join(to, 'inputs.tar')),
          t.putData(Buffer.alloc(0), join(to, 'empty')),
          t.putData(Buffer.from('new'), join(to, 'old.txt')),
        ]),
      );
      expect(requests).toEqual(agent ? [4] : []);
      expect(await readFile(join(to, 'run.sh'), 'utf8')).toBe('#!/bin/bash\necho hi\n');
      expect((await stat(join(to, 'run.sh'))).mode & 0o777).toBe(0o700);
      expect((await stat(join(to, 'inputs.tar'))).mode & 0o777).toBe(0o644);
      expect((await readFile(join(to, 'inputs.tar'))).equals(binary)).toBe(true);
      expect((await stat(join(to, 'empty'))).size).toBe(0);
      expect(await readFile(join(to, 'old.txt'), 'utf8')).toBe('new');
      await expect(lstat(join(to, 'run.sh.part'))).rejects.toThrow(/ENOENT/);
      expect(t.putStats.get(join(to, 'inputs.tar'))).toEqual({
        sentBytes: binary.length,
        resumedFrom: 0,
        totalBytes: binary.length,
      });

      const err = await t.putData(Buffer.from('x'), join(to, 'no-dir', 'f')).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TransportError);
      expect((err as Error).message).toMatch(/^ssh put failed for .*no-dir\/f on .*: ENOENT/);
    }, 30_000);
  }

  it('never writes through a link planted at the temp name', async () => {
    const t = await connect();
    const to = join(dir, 'planted');
    await mkdir(to);
    const victim = join(dir, 'victim.txt');
    await writeFile(victim, 'keep me');
    await symlink(victim, join(to, 'run.sh.part'));
    await t.putData(Buffer.from('echo run\n'), join(to, 'run.sh'), 0o700);
    expect(await readFile(victim, 'utf8')).toBe('keep me');
    expect(await readFile(join(to, 'run.sh'), 'utf8')).toBe('echo run\n');
    expect((await lstat(join(to, 'run.sh'))).isSymbolicLink()).toBe(false);
    await expect(readlink(join(to, 'run.sh.part'))).rejects.toThrow(/ENOENT/);
  });

  it('refuses a pipe through the agent instead of waiting for a writer', async () => {
    const t = await connect();
    const started = Date.now();
    const err = await t.readWhole(join(dir, 'fifo'), 1024).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect((err as Error).message).toMatch(/fifo on .*: ENOTREG$/);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('writes through SFTP when the agent is lost during the write', async () => {
    const t = await connect();
    const to = join(dir, 'lost-write');
    await mkdir(to);
    await t.putData(Buffer.from('one'), join(to, 'a'));
    const pid = (await t.agentPid())!;
    // The agent dies as the write is asked: the write is made again over SFTP.
    const { requests } = await counting(
      'write',
      () => t.putData(Buffer.from('two'), join(to, 'a')),
      () => process.kill(pid, 'SIGKILL'),
    );
    expect(requests).toEqual([1]);
    expect(await readFile(join(to, 'a'), 'utf8')).toBe('two');
  }, 30_000);

  it('reads through SFTP when the agent is lost during the read', async () => {
    const t = await connect();
    expect((await t.readWhole(join(dir, 'small.txt'), 1024))?.toString()).toBe('hello é\n');
    const pid = (await t.agentPid())!;
    // The agent dies as the read is asked: the read is asked again over SFTP.
    const { value, requests } = await counting(
      'read',
      () => t.readWhole(join(dir, 'small.txt'), 1024),
      () => process.kill(pid, 'SIGKILL'),
    );
    expect(requests).toEqual([1]);
    expect(value?.toString()).toBe('hello é\n');
  }, 30_000);
});
