import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { ensureDeploymentKey } from '../../src/remote/ssh/keys.js';
import { defaultOffers, startVastSim, type VastSim } from '../../src/vast/sim/server.js';
import { fakeRecipe, runCli, sandbox, startWorker, type Sandbox } from '../helpers/harness.js';
import { startSshd } from '../helpers/sshd.js';
import { vastRun } from '../helpers/vastWorld.js';

type Sshd = Awaited<ReturnType<typeof startSshd>>;
const DATE = '20260110';
const API_KEY = 'sim-account-key-0123456789';
const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

describe('driver vast: the simulator over HTTP, instances backed by a real sshd', () => {
  let sb: Sandbox;
  let sshd: Sshd;
  let sim: VastSim;
  beforeEach(async () => {
    sb = await sandbox(inject('redisUrl'));
    const key = await ensureDeploymentKey(join(sb.home, 'ssh'), 'default');
    sshd = await startSshd({ authorizedKeys: [key.publicKey] });
    sim = await startVastSim({
      apiKey: API_KEY,
      offers: defaultOffers(),
      sshEndpoint: { host: sshd.host, port: sshd.port },
      bootDelayMs: 300,
      seed: 7,
    });
    Object.assign(sb.env, {
      VAST_API_URL: sim.url,
      VAST_API_KEY: API_KEY,
      RETRAIN_REMOTE_ROOT: join(sb.home, 'remote'),
      RETRAIN_SSH_USER: sshd.user,
      RETRAIN_BOOT_DEADLINE_SEC: '20',
      RETRAIN_VAST_POLL_SEC: '0.5',
      RETRAIN_VAST_API_TIME_SCALE: '10',
    });
  });
  afterEach(async () => {
    await sim.close();
    await sshd.stop();
    await sb.cleanup();
  });

  it('three symbols: three rentals, three destroys, artifacts verified, cost recorded', async () => {
    const symbols = ['BTCUSDT', 'ETHUSDT', 'SOLUSDT'];
    const r = await vastRun(sb.env, { symbols, date: DATE, recipe: fakeRecipe, extra: ['--var', 'sleep=1'] });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const state = sim.state();
    expect(state.rented).toHaveLength(3);
    expect([...state.destroyed].sort()).toEqual([...state.rented].sort());
    expect(state.alive).toEqual([]);
    const status = JSON.parse(
      readFileSync(join(sb.home, 'store/runs', `${DATE}Z`, 'status.json'), 'utf8'),
    ).symbols;
    for (const s of symbols) {
      expect(status[s]).toMatchObject({ status: 'success', attempts: 1 });
      expect(status[s].costUsd).toBeGreaterThan(0);
      const dir = join(sb.home, 'store/ml-artifacts', `train__${s}__${DATE}`);
      const sums = Object.fromEntries(
        readFileSync(join(dir, 'sha256.txt'), 'utf8')
          .trim()
          .split('\n')
          .map((l) => l.split(/\s+/).reverse()),
      );
      for (const [name, hash] of Object.entries(sums)) expect(sha(join(dir, name)), name).toBe(hash);
      expect(JSON.parse(readFileSync(join(dir, 'runtime.json'), 'utf8'))).toMatchObject({ driver: 'vast' });
    }
    // The account key never reached the host or the logs.
    const logs = readFileSync(join(sb.home, 'logs', `${DATE}Z`, 'engine.log'), 'utf8');
    expect(logs).not.toContain(API_KEY);
    const grep = spawnSync('grep', ['-r', '-l', API_KEY, join(sb.home, 'remote')], { encoding: 'utf8' });
    expect(grep.status).toBe(1); // 1 = searched, nothing found
    expect(grep.stdout).toBe('');
  });

  it('orphans are reaped: our label with no active job is destroyed, another label is left alone', async () => {
    // Rent two instances behind retrain's back: one with our label, one with someone else's.
    const { VastClient } = await import('../../src/vast/client.js');
    const client = new VastClient({ apiUrl: sim.url, apiKey: API_KEY });
    const offers = await client.searchOffers({});
    const ours = await client.createInstance(offers[0]!.id, {
      image: 'x',
      disk: 10,
      label: 'retrain-default-train__BTCUSDT__20260101',
    });
    const theirs = await client.createInstance(offers[1]!.id, {
      image: 'x',
      disk: 10,
      label: 'someone-else',
    });
    const dry = await runCli(['reap', '--dry-run'], sb.env);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(`would destroy instance ${ours.instanceId}`);
    expect(sim.state().alive.sort()).toEqual([ours.instanceId, theirs.instanceId].sort());
    const real = await runCli(['reap'], sb.env);
    expect(real.code, real.stderr).toBe(0);
    expect(real.stdout).toContain(`destroyed instance ${ours.instanceId}`);
    expect(real.stdout).not.toContain(String(theirs.instanceId) + ' (');
    expect(sim.state().alive).toEqual([theirs.instanceId]);
  });

  it('the worker runs the reaper as a repeatable maintenance job', async () => {
    const { VastClient } = await import('../../src/vast/client.js');
    const client = new VastClient({ apiUrl: sim.url, apiKey: API_KEY });
    const offers = await client.searchOffers({});
    const ours = await client.createInstance(offers[0]!.id, {
      image: 'x',
      disk: 10,
      label: 'retrain-default-train__ETHUSDT__20260101',
    });
    const theirs = await client.createInstance(offers[1]!.id, { image: 'x', disk: 10, label: 'other-team' });
    const worker = startWorker({ ...sb.env, RETRAIN_REAP_EVERY_MIN: '0.02', RETRAIN_DRIVER: 'vast' });
    try {
      const end = Date.now() + 30_000;
      while (sim.state().alive.includes(ours.instanceId) && Date.now() < end) {
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(sim.state().alive).toEqual([theirs.instanceId]);
      // One schedule, however many workers start: the scheduler is an upsert by id.
      const second = startWorker({ ...sb.env, RETRAIN_REAP_EVERY_MIN: '0.02', RETRAIN_DRIVER: 'vast' });
      await new Promise((r) => setTimeout(r, 3000));
      await second.stop();
      const { Queue } = await import('bullmq');
      const q = new Queue('maintenance', { connection: sb.redis, prefix: sb.prefix });
      const schedulers = await q.getJobSchedulers();
      await q.close();
      // Beside the reaper, the check for jobs stuck in PROVISIONING (alerts.checkEverySec, 60 s).
      expect(schedulers.map((x) => [x.key, x.every]).sort()).toEqual([
        ['check-stuck', 60_000],
        ['reap-orphans', 1200],
      ]);
      expect(worker.output()).toMatch(/"event":"instance_destroyed"[^\n]*"reason":"no_active_job"/);
    } finally {
      await worker.stop();
    }
  });
});
