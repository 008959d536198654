/**
 * The official Vast.ai CLI (vast-ai/vast-cli) against our simulator.
 *
 * CI cannot download vast-cli, so this test only runs where VASTAI_CLI points at a copy:
 *   - a vast-cli checkout (directory): runs its `vastai` package (`vastai.cli.main:main`);
 *   - a `.py` file (e.g. the legacy `<checkout>/vast.py`): runs it with python;
 *   - anything else (e.g. a pip-installed `vastai` executable): runs it as is.
 * VASTAI_PYTHON picks the interpreter (default /usr/bin/python3 when present: Debian's, with the
 * python3-requests and python3-rich packages the CLI needs).
 *
 * Every request the CLI sends goes through a recording proxy. The second test compares them with
 * test/fixtures/vast-cli/requests.json (what test/unit/vast/sim-cli-contract.test.ts replays in CI);
 * VASTAI_CLI_RECORD=1 rewrites that fixture instead (set VASTAI_CLI_COMMIT to the checkout's commit).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as prettier from 'prettier';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultOffers, startVastSim, type VastSim } from '../../src/vast/sim/server.js';

const CLI = process.env.VASTAI_CLI?.trim() || undefined;
const RECORD = process.env.VASTAI_CLI_RECORD === '1';
/** `<checkout>/vast.py`: the deprecated single-file CLI, which prints and sends a little differently. */
const LEGACY = CLI !== undefined && /(^|\/)vast\.py$/.test(CLI);
const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'vast-cli', 'requests.json');
/** The lifecycle commands (keys, stop/start, label, logs, charges): a second fixture. */
const LIFECYCLE_FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'vast-cli', 'lifecycle-requests.json');
const LIFECYCLE_OFFER = 7002002;
const PUB_A = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAcliAccountKeyForTheSimulatorTest0001 cli-account';
const PUB_B = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAcliAttachedKeyForTheSimulatorTest002 cli-attached';
const API_KEY = 'vastai-cli-check-key-0123456789';
const BAD_KEY = 'vastai-cli-check-wrong-key';
const OFFER = 7002001; // an RTX 4090 offer of the shipped fixture
const SKIP_REASON = 'skipped unless VASTAI_CLI points at a vast-cli checkout or its entry script';

interface Recorded {
  method: string;
  target: string;
  headers: Record<string, string>;
  body: string;
  status: number;
}

export interface FixtureRequest {
  step: string;
  argv: string[];
  method: string;
  /** Path and query exactly as sent, with {instance_id} in place of the created instance's id. */
  target: string;
  path: string;
  query: Record<string, string>;
  /** Headers that matter; {api_key} / {bad_api_key} stand for the key sent. */
  headers: Record<string, string>;
  body: unknown;
  status: number;
}

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

const python = () =>
  process.env.VASTAI_PYTHON || (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');

/** How to start the CLI at `cli`: [command, leading args, extra env]. */
function launcher(cli: string): [string, string[], Record<string, string>] {
  if (existsSync(cli) && statSync(cli).isDirectory()) {
    const code = 'import sys; sys.argv[0] = "vastai"; from vastai.cli.main import main; main()';
    return [python(), ['-c', code], { PYTHONPATH: cli }];
  }
  if (cli.endsWith('.py')) return [python(), [cli], { PYTHONPATH: dirname(cli) }];
  return [cli, [], {}];
}

const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g; // eslint-disable-line no-control-regex

/** A proxy in front of the simulator that records every request (the CLI talks only to it). */
async function recordingProxy(
  target: string,
): Promise<{ url: string; log: Recorded[]; close(): Promise<void> }> {
  const t = new URL(target);
  const log: Recorded[] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const up = httpRequest(
        { host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers },
        (ur) => {
          const rc: Buffer[] = [];
          ur.on('data', (c: Buffer) => rc.push(c));
          ur.on('end', () => {
            const headers: Record<string, string> = {};
            for (const h of ['authorization', 'content-type', 'user-agent', 'accept']) {
              const v = req.headers[h];
              if (typeof v === 'string') headers[h] = v;
            }
            log.push({
              method: req.method ?? 'GET',
              target: req.url ?? '/',
              headers,
              body: body.toString('utf8'),
              status: ur.statusCode ?? 0,
            });
            res.writeHead(ur.statusCode ?? 502, ur.headers);
            res.end(Buffer.concat(rc));
          });
        },
      );
      up.on('error', (e) => {
        res.writeHead(502);
        res.end(String(e));
      });
      up.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    log,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** Writes (VASTAI_CLI_RECORD=1) or checks the fixture `file` against the requests `got`. */
async function checkFixture(file: string, got: FixtureRequest[]): Promise<void> {
  if (RECORD) {
    const fixture = {
      source: {
        repository: 'https://github.com/vast-ai/vast-cli',
        commit: process.env.VASTAI_CLI_COMMIT ?? 'unknown',
        entry: 'vastai package, vastai.cli.main:main',
        python: 'Debian 12 /usr/bin/python3 3.11 with python3-requests 2.28 and python3-rich 13.3',
      },
      recordedBy:
        'VASTAI_CLI=<checkout> VASTAI_CLI_RECORD=1 npx vitest run test/integration/vastai-cli.test.ts',
      notes: [
        'Every request the official CLI sent for the commands in `argv`, in order, through a proxy in front of the simulator.',
        '{api_key} / {bad_api_key} stand for the key sent; {instance_id} for the id the create returned.',
        '`status` is what the simulator answered; test/unit/vast/sim-cli-contract.test.ts replays these requests.',
        'GET /api/v0/gpu_names/unique/ is sent without a key by every CLI start until its 24 h cache is filled.',
      ],
      requests: got,
    };
    const options = (await prettier.resolveConfig(file)) ?? {};
    writeFileSync(file, await prettier.format(JSON.stringify(fixture), { ...options, parser: 'json' }));
    return;
  }
  const want = (JSON.parse(readFileSync(file, 'utf8')) as { requests: FixtureRequest[] }).requests;
  // The user agent carries versions (CLI, requests); compare everything else.
  const strip = (r: FixtureRequest) => ({
    ...r,
    headers: { ...r.headers, 'user-agent': r.headers['user-agent']?.replace(/\/.*$/, '/*') },
  });
  expect(
    got.map(strip),
    'the CLI now sends other requests: re-record with VASTAI_CLI_RECORD=1 and review the diff',
  ).toEqual(want.map(strip));
}

describe('the official vastai CLI against the simulator', () => {
  let sim: VastSim;
  let proxy: Awaited<ReturnType<typeof recordingProxy>>;
  let home: string;
  const recorded: FixtureRequest[] = [];
  const recordedLifecycle: FixtureRequest[] = [];
  let instanceId = 0;

  beforeAll(async () => {
    if (!CLI) return;
    sim = await startVastSim({
      apiKey: API_KEY,
      offers: defaultOffers(),
      sshEndpoint: { host: '127.0.0.1', port: 2222 },
      bootDelayMs: 300,
      seed: 11,
    });
    proxy = await recordingProxy(sim.url);
    home = mkdtempSync(join(tmpdir(), 'vastai-cli-'));
  });
  afterAll(async () => {
    if (!CLI) return;
    await proxy?.close();
    await sim?.close();
    if (home) rmSync(home, { recursive: true, force: true });
  });

  /** Runs one CLI command and keeps the requests it sent, under `step`. */
  const run = async (
    step: string,
    argv: string[],
    key = API_KEY,
    sink: FixtureRequest[] = recorded,
  ): Promise<CliResult> => {
    const [cmd, lead, extra] = launcher(CLI!);
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      LANG: 'C.UTF-8',
      HOME: home,
      XDG_CONFIG_HOME: join(home, 'config'),
      XDG_CACHE_HOME: join(home, 'cache'),
      XDG_STATE_HOME: join(home, 'state'),
      XDG_DATA_HOME: join(home, 'data'),
      VAST_URL: proxy.url,
      VAST_API_KEY: key,
      VASTAI_NO_UPDATE_CHECK: '1',
      NO_COLOR: '1',
      COLUMNS: '200',
      NO_PROXY: '127.0.0.1,localhost',
      ...extra,
    };
    const before = proxy.log.length;
    const res = await new Promise<CliResult>((resolve) => {
      execFile(
        cmd,
        [...lead, ...argv],
        { env, timeout: 60_000, maxBuffer: 8 << 20 },
        (err, stdout, stderr) => {
          const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
          resolve({ code, stdout: stdout.replace(ANSI, ''), stderr: stderr.replace(ANSI, '') });
        },
      );
    });
    const where = `vastai ${argv.join(' ')}\n--- stdout\n${res.stdout}\n--- stderr\n${res.stderr}`;
    expect(res.stderr, where).not.toMatch(/Traceback|Error:.*Exception/);
    for (const r of proxy.log.slice(before)) sink.push(normalize(step, argv, r));
    return res;
  };

  const normalize = (step: string, argv: string[], r: Recorded): FixtureRequest => {
    const sub = (s: string) =>
      (instanceId ? s.split(`/${instanceId}/`).join('/{instance_id}/') : s)
        .split(API_KEY)
        .join('{api_key}')
        .split(BAD_KEY)
        .join('{bad_api_key}');
    const target = sub(r.target);
    const u = new URL(
      target.replace(/[{}]/g, (c) => encodeURIComponent(c)),
      'http://x',
    );
    const headers = Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k, sub(v)]));
    let body: unknown = null;
    if (r.body.trim() !== '') body = JSON.parse(r.body) as unknown;
    return {
      step,
      argv: argv.map((a) => (instanceId ? a.split(String(instanceId)).join('{instance_id}') : a)),
      method: r.method,
      target,
      path: decodeURIComponent(u.pathname),
      query: Object.fromEntries(u.searchParams),
      headers,
      body,
      status: r.status,
    };
  };

  const json = (r: CliResult): unknown => JSON.parse(r.stdout) as unknown;

  it.skipIf(!CLI)(
    `search offers, create instance, show instances, show instance, show user, destroy instance all work (${SKIP_REASON})`,
    async () => {
      // ---- search offers
      const q = 'gpu_name=RTX_4090 num_gpus=1 dph_total<1.0';
      const table = await run('search offers (query)', ['search', 'offers', q]);
      expect(table.code, table.stderr).toBe(0);
      expect(table.stdout).toContain(String(OFFER));
      expect(table.stdout).toContain('RTX_4090');
      expect(table.stdout).not.toMatch(/RTX_3090|A100|H100/);

      const raw = json(await run('search offers (query, --raw)', ['search', 'offers', q, '--raw'])) as Record<
        string,
        unknown
      >[];
      expect(raw.length).toBe(3);
      for (const o of raw) {
        expect(o).toMatchObject({ gpu_name: 'RTX 4090', num_gpus: 1, verified: true, rentable: true });
        expect(o.dph_total as number).toBeLessThan(1);
      }
      const scores = raw.map((o) => o.score as number);
      expect([...scores].sort((a, b) => b - a)).toEqual(scores); // the CLI's default order: score-

      const all = json(
        await run('search offers (default query, --raw)', ['search', 'offers', '--raw']),
      ) as Record<string, unknown>[];
      expect(all.length).toBeGreaterThan(3);
      expect(all.every((o) => o.verified === true && o.external === false && o.rentable === true)).toBe(true);

      const sel = json(
        await run('search offers (bid, storage, order, units, geolocation, driver)', [
          'search',
          'offers',
          '--raw',
          '-i',
          '--storage',
          '20',
          '-o',
          'dph+',
          'geolocation in [US,CA] gpu_ram>=24 driver_version>=535.86.05 reliability>0.98',
        ]),
      ) as Record<string, unknown>[];
      expect(sel.length).toBeGreaterThan(0);
      for (const o of sel) {
        expect(o.geolocation as string).toMatch(/, (US|CA)$/);
        expect(o.gpu_ram as number).toBeGreaterThanOrEqual(24_000);
        expect(o.is_bid).toBe(true);
      }
      const prices = sel.map((o) => o.dph_total as number);
      expect([...prices].sort((a, b) => a - b)).toEqual(prices);

      // ---- create instance
      const created = await run('create instance', [
        'create',
        'instance',
        String(OFFER),
        '--image',
        'pytorch/pytorch:2.4.0-cuda12.4-cudnn9-runtime',
        '--disk',
        '20',
        '--ssh',
        '--direct',
        '--label',
        'retrain-cli-check',
        '--onstart-cmd',
        'echo ready > /root/ready',
        '--env',
        '-e FOO=bar -p 8000:8000',
      ]);
      expect(created.code, created.stderr).toBe(0);
      expect(created.stdout).toMatch(/^Started\. \{'success': True, 'new_contract': \d+/m);
      instanceId = Number(/'new_contract': (\d+)/.exec(created.stdout)![1]);
      await new Promise((r) => setTimeout(r, 400)); // past the simulated boot

      // ---- show instances
      const list = await run('show instances', ['show', 'instances']);
      expect(list.code, list.stderr).toBe(0);
      if (!LEGACY) expect(list.stdout).toMatch(/Total:\s*1 instances/);
      expect(list.stdout).toContain(String(instanceId));
      expect(list.stdout).toContain('retrain-cli-check');
      expect(list.stdout).toContain('running');

      const rows = json(await run('show instances (--raw)', ['show', 'instances', '--raw'])) as Record<
        string,
        unknown
      >[];
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({
        id: instanceId,
        label: 'retrain-cli-check',
        actual_status: 'running',
        image_uuid: 'pytorch/pytorch:2.4.0-cuda12.4-cudnn9-runtime',
        image_runtype: 'ssh_direc ssh_proxy',
        onstart: 'echo ready > /root/ready',
        public_ipaddr: '127.0.0.1', // the CLI strips the trailing whitespace Vast may send
        extra_env: { FOO: 'bar', '-p 8000:8000': '1' },
        ports: { '22/tcp': [{ HostIp: '0.0.0.0', HostPort: '2222' }] },
      });

      const one = await run('show instance', ['show', 'instance', String(instanceId)]);
      expect(one.code, one.stderr).toBe(0);
      expect(one.stdout).toContain(String(instanceId));
      expect(one.stdout).toContain('retrain-cli-check');
      const oneRaw = json(
        await run('show instance (--raw)', ['show', 'instance', String(instanceId), '--raw']),
      ) as Record<string, unknown>;
      expect(oneRaw).toMatchObject({ id: instanceId, actual_status: 'running', extra_env: { FOO: 'bar' } });

      // ---- show user (the CLI drops api_key before printing)
      const user = json(await run('show user (--raw)', ['show', 'user', '--raw'])) as Record<string, unknown>;
      expect(typeof user.credit).toBe('number');
      expect(user).not.toHaveProperty('api_key');

      // ---- a wrong key gets the CLI's auth error
      const denied = await run('show instances (wrong key)', ['show', 'instances'], BAD_KEY);
      expect(denied.stderr + denied.stdout).toContain('Failed with error 401: Invalid user key');

      // ---- destroy instance
      const yes = LEGACY ? [] : ['-y']; // vast.py has no confirmation prompt
      const gone = await run('destroy instance', ['destroy', 'instance', String(instanceId), ...yes]);
      expect(gone.code, gone.stderr).toBe(0);
      expect(gone.stdout).toContain(`destroying instance ${instanceId}.`);
      expect(sim.state().destroyed).toEqual([instanceId]);

      const after = await run('show instance (destroyed)', ['show', 'instance', String(instanceId)]);
      expect(after.code).toBe(1);
      expect(after.stderr + after.stdout).toContain(`Instance ${instanceId} not found or no longer exists.`);

      const again = await run('destroy instance (again)', [
        'destroy',
        'instance',
        String(instanceId),
        ...yes,
      ]);
      expect(again.stderr + again.stdout).toContain('Failed with error 404');

      const empty = json(await run('show instances (none left, --raw)', ['show', 'instances', '--raw']));
      expect(empty).toEqual([]);
      expect(sim.state().apiKeyInUrl).toBe(0);
    },
    180_000,
  );

  it.skipIf(!CLI || LEGACY)(
    `ssh keys, attach, label, stop, start, logs, charges and invoices work (${SKIP_REASON})`,
    async () => {
      const life = (step: string, argv: string[]) => run(step, argv, API_KEY, recordedLifecycle);
      const ok = (r: CliResult) => {
        expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
        return r;
      };
      ok(await life('create ssh-key', ['create', 'ssh-key', PUB_A]));
      const keys = json(ok(await life('show ssh-keys (--raw)', ['show', 'ssh-keys', '--raw']))) as {
        id: number;
        public_key: string;
      }[];
      expect(keys.map((k) => k.public_key)).toEqual([PUB_A]);
      const created = ok(
        await life('create instance', [
          'create',
          'instance',
          String(LIFECYCLE_OFFER),
          '--image',
          'pytorch/pytorch:2.4.0-cuda12.4-cudnn9-runtime',
          '--disk',
          '10',
          '--ssh',
          '--direct',
          '--label',
          'retrain-cli-lifecycle',
        ]),
      );
      instanceId = Number(/'new_contract': (\d+)/.exec(created.stdout)![1]);
      await new Promise((r) => setTimeout(r, 400)); // past the simulated boot
      ok(await life('attach ssh', ['attach', 'ssh', String(instanceId), PUB_B]));
      ok(await life('label instance', ['label', 'instance', String(instanceId), 'retrain-cli-relabeled']));
      ok(await life('stop instance', ['stop', 'instance', String(instanceId)]));
      const stopped = json(
        ok(await life('show instance (stopped, --raw)', ['show', 'instance', String(instanceId), '--raw'])),
      ) as Record<string, unknown>;
      expect(stopped).toMatchObject({
        actual_status: 'stopped',
        intended_status: 'stopped',
        label: 'retrain-cli-relabeled',
      });
      ok(await life('start instance', ['start', 'instance', String(instanceId)]));
      const logs = ok(await life('logs', ['logs', String(instanceId)]));
      expect(logs.stdout).toContain('Pulling image pytorch/pytorch:2.4.0-cuda12.4-cudnn9-runtime');
      const range = ['-s', '2020-01-01', '-e', '2099-12-31'];
      const charges = json(
        ok(
          await life('show invoices-v1 --charges (--raw)', [
            'show',
            'invoices-v1',
            '--charges',
            ...range,
            '--raw',
          ]),
        ),
      ) as { results: { source: string; amount: number }[] };
      expect(charges.results.map((r) => r.source)).toContain(`instance-${instanceId}`);
      const table = ok(
        await life('show invoices-v1 --charges', ['show', 'invoices-v1', '--charges', ...range]),
      );
      expect(table.stdout).toMatch(/Showing \d+ of \d+ results/);
      ok(
        await life('show invoices-v1 --invoices (--raw)', [
          'show',
          'invoices-v1',
          '--invoices',
          ...range,
          '--raw',
        ]),
      );
      ok(await life('delete ssh-key', ['delete', 'ssh-key', String(keys[0]!.id)]));
      ok(await life('destroy instance', ['destroy', 'instance', String(instanceId), '-y']));
      const st = sim.state();
      expect(st.sshKeys[instanceId]).toEqual([PUB_A, PUB_B]);
      expect(st.destroyed).toContain(instanceId);
      expect(st.apiKeyInUrl).toBe(0);
    },
    180_000,
  );

  it.skipIf(!CLI || LEGACY)(
    `the lifecycle requests match test/fixtures/vast-cli/lifecycle-requests.json (${SKIP_REASON}; not for the legacy vast.py)`,
    async () => {
      expect(recordedLifecycle.length, 'the lifecycle test did not run').toBeGreaterThan(0);
      await checkFixture(LIFECYCLE_FIXTURE, recordedLifecycle);
    },
  );

  // The fixture was recorded from the vastai package; the deprecated vast.py sends a little more
  // (e.g. a rented=false search filter), so it is only checked for working, not compared.
  it.skipIf(!CLI || LEGACY)(
    `the requests it sent match test/fixtures/vast-cli/requests.json (${SKIP_REASON}; not for the legacy vast.py)`,
    async () => {
      expect(recorded.length, 'the first test did not run').toBeGreaterThan(0);
      await checkFixture(FIXTURE, recorded);
    },
  );
});
