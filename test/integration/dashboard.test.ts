import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Ledger } from '../../src/ledger/ledger.js';
import { LocalStore } from '../../src/storage/index.js';
import { RunSpend } from '../../src/train/spend.js';
import { BIN, REPO, fakeRecipe, runCli, sandbox, type Sandbox } from '../helpers/harness.js';

/** Debian's chromium package (apt-get install chromium; .ci/run installs it). */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const DATE = '20260110';
const OLD_DATE = '20260109';
const USER = 'ops';
const PASSWORD = 'pw-4f1c-9a2e-dashboard';
const TOKEN = 'tok-7d3b0c55e8a14f0b9e61';
const basic = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
const bearer = `Bearer ${TOKEN}`;

interface DashboardProc {
  proc: ChildProcess;
  url: string;
  output(): string;
  stop(): Promise<number | null>;
}

/** Starts `retrain dashboard --port 0 ...` and waits for the URL it prints. */
function startDashboard(env: NodeJS.ProcessEnv, args: string[] = []): Promise<DashboardProc> {
  const proc = spawn(process.execPath, [BIN, 'dashboard', '--port', '0', ...args], {
    env,
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`dashboard did not start:\n${out}`)), 20_000);
    const onData = (d: Buffer) => {
      out += d;
      const m = /retrain dashboard: (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({
          proc,
          url: m[1]!,
          output: () => out,
          stop: () =>
            new Promise((r) => {
              if (proc.exitCode !== null || proc.signalCode !== null) return r(proc.exitCode);
              proc.once('exit', (code) => r(code));
              proc.kill('SIGTERM');
            }),
        });
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', (d) => (out += d));
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`dashboard exited with ${code}:\n${out}`));
    });
  });
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text exposition. */
function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    ?.value;
}

describe('retrain dashboard', () => {
  let sb: Sandbox;
  let dash: DashboardProc;
  let readOnly: DashboardProc;
  let browser: Browser;
  let train: Queue;
  let holder: Worker;
  let holderConn: Redis;
  const heldSince = new Date(Date.now() - 100_000).toISOString();

  beforeAll(async () => {
    sb = await sandbox(inject('redisUrl'));
    // A finished run, made by the real CLI: two symbols, promotion decided (dry).
    const r = await runCli(
      [
        'run',
        '--symbols',
        'BTCUSDT,ETHUSDT',
        '--date',
        DATE,
        '--ensure-features',
        '--synthetic',
        '--recipe',
        fakeRecipe,
        '--promote',
        'dry',
      ],
      sb.env,
    );
    expect(r.code, r.stderr + r.stdout).toBe(0);

    // An older date whose symbol rented a GPU and failed, through the real ledger and spend records:
    // $1.25 booked, and one Vast lease still held for 100 s at $3.60/h (so about $0.10 accrued).
    const store = new LocalStore(join(sb.home, 'store'));
    const ledger = new Ledger({ redis: sb.redis, prefix: sb.prefix, store });
    await ledger.init(OLD_DATE, [{ symbol: 'SOLUSDT', status: 'pending', runId: `${OLD_DATE}-1` }]);
    await ledger.update(OLD_DATE, 'SOLUSDT', {
      status: 'failed',
      attempts: 3,
      reason: 'timeout',
      costUsd: 1.25,
    });
    await ledger.flushMirror(OLD_DATE);
    const spend = new RunSpend(sb.redis, sb.prefix);
    const lease = {
      driver: 'vast' as const,
      id: '4242',
      host: '203.0.113.7',
      workRoot: '/root/retrain',
      acquiredAt: heldSince,
      hourlyCostUsd: 3.6,
    };
    await spend.book(`${OLD_DATE}-1`, { ...lease, id: '4141' }, 1.25);
    await spend.hold(`${OLD_DATE}-1`, lease);

    // A train job that holds that Vast instance right now: added and taken (active) through BullMQ,
    // by a worker that never processes it.
    train = new Queue('train', { connection: sb.redis, prefix: sb.prefix });
    await train.add(
      'train',
      { runId: `${OLD_DATE}-1`, state: 'EXECUTING', attempt: 1, facts: { lease } },
      { jobId: `train__SOLUSDT__${OLD_DATE}` },
    );
    holderConn = new Redis(sb.redisUrl, { maxRetriesPerRequest: null });
    holder = new Worker('train', null, { connection: holderConn, prefix: sb.prefix, autorun: false });
    expect((await holder.getNextJob('held-by-test'))?.id).toBe(`train__SOLUSDT__${OLD_DATE}`);

    const env = { ...sb.env, DASHBOARD_USER: USER, DASHBOARD_PASSWORD: PASSWORD, DASHBOARD_TOKEN: TOKEN };
    [dash, readOnly] = await Promise.all([startDashboard(env), startDashboard(env, ['--read-only'])]);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  });

  afterAll(async () => {
    await browser?.close();
    const outputs = [dash?.output() ?? '', readOnly?.output() ?? ''];
    await Promise.all([dash?.stop(), readOnly?.stop()]);
    await holder?.close(true);
    holderConn?.disconnect();
    await train?.close();
    await sb?.cleanup();
    // The dashboards never print a credential.
    for (const out of outputs) {
      expect(out).not.toContain(PASSWORD);
      expect(out).not.toContain(TOKEN);
    }
  });

  const get = (base: string, path: string, auth?: string, init: RequestInit = {}) =>
    fetch(new URL(path, base), {
      ...init,
      redirect: 'manual',
      headers: { ...(auth ? { authorization: auth } : {}), ...(init.headers as object) },
    });

  it('refuses to start without credentials, with one line and exit code 2', async () => {
    const r = await runCli(['dashboard', '--port', '0'], sb.env, 20_000);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([
      'retrain: the dashboard needs credentials: set DASHBOARD_USER and DASHBOARD_PASSWORD, or DASHBOARD_TOKEN',
    ]);
  });

  it('binds 127.0.0.1 by default', () => {
    expect(new URL(dash.url).hostname).toBe('127.0.0.1');
    expect(dash.output()).toContain('(auth: basic + token)');
    expect(readOnly.output()).toContain('read-only');
  });

  const routes: [string, string][] = [
    ['GET', '/'],
    ['GET', '/healthz'],
    ['GET', '/metrics'],
    ['GET', '/runs'],
    ['GET', `/runs/${DATE}`],
    ['GET', `/runs/${DATE}/BTCUSDT`],
    ['GET', `/files/runs/${DATE}Z/status.json`],
    ['GET', '/queues'],
    ['GET', '/queues/api/queues'],
    ['GET', `/queues/api/queues/train/train__BTCUSDT__${DATE}/logs`],
    ['PUT', `/queues/api/queues/train/train__BTCUSDT__${DATE}/retry`],
    ['GET', '/no-such-route'],
  ];

  it('answers 401 on every route without valid credentials', async () => {
    const wrong = [
      undefined,
      `Basic ${Buffer.from(`${USER}:wrong-password`).toString('base64')}`,
      `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}`,
      'Bearer not-the-token-at-all',
      `Basic ${Buffer.from(`${USER}:${TOKEN}`).toString('base64')}`,
    ];
    for (const base of [dash.url, readOnly.url]) {
      for (const [method, path] of routes) {
        for (const auth of wrong) {
          const res = await get(base, path, auth, { method });
          expect(res.status, `${method} ${path} with ${auth ?? 'nothing'}`).toBe(401);
          expect(res.headers.get('www-authenticate')).toMatch(/Basic realm="retrain dashboard"/);
          await res.body?.cancel();
        }
      }
    }
    // Nothing was retried by those requests.
    expect(await (await train.getJob(`train__BTCUSDT__${DATE}`))!.getState()).toBe('completed');
  });

  it('lets basic auth and the bearer token in', async () => {
    for (const auth of [basic, bearer]) {
      const res = await get(dash.url, '/healthz', auth);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: 'ok', readOnly: false });
    }
    const ro = await get(readOnly.url, '/healthz', bearer);
    expect(await ro.json()).toEqual({ status: 'ok', readOnly: true });
    const file = await get(dash.url, `/files/ml-artifacts/train__BTCUSDT__${DATE}/metrics.json`, basic);
    expect(file.status).toBe(200);
    expect(await file.json()).toMatchObject({ directionalHitRate: expect.any(Number) });
    expect((await get(dash.url, '/files/datasets/v1/BTCUSDT/20260110/features.csv', basic)).status).toBe(404);
    expect((await get(dash.url, '/files/ml-artifacts/../../etc/passwd', basic)).status).toBe(404);
  });

  it('/metrics gives the retrain_* series of the run', async () => {
    const res = await get(dash.url, '/metrics', bearer);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const samples = parseMetrics(await res.text());
    expect(samples.length).toBeGreaterThan(0);
    expect(samples.filter((s) => !s.name.startsWith('retrain_'))).toEqual([]);

    // Jobs by queue and state.
    expect(value(samples, 'retrain_jobs', { queue: 'train', state: 'completed' })).toBe(2);
    expect(value(samples, 'retrain_jobs', { queue: 'train', state: 'active' })).toBe(1);
    expect(value(samples, 'retrain_jobs', { queue: 'promote', state: 'completed' })).toBe(2);
    expect(value(samples, 'retrain_jobs', { queue: 'finalize-run', state: 'completed' })).toBe(1);
    expect(value(samples, 'retrain_jobs', { queue: 'maintenance', state: 'waiting' })).toBe(0);
    // The ledger.
    expect(value(samples, 'retrain_ledger_symbols', { date: DATE, status: 'success' })).toBe(2);
    expect(value(samples, 'retrain_ledger_symbols', { date: DATE, status: 'failed' })).toBe(0);
    expect(value(samples, 'retrain_ledger_symbols', { date: OLD_DATE, status: 'failed' })).toBe(1);
    // GPU dollars: booked per date (the local driver costs nothing), and per run with accrual.
    expect(value(samples, 'retrain_gpu_spend_usd', { date: DATE })).toBe(0);
    expect(value(samples, 'retrain_gpu_spend_usd', { date: OLD_DATE })).toBe(1.25);
    expect(value(samples, 'retrain_run_spend_usd', { run_id: `${DATE}-1` })).toBe(0);
    const accrued = ((Date.now() - Date.parse(heldSince)) / 3600_000) * 3.6;
    expect(value(samples, 'retrain_run_spend_usd', { run_id: `${OLD_DATE}-1` })).toBeGreaterThan(1.25 + 0.09);
    expect(value(samples, 'retrain_run_spend_usd', { run_id: `${OLD_DATE}-1` })).toBeLessThanOrEqual(
      1.25 + accrued,
    );
    // Instances alive: the one Vast lease held by an active train job.
    expect(value(samples, 'retrain_instances_alive')).toBe(1);
    // Seconds per state: both finished trainings went through every state once.
    const jobs = await Promise.all(['BTCUSDT', 'ETHUSDT'].map((s) => train.getJob(`train__${s}__${DATE}`)));
    const processing = jobs.reduce((sum, j) => sum + (j!.finishedOn! - j!.processedOn!) / 1000, 0);
    let total = 0;
    for (const state of ['PENDING', 'PROVISIONING', 'TRANSFERRING', 'EXECUTING', 'FETCHING', 'RELEASING']) {
      expect(value(samples, 'retrain_train_state_seconds_count', { state }), state).toBe(2);
      total += value(samples, 'retrain_train_state_seconds_sum', { state })!;
    }
    expect(value(samples, 'retrain_train_state_seconds_sum', { state: 'EXECUTING' })).toBeGreaterThan(0);
    expect(total).toBeGreaterThan(0);
    expect(total).toBeLessThanOrEqual(processing + 0.001);

    // A second scrape does not count the same trainings again.
    const again = parseMetrics(await (await get(dash.url, '/metrics', basic)).text());
    expect(value(again, 'retrain_train_state_seconds_count', { state: 'EXECUTING' })).toBe(2);
  });

  it('read-only mode rejects write requests on the server side', async () => {
    const id = `train__BTCUSDT__${DATE}`;
    for (const [method, path] of [
      ['PUT', `/queues/api/queues/train/${id}/retry`],
      ['PUT', '/queues/api/queues/train/retry/completed'],
      ['PUT', '/queues/api/queues/train/pause'],
      ['POST', '/queues/api/queues/train/add'],
      ['PATCH', `/queues/api/queues/train/${id}/update-data`],
      ['DELETE', '/runs'],
    ]) {
      const res = await get(readOnly.url, path!, basic, {
        method,
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      expect(res.status, `${method} ${path}`).toBe(405);
      expect(await res.json()).toEqual({ error: 'the dashboard is read-only: write actions are disabled' });
    }
    expect(await (await train.getJob(id))!.getState()).toBe('completed');
    expect(await train.isPaused()).toBe(false);
  });

  it('in the browser: 401 without credentials; logged in, the queues and the runs page show the run', async () => {
    // Without credentials (and with wrong ones) the browser gets the 401 and no page.
    for (const httpCredentials of [undefined, { username: USER, password: 'wrong-password' }]) {
      const anon = await browser.newContext(httpCredentials ? { httpCredentials } : {});
      const p = await anon.newPage();
      const runsUrl = new URL('/runs', dash.url).href;
      const answered = p.waitForResponse(runsUrl);
      await p.goto(runsUrl).catch(() => null);
      expect((await answered).status()).toBe(401);
      expect(await p.locator('section[data-date]').count()).toBe(0);
      await anon.close();
    }

    const ctx = await browser.newContext({ httpCredentials: { username: USER, password: PASSWORD } });
    const page = await ctx.newPage();
    await page.goto(dash.url);
    expect(new URL(page.url()).pathname).toBe('/queues');
    for (const q of ['train', 'promote', 'finalize-run', 'maintenance'])
      await page.getByRole('link', { name: q, exact: true }).first().waitFor();
    await page.getByRole('link', { name: 'train', exact: true }).first().click();
    await page.getByText('COMPLETED', { exact: true }).click();
    await page.getByRole('link', { name: `train__BTCUSDT__${DATE}` }).waitFor();
    await page.getByRole('link', { name: `train__ETHUSDT__${DATE}` }).waitFor();
    // Not read-only: Bull Board offers its write actions.
    await page.getByRole('button', { name: 'Retry all' }).waitFor();

    await page.goto(new URL('/runs', dash.url).href);
    const cell = (date: string, symbol: string, col: string) =>
      page
        .locator(`section[data-date="${date}"] tr[data-symbol="${symbol}"] td[data-col="${col}"]`)
        .innerText();
    for (const s of ['BTCUSDT', 'ETHUSDT']) {
      expect(await cell(DATE, s, 'status')).toBe('success');
      expect(await cell(DATE, s, 'attempts')).toBe('1');
      expect(await cell(DATE, s, 'cost')).toBe('$0.0000');
      expect(await cell(DATE, s, 'decision')).toBe('promote');
      expect(Number(await cell(DATE, s, 'minutes'))).toBeGreaterThanOrEqual(0);
    }
    expect(await cell(OLD_DATE, 'SOLUSDT', 'status')).toBe('failed');
    expect(await cell(OLD_DATE, 'SOLUSDT', 'attempts')).toBe('3');
    expect(await cell(OLD_DATE, 'SOLUSDT', 'cost')).toBe('$1.2500');
    expect(await cell(OLD_DATE, 'SOLUSDT', 'reason')).toBe('timeout');
    expect(await page.locator(`section[data-date="${DATE}"] [data-summary]`).innerText()).toMatch(
      /2 succeeded, 0 failed, 0 skipped/,
    );

    // The artifacts link lists what the store holds and serves it.
    await page
      .locator(`section[data-date="${DATE}"] tr[data-symbol="BTCUSDT"] td[data-col="artifacts"] a`)
      .click();
    await page.getByRole('link', { name: 'model.bin' }).first().waitFor();
    const storeDir = join(sb.home, 'store', 'ml-artifacts', `train__BTCUSDT__${DATE}`);
    expect(existsSync(join(storeDir, 'model.bin'))).toBe(true);
    expect(await page.locator('main').innerText()).toContain(join(storeDir, 'metrics.json'));
    await page.getByRole('link', { name: 'metrics.json' }).first().click();
    expect(JSON.parse(await page.locator('body').innerText())).toMatchObject({ net_bps_after_costs: 1.5 });
    await ctx.close();
  });

  it('in the browser, read-only: no write buttons, and a retry request from the page is rejected', async () => {
    const ctx = await browser.newContext({ httpCredentials: { username: USER, password: PASSWORD } });
    const page = await ctx.newPage();
    await page.goto(new URL('/queues/queue/train?status=completed', readOnly.url).href);
    await page.getByRole('link', { name: `train__BTCUSDT__${DATE}` }).waitFor();
    await page.getByText('read-only', { exact: true }).first().waitFor();
    expect(await page.getByRole('button', { name: 'Retry all' }).count()).toBe(0);
    const id = `train__BTCUSDT__${DATE}`;
    const status = await page.evaluate(
      async (path) => (await fetch(path, { method: 'PUT' })).status,
      `/queues/api/queues/train/${id}/retry`,
    );
    expect(status).toBe(405);
    expect(await (await train.getJob(id))!.getState()).toBe('completed');
    await ctx.close();
  });

  it('without read-only the same retry goes through (and a cross-site one does not)', async () => {
    const id = `train__ETHUSDT__${DATE}`;
    const path = `/queues/api/queues/train/${id}/retry`;
    const cross = await get(dash.url, path, basic, {
      method: 'PUT',
      headers: { origin: 'https://evil.example' },
    });
    expect(cross.status).toBe(403);
    expect(await (await train.getJob(id))!.getState()).toBe('completed');
    const res = await get(dash.url, path, basic, { method: 'PUT' });
    expect(res.status).toBe(204);
    expect(await (await train.getJob(id))!.getState()).toBe('waiting');
  });
});
