/**
 * No capacity is a wait, not a failure (issue 20), against the Vast simulator over real HTTP with a
 * real sshd for every instance, real Redis and a local Telegram stand-in: more symbols than matching
 * machines all succeed (each waiting for a machine to be destroyed and offered again, or, with the
 * pool, for a pooled instance); a GPU class preference falls back to the next class only when the
 * first has none; a run that can get nothing alerts once and fails its symbols with `no_capacity`
 * at their wait limit, destroying nothing it did not rent.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { createProvider } from '../../src/compute/factory.js';
import type { Lease, LeaseInfo } from '../../src/compute/provider.js';
import { loadConfig } from '../../src/config/load.js';
import type { JobSpec } from '../../src/jobspec/types.js';
import { Ledger } from '../../src/ledger/ledger.js';
import type { LedgerEntry } from '../../src/ledger/types.js';
import { LocalStore } from '../../src/storage/local.js';
import { VastClient } from '../../src/vast/client.js';
import { defaultOffers } from '../../src/vast/sim/server.js';
import { fakeRecipe } from '../helpers/harness.js';
import { startTelegramStandIn, type TelegramStandIn } from '../helpers/telegramStandIn.js';
import {
  SIM_API_KEY,
  expectNothingLeftRented,
  startVastWorld,
  vastRun,
  verifyStoredArtifacts,
  type VastWorld,
} from '../helpers/vastWorld.js';

const DATE = '20260114';
const SYMBOLS = ['BTCUSDT', 'ETHUSDT', 'SOLUSDT', 'BNBUSDT', 'XRPUSDT', 'ADAUSDT', 'DOGEUSDT', 'AVAXUSDT'];
/** The three offers that meet the default constraints, and two that do not (unreliable, 12 GB). */
const MATCHING = [7001001, 7001003, 7002001];
const marketOf = (ids: number[]) => defaultOffers().filter((o) => ids.includes(o.id));
const capacityEnv = {
  RETRAIN_CAPACITY_POLL_SEC: '0.5',
  RETRAIN_BOOT_DEADLINE_SEC: '20',
};

interface StatusFile {
  symbols: Record<string, LedgerEntry>;
}
const statusOf = (w: VastWorld) =>
  JSON.parse(readFileSync(join(w.sb.home, 'store/runs', `${DATE}Z`, 'status.json'), 'utf8')) as StatusFile;
const summaryOf = (w: VastWorld) =>
  JSON.parse(readFileSync(join(w.sb.home, 'store/summary', `${DATE}Z`, 'engine_summary.json'), 'utf8')) as {
    waited_minutes: number;
    costs: { waited_minutes_by_symbol: Record<string, number> };
    by_symbol: Record<string, { waited_minutes: number; gpu: string | null }>;
  };

/**
 * The shared offer search serves every worker for a second here (30 s by default): an offer we tried
 * stays marked taken for two of those, so a machine given back is offered to a waiter at test speed.
 */
function fastOfferBoard(w: VastWorld): void {
  const file = join(w.sb.home, 'capacity.config.yaml');
  writeFileSync(file, 'vast:\n  offers:\n    cacheSec: 1\n');
  w.sb.env.RETRAIN_CONFIG = file;
}

/** Watches the ledger in Redis while a run goes: the symbols seen `waiting_capacity`, with since-when. */
function watchWaiting(w: VastWorld) {
  const redis = new Redis(w.sb.redisUrl);
  const ledger = new Ledger({
    redis,
    prefix: w.sb.env.RETRAIN_QUEUE_PREFIX!,
    store: new LocalStore(w.sb.home),
  });
  const seen = new Map<string, string>();
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      const entries = await ledger.get(DATE).catch(() => ({}) as Record<string, LedgerEntry>);
      for (const e of Object.values(entries))
        if (e.status === 'waiting_capacity' && e.waitingSince) seen.set(e.symbol, e.waitingSince);
      await new Promise((r) => setTimeout(r, 150));
    }
  })();
  return {
    seen,
    async stop() {
      stop = true;
      await loop;
      redis.disconnect();
    },
  };
}

describe('no capacity is a wait (driver vast)', () => {
  let w: VastWorld | undefined;
  let tg: TelegramStandIn | undefined;
  const opened: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const o of opened.splice(0)) await o.close().catch(() => undefined);
    await tg?.close();
    tg = undefined;
    await w?.close();
    w = undefined;
  });

  /** 8 symbols at cap 8 against 3 matching machines; checks what every variant shares. */
  const eightOnThree = async (pool: boolean) => {
    w = await startVastWorld(inject('redisUrl'), {
      sim: { offers: marketOf([...MATCHING, 7002002, 7006001]) },
      env: { ...capacityEnv, RETRAIN_VAST_POOL: pool ? '1' : '0', RETRAIN_POOL_IDLE_SEC: '30' },
    });
    fastOfferBoard(w);
    const watch = watchWaiting(w);
    const r = await vastRun(w.sb.env, {
      symbols: SYMBOLS,
      date: DATE,
      recipe: fakeRecipe,
      extra: ['--var', 'sleep=1', '--mode', 'hybrid', '--max-concurrent', '8', '--timeout-minutes', '4'],
    });
    await watch.stop();
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const st = w.sim.state();
    const status = statusOf(w).symbols;
    for (const s of SYMBOLS) {
      // Each succeeded on its first attempt: waiting used up none of its retries.
      expect(status[s]).toMatchObject({ status: 'success', attempts: 1 });
      expect(verifyStoredArtifacts(w.sb.home, `train__${s}__${DATE}`)).toEqual([]);
      // Within its limit, wait included.
      const took = Date.parse(status[s]!.endedAt!) - Date.parse(status[s]!.startedAt!);
      expect(took).toBeLessThan(4 * 60_000);
      expect(status[s]!.gpu).toMatch(/RTX (3090|4090)/);
    }
    // Only the three matching machines were ever rented; at most three at a time could be.
    const machines = new Set(st.instances.map((i) => Number(i.machine_id)));
    expect([...machines].every((m) => [31001, 31003, 32001].includes(m))).toBe(true);
    // Five symbols could not have a GPU at first: the ledger showed them waiting, with since-when,
    // and the minutes they waited are in the summary's figures.
    expect(watch.seen.size).toBeGreaterThanOrEqual(5);
    const waited = SYMBOLS.filter((s) => (status[s]!.waitedMin ?? 0) > 0);
    expect(waited.length).toBeGreaterThanOrEqual(5);
    for (const s of waited) expect(watch.seen.has(s)).toBe(true);
    const summary = summaryOf(w);
    for (const s of waited) {
      expect(summary.costs.waited_minutes_by_symbol[s]).toBeGreaterThan(0);
      expect(summary.by_symbol[s]!.waited_minutes).toBeGreaterThan(0);
    }
    expect(summary.waited_minutes).toBeGreaterThan(0);
    expect(r.stdout).toContain('waited');
    expectNothingLeftRented(w.sim);
    return st;
  };

  it('pool off: 8 symbols on 3 machines all succeed, each waiter renting a machine destroyed and offered again', async () => {
    const st = await eightOnThree(false);
    // One rental per symbol: every waiter got a machine someone else had given back.
    expect(st.rented).toHaveLength(SYMBOLS.length);
  }, 240_000);

  it('pool on: the waiters take the pooled instances first (three rentals for eight symbols)', async () => {
    const st = await eightOnThree(true);
    expect(st.rented).toHaveLength(3);
  }, 240_000);

  it('a GPU class preference moves to the second class only when the first has no capacity', async () => {
    w = await startVastWorld(inject('redisUrl'), { env: { RETRAIN_VAST_POOL: '0' } });
    fastOfferBoard(w);
    const config = loadConfig({ env: w.sb.env });
    // RTX 3090s are cheaper, but not wanted; two 4090s meet the first class's cap, one A100 the second's.
    config.vast.gpuNames = [
      { name: 'RTX_4090', maxHourlyCost: 0.5 },
      { name: 'A100', maxHourlyCost: 1.0 },
    ];
    const redis = new Redis(w.sb.redisUrl);
    opened.push({ close: async () => void redis.disconnect() });
    const saved = process.env.VAST_API_KEY;
    process.env.VAST_API_KEY = SIM_API_KEY;
    const p = await createProvider(config, { redis }).finally(() => {
      if (saved === undefined) delete process.env.VAST_API_KEY;
      else process.env.VAST_API_KEY = saved;
    });
    opened.push({ close: async () => void (await p.close?.()) });
    const spec = (symbol: string) =>
      ({ jobId: `train__${symbol}__${DATE}`, symbol, date: DATE, timeoutMinutes: 10 }) as JobSpec;
    const ctx = { signal: new AbortController().signal, runId: 'run-pref' };
    const leases: Lease[] = [];
    const take = async (s: string) => {
      const l = await p.acquire(spec(s), ctx);
      await l.transport.close();
      leases.push(l);
      return l.info;
    };
    const first = await take('BTCUSDT');
    const second = await take('ETHUSDT');
    expect([first.gpu, second.gpu]).toEqual(['RTX 4090', 'RTX 4090']);
    expect(first.gpuClass).toBe('RTX_4090 ≤ $0.50/h');
    // No 4090 left: the second class.
    const third = await take('SOLUSDT');
    expect(third.gpu).toBe('A100 PCIE');
    expect(third.gpuClass).toBe('A100 ≤ $1.00/h');
    // A 4090 given back is offered again: the first class is preferred again, though an A100 is free too.
    await p.release(first);
    const fourth = await take('BNBUSDT');
    expect(fourth.gpu).toBe('RTX 4090');
    expect(w.sim.state().instances.some((i) => String(i.gpu_name).startsWith('RTX 3090'))).toBe(false);
    for (const info of [second, third, fourth] as LeaseInfo[]) await p.release(info);
    expectNothingLeftRented(w.sim);
  }, 90_000);

  it('a run that can get nothing: one alert naming the constraints, every symbol failed no_capacity at its limit, nothing of others destroyed', async () => {
    tg = await startTelegramStandIn();
    // The market: a 12 GB RTX 3060 (too small) and an RTX 3090 that someone else rents first.
    w = await startVastWorld(inject('redisUrl'), {
      sim: { offers: marketOf([7006001, 7001001]) },
      env: {
        ...capacityEnv,
        RETRAIN_VAST_POOL: '0',
        RETRAIN_CAPACITY_WAIT_MIN: '0.15',
        RETRAIN_NO_CAPACITY_MIN: '0.05',
        // The stuck-provisioning check runs too, and must not take a wait for a stuck rental.
        RETRAIN_ALERT_CHECK_SEC: '1',
        RETRAIN_PROVISIONING_STUCK_MIN: '0.02',
        TELEGRAM_TOKEN: '123456:capacity-test-token',
        TELEGRAM_CHAT_ID: '-100777',
        TELEGRAM_API_URL: tg.url,
      },
    });
    fastOfferBoard(w);
    const other = new VastClient({ apiUrl: w.sim.url, apiKey: SIM_API_KEY });
    const { instanceId: foreign } = await other.createInstance(7001001, {
      image: 'someone/else:1',
      disk: 30,
      label: 'another-team-job',
      onstart: 'true',
      runtype: 'ssh_direct',
    });
    const symbols = SYMBOLS.slice(0, 3);
    const started = Date.now();
    const r = await vastRun(w.sb.env, {
      symbols,
      date: DATE,
      recipe: fakeRecipe,
      extra: ['--mode', 'hybrid', '--max-concurrent', '3', '--timeout-minutes', '2'],
    });
    expect(r.code, r.stdout + r.stderr).not.toBe(0);
    const status = statusOf(w).symbols;
    for (const s of symbols) {
      expect(status[s]).toMatchObject({ status: 'failed', reason: 'no_capacity', attempts: 1 });
      // It waited to its wait limit (9 s), not less, and no longer than its time limit.
      expect(status[s]!.waitedMin).toBeGreaterThanOrEqual(0.15);
      expect(status[s]!.error?.message).toContain('GPU RAM');
    }
    expect(Date.now() - started).toBeLessThan(2 * 60_000);
    // One alert for the run, naming what no offer met; no "stuck in PROVISIONING" for a wait.
    const texts = tg.texts();
    const alerts = texts.filter((t) => t.includes('no GPU for'));
    expect(alerts, texts.join('\n---\n')).toHaveLength(1);
    expect(alerts[0]).toContain('≥ 16 GB GPU RAM');
    expect(alerts[0]).toContain('RTX_3090/RTX_4090/A100');
    expect(texts.some((t) => t.includes('stuck in PROVISIONING'))).toBe(false);
    // Nothing rented by the run; the other renter's instance is untouched.
    const st = w.sim.state();
    expect(st.rented).toEqual([foreign]);
    expect(st.destroyed).toEqual([]);
    expect(st.alive).toEqual([foreign]);
  }, 180_000);
});
