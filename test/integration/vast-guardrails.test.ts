/**
 * The GPU path under trouble, end to end through the CLI: the Vast simulator over real HTTP with
 * faults injected, instances backed by a real sshd on loopback, the real Redis.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import type { VastSim, VastSimOptions } from '../../src/vast/sim/server.js';
import { fakeRecipe, runCli, type Sandbox } from '../helpers/harness.js';
import type { SshdHandle } from '../helpers/sshd.js';
import {
  findFiles,
  processesWith,
  spawnSleepingVastRun,
  expectNothingLeftRented as expectRentedAllGone,
  startVastWorld,
  vastRun as runVast,
  type VastWorld,
} from '../helpers/vastWorld.js';

const DATE = '20260111';
const API_KEY = 'sim-account-key-guardrails';
/** The cheapest offer that meets the default constraints lives on this machine. */
const CHEAPEST_MACHINE = 31001;

let sb: Sandbox;
let sshd: SshdHandle;
let world: VastWorld | undefined;
let sim: VastSim;

async function setUp(simOpts: Partial<VastSimOptions> = {}) {
  world = await startVastWorld(inject('redisUrl'), {
    env: { VAST_API_KEY: API_KEY, RETRAIN_BOOT_DEADLINE_SEC: '5', RETRAIN_VAST_RETRY_MS: '40' },
    sim: { apiKey: API_KEY, seed: 11, ...simOpts },
  });
  ({ sb, sshd, sim } = world);
}

afterEach(async () => {
  await world?.close();
  world = undefined;
});

function vastRun(symbols: string[], extra: string[]) {
  return runVast(sb.env, { symbols, date: DATE, recipe: fakeRecipe, extra });
}

function ledger(): Record<string, Record<string, unknown>> {
  return JSON.parse(readFileSync(join(sb.home, 'store/runs', `${DATE}Z`, 'status.json'), 'utf8')).symbols;
}

function summary(): Record<string, unknown> & { costs: Record<string, unknown> } {
  return JSON.parse(readFileSync(join(sb.home, 'store/summary', `${DATE}Z`, 'engine_summary.json'), 'utf8'));
}

const expectNothingLeftRented = () => expectRentedAllGone(sim);

describe('driver vast under trouble', () => {
  it('30% 429/5xx and the cheapest offer stuck loading: every symbol succeeds, the stuck machine is dropped', async () => {
    await setUp({
      faults: { rate429: 0.15, rate5xx: 0.15, stuckLoadingMachineIds: [CHEAPEST_MACHINE] },
    });
    const symbols = ['BTCUSDT', 'ETHUSDT', 'SOLUSDT'];
    const r = await vastRun(symbols, ['--var', 'sleep=0.5']);
    expect(r.code, r.stdout + r.stderr).toBe(0);

    const st = sim.state();
    expect(st.faultsInjected['429']).toBeGreaterThan(0);
    expect(st.faultsInjected['5xx']).toBeGreaterThan(0);
    const onStuck = st.instances.filter((i) => i.machine_id === CHEAPEST_MACHINE);
    // Rented once, destroyed, and never rented again for this run.
    expect(onStuck).toHaveLength(1);
    expect(st.destroyed).toContain(onStuck[0]!.id);
    expectNothingLeftRented();
    const l = ledger();
    for (const s of symbols) expect(l[s]).toMatchObject({ status: 'success' });
    const engine = readFileSync(join(sb.home, 'logs', `${DATE}Z`, 'engine.log'), 'utf8');
    expect(engine).toContain('"reason":"boot_failed"');
  }, 240_000);

  it('timeout on the GPU path: the remote process group is killed, the instance destroyed, retried then failed', async () => {
    await setUp();
    const marker = `retrain-timeout-${Date.now()}`;
    const r = await vastRun(
      ['BTCUSDT'],
      ['--timeout-minutes', '0.08', '--retries', '1', '--var', 'sleep=60', '--var', `marker=${marker}`],
    );
    expect(r.code).toBe(1);
    expect(ledger().BTCUSDT).toMatchObject({ status: 'failed', reason: 'timeout', attempts: 2 });
    // One rental per attempt, each destroyed; nothing of the training left on the host.
    expect(sim.state().rented).toHaveLength(2);
    expectNothingLeftRented();
    expect(processesWith(marker)).toEqual([]);
    // Each failed attempt left its log in the store, so the failure can be read from there alone.
    for (const n of [1, 2]) {
      const kept = join(
        sb.home,
        'store/ml-artifacts',
        `train__BTCUSDT__${DATE}`,
        'attempts',
        String(n),
        'train.log',
      );
      expect(readFileSync(kept, 'utf8')).toContain(`--marker '${marker}'`);
    }
  }, 120_000);

  it('--budget-usd: once the run has spent it, remaining symbols fail with reason budget and nothing more is rented', async () => {
    await setUp();
    const symbols = ['BTCUSDT', 'ETHUSDT', 'SOLUSDT'];
    const r = await vastRun(symbols, [
      '--mode',
      'sequential',
      '--budget-usd',
      '0.00001',
      '--var',
      'sleep=0.5',
    ]);
    expect(r.code).toBe(1);
    const l = ledger();
    const ok = symbols.filter((s) => l[s]!.status === 'success');
    const stopped = symbols.filter((s) => l[s]!.reason === 'budget');
    expect(ok).toHaveLength(1);
    expect(stopped).toHaveLength(2);
    for (const s of stopped) expect(l[s]).toMatchObject({ status: 'failed', attempts: 1 });
    expect(sim.state().rented).toHaveLength(1);
    expectNothingLeftRented();
    const costs = summary().costs;
    expect(costs.budget_usd).toBe(0.00001);
    expect(costs.total_usd as number).toBeGreaterThan(0.00001);
    expect([...(costs.stopped_by_budget as string[])].sort()).toEqual([...stopped].sort());
  }, 120_000);

  it('an SSH drop mid-training: the training keeps running, the job reconnects and the log has no gap', async () => {
    await setUp();
    const remoteRoot = join(sb.home, 'remote');
    const running = vastRun(['BTCUSDT'], ['--var', 'sleep=6', '--var', 'lines=120']);
    // Wait until the training is well under way on the host, then cut every SSH connection.
    const log = await waitForRemoteLog(remoteRoot, 'line 30\n', 60_000);
    await sshd.dropConnections();
    const r = await running;
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(ledger().BTCUSDT).toMatchObject({ status: 'success', attempts: 1 });
    const engine = readFileSync(join(sb.home, 'logs', `${DATE}Z`, 'engine.log'), 'utf8');
    expect(engine).toContain('"event":"ssh.reconnected"');
    // One training process ran start to end: every line once, in order, in the symbol's log.
    const local = readFileSync(join(sb.home, 'logs', `${DATE}Z`, 'BTCUSDT', 'training.log'), 'utf8');
    const lines = local.split('\n').filter((l) => /^line \d+$/.test(l));
    expect(lines).toEqual(Array.from({ length: 120 }, (_, i) => `line ${i + 1}`));
    // And it is byte for byte the log the host wrote.
    expect(local).toBe(readFileSync(log, 'utf8'));
    expect(sim.state().rented).toHaveLength(1);
    expectNothingLeftRented();
  }, 120_000);

  it('host lost mid-run: the dead instance is destroyed and billed, the symbol retried on a new one', async () => {
    await setUp();
    sb.env.RETRAIN_HOST_CHECK_SEC = '1';
    const marker = `retrain-hostlost-${Date.now()}`;
    const running = vastRun(['BTCUSDT'], ['--var', 'sleep=6', '--var', `marker=${marker}`]);
    const end = Date.now() + 60_000;
    while (processesWith(marker).length === 0 && Date.now() < end)
      await new Promise((r) => setTimeout(r, 200));
    const first = sim.state().alive;
    expect(first).toHaveLength(1);
    sim.killInstance(first[0]!);
    const r = await running;
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const entry = ledger().BTCUSDT as { attempts: number; costUsd: number; history: { reason?: string }[] };
    expect(entry).toMatchObject({ status: 'success', attempts: 2 });
    expect(entry.history[0]).toMatchObject({ outcome: 'retrying', reason: 'host_lost' });
    const st = sim.state();
    expect(st.rented).toHaveLength(2);
    expect(st.rented[1]).not.toBe(first[0]);
    expectNothingLeftRented();
    // Both rentals are billed and booked.
    expect(entry.costUsd).toBeGreaterThan(0);
    expect(st.billedUsd[first[0]!]).toBeGreaterThan(0);
    expect(processesWith(marker)).toEqual([]);
  }, 120_000);

  it('a corrupted artifact is detected by hash and never stored or promoted', async () => {
    await setUp();
    const r = await vastRun(
      ['BTCUSDT'],
      ['--var', 'corrupt=model.bin', '--retries', '1', '--promote', 'auto'],
    );
    expect(r.code).toBe(1);
    expect(ledger().BTCUSDT).toMatchObject({ status: 'failed', reason: 'checksum', attempts: 2 });
    const jobDir = join(sb.home, 'store/ml-artifacts', `train__BTCUSDT__${DATE}`);
    expect(existsSync(join(jobDir, 'model.bin'))).toBe(false);
    expect(existsSync(join(sb.home, 'store/models/candidates/BTCUSDT'))).toBe(false);
    expect(existsSync(join(sb.home, 'store/models/production/BTCUSDT'))).toBe(false);
    expectNothingLeftRented();
  }, 120_000);

  it('shell syntax in a symbol or recipe variable is refused before renting, and allowed odd values stay one literal word on the host', async () => {
    await setUp();
    const canary = join(sb.home, 'pwned');
    for (const args of [
      ['--symbols', `BTC;touch ${canary}`],
      ['--symbols', 'BTCUSDT', '--var', `marker=$(touch ${canary})`],
      ['--symbols', 'BTCUSDT', '--var', `marker=x\`touch ${canary}\``],
    ]) {
      const bad = await runCli(
        [
          'run',
          '--driver',
          'vast',
          '--date',
          DATE,
          '--ensure-features',
          '--synthetic',
          '--recipe',
          fakeRecipe,
          ...args,
        ],
        sb.env,
      );
      expect(bad.code, bad.stderr).toBe(2);
      expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect(sim.state().rented).toEqual([]);

    // Spaces, '=' and '%' are allowed; on the host the value is still exactly one argument.
    const odd = 'a b  c=%s @x,y:z/w';
    const r = await vastRun(['BTCUSDT'], ['--var', `marker=${odd}`]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const config = JSON.parse(
      readFileSync(join(sb.home, 'store/ml-artifacts', `train__BTCUSDT__${DATE}`, 'config.json'), 'utf8'),
    );
    expect(config.marker).toBe(odd);
    expect(existsSync(canary)).toBe(false);
    expectNothingLeftRented();
  }, 120_000);
});

describe('Ctrl-C on retrain run --driver vast', () => {
  it('cancels the run: trainings stopped, every instance destroyed, the rest failed as cancelled', async () => {
    await setUp();
    const marker = `retrain-ctrlc-${Date.now()}`;
    const symbols = ['BTCUSDT', 'ETHUSDT', 'SOLUSDT', 'XRPUSDT'];
    const child = spawnSleepingVastRun(sb.env, symbols, DATE, marker);
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      // Two trainings under way on their instances.
      const end = Date.now() + 60_000;
      while (processesWith(marker).length < 2 && Date.now() < end)
        await new Promise((r) => setTimeout(r, 200));
      expect(processesWith(marker).length, out).toBeGreaterThanOrEqual(2);
      const t0 = Date.now();
      child.kill('SIGINT');
      expect(await exited, out).toBe(130);
      expect(Date.now() - t0).toBeLessThan(30_000);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    expect(out).toContain('cancelling run');
    expect(sim.state().rented).toHaveLength(2);
    expectNothingLeftRented();
    expect(processesWith(marker)).toEqual([]);
    const l = ledger();
    for (const s of symbols)
      expect(l[s], s).toMatchObject({ status: 'failed', reason: 'cancelled', attempts: 1 });
  }, 120_000);
});

/** The path of the first remote train.log containing `needle`. */
async function waitForRemoteLog(root: string, needle: string, timeoutMs: number): Promise<string> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    for (const file of findFiles(root, 'train.log')) {
      if (readFileSync(file, 'utf8').includes(needle)) return file;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no remote train.log with ${JSON.stringify(needle)} after ${timeoutMs} ms`);
}
