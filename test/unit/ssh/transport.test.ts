import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshProvider } from '../../../src/compute/ssh.js';
import { CancelledError, TransportError } from '../../../src/errors.js';
import type { JobSpec } from '../../../src/jobspec/types.js';
import { shellQuote as q } from '../../../src/recipes/template.js';
import { HostKeyPins } from '../../../src/remote/ssh/hostKeys.js';
import { ensureDeploymentKey, type DeploymentKey } from '../../../src/remote/ssh/keys.js';
import { SshTransport } from '../../../src/remote/sshTransport.js';
import { sha256File } from '../../../src/util/hash.js';
import { startSshd, type SshdHandle } from '../../helpers/sshd.js';
import { cleanupTmp, makeTmp, processes, waitFor } from '../remote/fixtures.js';

const rand = () => randomBytes(4).toString('hex');
const uniqueSleep = () => `${300 + (randomBytes(2).readUInt16BE(0) % 500)}.${randomBytes(2).readUInt16BE(0)}`;

let key: DeploymentKey;
let sshd: SshdHandle;
let pinsFile: string;
let t: SshTransport;

beforeAll(async () => {
  const home = await makeTmp();
  key = await ensureDeploymentKey(join(home, 'keys'), 'test');
  sshd = await startSshd({ authorizedKeys: [key.publicKey] });
  pinsFile = join(home, 'pins', 'known_hosts.json');
  t = await SshTransport.connect({
    host: sshd.host,
    port: sshd.port,
    username: sshd.user,
    privateKey: key.privateKey,
    pins: new HostKeyPins(pinsFile),
    pinId: 'test-host',
  });
});

afterAll(async () => {
  await t?.close();
  await sshd?.stop();
  await cleanupTmp();
});

describe('SshTransport: exec', () => {
  it('returns exit codes, stdout and stderr, never rejecting a non-zero exit', async () => {
    expect(await t.exec('echo out; echo err >&2; exit 3')).toEqual({
      code: 3,
      stdout: 'out\n',
      stderr: 'err\n',
    });
    expect(await t.exec('true')).toEqual({ code: 0, stdout: '', stderr: '' });
    expect((await t.exec('kill -TERM $$')).code).toBe(143);
    const big = await t.exec('head -c 300000 /dev/zero | tr "\\0" x', { maxOutputBytes: 1000 });
    expect(big.stdout).toBe('x'.repeat(1000));
  });

  it('keeps hostile strings inert', async () => {
    const marker = `/tmp/pwned-${rand()}`;
    const hostile = `$(touch ${marker})\`touch ${marker}\`;touch ${marker}'"\n`;
    const r = await t.exec(`printf %s ${q(hostile)}; printf %s "$V"`, { env: { V: hostile } });
    expect(r).toEqual({ code: 0, stdout: hostile + hostile, stderr: '' });
    expect(existsSync(marker)).toBe(false);
    await expect(t.exec('true', { env: { 'BAD NAME': 'x' } })).rejects.toThrow(TransportError);
  });

  it('delivers env secrets to the command without showing them on any command line', async () => {
    const secret = `s3cr3t-${rand()}`;
    const dir = await makeTmp();
    const seen = join(dir, 'seen');
    const s = uniqueSleep();
    const running = t.exec(`printf %s "$RETRAIN_SECRET" > ${q(seen)}; sleep ${s}; echo done`, {
      env: { RETRAIN_SECRET: secret },
      timeoutMs: 20_000,
    });
    await waitFor(() => processes().some((p) => p.args === `sleep ${s}`));
    const cmdlines = processes()
      .map((p) => p.args)
      .join('\n');
    expect(cmdlines).toContain(`sleep ${s}`);
    expect(cmdlines).not.toContain(secret);
    expect(await readFile(seen, 'utf8')).toBe(secret);
    // The sleep is found and killed by its pgid through a second exec; the first one then ends.
    const sl = processes().find((p) => p.args === `sleep ${s}`)!;
    await t.exec(`kill ${sl.pid}`);
    const r = await running;
    expect(r.stdout).toBe('done\n');
    expect(r.stdout + r.stderr).not.toContain(secret);
  });

  it('kills the whole command on a timeout and on an abort', async () => {
    const s = uniqueSleep();
    const err = await t.exec(`sleep ${s} & sleep ${s}; wait`, { timeoutMs: 500 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect((err as Error).message).toMatch(/timed out after 500 ms/);
    await waitFor(() => !processes().some((p) => p.args === `sleep ${s}`), 5000);

    const s2 = uniqueSleep();
    const ac = new AbortController();
    const p = t.exec(`sleep ${s2}`, { signal: ac.signal });
    await waitFor(() => processes().some((x) => x.args === `sleep ${s2}`));
    ac.abort();
    await expect(p).rejects.toBeInstanceOf(CancelledError);
    await waitFor(() => !processes().some((x) => x.args === `sleep ${s2}`), 5000);
    expect((await t.exec('echo still')).stdout).toBe('still\n');
  });
});

describe('SshTransport: files', () => {
  it('round-trips files with put/get, stat, mkdirp and readRange', async () => {
    const local = await makeTmp();
    const remote = join(await makeTmp(), 'deep', 'er dir');
    await t.mkdirp(remote);
    expect(await t.stat(remote)).toMatchObject({ isDirectory: true });
    const src = join(local, 'src.bin');
    await writeFile(src, randomBytes(300_000));
    await t.putFile(src, join(remote, 'f.bin'));
    expect(t.lastPutStats).toEqual({ sentBytes: 300_000, resumedFrom: 0, totalBytes: 300_000 });
    expect(existsSync(join(remote, 'f.bin.part'))).toBe(false);
    expect((await sha256File(join(remote, 'f.bin'))).sha256).toBe((await sha256File(src)).sha256);
    expect(await t.stat(join(remote, 'f.bin'))).toMatchObject({ size: 300_000, isDirectory: false });
    expect(await t.stat(join(remote, 'nope'))).toBeNull();

    await t.getFile(join(remote, 'f.bin'), join(local, 'back', 'f.bin'));
    expect((await sha256File(join(local, 'back', 'f.bin'))).sha256).toBe((await sha256File(src)).sha256);

    const whole = await readFile(src);
    expect((await t.readRange(join(remote, 'f.bin'), 1000, 50)).equals(whole.subarray(1000, 1050))).toBe(
      true,
    );
    expect((await t.readRange(join(remote, 'f.bin'), 299_990, 100)).equals(whole.subarray(299_990))).toBe(
      true,
    );
    expect((await t.readRange(join(remote, 'f.bin'), 0, 200_000)).length).toBe(200_000);
    expect((await t.readRange(join(remote, 'f.bin'), 400_000, 10)).length).toBe(0);
    await expect(t.readRange(join(remote, 'missing'), 0, 10)).rejects.toBeInstanceOf(TransportError);
    await expect(t.getFile(join(remote, 'missing'), join(local, 'm'))).rejects.toBeInstanceOf(TransportError);
  });

  it('writes bytes from memory with their mode and reads a whole small file in one go', async () => {
    const remote = await makeTmp();
    const data = randomBytes(100_000);
    await writeFile(join(remote, 'f.bin'), 'an older copy');
    await t.putData(data, join(remote, 'f.bin'));
    expect(t.lastPutStats).toEqual({ sentBytes: 100_000, resumedFrom: 0, totalBytes: 100_000 });
    expect((await readFile(join(remote, 'f.bin'))).equals(data)).toBe(true);
    await t.putData(Buffer.from('echo hi\n'), join(remote, 'run.sh.tmp'), 0o600);
    expect((await stat(join(remote, 'run.sh.tmp'))).mode & 0o777).toBe(0o600);
    await t.putData(Buffer.alloc(0), join(remote, 'empty'));
    expect((await stat(join(remote, 'empty'))).size).toBe(0);
    expect(existsSync(join(remote, 'f.bin.part'))).toBe(false);
    await expect(t.putData(data, join(remote, 'no', 'dir', 'f'))).rejects.toBeInstanceOf(TransportError);

    expect((await t.readWhole(join(remote, 'f.bin'), 100_000))?.equals(data)).toBe(true);
    expect(await t.readWhole(join(remote, 'f.bin'), 99_999)).toBeNull();
    expect((await t.readWhole(join(remote, 'empty'), 10))?.length).toBe(0);
    // Beyond one read's worth (256 KiB), whatever the bound: getFile's parallel reads are the way.
    const big = randomBytes(300_000);
    await writeFile(join(remote, 'big.bin'), big);
    expect(await t.readWhole(join(remote, 'big.bin'), 1 << 20)).toBeNull();
    await expect(t.readWhole(join(remote, 'missing'), 10)).rejects.toBeInstanceOf(TransportError);
  });

  it('resumes an upload from a verified .part and starts over from a bad one', async () => {
    const local = await makeTmp();
    const remote = await makeTmp();
    const src = join(local, 'data.bin');
    const data = randomBytes(1_000_000);
    await writeFile(src, data);
    const dst = join(remote, 'data.bin');

    await writeFile(`${dst}.part`, data.subarray(0, 400_000));
    await t.putFile(src, dst);
    expect(t.lastPutStats).toEqual({ sentBytes: 600_000, resumedFrom: 400_000, totalBytes: 1_000_000 });
    expect((await readFile(dst)).equals(data)).toBe(true);
    expect(existsSync(`${dst}.part`)).toBe(false);

    const corrupt = Buffer.from(data.subarray(0, 400_000));
    corrupt[123] = corrupt[123]! ^ 0xff;
    await writeFile(`${dst}.part`, corrupt);
    await t.putFile(src, dst);
    expect(t.lastPutStats).toEqual({ sentBytes: 1_000_000, resumedFrom: 0, totalBytes: 1_000_000 });
    expect((await readFile(dst)).equals(data)).toBe(true);
  });
});

describe('SshTransport: big uploads (streamed through cat on the host)', () => {
  it('resumes a verified .part, starts over from a bad one and keeps the mode', async () => {
    const src = join(await makeTmp(), 'big.bin');
    const data = randomBytes(6 * 2 ** 20);
    await writeFile(src, data, { mode: 0o640 });
    const dst = join(await makeTmp(), 'big.bin');

    await t.putFile(src, dst);
    expect(t.lastPutStats).toEqual({ sentBytes: data.length, resumedFrom: 0, totalBytes: data.length });
    expect((await readFile(dst)).equals(data)).toBe(true);
    expect((await stat(dst)).mode & 0o777).toBe(0o640);
    expect(existsSync(`${dst}.part`)).toBe(false);

    const resumed = join(await makeTmp(), 'big.bin');
    await writeFile(`${resumed}.part`, data.subarray(0, 2 ** 20));
    await t.putFile(src, resumed);
    expect(t.lastPutStats).toEqual({
      sentBytes: data.length - 2 ** 20,
      resumedFrom: 2 ** 20,
      totalBytes: data.length,
    });
    expect((await readFile(resumed)).equals(data)).toBe(true);

    const corrupt = Buffer.from(data.subarray(0, 2 ** 20));
    corrupt[77] = corrupt[77]! ^ 0xff;
    await writeFile(`${resumed}.part`, corrupt);
    await t.putFile(src, resumed);
    expect(t.lastPutStats).toEqual({ sentBytes: data.length, resumedFrom: 0, totalBytes: data.length });
    expect((await readFile(resumed)).equals(data)).toBe(true);
  });

  it('says which file could not be written when the host refuses it', async () => {
    const src = join(await makeTmp(), 'big.bin');
    await writeFile(src, randomBytes(5 * 2 ** 20));
    const dst = join(await makeTmp(), 'no such dir', 'big.bin');
    const err = await t.putFile(src, dst).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect((err as Error).message).toContain(`${dst}.part`);
    expect((err as Error).message).not.toMatch(/\n/);
  });
});

describe('SshTransport: connection', () => {
  it('pins the host key on first use and refuses another key under the same pin', async () => {
    const pins = JSON.parse(await readFile(pinsFile, 'utf8')) as Record<string, string>;
    expect(pins).toEqual({ 'test-host': sshd.hostKeyFingerprint });
    expect((await stat(pinsFile)).mode & 0o777).toBe(0o600);

    const other = await startSshd({ authorizedKeys: [key.publicKey] });
    try {
      const err = await SshTransport.connect({
        host: other.host,
        port: other.port,
        username: other.user,
        privateKey: key.privateKey,
        pins: new HostKeyPins(pinsFile),
        pinId: 'test-host',
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TransportError);
      expect((err as TransportError).message).toBe('host key for test-host changed');
      expect((err as TransportError).retryable).toBe(false);

      const ok = await SshTransport.connect({
        host: other.host,
        port: other.port,
        username: other.user,
        privateKey: key.privateKey,
        pins: new HostKeyPins(pinsFile),
        pinId: 'other-host',
      });
      expect((await ok.exec('echo hi')).stdout).toBe('hi\n');
      await ok.close();
    } finally {
      await other.stop();
    }
  });

  it('refuses an unknown key without retrying and without showing the key', async () => {
    const stranger = await ensureDeploymentKey(await makeTmp(), 'stranger');
    const started = Date.now();
    const err = await SshTransport.connect({
      host: sshd.host,
      port: sshd.port,
      username: sshd.user,
      privateKey: stranger.privateKey,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).retryable).toBe(false);
    expect((err as Error).message).toMatch(/authentication failed/);
    expect((err as Error).message).not.toContain('PRIVATE');
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('reconnects after the connection drops; a call in flight fails retryably', async () => {
    const before = t.connectCount;
    const s = uniqueSleep();
    const inflight = t.exec(`sleep ${s}`).catch((e: unknown) => e);
    await waitFor(() => processes().some((p) => p.args === `sleep ${s}`));
    await sshd.dropConnections();
    const err = await inflight;
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).retryable).toBe(true);
    expect((await t.exec('echo back')).stdout).toBe('back\n');
    expect(t.connectCount).toBe(before + 1);

    // A drop right before an idempotent call is invisible to it.
    await sshd.dropConnections();
    expect(await t.stat('/')).toMatchObject({ isDirectory: true });
    await sshd.dropConnections();
    expect((await t.exec('echo again')).stdout).toBe('again\n');
    await t.exec(`pkill -f ${q(`^sleep ${s}$`)}; true`);
  });
});

describe('SshProvider', () => {
  it('acquires a lease on an existing host, reattaches and releases nothing', async () => {
    const home = await makeTmp();
    const keyPath = join(home, 'id');
    await writeFile(keyPath, key.privateKey, { mode: 0o600 });
    const p = new SshProvider({
      host: sshd.host,
      port: sshd.port,
      user: sshd.user,
      keyPath,
      workRoot: '~/retrain-test-root',
      pinsFile: join(home, 'pins.json'),
    });
    const created: string[] = [];
    const lease = await p.acquire({} as JobSpec, {
      signal: new AbortController().signal,
      onLeaseCreated: async (i) => {
        created.push(i.id);
      },
    });
    const id = `${sshd.user}@${sshd.host}:${sshd.port}`;
    expect(lease.info).toMatchObject({
      driver: 'ssh',
      id,
      host: sshd.host,
      port: sshd.port,
      hourlyCostUsd: 0,
    });
    expect(lease.info.workRoot).toMatch(/^\/.*\/retrain-test-root$/);
    expect(created).toEqual([id]);
    expect(lease.transport.kind).toBe('ssh');
    expect(await lease.transport.stat(lease.info.workRoot)).toMatchObject({ isDirectory: true });
    const again = await p.reattach(lease.info);
    expect((await again!.transport.exec('echo re')).stdout).toBe('re\n');
    expect(await p.reattach({ ...lease.info, driver: 'vast' })).toBeNull();
    await p.release(lease.info);
    await p.release(lease.info);
    expect(await p.list()).toEqual([]);
    await lease.transport.exec(`rmdir -- ${q(lease.info.workRoot)}`);
    await lease.transport.close();
    await again!.transport.close();
  });
});
