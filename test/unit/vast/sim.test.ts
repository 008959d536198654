import { afterEach, describe, expect, it } from 'vitest';
import { VastClient } from '../../../src/vast/client.js';
import { runVastSimFromFlags } from '../../../src/vast/sim/cli.js';
import {
  defaultOffers,
  startVastSim,
  type VastSim,
  type VastSimOptions,
} from '../../../src/vast/sim/server.js';

const KEY = 'sim-key-0123456789';
let sim: VastSim | undefined;
afterEach(async () => {
  await sim?.close();
  sim = undefined;
});
async function start(over: Partial<VastSimOptions> = {}) {
  sim = await startVastSim({
    apiKey: KEY,
    offers: defaultOffers(),
    sshEndpoint: { host: '127.0.0.1', port: 2222 },
    bootDelayMs: 100,
    seed: 1,
    ...over,
  });
  return sim;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const req = async (s: VastSim, method: string, path: string, body?: unknown, key: string | null = KEY) => {
  const r = await fetch(s.url + path, {
    method,
    headers: {
      ...(key ? { Authorization: `Bearer ${key}` } : {}),
      ...(body ? { 'Content-Type': 'application/json' } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, json: json as Record<string, unknown>, text };
};
const rent = async (s: VastSim, offerId = 7001001, extra: Record<string, unknown> = {}) => {
  const r = await req(s, 'PUT', `/api/v0/asks/${offerId}/`, {
    client_id: 'me',
    image: 'img:1',
    disk: 20,
    label: 'x',
    ...extra,
  });
  expect(r.status, r.text).toBe(200);
  return r.json as { success: boolean; new_contract: number; instance_api_key: string };
};

describe('vast simulator', () => {
  it('speaks the Vast shapes: auth, wrappers, deprecated v0 list, trailing slashes', async () => {
    // A boot long enough that the instance is still at its first phase (null) when shown below.
    const s = await start({ bootDelayMs: 60_000 });
    expect(await req(s, 'GET', '/api/v0/users/current/', undefined, null)).toMatchObject({
      status: 401,
      json: { success: false, error: 'auth_error' },
    });
    expect((await req(s, 'GET', '/api/v0/users/current', undefined, 'wrong')).status).toBe(401);
    expect(await req(s, 'GET', '/api/v0/instances/')).toMatchObject({
      status: 410,
      json: { error: 'deprecated_endpoint' },
    });
    const created = await rent(s);
    expect(created).toMatchObject({ success: true, new_contract: expect.any(Number) });
    const id = created.new_contract;
    const show = await req(s, 'GET', `/api/v0/instances/${id}?owner=me`);
    expect(show.json.instances).toMatchObject({
      id,
      actual_status: null,
      intended_status: 'running',
      cur_state: 'running',
    });
    const v1 = await req(s, 'GET', '/api/v1/instances');
    expect(v1.json).toMatchObject({
      success: true,
      instances_found: 1,
      total_instances: 1,
      next_token: null,
    });
    expect(v1.json.label_counts).toEqual({ x: 1 });
    const bad = await req(
      s,
      'GET',
      `/api/v1/instances/?select_filters=${encodeURIComponent('{"dph_total":{"lt":1}}')}`,
    );
    expect(bad.status).toBe(400);
    expect((await req(s, 'GET', '/api/v1/instances/?after_token=%%%')).json.error).toBe('invalid_token');
    // numbers as strings (the CLI's form) are coerced
    const q = await req(s, 'POST', '/api/v0/bundles/', {
      gpu_name: { eq: 'RTX 4090' },
      num_gpus: { eq: '1' },
      dph_total: { lt: '0.36' },
    });
    expect((q.json.offers as { id: number }[]).map((o) => o.id).sort()).toEqual([7002001, 7002002]);
    expect((await req(s, 'POST', '/api/v0/bundles/', { gpu_name: { like: 'x' } })).status).toBe(400);
    const user = await req(s, 'GET', '/api/v0/users/current/');
    expect(user.json).toMatchObject({ credit: 25, api_key: KEY });
    const acct = await req(s, 'POST', '/api/v0/ssh/', { ssh_key: 'ssh-ed25519 AAAA k' });
    expect(acct.json).toMatchObject({ success: true, key: { public_key: 'ssh-ed25519 AAAA k' } });
    expect((await req(s, 'GET', '/api/v0/ssh/')).json).toHaveLength(1);
    const ik = await req(s, 'GET', `/api/v0/instances/${id}/ssh/`);
    expect(ik.json.success).toBe(true);
    expect(typeof ik.json.ssh_keys).toBe('string');
  });

  it('goes null → created → loading → running, with ports for ssh_direct, and prices by allocated storage', async () => {
    // Phases of 300-1300 ms: polled every 10 ms, none is missed on a loaded machine.
    const s = await start({ bootDelayMs: 2000 });
    const a = await rent(s, 7001001, { runtype: 'ssh_direc ssh_proxy' });
    const b = await rent(s, 7002001, { runtype: 'ssh_proxy' });
    const seen = new Set<string>();
    for (let n = 0; n < 1000 && !seen.has('running'); n++) {
      const inst = (await req(s, 'GET', `/api/v0/instances/${a.new_contract}/`)).json.instances as Record<
        string,
        unknown
      >;
      seen.add(String(inst.actual_status));
      await sleep(10);
    }
    expect([...seen]).toEqual(expect.arrayContaining(['created', 'loading', 'running']));
    const ia = (await req(s, 'GET', `/api/v0/instances/${a.new_contract}/`)).json.instances as Record<
      string,
      unknown
    >;
    expect(ia.ports).toEqual({ '22/tcp': [{ HostIp: '0.0.0.0', HostPort: '2222' }] });
    expect(ia.status_msg).toMatch(/^success, running img:1/);
    const ib = (await req(s, 'GET', `/api/v0/instances/${b.new_contract}/`)).json.instances as Record<
      string,
      unknown
    >;
    expect(ib).toMatchObject({
      actual_status: 'running',
      ports: null,
      ssh_host: '127.0.0.1',
      ssh_port: 2222,
    });
    const small = await req(s, 'POST', '/api/v0/bundles/', {
      allocated_storage: 5,
      gpu_name: { eq: 'RTX 3090' },
    });
    const big = await req(s, 'POST', '/api/v0/bundles/', {
      allocated_storage: 720,
      gpu_name: { eq: 'RTX 3090' },
    });
    const price = (r: typeof small, id: number) =>
      (r.json.offers as { id: number; dph_total: number }[]).find((o) => o.id === id)!.dph_total;
    expect(price(big, 7001002) - price(small, 7001002)).toBeCloseTo((0.1 * 715) / 720, 6);
  });

  it('stuck machines stay loading; killInstance makes it exited; billing only while running', async () => {
    // Booting for 400 ms: the first billing check comes well within it, even on a loaded machine.
    const s = await start({ bootDelayMs: 400, faults: { stuckLoadingMachineIds: [31001] }, timeScale: 100 });
    const c = new VastClient({ apiUrl: s.url, apiKey: KEY, minRetryDelayMs: 5 });
    const stuck = (await c.createInstance(7001001, { image: 'x', disk: 20, label: 's' })).instanceId;
    const ok = (await c.createInstance(7002001, { image: 'x', disk: 20, label: 'o' })).instanceId;
    expect(s.state().billedSeconds[ok]).toBe(0);
    await sleep(800);
    expect((await c.getInstance(stuck))?.actual_status).toBe('loading');
    expect((await c.getInstance(ok))?.actual_status).toBe('running');
    expect(s.state().billedSeconds[stuck]).toBe(0);
    const b1 = s.state().billedSeconds[ok]!;
    expect(b1).toBeGreaterThan(0);
    await sleep(50);
    expect(s.state().billedSeconds[ok]!).toBeGreaterThan(b1);
    s.killInstance(ok);
    const dead = await c.getInstance(ok);
    expect(dead).toMatchObject({ actual_status: 'exited', intended_status: 'running' });
    expect(dead?.ports ?? null).toBeNull();
    const frozen = s.state().billedSeconds[ok]!;
    await sleep(50);
    expect(s.state().billedSeconds[ok]).toBe(frozen);
    const st = s.state();
    expect(st.billedUsd[ok]).toBeCloseTo(
      (frozen * st.instances.find((i) => i.id === ok)!.dph_total!) / 3600,
      9,
    );
    s.killInstance(stuck, 'offline');
    expect((await c.getInstance(stuck))?.actual_status).toBe('offline');
    const balance = await c.getBalance();
    expect(balance.credit).toBeLessThan(25);
    await c.destroyInstance(ok);
    await c.destroyInstance(stuck);
  });

  it('the instance key can show and destroy its own instance only', async () => {
    const s = await start();
    const a = await rent(s, 7001001);
    const b = await rent(s, 7002001);
    expect(
      (await req(s, 'DELETE', `/api/v0/instances/${b.new_contract}/`, {}, a.instance_api_key)).status,
    ).toBe(403);
    // Issue 13: the instance key may show its own instance (vast-reality.md), never another one.
    expect(
      (await req(s, 'GET', `/api/v0/instances/${b.new_contract}/`, undefined, a.instance_api_key)).status,
    ).toBe(403);
    expect(
      (await req(s, 'GET', `/api/v0/instances/${a.new_contract}/`, undefined, a.instance_api_key)).json
        .instances,
    ).toMatchObject({ id: a.new_contract });
    expect((await req(s, 'POST', '/api/v0/bundles/', {}, a.instance_api_key)).status).toBe(403);
    expect(
      await req(s, 'DELETE', `/api/v0/instances/${a.new_contract}/`, {}, a.instance_api_key),
    ).toMatchObject({
      status: 200,
      json: { success: true },
    });
    expect((await req(s, 'DELETE', `/api/v0/instances/${a.new_contract}/`, {})).status).toBe(404);
    expect((await req(s, 'GET', `/api/v0/instances/${a.new_contract}/`)).json).toEqual({ instances: null });
    expect(s.state()).toMatchObject({ alive: [b.new_contract], destroyed: [a.new_contract] });
  });

  it('introspection endpoint, setDown(503), and create validation', async () => {
    const s = await start({ offers: defaultOffers().slice(0, 3) });
    await rent(s);
    const st = (await fetch(`${s.url}/_sim/state`).then((r) => r.json())) as Record<string, unknown>;
    expect(st).toMatchObject({ rented: [expect.any(Number)], destroyed: [], alive: [expect.any(Number)] });
    expect(st).toHaveProperty('billedUsd');
    expect((await req(s, 'PUT', '/api/v0/asks/7001002/', { image: 'x', disk: 10 })).json.error).toBe(
      'invalid_args',
    );
    expect(
      (await req(s, 'PUT', '/api/v0/asks/7001002/', { client_id: 'me', image: 'x', disk: 10, price: 0 })).json
        .error,
    ).toBe('invalid_price');
    s.setDown('503');
    expect((await req(s, 'GET', '/api/v0/users/current/')).status).toBe(503);
    s.setDown('none');
    expect((await req(s, 'GET', '/api/v0/users/current/')).status).toBe(200);
  });

  it('v1 list as the CLI uses it: order_by with a cursor, select_cols, unlabeled and verification filters, filters endpoint', async () => {
    const s = await start();
    const ids: number[] = [];
    for (const [offer, label] of [
      [7001001, 'b'],
      [7001003, 'a'],
      [7002001, null],
      [7002002, 'c'],
    ] as const) {
      ids.push((await rent(s, offer, { label })).new_contract);
    }
    const get = (params: Record<string, unknown>) =>
      req(
        s,
        'GET',
        `/api/v1/instances/?${new URLSearchParams(
          Object.entries(params).map(([k, v]): [string, string] => [
            k,
            typeof v === 'string' ? v : JSON.stringify(v),
          ]),
        ).toString()}`,
      );
    // label desc: nulls first (PostgreSQL), then c, b, a; two per page, following next_token
    const order_by = [
      { col: 'label', dir: 'desc' },
      { col: 'id', dir: 'asc' },
    ];
    const p1 = await get({ order_by, limit: 2 });
    expect((p1.json.instances as { label: string | null }[]).map((i) => i.label)).toEqual([null, 'c']);
    const p2 = await get({ order_by, limit: 2, after_token: p1.json.next_token as string });
    expect((p2.json.instances as { label: string }[]).map((i) => i.label)).toEqual(['b', 'a']);
    expect(p2.json.next_token).toBeNull();
    // a token only fits the order it was made for
    expect((await get({ limit: 2, after_token: p1.json.next_token as string })).json.error).toBe(
      'invalid_token',
    );
    expect((await get({ order_by: [{ col: 'dph_total', dir: 'asc' }] })).status).toBe(400);
    // select_cols projects the rows; ["*"] is the full row
    const cols = await get({ select_cols: ['id', 'label', 'volume_info'] });
    expect(cols.json.instances).toContainEqual({ id: ids[0], label: 'b', volume_info: [] });
    const full = (await get({ select_cols: ['*'] })).json.instances as Record<string, unknown>[];
    expect(full).toHaveLength(4);
    expect(full[0]).toHaveProperty('ssh_host');
    // `show instances --label ''` sends {"label":{"in":[null]}}
    const unl = await get({ select_filters: { label: { in: [null] } } });
    expect((unl.json.instances as { id: number }[]).map((i) => i.id)).toEqual([ids[2]]);
    const ver = await get({ select_filters: { verification: { in: ['verified'] } } });
    expect(ver.json.instances_found).toBe(4);
    const f = await req(s, 'GET', '/api/v0/instances/filters/');
    expect(f.json.success).toBe(true);
    // (the status depends on how far the instance has booted by now: not asserted)
    expect(f.json.filters).toContainEqual(
      expect.objectContaining({ verification: 'verified', gpu_name: 'RTX 4090' }),
    );
    // public, keyless: the CLI fetches it on every start
    const names = await req(s, 'GET', '/api/v0/gpu_names/unique/', undefined, null);
    expect(names.json.gpu_names).toEqual(expect.arrayContaining(['RTX 3090', 'RTX 4090', 'H100 SXM']));
  });

  it('search: driver_version as the CLI sends it, geolocation by country code, per-dollar fields', async () => {
    const s = await start();
    const search = async (body: Record<string, unknown>) =>
      (await req(s, 'POST', '/api/v0/bundles/', body)).json.offers as Record<string, unknown>[];
    expect(await search({ driver_version: { gte: 535086005 } })).toHaveLength(12);
    expect(await search({ driver_version: { gte: 999000000 } })).toHaveLength(0);
    const na = await search({ geolocation: { in: ['US', 'CA'] } });
    expect(na.length).toBeGreaterThan(0);
    expect(na.every((o) => /, (US|CA)$/.test(o.geolocation as string))).toBe(true);
    const notUs = await search({ geolocation: { notin: ['US'] } });
    expect(notUs.some((o) => /, US$/.test(o.geolocation as string))).toBe(false);
    expect(notUs.length + (await search({ geolocation: { eq: 'US' } })).length).toBe(12);
    const [o] = await search({ id: { eq: 7002001 }, allocated_storage: 20 });
    expect(o!.dlperf_per_dphtotal).toBeCloseTo((o!.dlperf as number) / (o!.dph_total as number), 3);
    expect(o!.discounted_dph_total).toBe(o!.dph_total);
  });

  it('outbid (an interruptible instance): stopped while intended running, offer gone, storage still billed', async () => {
    const s = await start({ bootDelayMs: 40, timeScale: 100 });
    // A bid search prices at min_bid; the create with a price makes the rental interruptible.
    const found = await req(s, 'POST', '/api/v0/bundles/', {
      id: { eq: 7002001 },
      type: 'bid',
      allocated_storage: 20,
    });
    const offer = (found.json.offers as Record<string, number | boolean>[])[0]!;
    const storageHour = (0.15 * 20) / 720;
    expect(offer.dph_total).toBeCloseTo(0.21 + storageHour, 6);
    expect(offer.is_bid).toBe(true);
    const bid = await rent(s, 7002001, { price: 0.25 });
    const onDemand = await rent(s, 7001001);
    await sleep(80);
    const c = new VastClient({ apiUrl: s.url, apiKey: KEY, minRetryDelayMs: 5 });
    expect(await c.getInstance(bid.new_contract)).toMatchObject({ actual_status: 'running', is_bid: true });
    // Only a bid can be outbid; the control endpoint says why not.
    expect((await req(s, 'POST', `/_sim/instances/${onDemand.new_contract}/outbid`)).status).toBe(409);
    expect((await req(s, 'POST', '/_sim/instances/1/outbid')).status).toBe(404);
    expect((await req(s, 'POST', `/_sim/instances/${bid.new_contract}/outbid`)).json).toEqual({
      success: true,
    });
    expect((await req(s, 'POST', `/_sim/instances/${bid.new_contract}/outbid`)).status).toBe(409);
    const stopped = await c.getInstance(bid.new_contract);
    expect(stopped).toMatchObject({
      actual_status: 'stopped',
      intended_status: 'running',
      cur_state: 'stopped',
      status_msg: expect.stringMatching(/outbid/),
    });
    expect(stopped?.ports ?? null).toBeNull();
    const st1 = s.state();
    expect(st1.outbid).toEqual([bid.new_contract]);
    expect(st1.bids).toEqual({ [bid.new_contract]: 0.25, [onDemand.new_contract]: null });
    expect(st1.alive).toContain(bid.new_contract);
    // Halted: no more GPU seconds, but the storage keeps billing until destroyed.
    const gpuSeconds = st1.billedSeconds[bid.new_contract]!;
    const usd1 = st1.billedUsd[bid.new_contract]!;
    expect(usd1).toBeGreaterThan((gpuSeconds * (0.25 + storageHour)) / 3600 - 1e-12);
    await sleep(60);
    const st2 = s.state();
    expect(st2.billedSeconds[bid.new_contract]).toBe(gpuSeconds);
    expect(st2.billedUsd[bid.new_contract]!).toBeGreaterThan(usd1);
    const inst = st2.instances.find((i) => i.id === bid.new_contract) as Record<string, unknown>;
    expect(inst.instance).toMatchObject({ gpuCostPerHour: 0, totalHour: expect.closeTo(storageHour, 6) });
    // The higher bidder holds the machine: the offer is gone, even once ours is destroyed.
    await c.destroyInstance(bid.new_contract);
    const usd3 = s.state().billedUsd[bid.new_contract]!;
    await sleep(30);
    expect(s.state().billedUsd[bid.new_contract]).toBe(usd3);
    const again = await req(s, 'POST', '/api/v0/bundles/', { id: { eq: 7002001 }, type: 'bid' });
    expect(again.json.offers).toEqual([]);
    expect(
      (await req(s, 'PUT', '/api/v0/asks/7002001/', { client_id: 'me', image: 'x', price: 1 })).status,
    ).toBe(410);
    // The fault form: every bid instance is outbid outbidAfterMs after it started running (as `stopped`).
    s.setFaults({ outbidRate: 1, outbidAfterMs: 10 });
    const doomed = await rent(s, 7002002, { price: 0.2 });
    const safe = await rent(s, 7002003);
    await sleep(120);
    expect(await c.getInstance(doomed.new_contract)).toMatchObject({
      actual_status: 'stopped',
      intended_status: 'running',
    });
    expect((await c.getInstance(safe.new_contract))?.actual_status).toBe('running');
    expect(s.state().outbid).toEqual([bid.new_contract, doomed.new_contract]);
    expect(s.outbidInstance(safe.new_contract)).toBe(false);
  });

  it('runVastSimFromFlags starts it and prints the URL', async () => {
    const lines: string[] = [];
    sim = await runVastSimFromFlags(
      { port: 0, sshHost: '127.0.0.1', sshPort: '2222', stuck: '31001, 31002', bootDelayMs: '0' },
      (l) => lines.push(l),
    );
    expect(lines).toEqual([`vast-sim listening on ${sim.url}`]);
    expect((await req(sim, 'POST', '/api/v0/bundles/', {}, 'any-key')).json.offers).toHaveLength(12);
    await expect(
      runVastSimFromFlags({ sshHost: 'h', sshPort: 22, stuck: 'x' }, () => undefined),
    ).rejects.toThrow(/stuck/);
  });
});
