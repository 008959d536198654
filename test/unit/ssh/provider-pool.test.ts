/**
 * The ssh provider reuses connections across leases (a real sshd on loopback): a lease given back
 * serves the next one, two leases held at once never share a connection, a given-back transport
 * refuses further calls, and close() ends the idle ones. `$SSH_CONNECTION` (the client's address and
 * port, as sshd sees it) tells connections apart.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshProvider } from '../../../src/compute/ssh.js';
import { TransportError } from '../../../src/errors.js';
import type { JobSpec } from '../../../src/jobspec/types.js';
import { ensureDeploymentKey } from '../../../src/remote/ssh/keys.js';
import type { Transport } from '../../../src/remote/transport.js';
import { startSshd, type SshdHandle } from '../../helpers/sshd.js';
import { cleanupTmp, makeTmp, waitFor } from '../remote/fixtures.js';

let sshd: SshdHandle;
let provider: SshProvider;

beforeAll(async () => {
  const home = await makeTmp();
  const key = await ensureDeploymentKey(join(home, 'keys'), 'pool');
  sshd = await startSshd({ authorizedKeys: [key.publicKey] });
  const keyPath = join(home, 'id');
  await writeFile(keyPath, key.privateKey, { mode: 0o600 });
  provider = new SshProvider({
    host: sshd.host,
    port: sshd.port,
    user: sshd.user,
    keyPath,
    workRoot: join(home, 'root'),
    pinsFile: join(home, 'pins.json'),
  });
});

afterAll(async () => {
  await provider?.close();
  await sshd?.stop();
  await cleanupTmp();
});

/** Whether a TCP connection from local port `port` is established (from /proc/net/tcp). */
async function established(port: number): Promise<boolean> {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  return (await readFile('/proc/net/tcp', 'utf8')).split('\n').some((l) => {
    const f = l.trim().split(/\s+/);
    return f[1]?.endsWith(`:${hex}`) && f[3] === '01';
  });
}

const acquire = () => provider.acquire({} as JobSpec, { signal: new AbortController().signal });
const connection = async (t: Transport) => (await t.exec('printf %s "$SSH_CONNECTION"')).stdout;

describe('SshProvider connection reuse', () => {
  it('hands a given-back connection to the next lease, and never one that is still held', async () => {
    const a = await acquire();
    const b = await acquire();
    const ca = await connection(a.transport);
    const cb = await connection(b.transport);
    expect(ca).toMatch(/^127\.0\.0\.1 \d+ 127\.0\.0\.1 \d+$/);
    expect(cb).not.toBe(ca);

    await a.transport.close();
    const c = await acquire();
    expect(await connection(c.transport)).toBe(ca);
    expect(c.info.workRoot).toBe(a.info.workRoot);

    // A given-back transport is closed for its lease, though the connection lives on.
    await expect(a.transport.exec('true')).rejects.toThrow(TransportError);
    await a.transport.close();
    expect((await c.transport.exec('echo still')).stdout).toBe('still\n');

    const again = await provider.reattach(b.info);
    expect(await connection(again!.transport)).not.toBe(cb);
    for (const l of [b, c]) await l.transport.close();
    await again!.transport.close();
  });

  it('reconnects a pooled connection that dropped while idle, and counts drops per lease', async () => {
    const a = await acquire();
    await connection(a.transport);
    await a.transport.close();
    await sshd.dropConnections();
    const b = await acquire();
    expect((await b.transport.exec('echo back')).stdout).toBe('back\n');
    expect(b.transport.reconnects).toBe(1);
    await b.transport.close();
    const c = await acquire();
    await connection(c.transport);
    expect(c.transport.reconnects).toBe(0);
    await c.transport.close();
  });

  it('close() ends the idle connections; a lease after it is refused', async () => {
    const home = await makeTmp();
    const key = await ensureDeploymentKey(join(home, 'keys'), 'pool');
    const other = await startSshd({ authorizedKeys: [key.publicKey] });
    try {
      await writeFile(join(home, 'id'), key.privateKey, { mode: 0o600 });
      const own = new SshProvider({
        host: other.host,
        port: other.port,
        user: other.user,
        keyPath: join(home, 'id'),
        workRoot: join(home, 'root'),
        pinsFile: join(home, 'pins.json'),
      });
      const lease = await own.acquire({} as JobSpec, { signal: new AbortController().signal });
      const clientPort = Number((await connection(lease.transport)).split(' ')[1]);
      await lease.transport.close();
      expect(await established(clientPort)).toBe(true);
      await own.close();
      await waitFor(async () => !(await established(clientPort)));
      await expect(own.acquire({} as JobSpec, { signal: new AbortController().signal })).rejects.toThrow(
        /closed/,
      );
    } finally {
      await other.stop();
    }
  });
});
