/**
 * The local driver's command helper: commands started from a small helper process, with their
 * environment sent over its channel, not shown on any command line; its loss fails what was
 * running with a retryable error, the next command starts a new one, and it never keeps a finished
 * process alive.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { TransportError } from '../../../src/errors.js';
import { LocalTransport } from '../../../src/remote/localTransport.js';
import { Spawner } from '../../../src/remote/spawner.js';
import { cleanupTmp } from './fixtures.js';

afterAll(cleanupTmp);
const t = new LocalTransport({ baseEnv: { PATH: process.env.PATH } });

describe('Spawner (LocalTransport.exec)', () => {
  it('runs commands at once from the helper, not from this process', async () => {
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        t.exec(`sleep 0.2; echo "$PPID $N"; exit ${i % 3}`, { env: { N: String(i) } }),
      ),
    );
    const helper = Spawner.shared().helperPid!;
    expect(helper).toBeGreaterThan(0);
    expect(helper).not.toBe(process.pid);
    results.forEach((r, i) => {
      expect(r).toEqual({ code: i % 3, stdout: `${helper} ${i}\n`, stderr: '' });
    });
  });

  it("keeps the commands' environment off every command line", async () => {
    const secret = `s3cr3t-${Math.random().toString(36).slice(2)}`;
    const r = await t.exec('echo "${TOKEN:0:6}"; cat /proc/$PPID/cmdline | tr "\\0" " "', {
      env: { TOKEN: secret },
    });
    expect(r.stdout.split('\n')[0]).toBe('s3cr3t');
    expect(r.stdout).not.toContain(secret);
    const own = await readFile(`/proc/${Spawner.shared().helperPid!}/environ`, 'utf8');
    expect(own).not.toContain(secret);
  });

  it('fails the running commands retryably when the helper dies, and starts a new one after', async () => {
    const first = Spawner.shared().helperPid ?? (await t.exec('true'), Spawner.shared().helperPid!);
    const running = t.exec('sleep 30');
    await t.exec('true'); // sent after it: the helper has started the sleep
    process.kill(first, 'SIGKILL');
    const err = await running.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).retryable).toBe(true);
    expect((err as Error).message).toMatch(/local command runner stopped \(it was killed by SIGKILL\)/);
    expect(await t.exec('echo again')).toMatchObject({ code: 0, stdout: 'again\n' });
    expect(Spawner.shared().helperPid).not.toBe(first);
  });

  it('does not keep a process alive once its commands are done', async () => {
    const entry = fileURLToPath(new URL('../../../src/remote/localTransport.ts', import.meta.url));
    const script =
      `const { LocalTransport } = await import(${JSON.stringify(entry)});` +
      `const r = await new LocalTransport().exec('echo done'); console.log(r.stdout.trim());`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(0);
    expect(out.trim()).toBe('done');
  }, 20_000);
});
