/**
 * The simulator as hard as Vast (issue 13), each behaviour over real HTTP: per-endpoint rate
 * limits per identity, other renters taking offers, offers churning, images that never boot,
 * transient statuses, slow creates, loosely typed rows, SSH keys (account, attached, lost) with
 * the per-instance SSH gate, the instance key's own calls, logs, charges, and the vast-like profile.
 */
import { createServer, connect, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { runVastSimFromFlags } from '../../../src/vast/sim/cli.js';
import {
  defaultOffers,
  startVastSim,
  type VastSim,
  type VastSimOptions,
} from '../../../src/vast/sim/server.js';

const KEY = 'sim-key-vast-like-0123456789';
const PUB1 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOne first@test';
let sim: VastSim | undefined;
let banner: Server | undefined;
afterEach(async () => {
  await sim?.close();
  sim = undefined;
  await new Promise<void>((r) => (banner ? banner.close(() => r()) : r()));
  banner = undefined;
});
async function start(over: Partial<VastSimOptions> = {}) {
  sim = await startVastSim({
    apiKey: KEY,
    offers: defaultOffers(),
    sshEndpoint: { host: '127.0.0.1', port: 2222 },
    bootDelayMs: 100,
    seed: 7,
    ...over,
  });
  return sim;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
type Json = Record<string, unknown>;
async function req(
  s: VastSim,
  method: string,
  path: string,
  body?: unknown,
  key: string | null = KEY,
  signal?: AbortSignal,
) {
  const r = await fetch(s.url + path, {
    method,
    headers: {
      ...(key ? { Authorization: `Bearer ${key}` } : {}),
      ...(body ? { 'Content-Type': 'application/json' } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  const text = await r.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, json: json as Json, text, headers: r.headers };
}
async function rent(s: VastSim, offerId: number, extra: Json = {}) {
  const r = await req(s, 'PUT', `/api/v0/asks/${offerId}/`, {
    client_id: 'me',
    image: 'img:1',
    disk: 20,
    label: `l-${offerId}`,
    ...extra,
  });
  expect(r.status, r.text).toBe(200);
  return r.json as { new_contract: number; instance_api_key: string };
}
const show = async (s: VastSim, id: number, key = KEY) =>
  (await req(s, 'GET', `/api/v0/instances/${id}/`, undefined, key)).json.instances as Json | null;
async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}
const searchIds = async (s: VastSim) =>
  ((await req(s, 'POST', '/api/v0/bundles/', {})).json.offers as { id: number }[]).map((o) => o.id);

/** A stand-in sshd that greets every connection with an SSH banner. */
async function bannerServer(): Promise<number> {
  banner = createServer((c) => c.end('SSH-2.0-OpenSSH_9.2 sim-test\r\n'));
  await new Promise<void>((r) => banner!.listen(0, '127.0.0.1', r));
  return (banner.address() as { port: number }).port;
}
/** The first bytes an SSH client would read from host:port ('' when the connection is closed at once). */
function greeting(port: number): Promise<string> {
  return new Promise((resolve) => {
    const c = connect(port, '127.0.0.1');
    let got = '';
    c.on('data', (d) => (got += d.toString()));
    c.on('close', () => resolve(got));
    c.on('error', () => resolve(got));
  });
}

describe('vast simulator: rate limits', () => {
  it('refuses a call sooner than the endpoint interval with a plain-text 429 and no Retry-After, per identity', async () => {
    // timeScale 4: create's 4.5 s interval is 1.125 s real, its 12 s penalty 3 s; show's 2 s is 500 ms.
    const s = await start({ faults: { rateLimits: true }, timeScale: 4 });
    const a = await rent(s, 7001001);
    const again = await req(s, 'PUT', '/api/v0/asks/7001002/', { client_id: 'me', image: 'x', disk: 10 });
    expect(again.status).toBe(429);
    expect(again.text).toBe('API requests too frequent: endpoint threshold=4.5');
    expect(again.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(again.headers.get('retry-after')).toBeNull();
    // Another endpoint and another identity have their own budgets.
    expect((await req(s, 'GET', `/api/v0/instances/${a.new_contract}/`)).status).toBe(200);
    expect((await req(s, 'GET', `/api/v0/instances/${a.new_contract}/`)).status).toBe(429);
    expect(
      (await req(s, 'GET', `/api/v0/instances/${a.new_contract}/`, undefined, a.instance_api_key)).status,
    ).toBe(200);
    // Past the penalty (3 s after the refused create) the next create is accepted.
    await sleep(3200);
    expect(
      (await req(s, 'PUT', '/api/v0/asks/7001002/', { client_id: 'me', image: 'x', disk: 10 })).status,
    ).toBe(200);
    const calls = (await fetch(`${s.url}/_sim/state`).then((r) => r.json())) as { calls: Json };
    expect(calls.calls).toMatchObject({ create: { ok: 2, r429: 1 }, show: { ok: 2, r429: 1 } });
  });

  it('burst limits, configurable intervals, and the kind default that limits nothing', async () => {
    const s = await start({
      faults: {
        rateLimits: {
          intervalsMs: { search: 0, list: 1000 },
          burst: { search: { calls: 3, perMs: 60_000 } },
        },
      },
    });
    for (let n = 0; n < 3; n++) expect((await req(s, 'POST', '/api/v0/bundles/', {})).status).toBe(200);
    const fourth = await req(s, 'POST', '/api/v0/bundles/', {});
    expect(fourth).toMatchObject({ status: 429, text: 'API requests too frequent' });
    expect((await req(s, 'GET', '/api/v1/instances/')).status).toBe(200);
    expect((await req(s, 'GET', '/api/v1/instances/')).status).toBe(429);
    await sleep(1100);
    expect((await req(s, 'GET', '/api/v1/instances/')).status).toBe(200);
    expect(s.state().calls).toMatchObject({ search: { ok: 3, r429: 1 }, list: { ok: 2, r429: 1 } });
    s.setFaults({});
    for (let n = 0; n < 5; n++) expect((await req(s, 'GET', '/api/v1/instances/')).status).toBe(200);
  });
});

describe('vast simulator: the market', () => {
  it('a create can lose the race to another renter (404 no_such_ask or 410); the offer comes back later', async () => {
    // timeScale 1000: the other renter holds the machine 30-300 ms.
    const s = await start({ faults: { competitorRate: 1 }, timeScale: 1000 });
    const statuses = new Set<number>();
    for (const id of [7001001, 7001002, 7001003, 7002001, 7002002, 7002003]) {
      const r = await req(s, 'PUT', `/api/v0/asks/${id}/`, { client_id: 'me', image: 'x', disk: 10 });
      statuses.add(r.status);
      expect(r.text).toMatch(/no_such_ask/);
    }
    expect([...statuses].sort()).toEqual([404, 410]);
    expect(await searchIds(s)).not.toContain(7001001);
    expect(s.state()).toMatchObject({ rented: [], faultsInjected: { competitorWon: 6 } });
    s.setFaults({});
    await until('the offer to come back', async () =>
      (await searchIds(s)).includes(7001001) ? true : undefined,
    );
    await rent(s, 7001001);
  });

  it('offers churn: some leave the search for a period and come back; a hidden offer cannot be rented', async () => {
    const s = await start({ faults: { offerChurn: 0.5, offerChurnPeriodMs: 60 } });
    const seen: number[][] = [];
    for (let n = 0; n < 25; n++) {
      seen.push(await searchIds(s));
      await sleep(40);
    }
    const all = defaultOffers().map((o) => o.id);
    expect(seen.some((ids) => ids.length < all.length)).toBe(true);
    // Every offer missing from one search is listed again in a later one (or earlier: it was there before).
    const missingOnce = all.filter((id) => seen.some((ids) => !ids.includes(id)));
    expect(missingOnce.length).toBeGreaterThan(0);
    expect(missingOnce.filter((id) => seen.some((ids) => ids.includes(id))).length).toBeGreaterThan(0);
    const hidden = await until('a hidden offer', async () => {
      const ids = await searchIds(s);
      return all.find((id) => !ids.includes(id));
    });
    const r = await req(s, 'PUT', `/api/v0/asks/${hidden}/`, { client_id: 'me', image: 'x', disk: 10 });
    // It may have come back in between; then it is rented.
    expect([200, 410]).toContain(r.status);
  });
});

describe('vast simulator: boots', () => {
  it('a bad image never boots: status_msg shows the error while the status stays loading/created', async () => {
    const s = await start({ faults: { badImageMachineIds: [32001], badImageRate: 0 }, bootDelayMs: 100 });
    const bad = (await rent(s, 7002001)).new_contract;
    const ok = (await rent(s, 7001001)).new_contract;
    const row = await until('the image error', async () => {
      const r = await show(s, bad);
      return typeof r?.status_msg === 'string' && r.status_msg.includes('Error') ? r : undefined;
    });
    expect(['loading', 'created']).toContain(row.actual_status);
    await until('the good one to run', async () =>
      (await show(s, ok))?.actual_status === 'running' ? true : undefined,
    );
    await sleep(300);
    const later = await show(s, bad);
    expect(later).toMatchObject({ actual_status: row.actual_status, status_msg: row.status_msg });
    expect(later?.ports ?? null).toBeNull();
    const st = s.state();
    expect(st.badImage[bad]).toBe(row.status_msg);
    expect(st.badImage[ok]).toBeUndefined();
    expect(st.billedSeconds[bad]).toBe(0);
  });

  it('badImageRate: pull errors stay loading, OCI errors stay created', async () => {
    const s = await start({ faults: { badImageRate: 1 }, bootDelayMs: 50 });
    const ids = [];
    for (const o of [7001001, 7001002, 7001003, 7002001, 7002002, 7002003])
      ids.push((await rent(s, o)).new_contract);
    await sleep(150);
    const rows = await Promise.all(ids.map((id) => show(s, id)));
    const kinds = new Set<string>();
    for (const r of rows) {
      const msg = String(r?.status_msg);
      if (/pull access denied/.test(msg)) {
        expect(r?.actual_status).toBe('loading');
        kinds.add('pull');
      } else {
        expect(msg).toMatch(/OCI runtime create failed/);
        expect(r?.actual_status).toBe('created');
        kinds.add('oci');
      }
    }
    expect([...kinds].sort()).toEqual(['oci', 'pull']);
    expect(s.state().faultsInjected.badImage).toBe(6);
  });

  it('a running instance goes unknown/rebooting for a while, keeps its ports, then runs again', async () => {
    const s = await start({
      faults: { transientStatusRate: 1, transientAfterMs: 300, transientStatusMs: 1000 },
      bootDelayMs: 100,
    });
    const id = (await rent(s, 7001001, { runtype: 'ssh_direct' })).new_contract;
    const seq: string[] = [];
    const end = Date.now() + 6000;
    while (Date.now() < end) {
      const r = await show(s, id);
      const st = String(r?.actual_status);
      if (st === 'unknown' || st === 'rebooting') expect(r?.ports).toHaveProperty('22/tcp');
      if (seq[seq.length - 1] !== st) seq.push(st);
      if (seq.length >= 3 && st === 'running' && seq.includes('running')) {
        if (seq.some((x) => x === 'unknown' || x === 'rebooting')) break;
      }
      await sleep(15);
    }
    const t = seq.findIndex((x) => x === 'unknown' || x === 'rebooting');
    expect(t, seq.join(' ')).toBeGreaterThan(0);
    expect(seq[t - 1]).toBe('running');
    expect(seq[t + 1]).toBe('running');
    expect(s.state().faultsInjected.transient).toBe(1);
    // The hook, for a test that wants one at a given time.
    const hook = await fetch(`${s.url}/_sim/instances/${id}/transient`, {
      method: 'POST',
      body: JSON.stringify({ status: 'unknown', ms: 60_000 }),
    });
    expect(hook.status).toBe(200);
    expect((await show(s, id))?.actual_status).toBe('unknown');
    // Only a running instance can go transient.
    expect(s.transientStatus(id, 'rebooting', 10)).toBe(false);
  });

  it('a slow create answers after the client gave up; the instance exists with its label and bills', async () => {
    const s = await start({ faults: { slowCreateRate: 1, slowCreateMs: 5000 }, bootDelayMs: 50 });
    const sent = Date.now();
    await expect(
      req(
        s,
        'PUT',
        '/api/v0/asks/7001001/',
        { client_id: 'me', image: 'x', disk: 10, label: 'ambiguous' },
        KEY,
        AbortSignal.timeout(300),
      ),
    ).rejects.toThrow();
    const q = encodeURIComponent(JSON.stringify({ label: { eq: 'ambiguous' } }));
    const found = (await req(s, 'GET', `/api/v1/instances/?select_filters=${q}`)).json;
    expect(found.instances_found).toBe(1);
    const id = (found.instances as Json[])[0]!.id as number;
    expect(s.state().rented).toEqual([id]);
    await sleep(200);
    expect(s.state().billedSeconds[id]).toBeGreaterThan(0);
    expect(Date.now() - sent).toBeLessThan(5000);
    expect(s.state().faultsInjected.slowCreate).toBe(1);
  });
});

describe('vast simulator: loosely typed rows', () => {
  it('oddRows: ports as {}, null or a list, extra_env as strings, nulls in usage fields', async () => {
    const s = await start({ faults: { oddRows: true }, bootDelayMs: 60_000 });
    for (const o of [7001001, 7001002, 7001003]) await rent(s, o, { env: { A: '1', B: '2' } });
    const rows = (await req(s, 'GET', '/api/v1/instances/')).json.instances as Json[];
    expect(rows).toHaveLength(3);
    const ports = rows.map((r) => JSON.stringify(r.ports)).sort();
    expect(ports).toEqual(['[]', 'null', '{}']);
    for (const r of rows) {
      expect(Array.isArray(r.extra_env)).toBe(true);
      expect((r.extra_env as unknown[]).some((e) => typeof e === 'string')).toBe(true);
      expect(r.gpu_util).toBeNull();
    }
    // Off: the documented shapes.
    s.setFaults({});
    const plain = (await req(s, 'GET', '/api/v1/instances/')).json.instances as Json[];
    for (const r of plain) {
      expect(r.ports).toBeNull();
      expect(r.extra_env).toEqual([
        ['A', '1'],
        ['B', '2'],
      ]);
    }
  });
});

describe('vast simulator: SSH keys', () => {
  it('account keys reach new instances; a key attached before running may be lost; SSH works only with a key', async () => {
    const port = await bannerServer();
    const s = await start({
      sshEndpoint: { host: '127.0.0.1', port },
      sshAuthorizedKeys: [PUB1],
      faults: { attachKeyLossRate: 1 },
      // Long enough that the first attach comes before the instance runs, even on a loaded machine.
      bootDelayMs: 1500,
    });
    // Created before the account had a key: the attach (before it runs) is lost.
    const early = (await rent(s, 7001001, { runtype: 'ssh_direct' })).new_contract;
    expect((await req(s, 'POST', `/api/v0/instances/${early}/ssh/`, { ssh_key: PUB1 })).json.success).toBe(
      true,
    );
    // Registered on the account: every instance created from now on holds it.
    const acct = await req(s, 'POST', '/api/v0/ssh/', { ssh_key: PUB1 });
    const keyId = (acct.json.key as { id: number }).id;
    const late = (await rent(s, 7002001, { runtype: 'ssh_direct' })).new_contract;
    const running = async (id: number) =>
      (await show(s, id))?.actual_status === 'running' ? ((await show(s, id)) as Json) : undefined;
    const lateRow = await until('late to run', () => running(late));
    const earlyRow = await until('early to run', () => running(early));
    expect(lateRow.ssh_port).not.toBe(earlyRow.ssh_port);
    expect(lateRow.ports).toEqual({ '22/tcp': [{ HostIp: '0.0.0.0', HostPort: String(lateRow.ssh_port) }] });
    let st = s.state();
    expect(st.sshKeys[late]).toEqual([PUB1]);
    expect(st.sshKeys[early]).toEqual([]);
    expect(st.sshKeysLost[early]).toEqual([PUB1]);
    expect(st.sshAccess).toMatchObject({ [late]: true, [early]: false });
    expect(await greeting(lateRow.ssh_port as number)).toMatch(/^SSH-2\.0-/);
    expect(await greeting(earlyRow.ssh_port as number)).toBe('');
    expect(s.state().sshRefused[early]).toBe(1);
    // Attached once it runs: kept, and SSH works.
    await req(s, 'POST', `/api/v0/instances/${early}/ssh/`, { ssh_key: PUB1 });
    expect(s.state().sshAccess[early]).toBe(true);
    expect(await greeting(earlyRow.ssh_port as number)).toMatch(/^SSH-2\.0-/);
    // Removed from the account: later instances do not get it; existing ones keep theirs.
    expect((await req(s, 'DELETE', `/api/v0/ssh/${keyId}/`, {})).status).toBe(200);
    expect((await req(s, 'GET', '/api/v0/ssh/')).json).toEqual([]);
    const after = (await rent(s, 7003001)).new_contract;
    st = s.state();
    expect(st.sshKeys[after]).toEqual([]);
    expect(st.sshAccess[late]).toBe(true);
    // A destroyed instance's port is closed.
    await req(s, 'DELETE', `/api/v0/instances/${late}/`, {});
    expect(await greeting(lateRow.ssh_port as number)).toBe('');
  });

  it('without sshAuthorizedKeys every instance is the SSH endpoint itself and access is not modelled', async () => {
    const s = await start({ bootDelayMs: 10 });
    const id = (await rent(s, 7001001)).new_contract;
    expect((await show(s, id))?.ssh_port).toBe(2222);
    expect(s.state().sshAccess[id]).toBeNull();
  });
});

describe('vast simulator: the instance key, logs and charges', () => {
  it('the instance key shows, stops, starts and destroys its own instance; storage bills while stopped', async () => {
    // timeScale 3600: 1 real ms = 1 simulated second.
    // A restart boots in 30 % of it: 300 ms, long enough to see it loading.
    const s = await start({ bootDelayMs: 1000, timeScale: 3600 });
    const a = await rent(s, 7001001, { runtype: 'ssh_direct' });
    const other = await rent(s, 7002001);
    const id = a.new_contract;
    const ik = a.instance_api_key;
    await until('running', async () =>
      (await show(s, id, ik))?.actual_status === 'running' ? true : undefined,
    );
    expect(
      (await req(s, 'PUT', `/api/v0/instances/${other.new_contract}/`, { state: 'stopped' }, ik)).status,
    ).toBe(403);
    expect((await req(s, 'PUT', `/api/v0/instances/${id}/`, { state: 'paused' }, ik)).status).toBe(400);
    expect((await req(s, 'PUT', `/api/v0/instances/${id}/`, { state: 'stopped' }, ik)).json).toEqual({
      success: true,
    });
    const stopped = await show(s, id, ik);
    expect(stopped).toMatchObject({
      actual_status: 'stopped',
      intended_status: 'stopped',
      cur_state: 'stopped',
    });
    expect(stopped?.ports ?? null).toBeNull();
    const c1 = s.state().charges[id]!;
    await sleep(100);
    const c2 = s.state().charges[id]!;
    expect(c2.gpu).toBe(c1.gpu);
    expect(c2.disk).toBeGreaterThan(c1.disk);
    expect((await req(s, 'PUT', `/api/v0/instances/${id}/`, { state: 'running' }, ik)).json).toEqual({
      success: true,
    });
    expect((await show(s, id, ik))?.actual_status).toBe('loading');
    await until('running again', async () =>
      (await show(s, id, ik))?.actual_status === 'running' ? true : undefined,
    );
    await sleep(20);
    expect(s.state().charges[id]!.gpu).toBeGreaterThan(c2.gpu);
    expect((await req(s, 'DELETE', `/api/v0/instances/${id}/`, {}, ik)).json).toEqual({ success: true });
    expect(s.state().destroyed).toEqual([id]);
  });

  it('request_logs: a result_url readable without auth once uploaded; only for its own instance', async () => {
    const s = await start({ bootDelayMs: 20, logsDelayMs: 1000, faults: { badImageMachineIds: [31001] } });
    const a = await rent(s, 7001001);
    const b = await rent(s, 7002001);
    expect(
      (await req(s, 'PUT', `/api/v0/instances/request_logs/${b.new_contract}/`, {}, a.instance_api_key))
        .status,
    ).toBe(403);
    expect((await req(s, 'PUT', '/api/v0/instances/request_logs/1/', { tail: '1000' })).json.error).toBe(
      'invalid_id',
    );
    const r = await req(
      s,
      'PUT',
      `/api/v0/instances/request_logs/${a.new_contract}/`,
      { tail: '1000' },
      a.instance_api_key,
    );
    expect(r.json).toMatchObject({ success: true, result_url: expect.stringMatching(/^http:\/\//) });
    const url = r.json.result_url as string;
    expect((await fetch(url)).status).toBe(404);
    await sleep(1100);
    const log = await fetch(url);
    expect(log.status).toBe(200);
    expect(await log.text()).toMatch(/pull access denied|OCI runtime create failed/);
  });

  it('charges per instance: GPU while running, storage from creation, the image pull, and a deliberate surcharge', async () => {
    const s = await start({
      bootDelayMs: 1000,
      timeScale: 3600,
      billing: { storageAlways: true, imagePullGb: 10 },
    });
    const id = (await rent(s, 7001001, { label: 'run:BTC' })).new_contract;
    expect((await req(s, 'GET', '/api/v0/charges/')).status).toBe(400);
    const now = () => Math.floor(Date.now() / 1000);
    const q = () =>
      `/api/v0/charges/?select_filters=${encodeURIComponent(JSON.stringify({ day: { gte: now() - 3600, lte: now() + 60 } }))}&limit=20&latest_first=false&format=table`;
    await sleep(60);
    // Booting: storage only, no GPU, nothing pulled yet.
    let c = s.state().charges[id]!;
    expect(c).toMatchObject({ gpu: 0, bwd: 0 });
    expect(c.disk).toBeGreaterThan(0);
    await until('running', async () => ((await show(s, id))?.actual_status === 'running' ? true : undefined));
    await sleep(50);
    c = s.state().charges[id]!;
    expect(c.gpu).toBeGreaterThan(0);
    expect(c.bwd).toBeCloseTo(10 * 0.002, 9);
    const r1 = (await req(s, 'GET', q())).json;
    expect(r1).toMatchObject({ success: true, count: 1, next_token: null });
    const row = (r1.results as Json[])[0]!;
    expect(row).toMatchObject({ type: 'instance', source: `instance-${id}`, metadata: { label: 'run:BTC' } });
    expect((row.items as Json[]).map((x) => x.type)).toEqual(['gpu', 'disk', 'bwd', 'bwu']);
    const items = Object.fromEntries(
      (row.items as { type: string; amount: number }[]).map((x) => [x.type, x.amount]),
    );
    expect(row.amount as number).toBeCloseTo(items.gpu! + items.disk! + items.bwd! + items.bwu!, 5);
    // A deliberate billing difference: Vast bills $0.5 more for this instance, not itemized.
    const hook = await fetch(`${s.url}/_sim/instances/${id}/surcharge`, {
      method: 'POST',
      body: JSON.stringify({ usd: 0.5 }),
    });
    expect(hook.status).toBe(200);
    await req(s, 'DELETE', `/api/v0/instances/${id}/`, {});
    const st = s.state();
    expect(st.charges[id]!.surcharge).toBe(0.5);
    expect(st.billedUsd[id]).toBeCloseTo(st.charges[id]!.total, 12);
    const r2 = (await req(s, 'GET', q())).json;
    const row2 = (r2.results as Json[])[0]!;
    expect(row2.amount as number).toBeCloseTo(st.charges[id]!.total, 5);
    expect(row2.amount as number).toBeGreaterThan((row.amount as number) + 0.5);
    // Out of range, or another charge type: nothing.
    const old = encodeURIComponent(JSON.stringify({ day: { gte: 1, lte: 2 } }));
    expect((await req(s, 'GET', `/api/v0/charges/?select_filters=${old}`)).json.count).toBe(0);
    const vol = encodeURIComponent(
      JSON.stringify({ day: { gte: 1, lte: now() + 60 }, type: { in: ['volume'] } }),
    );
    expect((await req(s, 'GET', `/api/v0/charges/?select_filters=${vol}`)).json.count).toBe(0);
    // Invoices: a missing range is a 200 with success:false.
    expect((await req(s, 'GET', '/api/v1/invoices/')).json).toMatchObject({ success: false });
  });

  it('the kind default bills as before: nothing while booting, no bandwidth', async () => {
    const s = await start({ bootDelayMs: 1000, timeScale: 3600 });
    const id = (await rent(s, 7001001)).new_contract;
    await sleep(50);
    expect(s.state().charges[id]).toMatchObject({ gpu: 0, disk: 0, bwd: 0, total: 0 });
  });
});

describe('vast simulator: profiles', () => {
  it('vast-like turns the behaviours on; kind (the default) leaves them off', async () => {
    const s = await start({ profile: 'vast-like', timeScale: 1, bootDelayMs: 60_000, seed: 11 });
    expect((await req(s, 'GET', '/api/v1/instances/')).status).toBe(200);
    expect((await req(s, 'GET', '/api/v1/instances/')).status).toBe(429);
    // A test can switch one off and keep the others.
    s.setFaults({ rateLimits: false, competitorRate: 0, offerChurn: 0 });
    const a = await rent(s, 7001001, { env: { A: '1' } });
    const b = await rent(s, 7001002, { env: { A: '1' } });
    const rows = (await req(s, 'GET', '/api/v1/instances/')).json.instances as Json[];
    expect(rows.map((r) => r.id).sort()).toEqual([a.new_contract, b.new_contract].sort());
    expect(rows.every((r) => typeof (r.extra_env as unknown[])[0] === 'string')).toBe(true);
    await sim!.close();
    const k = await start({ bootDelayMs: 10 });
    for (let n = 0; n < 5; n++) expect((await req(k, 'GET', '/api/v1/instances/')).status).toBe(200);
    expect(k.state().calls.list).toEqual({ ok: 5, r429: 0 });
  });

  it('retrain vast-sim flags: --profile vast-like, --rate-limits, and a clear error for a bad profile', async () => {
    const lines: string[] = [];
    sim = await runVastSimFromFlags(
      { sshHost: '127.0.0.1', sshPort: 2222, profile: 'kind', rateLimits: true, oddRows: true, port: 0 },
      (l) => lines.push(l),
    );
    expect(lines[0]).toMatch(/^vast-sim listening on http:\/\/127\.0\.0\.1:\d+$/);
    expect((await req(sim, 'GET', '/api/v1/instances/', undefined, 'any')).status).toBe(200);
    expect((await req(sim, 'GET', '/api/v1/instances/', undefined, 'any')).status).toBe(429);
    await expect(
      runVastSimFromFlags({ sshHost: '127.0.0.1', sshPort: 2222, profile: 'hard' }, () => undefined),
    ).rejects.toThrow(/--profile must be kind or vast-like/);
    await expect(
      runVastSimFromFlags({ sshHost: '127.0.0.1', sshPort: 2222, competitorRate: 2 }, () => undefined),
    ).rejects.toThrow(/--competitor-rate must be a number in \[0, 1\]/);
  });
});
