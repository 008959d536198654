import { createServer, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import {
  VastApiError,
  VastAuthError,
  VastClient,
  VastOfferGoneError,
  parseRetryAfter,
  sanitizeSnippet,
} from '../../../src/vast/client.js';
import { buildOfferQuery, chooseOffers, type OfferConstraints } from '../../../src/vast/offers.js';
import {
  defaultOffers,
  startVastSim,
  type VastSim,
  type VastSimOptions,
} from '../../../src/vast/sim/server.js';
import { sshEndpoint } from '../../../src/vast/endpoint.js';

const KEY = 'a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90';
const SSH = { host: '127.0.0.1', port: 2222 };
const PUB = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk0bmFrZWtleWZvcnRlc3RzMDAwMDAwMDAwMDAw test@retrain';

const constraints: OfferConstraints = {
  gpuNames: ['RTX_3090', 'RTX_4090'],
  maxHourlyCost: 1,
  minGpuMemoryGb: 24,
  minReliability: 0.95,
  verifiedOnly: true,
  minDiskGb: 40,
  minInetDownMbps: 100,
  numGpus: 1,
};

let sim: VastSim | undefined;
let extra: Server | undefined;
afterEach(async () => {
  await sim?.close();
  sim = undefined;
  await new Promise<void>((r) => (extra ? extra.close(() => r()) : r()));
  extra = undefined;
});

async function start(over: Partial<VastSimOptions> = {}) {
  sim = await startVastSim({
    apiKey: KEY,
    offers: defaultOffers(),
    sshEndpoint: SSH,
    bootDelayMs: 150,
    seed: 42,
    ...over,
  });
  return sim;
}
const client = (url: string, over: Partial<ConstructorParameters<typeof VastClient>[0]> = {}) =>
  new VastClient({
    apiUrl: url,
    apiKey: KEY,
    minRetryDelayMs: 5,
    maxRetryDelayMs: 40,
    timeoutMs: 5000,
    ...over,
  });
const until = async (fn: () => Promise<boolean>, ms = 3000) => {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error('condition not met');
    await new Promise((r) => setTimeout(r, 25));
  }
};
function expectNoKey(err: unknown) {
  const e = err as Error;
  expect(String(e)).not.toContain(KEY);
  expect(e.message).not.toContain(KEY);
  expect(JSON.stringify(e)).not.toContain(KEY);
  expect(e.stack ?? '').not.toContain(KEY);
  expect(JSON.stringify(Object.entries(e))).not.toContain(KEY);
  expect(e.cause).toBeUndefined();
}

describe('VastClient against the simulator', () => {
  it('search → create → get (boots to running) → list → attach key → destroy round trip', async () => {
    // Booting for 2 s: the first read, two requests after the create, still sees it booting.
    const s = await start({ bootDelayMs: 2000 });
    const c = client(s.url);
    const offers = chooseOffers(await c.searchOffers(buildOfferQuery(constraints)), constraints, {
      machineIds: new Set(),
    });
    expect(offers.length).toBeGreaterThan(1);
    expect(offers.every((o) => ['RTX 3090', 'RTX 4090'].includes(o.gpu_name) && o.dph_total <= 1)).toBe(true);
    const best = offers[0]!;
    const { instanceId, instanceApiKey } = await c.createInstance(best.id, {
      image: 'vastai/base:cuda-12.4',
      disk: 40,
      label: 'retrain-test-job1',
      onstart: 'echo hi',
      env: { FOO: 'bar' },
    });
    expect(instanceId).toBeGreaterThan(0);
    expect(instanceApiKey).toMatch(/^[0-9a-f]{64}$/);
    // A rented offer leaves the search results.
    expect((await c.searchOffers(buildOfferQuery(constraints))).map((o) => o.id)).not.toContain(best.id);

    const first = await c.getInstance(instanceId);
    expect(first?.actual_status ?? null).not.toBe('running');
    expect(sshEndpoint(first)).toBeNull();
    await until(async () => (await c.getInstance(instanceId))?.actual_status === 'running', 10_000);
    const inst = (await c.getInstance(instanceId))!;
    expect(inst).toMatchObject({
      id: instanceId,
      label: 'retrain-test-job1',
      onstart: 'echo hi',
      intended_status: 'running',
    });
    expect(inst.public_ipaddr).toBe('127.0.0.1');
    expect(sshEndpoint(inst)).toEqual(SSH);
    expect(s.state().env[instanceId]).toMatchObject({
      FOO: 'bar',
      CONTAINER_ID: String(instanceId),
      CONTAINER_API_KEY: instanceApiKey,
    });

    expect((await c.listInstances()).map((i) => i.id)).toEqual([instanceId]);
    expect((await c.listInstances({ label: 'nope' })).map((i) => i.id)).toEqual([]);
    await c.attachSshKey(instanceId, PUB);
    expect(s.state().sshKeys[instanceId]).toEqual([PUB]);
    const b = await c.getBalance();
    expect(b.credit).toBeGreaterThan(0);
    expect(JSON.stringify(b)).not.toContain(KEY);
    expect(Object.keys(b).sort()).toEqual(['balance', 'credit']);

    await c.destroyInstance(instanceId);
    expect(await c.getInstance(instanceId)).toBeNull();
    await c.destroyInstance(instanceId); // idempotent: 404 is success
    expect(s.state()).toMatchObject({
      rented: [instanceId],
      destroyed: [instanceId],
      alive: [],
      apiKeyInUrl: 0,
    });
    // Destroyed: the offer is back.
    expect((await c.searchOffers(buildOfferQuery(constraints))).map((o) => o.id)).toContain(best.id);
  });

  it('follows v1 pagination (25 per page)', async () => {
    const many = Array.from({ length: 30 }, (_, n) => ({
      ...defaultOffers()[0]!,
      id: 9000 + n,
      machine_id: 8000 + n,
    }));
    const s = await start({ offers: many, bootDelayMs: 0 });
    const c = client(s.url);
    for (const o of many) await c.createInstance(o.id, { image: 'x', disk: 10, label: `l${o.id % 2}` });
    expect(await c.listInstances()).toHaveLength(30);
    expect(await c.listInstances({ label: 'l1' })).toHaveLength(15);
  });

  it('retries through injected 429s and 5xx (rate 0.5, seeded) and still succeeds', async () => {
    const s = await start({ faults: { rate429: 0.5 }, seed: 7 });
    const retries: number[] = [];
    const c = client(s.url, { retries: 12, onRetry: (i) => retries.push(i.status ?? 0) });
    const offers = await c.searchOffers(buildOfferQuery(constraints));
    const { instanceId } = await c.createInstance(chooseOffers(offers, constraints)[0]!.id, {
      image: 'x',
      disk: 40,
      label: 'r',
    });
    s.setFaults({ rate5xx: 0.5 });
    for (let n = 0; n < 5; n++) expect((await c.getInstance(instanceId))?.id).toBe(instanceId);
    await c.listInstances();
    await c.destroyInstance(instanceId);
    expect(retries).toContain(429);
    expect(retries.some((st) => st >= 500)).toBe(true);
    expect(s.state().faultsInjected['429']).toBeGreaterThan(0);
    expect(s.state().faultsInjected['5xx']).toBeGreaterThan(0);
    expect(s.state().alive).toEqual([]);
  });

  it('auth failure is a non-retryable VastAuthError that never carries the key', async () => {
    const s = await start({ apiKey: 'the-right-key' });
    let calls = 0;
    const c = client(s.url, { onRetry: () => calls++ });
    const err = await c.searchOffers({}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VastAuthError);
    expect((err as VastAuthError).retryable).toBe(false);
    expect((err as VastAuthError).code).toBe('provisioning');
    expect((err as Error).message).toMatch(/401/);
    expect(calls).toBe(0);
    expectNoKey(err);
  });

  it('network errors do not leak the key (no axios config escapes)', async () => {
    const s = await start();
    const url = s.url;
    s.setDown('refuse');
    await new Promise((r) => setTimeout(r, 20));
    const err = await client(url, { retries: 1 })
      .getBalance()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VastApiError);
    expect((err as Error).message).toMatch(/network error/);
    expectNoKey(err);
    s.setDown('none');
    await until(
      async () =>
        (await client(url)
          .getBalance()
          .then(() => true)
          .catch(() => false)) === true,
    );
  });

  it('an HTML 502 page becomes a clear one-line error', async () => {
    extra = createServer((_req, res) => {
      res.writeHead(502, { 'Content-Type': 'text/html' });
      res.end(
        `<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n<!-- ${KEY} -->\r\n</body>\r\n</html>\r\n`,
      );
    });
    await new Promise<void>((r) => extra!.listen(0, '127.0.0.1', () => r()));
    const port = (extra.address() as { port: number }).port;
    const err = await client(`http://127.0.0.1:${port}`, { retries: 1 })
      .getInstance(5)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VastApiError);
    const msg = (err as Error).message;
    expect(msg).not.toContain('\n');
    expect(msg).not.toContain('<');
    expect(msg).toMatch(/GET \/api\/v0\/instances\/5\/: HTTP 502.*HTML page: 502 Bad Gateway/);
    expect((err as VastApiError).retryable).toBe(true);
    expectNoKey(err);
  });

  it('200 with success:false, non-JSON 200 and Retry-After are handled', async () => {
    let hits = 0;
    extra = createServer((req, res) => {
      hits++;
      if (req.url?.startsWith('/api/v0/users/current')) {
        if (hits === 1) {
          res.writeHead(429, { 'Retry-After': '0', 'Content-Type': 'text/plain' });
          return res.end('API requests too frequent: endpoint threshold=1.0');
        }
        res.writeHead(200, { 'Content-Type': 'application/json' });
        return res.end(
          JSON.stringify({ success: false, error: 'insufficient_credit', msg: 'Insufficient credits' }),
        );
      }
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end('<html>maintenance</html>');
    });
    await new Promise<void>((r) => extra!.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(extra.address() as { port: number }).port}`;
    const e1 = await client(url)
      .getBalance()
      .catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(VastApiError);
    expect((e1 as Error).message).toMatch(/success=false: insufficient_credit: Insufficient credits/);
    expect(hits).toBe(2);
    const e2 = await client(url)
      .searchOffers({})
      .catch((e: unknown) => e);
    expect((e2 as Error).message).toMatch(/HTTP 200.*HTML page: maintenance/);
    expect(parseRetryAfter('3')).toBe(3000);
    expect(parseRetryAfter(new Date(Date.now() + 5000).toUTCString())).toBeGreaterThan(3000);
    expect(parseRetryAfter(undefined)).toBeUndefined();
    expect(sanitizeSnippet(`<b>x</b>\n ${KEY} y`, KEY)).toBe('x *** y');
  });

  it('offer gone on create → VastOfferGoneError; unknown offer too', async () => {
    const s = await start({ faults: { offerGoneOnCreate: 1 } });
    const c = client(s.url);
    const [o1] = await c.searchOffers({});
    const err = await c.createInstance(o1!.id, { image: 'x', disk: 10, label: 'l' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VastOfferGoneError);
    expect((err as VastOfferGoneError).retryable).toBe(true);
    expect((err as VastOfferGoneError).status).toBe(410);
    s.setFaults({});
    expect((await c.searchOffers({})).map((o) => o.id)).not.toContain(o1!.id);
    const err2 = await c.createInstance(123, { image: 'x', disk: 10, label: 'l' }).catch((e: unknown) => e);
    expect(err2).toBeInstanceOf(VastOfferGoneError);
    expect((err2 as VastOfferGoneError).status).toBe(404);
    expect(s.state().rented).toEqual([]);
  });

  it('two rents of the same offer: the second finds it gone', async () => {
    const s = await start();
    const c = client(s.url);
    const [o] = await c.searchOffers({});
    await c.createInstance(o!.id, { image: 'x', disk: 10, label: 'a' });
    await expect(c.createInstance(o!.id, { image: 'x', disk: 10, label: 'b' })).rejects.toBeInstanceOf(
      VastOfferGoneError,
    );
  });

  it('rejects bad requests before sending them', async () => {
    const c = client('http://127.0.0.1:9');
    await expect(c.attachSshKey(1, '-----BEGIN OPENSSH PRIVATE KEY-----')).rejects.toBeInstanceOf(
      VastApiError,
    );
    await expect(c.createInstance(1, { image: '', disk: 10, label: 'x' })).rejects.toThrow(/image/);
    await expect(c.createInstance(1, { image: 'x', disk: 10, label: 'x', price: 500 })).rejects.toThrow(
      /price/,
    );
    expect(JSON.stringify(c)).not.toContain(KEY);
  });
});
