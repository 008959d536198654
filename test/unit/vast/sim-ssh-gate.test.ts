/**
 * The simulator's per-instance SSH gate with a real OpenSSH sshd and our SSH transport: an
 * instance that holds the deployment key (registered on the account before the create, or
 * attached once it runs) is reachable; one whose attached key was lost is not, as on Vast.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostKeyPins } from '../../../src/remote/ssh/hostKeys.js';
import { ensureDeploymentKey, type DeploymentKey } from '../../../src/remote/ssh/keys.js';
import { SshTransport } from '../../../src/remote/sshTransport.js';
import { defaultOffers, startVastSim, type VastSim } from '../../../src/vast/sim/server.js';
import { startSshd, type SshdHandle } from '../../helpers/sshd.js';
import { cleanupTmp, makeTmp } from '../remote/fixtures.js';

const KEY = 'sim-key-ssh-gate';
let key: DeploymentKey;
let sshd: SshdHandle;
let sim: VastSim;
let home: string;

beforeAll(async () => {
  home = await makeTmp();
  key = await ensureDeploymentKey(join(home, 'keys'), 'gate');
  sshd = await startSshd({ authorizedKeys: [key.publicKey] });
  sim = await startVastSim({
    apiKey: KEY,
    offers: defaultOffers(),
    sshEndpoint: { host: sshd.host, port: sshd.port },
    sshAuthorizedKeys: [key.publicKey],
    // Long enough that the attach below comes before the instance runs, even on a loaded machine.
    bootDelayMs: 1500,
    faults: { attachKeyLossRate: 1 },
  });
});
afterAll(async () => {
  await sim?.close();
  await sshd?.stop();
  await cleanupTmp();
});

const api = async (method: string, path: string, body?: unknown) => {
  const r = await fetch(sim.url + path, {
    method,
    headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return (await r.json()) as Record<string, unknown>;
};
const rent = async (offer: number) =>
  (
    await api('PUT', `/api/v0/asks/${offer}/`, {
      client_id: 'me',
      image: 'x',
      disk: 10,
      runtype: 'ssh_direct',
    })
  ).new_contract as number;
async function runningPort(id: number): Promise<number> {
  for (let n = 0; n < 500; n++) {
    const i = (await api('GET', `/api/v0/instances/${id}/`)).instances as Record<string, unknown>;
    if (i.actual_status === 'running') return i.ssh_port as number;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`instance ${id} never ran`);
}
const connectTo = (port: number, id: number) =>
  SshTransport.connect({
    host: sshd.host,
    port,
    username: sshd.user,
    privateKey: key.privateKey,
    pins: new HostKeyPins(join(home, `pins-${id}.json`)),
    pinId: `instance-${id}`,
  });

describe('vast simulator: SSH gate with a real sshd', () => {
  it('SSH reaches an instance that holds the key and fails on one whose attached key was lost', async () => {
    // Attached before it runs, and lost (attachKeyLossRate 1).
    const lost = await rent(7001001);
    expect((await api('POST', `/api/v0/instances/${lost}/ssh/`, { ssh_key: key.publicKey })).success).toBe(
      true,
    );
    // Registered on the account before the create: installed.
    await api('POST', '/api/v0/ssh/', { ssh_key: key.publicKey });
    const good = await rent(7002001);
    const t = await connectTo(await runningPort(good), good);
    try {
      expect(await t.exec('echo through-the-gate')).toMatchObject({ code: 0, stdout: 'through-the-gate\n' });
    } finally {
      await t.close();
    }
    const lostPort = await runningPort(lost);
    await expect(connectTo(lostPort, lost)).rejects.toThrow();
    expect(sim.state().sshAccess).toMatchObject({ [good]: true, [lost]: false });
    expect(sim.state().sshRefused[lost]).toBeGreaterThan(0);
    // Attached once it runs, the key stays: SSH works.
    await api('POST', `/api/v0/instances/${lost}/ssh/`, { ssh_key: key.publicKey });
    const t2 = await connectTo(lostPort, lost);
    try {
      expect((await t2.exec('true')).code).toBe(0);
    } finally {
      await t2.close();
    }
  }, 60_000);
});
