/**
 * The rental path against a simulator as hard as Vast (profile vast-like: rate limits per endpoint
 * with 429s, competitors, churn, bad images, transient statuses, slow creates, odd rows, lost key
 * attaches), every instance a real sshd reachable only with the deployment's key, time scaled 10x
 * (boot, intervals, timeouts and graces alike). What a user checks: every symbol trains, everything
 * rented is destroyed, nothing is left for the reaper, a bad image costs one poll and not the boot
 * deadline, a short `unknown` is survived and a long one is not, a create answered too late is
 * adopted rather than orphaned, and one odd row does not blind the reaper.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { createProvider } from '../../src/compute/factory.js';
import type { ComputeProvider, LeaseInfo } from '../../src/compute/provider.js';
import { loadConfig } from '../../src/config/load.js';
import type { JobSpec } from '../../src/jobspec/types.js';
import { VastClient } from '../../src/vast/client.js';
import { defaultOffers } from '../../src/vast/sim/server.js';
import type { VastSimOptions } from '../../src/vast/sim/types.js';
import { fakeRecipe, runCli } from '../helpers/harness.js';
import {
  expectNothingLeftRented,
  startVastWorld,
  vastRun,
  waitFor,
  type VastWorld,
} from '../helpers/vastWorld.js';

const DATE = '20260114';
const SCALE = 10;
/** The cheapest offer meeting the default constraints lives on this machine. */
const CHEAPEST_MACHINE = 31001;

/** The shipped offers plus 16 RTX 3090s a cent apart: enough machines for 12 at once and their losses. */
function offers() {
  const base = defaultOffers().find((o) => o.id === 7001001)!;
  return [
    ...defaultOffers(),
    ...Array.from({ length: 16 }, (_, i) => ({
      ...base,
      id: 7101001 + i,
      machine_id: 41001 + i,
      dph_total: Math.round((base.dph_total + 0.01 * (i + 1)) * 1e6) / 1e6,
    })),
  ];
}

/** Vast's figures at SCALE: create timeout 120 s, transient grace 120 s, poll 10 s. */
const SCALED_ENV = {
  RETRAIN_VAST_API_TIME_SCALE: String(SCALE),
  RETRAIN_VAST_CREATE_TIMEOUT_SEC: String(120 / SCALE),
  RETRAIN_VAST_TRANSIENT_GRACE_SEC: String(120 / SCALE),
  RETRAIN_VAST_POLL_SEC: String(10 / SCALE),
};

const spec = (symbol: string) =>
  ({ jobId: `train__${symbol}__${DATE}`, symbol, date: DATE, timeoutMinutes: 10 }) as JobSpec;

describe('driver vast against a vast-like simulator', () => {
  let w: VastWorld | undefined;
  const opened: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const o of opened.splice(0)) await o.close().catch(() => undefined);
    await w?.close();
    w = undefined;
  });

  async function world(sim: Partial<VastSimOptions>, env: NodeJS.ProcessEnv = {}) {
    w = await startVastWorld(inject('redisUrl'), {
      gateSsh: true,
      env: { ...SCALED_ENV, ...env },
      sim: { timeScale: SCALE, offers: offers(), bootDelayMs: 6000 / SCALE, ...sim },
    });
    return w;
  }

  /** The vast provider a worker builds (pool off), with its events recorded. */
  async function provider(env: NodeJS.ProcessEnv = {}) {
    const events: { event: string; at: number; data: Record<string, unknown> }[] = [];
    const config = loadConfig({ env: { ...w!.sb.env, RETRAIN_VAST_POOL: 'false', ...env } });
    const redis = new Redis(w!.sb.redisUrl);
    opened.push({ close: async () => void redis.disconnect() });
    const saved = process.env.VAST_API_KEY;
    process.env.VAST_API_KEY = w!.sb.env.VAST_API_KEY;
    try {
      const p: ComputeProvider = await createProvider(config, {
        redis,
        onEvent: (event, data) => events.push({ event, at: Date.now(), data }),
      });
      opened.push({ close: () => p.close!() });
      return { p, events, config };
    } finally {
      if (saved === undefined) delete process.env.VAST_API_KEY;
      else process.env.VAST_API_KEY = saved;
    }
  }

  const ledger = () =>
    JSON.parse(readFileSync(join(w!.sb.home, 'store/runs', `${DATE}Z`, 'status.json'), 'utf8'))
      .symbols as Record<string, { status: string; reason?: string; attempts: number }>;

  it('12 symbols at once, cap 12: all succeed, rented == destroyed, nothing for the reaper, few 429s', async () => {
    await world({ profile: 'vast-like', seed: 21 });
    const symbols = Array.from({ length: 12 }, (_, i) => `S${String(i).padStart(2, '0')}USDT`);
    const r = await vastRun(w!.sb.env, {
      symbols,
      date: DATE,
      recipe: fakeRecipe,
      extra: ['--var', 'sleep=1', '--max-concurrent', '12', '--mode', 'hybrid'],
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const l = ledger();
    for (const s of symbols) expect(l[s], s).toMatchObject({ status: 'success' });
    expectNothingLeftRented(w!.sim);
    const st = w!.sim.state();
    // The deployment's one key: each instance got it from the account, whatever the lost attaches.
    expect(Object.values(st.sshRefused).reduce((a, b) => a + b, 0)).toBe(0);
    // Shared turns: the simulator refused next to nothing of what we sent.
    const r429 = Object.values(st.calls).reduce((a, c) => a + c.r429, 0);
    expect(r429).toBeLessThan(symbols.length);
    // And the reaper has nothing to do.
    const reap = await runCli(['reap', '--dry-run'], w!.sb.env, 60_000);
    expect(reap.code, reap.stdout + reap.stderr).toBe(0);
    expect(reap.stdout).not.toContain('would destroy');
  }, 300_000);

  it('a bad image is dropped within two polls, its error kept, and the symbol gets the next offer', async () => {
    // The shipped offers only: the cheapest is alone within the price tolerance, so it is picked first.
    await world(
      { offers: defaultOffers(), faults: { badImageMachineIds: [CHEAPEST_MACHINE] } },
      { RETRAIN_BOOT_DEADLINE_SEC: '120' },
    );
    const { p, events, config } = await provider();
    const released: LeaseInfo[] = [];
    const lease = await p.acquire(spec('BTCUSDT'), {
      signal: new AbortController().signal,
      onLeaseReleased: async (info) => void released.push(info),
    });
    const bad = w!.sim.state().instances.find((i) => i.machine_id === CHEAPEST_MACHINE)!;
    expect(bad).toBeDefined();
    expect(lease.info.machineId).not.toBe(CHEAPEST_MACHINE);
    // Within two poll intervals of the error showing (it shows once the image starts loading), not
    // after the 120 s boot deadline.
    const rented = events.find((e) => e.event === 'instance_rented' && e.data.instanceId === bad.id)!;
    const failed = events.find((e) => e.event === 'provision_failed' && e.data.instanceId === bad.id)!;
    const errorShows = (6000 / SCALE) * 0.35;
    expect(failed.at - rented.at).toBeLessThan(errorShows + 2 * config.vast.pollSec * 1000 + 500);
    // Vast's text is what the failure says (the ledger's detail), and the machine was destroyed.
    expect(String(failed.data.reason)).toContain(w!.sim.state().badImage[bad.id]!);
    expect(released[0]?.bootFailure).toContain(w!.sim.state().badImage[bad.id]!);
    expect(w!.sim.state().destroyed).toContain(bad.id);
    expect((await lease.transport.exec('echo trained')).stdout.trim()).toBe('trained');
    await lease.transport.close();
    await p.release(lease.info);
    expectNothingLeftRented(w!.sim);
  }, 120_000);

  it('a 20 s `unknown` does not fail a training', async () => {
    await world({}, { RETRAIN_HOST_CHECK_SEC: '1' });
    const running = vastRun(w!.sb.env, {
      symbols: ['BTCUSDT'],
      date: DATE,
      recipe: fakeRecipe,
      extra: ['--var', 'sleep=6', '--retries', '0'],
    });
    const id = await waitFor(
      'the instance to run',
      () => w!.sim.state().instances.find((i) => i.actual_status === 'running')?.id,
      60_000,
    );
    // 20 s of Vast time; the grace is 120 s of it.
    expect(w!.sim.transientStatus(id, 'unknown', 20_000 / SCALE)).toBe(true);
    const r = await running;
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(ledger().BTCUSDT).toMatchObject({ status: 'success', attempts: 1 });
    expect(w!.sim.state().rented).toEqual([id]);
    expectNothingLeftRented(w!.sim);
  }, 120_000);

  it('an instance `unknown` for longer than the grace counts as lost', async () => {
    await world({});
    const { p, events, config } = await provider();
    const lease = await p.acquire(spec('ETHUSDT'), { signal: new AbortController().signal });
    await lease.transport.close();
    const id = Number(lease.info.id);
    w!.sim.killInstance(id, 'unknown');
    const since = Date.now();
    // Alive through the grace (a missed heartbeat), gone after it.
    await waitFor(
      'unknown to be seen',
      async () => {
        const alive = await p.isAlive!(lease.info);
        if (Date.now() - since < config.vast.transientGraceSec * 1000 - 1000) expect(alive).toBe(true);
        return !alive;
      },
      60_000,
    );
    expect(Date.now() - since).toBeGreaterThanOrEqual(config.vast.transientGraceSec * 1000);
    expect(events.some((e) => e.event === 'instance_lost' && e.data.instanceId === id)).toBe(true);
    await p.release(lease.info);
    expectNothingLeftRented(w!.sim);
  }, 120_000);

  it('a create answered after the timeout is adopted by its label: one instance, destroyed at the end', async () => {
    // Vast answers the create after 130 s (here 13 s) while the client gives up at 120 s (12 s).
    await world({ faults: { slowCreateRate: 1, slowCreateMs: 130_000 / SCALE } });
    const { p, events } = await provider();
    const lease = await p.acquire(spec('SOLUSDT'), { signal: new AbortController().signal });
    const st = w!.sim.state();
    expect(st.faultsInjected.slowCreate).toBe(1);
    expect(st.rented).toEqual([Number(lease.info.id)]);
    expect(events.find((e) => e.event === 'create_unknown')).toBeDefined();
    expect(events.find((e) => e.event === 'instance_rented')?.data).toMatchObject({ adopted: true });
    expect((await lease.transport.exec('echo ok')).stdout.trim()).toBe('ok');
    await lease.transport.close();
    await p.release(lease.info);
    expectNothingLeftRented(w!.sim);
  }, 120_000);

  it('rows with odd ports/extra_env do not stop the reaper', async () => {
    // Still loading while the reaper runs: ports `{}`, null or a list, extra_env as strings.
    await world({ faults: { oddRows: true }, bootDelayMs: 120_000 });
    const client = new VastClient({ apiUrl: w!.sim.url, apiKey: w!.sb.env.VAST_API_KEY! });
    const some = (await client.searchOffers({})).slice(0, 3);
    for (const [n, o] of some.entries()) {
      await client.createInstance(o.id, {
        image: 'x',
        disk: 10,
        label: `retrain-default-train__S${n}USDT__20260101`,
        env: { FOO: 'bar', N: String(n) },
      });
    }
    const raw = (await (
      await fetch(`${w!.sim.url}/api/v1/instances/`, {
        headers: { Authorization: `Bearer ${w!.sb.env.VAST_API_KEY}` },
      })
    ).json()) as { instances: Record<string, unknown>[] };
    // The rows as Vast may send them: shapes a strict reader refuses.
    expect(raw.instances.some((i) => Array.isArray(i.ports))).toBe(true);
    expect(raw.instances.some((i) => typeof (i.extra_env as unknown[])[0] === 'string')).toBe(true);
    const r = await runCli(['reap'], w!.sb.env, 60_000);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout.match(/destroyed instance/g)).toHaveLength(3);
    expectNothingLeftRented(w!.sim);
  }, 120_000);
});
