/**
 * Interruptible (bid) rentals end to end through the CLI: the Vast simulator over real HTTP, instances
 * backed by a real sshd on loopback, the real Redis. The simulator outbids an instance mid-training;
 * retrain notices, destroys it and trains the symbol again on another offer.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import type { VastSim, VastSimOptions } from '../../src/vast/sim/server.js';
import { FIXTURES, fakeRecipe, type Sandbox } from '../helpers/harness.js';

const ckptRecipe = join(FIXTURES, 'recipes/ckpt');
import {
  processesWith,
  expectNothingLeftRented as expectRentedAllGone,
  startVastWorld,
  vastRun as runVast,
  type VastWorld,
} from '../helpers/vastWorld.js';

const DATE = '20260112';
const API_KEY = 'sim-account-key-interruptible';

let sb: Sandbox;
let world: VastWorld | undefined;
let sim: VastSim;

async function setUp(simOpts: Partial<VastSimOptions> = {}) {
  world = await startVastWorld(inject('redisUrl'), {
    // Checked every second here (30 s by default: "within a minute").
    env: { VAST_API_KEY: API_KEY, RETRAIN_HOST_CHECK_SEC: '1', RETRAIN_VAST_RETRY_MS: '40' },
    sim: { apiKey: API_KEY, seed: 13, ...simOpts },
  });
  ({ sb, sim } = world);
}

afterEach(async () => {
  await world?.close();
  world = undefined;
});

function vastRun(symbols: string[], extra: string[], recipe = fakeRecipe) {
  return runVast(sb.env, { symbols, date: DATE, recipe, extra: ['--interruptible', ...extra] });
}

type Entry = {
  status: string;
  attempts: number;
  reason?: string;
  costUsd: number;
  history: { outcome?: string; reason?: string }[];
};

function ledger(): Record<string, Entry> {
  return JSON.parse(readFileSync(join(sb.home, 'store/runs', `${DATE}Z`, 'status.json'), 'utf8')).symbols;
}

function engineLog(): string {
  return readFileSync(join(sb.home, 'logs', `${DATE}Z`, 'engine.log'), 'utf8');
}

const expectNothingLeftRented = () => expectRentedAllGone(sim);

describe('driver vast --interruptible', () => {
  it('outbid mid-training: noticed, destroyed, resumed on another machine from the last checkpoint', async () => {
    await setUp();
    const jobDir = join(sb.home, 'store/ml-artifacts', `train__BTCUSDT__${DATE}`);
    // A recipe that checkpoints every step; outbid once a checkpoint is in the store.
    const running = vastRun(['BTCUSDT'], ['--var', 'steps=24', '--var', 'step_ms=400'], ckptRecipe);
    const end = Date.now() + 60_000;
    while (!existsSync(join(jobDir, 'checkpoints/latest.json')) && Date.now() < end)
      await new Promise((r) => setTimeout(r, 200));
    const [first] = sim.state().alive;
    expect(first).toBeDefined();
    // The simulator's control endpoint, over HTTP like everything else.
    const outbidAt = Date.now();
    const res = await fetch(`${sim.url}/_sim/instances/${first}/outbid`, { method: 'POST' });
    expect(res.status).toBe(200);
    const r = await running;
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('driver vast (interruptible)');

    const entry = ledger().BTCUSDT!;
    expect(entry).toMatchObject({ status: 'success', attempts: 2 });
    expect(entry.history[0]).toMatchObject({ outcome: 'retrying', reason: 'preempted' });
    const st = sim.state();
    expect(st.outbid).toEqual([first]);
    expect(st.rented).toHaveLength(2);
    const [a, b] = st.rented.map((id) => st.instances.find((i) => i.id === id)!);
    // Both rentals were bids (a price sent), on two different machines.
    for (const id of st.rented) expect(st.bids[id]).toBeGreaterThan(0);
    expect(a!.is_bid).toBe(true);
    expect(b!.machine_id).not.toBe(a!.machine_id);
    // Noticed and destroyed well within a minute of being outbid.
    expect((a!.end_date as number) * 1000 - outbidAt).toBeLessThan(30_000);
    expectNothingLeftRented();
    // The outbid instance was billed (GPU while running, then storage) and its cost booked.
    expect(st.billedUsd[first!]).toBeGreaterThan(0);
    expect(entry.costUsd).toBeGreaterThan(0);
    const log = engineLog();
    expect(log).toContain('was outbid or stopped during training');
    // The retry went on from the checkpoint: its own log says where, and the model holds all 24 steps.
    const trainLog = readFileSync(join(jobDir, 'train.log'), 'utf8');
    expect(Number(/resumed from step (\d+)/.exec(trainLog)?.[1])).toBeGreaterThan(0);
    expect(trainLog).not.toContain('starting from step 0');
    expect(readFileSync(join(jobDir, 'model.bin'), 'utf8')).toContain('w=12.0');
    expect((entry as Entry & { resumeSavedMin?: number }).resumeSavedMin).toBeGreaterThan(0);
    expect(processesWith('ckpt_train.py')).toEqual([]);
  }, 180_000);

  it('every rental outbid: the symbol fails with reason preempted after its retries, nothing left rented', async () => {
    await setUp({ faults: { outbidRate: 1, outbidAfterMs: 4000 } });
    const r = await vastRun(['ETHUSDT'], ['--retries', '1', '--var', 'sleep=20']);
    expect(r.code).toBe(1);
    expect(ledger().ETHUSDT).toMatchObject({ status: 'failed', reason: 'preempted', attempts: 2 });
    const st = sim.state();
    expect(st.rented).toHaveLength(2);
    expect(st.outbid).toEqual(st.rented);
    expectNothingLeftRented();
  }, 180_000);
});
