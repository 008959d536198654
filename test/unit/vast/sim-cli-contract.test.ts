/**
 * Replays, over real HTTP, the requests the official Vast.ai CLI (vast-ai/vast-cli) sent to the
 * simulator (test/fixtures/vast-cli/requests.json, recorded by test/integration/vastai-cli.test.ts)
 * and checks that every reply has what the CLI reads: status codes, the `Content-Type` it insists
 * on, `offers`, `new_contract`, `instances` (an object for one, rows with `start_date` and
 * `extra_env` pairs for the list), `filters`, `gpu_names`, `success`, and `msg` on errors.
 * This keeps the simulator honest in CI, where vast-cli cannot be downloaded.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultOffers, startVastSim, type VastSim } from '../../../src/vast/sim/server.js';

interface FixtureRequest {
  step: string;
  argv: string[];
  method: string;
  target: string;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  body: unknown;
  status: number;
}
interface Fixture {
  source: { repository: string; commit: string };
  requests: FixtureRequest[];
}

const fixture = JSON.parse(
  readFileSync(join(import.meta.dirname, '..', '..', 'fixtures', 'vast-cli', 'requests.json'), 'utf8'),
) as Fixture;
const KEY = 'contract-key-0123456789abcdef';
const BAD_KEY = 'contract-wrong-key';

type Row = Record<string, unknown>;
const isObj = (v: unknown): v is Row => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Fields the CLI formats with a numeric format spec in its offer table (vastai/cli/display.py). */
const OFFER_NUMERIC = [
  'cuda_max_good',
  'num_gpus',
  'pcie_bw',
  'cpu_ghz',
  'cpu_cores_effective',
  'cpu_ram',
  'gpu_ram',
  'disk_space',
  'dph_total',
  'dlperf',
  'dlperf_per_dphtotal',
  'score',
  'inet_up',
  'inet_down',
  'reliability',
  'duration',
];
const OFFER_OTHER = [
  'id',
  'gpu_name',
  'driver_version',
  'machine_id',
  'verification',
  'host_id',
  'geolocation',
];

/** A full instance row as the CLI post-processes it (vastai/api/instances.py show_instance(s)). */
function expectFullInstance(row: unknown, id: number): void {
  expect(isObj(row)).toBe(true);
  const r = row as Row;
  expect(r.id).toBe(id);
  expect(typeof r.start_date).toBe('number'); // duration = time.time() - start_date
  expect(Array.isArray(r.extra_env)).toBe(true); // {k: v for k, v in extra_env}: a list of pairs
  for (const pair of r.extra_env as unknown[]) expect(Array.isArray(pair) && pair.length === 2).toBe(true);
  for (const f of [
    'machine_id',
    'actual_status',
    'num_gpus',
    'gpu_name',
    'ssh_host',
    'ssh_port',
    'dph_total',
  ]) {
    expect(r, f).toHaveProperty(f);
  }
  for (const f of ['image_uuid', 'label', 'cur_state', 'intended_status', 'public_ipaddr'])
    expect(r, f).toHaveProperty(f);
}

describe(`simulator vs the requests of the official vastai CLI (vast-cli ${fixture.source.commit.slice(0, 12)})`, () => {
  let sim: VastSim;
  beforeAll(async () => {
    sim = await startVastSim({
      apiKey: KEY,
      offers: defaultOffers(),
      sshEndpoint: { host: '127.0.0.1', port: 2222 },
      bootDelayMs: 50,
      seed: 3,
    });
  });
  afterAll(async () => {
    await sim.close();
  });

  it('the fixture covers the four commands and sends the key only as a bearer header', () => {
    expect(fixture.source.commit).toMatch(/^[0-9a-f]{40}$/);
    const seen = new Set(fixture.requests.map((r) => `${r.method} ${r.path}`));
    for (const need of [
      'POST /api/v0/bundles/',
      'PUT /api/v0/asks/7002001/',
      'GET /api/v1/instances/',
      'GET /api/v0/instances/{instance_id}/',
      'DELETE /api/v0/instances/{instance_id}/',
    ]) {
      expect(seen, need).toContain(need);
    }
    for (const r of fixture.requests) {
      expect(r.query, `${r.step}: no key in the URL`).not.toHaveProperty('api_key');
      if (r.path === '/api/v0/gpu_names/unique/') expect(r.headers).not.toHaveProperty('authorization');
      else expect(r.headers.authorization, r.step).toMatch(/^Bearer \{(api_key|bad_api_key)\}$/);
      if (r.method !== 'GET') expect(r.headers['content-type']).toBe('application/json');
    }
  });

  it('replays every recorded request and the replies carry what the CLI reads', async () => {
    let instanceId = 0;
    const offers = defaultOffers() as Row[];
    for (const r of fixture.requests) {
      const fill = (s: string) =>
        s
          .replaceAll('{api_key}', KEY)
          .replaceAll('{bad_api_key}', BAD_KEY)
          .replaceAll('{instance_id}', String(instanceId));
      const headers = Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k, fill(v)]));
      const res = await fetch(sim.url + fill(r.target), {
        method: r.method,
        headers,
        body: r.body === null ? undefined : JSON.stringify(r.body),
      });
      const text = await res.text();
      const where = `${r.step}: ${r.method} ${r.path} -> ${res.status} ${text.slice(0, 300)}`;
      expect(res.status, where).toBe(r.status);
      const json = JSON.parse(text) as unknown;
      expect(isObj(json), where).toBe(true);
      const j = json as Row;
      const route = `${r.method} ${r.path}`;

      if (res.status >= 400) {
        // The CLI prints `Failed with error <status>: <msg>`; 401 "Invalid user key" also drives its 2FA logic.
        expect(typeof j.msg, where).toBe('string');
        if (res.status === 401)
          expect(j).toMatchObject({ success: false, error: 'auth_error', msg: 'Invalid user key' });
        continue;
      }

      if (route === 'GET /api/v0/gpu_names/unique/') {
        expect(Array.isArray(j.gpu_names)).toBe(true);
        expect(j.gpu_names).toContain('RTX 4090');
      } else if (route === 'POST /api/v0/bundles/') {
        // search__offers refuses any other Content-Type.
        expect(res.headers.get('content-type'), where).toBe('application/json');
        const got = j.offers as Row[];
        expect(Array.isArray(got), where).toBe(true);
        expect(got.length, where).toBeGreaterThan(0);
        for (const o of got) {
          for (const f of OFFER_NUMERIC) expect(typeof o[f], `${where}: ${f}`).toBe('number');
          for (const f of OFFER_OTHER) expect(o, `${where}: ${f}`).toHaveProperty(f);
          expect(o).toMatchObject({ verified: true, external: false, rentable: true });
        }
        const body = r.body as Row;
        if (isObj(body.gpu_name)) {
          expect(got.map((o) => o.gpu_name)).toEqual(got.map(() => 'RTX 4090'));
          expect(got.every((o) => o.num_gpus === 1 && (o.dph_total as number) < 1)).toBe(true);
        }
        if (body.type === 'bid') {
          expect(got.every((o) => o.is_bid === true && /, (US|CA)$/.test(o.geolocation as string))).toBe(
            true,
          );
          const dph = got.map((o) => o.dph_total as number);
          expect([...dph].sort((a, b) => a - b)).toEqual(dph);
          // Bid searches price at min_bid, storage at the requested allocated_storage.
          const src = offers.find((o) => o.id === got[0]!.id)!;
          const want =
            (src.min_bid as number) +
            ((src.storage_cost as number) * (body.allocated_storage as number)) / 720;
          expect(got[0]!.dph_total).toBeCloseTo(want, 5);
        } else if (!isObj(body.gpu_name)) {
          const eligible = offers.filter(
            (o) => o.verified === true && o.external !== true && o.rentable !== false,
          );
          const rentedNow = instanceId ? 1 : 0;
          expect(got.length).toBe(eligible.length - rentedNow);
          const scores = got.map((o) => o.score as number);
          expect([...scores].sort((a, b) => b - a)).toEqual(scores);
        }
      } else if (r.method === 'PUT' && r.path.startsWith('/api/v0/asks/')) {
        expect(j).toMatchObject({
          success: true,
          new_contract: expect.any(Number),
          instance_api_key: expect.any(String),
        });
        instanceId = j.new_contract as number;
      } else if (route === 'GET /api/v0/instances/filters/') {
        expect(Array.isArray(j.filters), where).toBe(true);
        for (const f of j.filters as Row[]) {
          expect(Object.keys(f).sort()).toEqual(['actual_status', 'gpu_name', 'verification']);
        }
        expect(j.filters).toContainEqual(expect.objectContaining({ gpu_name: 'RTX 4090' }));
      } else if (route === 'GET /api/v1/instances/') {
        expect(j).toMatchObject({
          success: true,
          total_instances: expect.any(Number),
          label_counts: expect.any(Object),
        });
        expect(j.next_token === null || typeof j.next_token === 'string').toBe(true);
        const rows = j.instances as Row[];
        expect(Array.isArray(rows)).toBe(true);
        const cols = r.query.select_cols ? (JSON.parse(r.query.select_cols) as string[]) : null;
        const live = r.step.includes('none left') ? 0 : 1;
        expect(rows, where).toHaveLength(live);
        for (const row of rows) {
          if (cols) expect(Object.keys(row).sort()).toEqual([...cols].sort());
          else expectFullInstance(row, instanceId);
        }
        if (live) expect(j.label_counts).toEqual({ 'retrain-cli-check': 1 });
      } else if (route === 'GET /api/v0/instances/{instance_id}/') {
        expect(j).toHaveProperty('instances'); // an object, or null once destroyed
        if (r.step.includes('destroyed')) expect(j.instances).toBeNull();
        else expectFullInstance(j.instances, instanceId);
      } else if (route === 'DELETE /api/v0/instances/{instance_id}/') {
        expect(j.success).toBe(true); // the CLI prints "destroying instance <id>." on success
      } else if (route === 'GET /api/v0/users/current') {
        expect(typeof j.credit).toBe('number');
        expect(typeof j.balance).toBe('number');
      } else {
        throw new Error(`no expectation for ${route} (${r.step}): add one`);
      }
    }
    expect(instanceId).toBeGreaterThan(0);
    expect(sim.state().destroyed).toEqual([instanceId]);
    expect(sim.state().apiKeyInUrl).toBe(0);
  });
});

const lifecycle = JSON.parse(
  readFileSync(
    join(import.meta.dirname, '..', '..', 'fixtures', 'vast-cli', 'lifecycle-requests.json'),
    'utf8',
  ),
) as Fixture;

/** What the CLI reads from each lifecycle reply (vastai/api/keys.py, instances.py, billing.py). */
function expectLifecycleReply(route: string, j: Row, instanceId: number, where: string): void {
  if (route === 'POST /api/v0/ssh/') {
    expect(j, where).toMatchObject({
      success: true,
      key: { id: expect.any(Number), public_key: expect.any(String) },
    });
  } else if (route === 'GET /api/v0/ssh/') {
    expect(Array.isArray(j), where).toBe(true);
  } else if (route === 'POST /api/v0/instances/{instance_id}/ssh/') {
    expect(j.success, where).toBe(true);
  } else if (route === 'PUT /api/v0/instances/{instance_id}/' || route.startsWith('DELETE ')) {
    expect(j, where).toEqual({ success: true });
  } else if (route === 'GET /api/v0/instances/{instance_id}/') {
    expect(j.instances, where).toMatchObject({
      id: instanceId,
      actual_status: 'stopped',
      intended_status: 'stopped',
    });
  } else if (route === 'PUT /api/v0/instances/request_logs/{instance_id}/') {
    expect(j, where).toMatchObject({ success: true, result_url: expect.stringMatching(/^http/) });
  } else if (route === 'GET /api/v0/charges/' || route === 'GET /api/v1/invoices/') {
    // show invoices-v1: results with start, end, amount, type, source, items, metadata; total counts them.
    expect(j, where).toMatchObject({ success: true, count: expect.any(Number), total: expect.any(Number) });
    const rows = j.results as Row[];
    for (const r of rows) {
      for (const f of ['start', 'end', 'amount', 'type', 'source', 'items', 'metadata', 'description'])
        expect(r, `${where}: ${f}`).toHaveProperty(f);
      for (const it of r.items as Row[])
        for (const f of ['start', 'end', 'amount', 'source', 'items'])
          expect(it, `${where}: item ${f}`).toHaveProperty(f);
    }
    if (route === 'GET /api/v0/charges/')
      expect(rows.map((r) => r.source)).toContain(`instance-${instanceId}`);
  } else if (route === 'GET /api/v0/gpu_names/unique/') {
    expect(Array.isArray(j.gpu_names)).toBe(true);
  } else {
    throw new Error(`no expectation for ${route}: add one`);
  }
}

describe(`simulator vs the lifecycle requests of the official vastai CLI (vast-cli ${lifecycle.source.commit.slice(0, 12)})`, () => {
  it('replays keys, attach, label, stop/start, logs, charges and invoices; the replies carry what the CLI reads', async () => {
    const sim = await startVastSim({
      apiKey: KEY,
      offers: defaultOffers(),
      sshEndpoint: { host: '127.0.0.1', port: 2222 },
      bootDelayMs: 50,
      seed: 3,
    });
    try {
      let instanceId = 0;
      for (const r of lifecycle.requests) {
        const fill = (s: string) =>
          s.replaceAll('{api_key}', KEY).replaceAll('{instance_id}', String(instanceId));
        const headers = Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k, fill(v)]));
        const res = await fetch(sim.url + fill(r.target), {
          method: r.method,
          headers,
          body: r.body === null ? undefined : JSON.stringify(r.body),
        });
        const text = await res.text();
        const where = `${r.step}: ${r.method} ${r.path} -> ${res.status} ${text.slice(0, 300)}`;
        expect(res.status, where).toBe(r.status);
        const j = JSON.parse(text) as Row;
        if (r.method === 'PUT' && r.path.startsWith('/api/v0/asks/')) {
          instanceId = j.new_contract as number;
          await new Promise((ok) => setTimeout(ok, 100)); // past the boot, as the recording waited
          continue;
        }
        expectLifecycleReply(`${r.method} ${r.path}`, j, instanceId, where);
      }
      const st = sim.state();
      expect(st.destroyed).toEqual([instanceId]);
      expect(st.sshKeys[instanceId]).toHaveLength(2);
      expect(st.instances.find((i) => i.id === instanceId)?.label).toBe('retrain-cli-relabeled');
    } finally {
      await sim.close();
    }
  });
});
