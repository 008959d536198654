/**
 * Checkpoints that outlive the GPU, end to end through the CLI: the Vast simulator over real HTTP,
 * instances backed by a real sshd on loopback, the real Redis, the local store.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { FIXTURES, type Sandbox } from '../helpers/harness.js';
import {
  expectNothingLeftRented,
  startVastWorld,
  vastRun,
  waitFor,
  type VastWorld,
} from '../helpers/vastWorld.js';

const ckptRecipe = join(FIXTURES, 'recipes/ckpt');
const SYMBOL = 'BTCUSDT';

let world: VastWorld | undefined;
let sb: Sandbox;

afterEach(async () => {
  await world?.close();
  world = undefined;
});

async function setUp() {
  world = await startVastWorld(inject('redisUrl'), { env: { RETRAIN_HOST_CHECK_SEC: '1' } });
  sb = world.sb;
}

function run(date: string, recipe: string, vars: string[]) {
  return vastRun(sb.env, { symbols: [SYMBOL], date, recipe, extra: vars.flatMap((v) => ['--var', v]) });
}

const jobDir = (date: string) => join(sb.home, 'store/ml-artifacts', `train__${SYMBOL}__${date}`);
const entry = (date: string) =>
  JSON.parse(readFileSync(join(sb.home, 'store/runs', `${date}Z`, 'status.json'), 'utf8')).symbols[SYMBOL];
const summary = (date: string) =>
  JSON.parse(readFileSync(join(sb.home, 'store/summary', `${date}Z`, 'engine_summary.json'), 'utf8'));

/** Checkpoint files on the (loopback) host under any work dir: path → step. */
function hostCheckpoints(root: string): Map<string, number> {
  const out = new Map<string, number>();
  const walk = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else {
        const m = /^step-(\d+)\.json$/.exec(e.name);
        if (m) out.set(p, Number(m[1]));
      }
    }
  };
  walk(root);
  return out;
}

/**
 * Runs the 30-step recipe (0.4 s a step) and kills its instance (the simulator's "host died") once
 * the host has written the checkpoint of step 24; returns what the simulator billed for the run's
 * instances and the wall time.
 */
async function runAndKill(date: string, recipe: string) {
  const w = world!;
  const rentedBefore = new Set(w.sim.state().rented);
  const before = hostCheckpoints(w.remoteRoot);
  const t0 = Date.now();
  const running = run(date, recipe, ['steps=30', 'step_ms=400']);
  await waitFor(
    'the training to reach step 24',
    () => [...hostCheckpoints(w.remoteRoot)].some(([p, step]) => !before.has(p) && step >= 24) || undefined,
    90_000,
  );
  const alive = w.sim.state().alive.filter((id) => !rentedBefore.has(id));
  expect(alive).toHaveLength(1);
  w.sim.killInstance(alive[0]!);
  const r = await running;
  const wallMs = Date.now() - t0;
  expect(r.code, r.stdout + r.stderr).toBe(0);
  const st = w.sim.state();
  const mine = st.rented.filter((id) => !rentedBefore.has(id));
  const billedS = mine.reduce((a, id) => a + (st.billedSeconds[id] ?? 0), 0);
  return { wallMs, billedS, rented: mine };
}

describe('checkpoints', () => {
  it('a host killed half-way: the retry on a new instance resumes from the stored checkpoint, and costs less than starting again', async () => {
    await setUp();
    const w = world!;
    const withResume = '20260121';
    const fromZero = '20260122';

    // With checkpoints, killed at step 24.
    const a = await runAndKill(withResume, ckptRecipe);
    const e = entry(withResume);
    expect(e).toMatchObject({ status: 'success', attempts: 2 });
    expect(e.history[0]).toMatchObject({ outcome: 'retrying', reason: 'host_lost' });
    expect(e.history[1].resumedFromMin).toBeGreaterThan(0);
    expect(e.resumeSavedMin).toBeGreaterThan(0);
    expect(summary(withResume).resume_saved_minutes).toBeGreaterThan(0);
    expect(summary(withResume).by_symbol[SYMBOL].resume_saved_minutes).toBeGreaterThan(0);
    // The successful attempt's own log (in the store) proves it started past step 0 and went on
    // from there; the model holds the state of all 30 steps (0.5 per step).
    const trainLog = readFileSync(join(jobDir(withResume), 'train.log'), 'utf8');
    const resumedAt = Number(/resumed from step (\d+)/.exec(trainLog)?.[1]);
    expect(resumedAt).toBeGreaterThanOrEqual(10);
    expect(resumedAt).toBeLessThan(30);
    expect(trainLog).not.toContain('starting from step 0');
    expect(trainLog).toContain(`step ${resumedAt + 1}/30`);
    expect(trainLog).not.toContain(`step ${resumedAt}/30\n`);
    expect(readFileSync(join(jobDir(withResume), 'model.bin'), 'utf8')).toContain('w=15.0');
    // The first attempt's log is kept too, and the checkpoint it stood on is in the store.
    expect(readFileSync(join(jobDir(withResume), 'attempts/1/train.log'), 'utf8')).toContain(
      'starting from step 0',
    );
    const engine = readFileSync(join(sb.home, 'logs', `${withResume}Z`, 'engine.log'), 'utf8');
    expect(engine).toContain('"event":"checkpoint.resume"');

    // The same without checkpoints (the recipe minus its checkpoints block), killed at the same step.
    const plain = join(sb.home, 'ckpt-plain');
    await mkdir(plain, { recursive: true });
    const yaml = readFileSync(join(ckptRecipe, 'recipe.yaml'), 'utf8');
    await writeFile(join(plain, 'recipe.yaml'), yaml.replace(/^checkpoints:[\s\S]*$/m, ''));
    await writeFile(join(plain, 'ckpt_train.py'), readFileSync(join(ckptRecipe, 'ckpt_train.py')));
    const b = await runAndKill(fromZero, plain);
    const bLog = readFileSync(join(jobDir(fromZero), 'train.log'), 'utf8');
    expect(bLog).toContain('starting from step 0');
    expect(entry(fromZero).resumeSavedMin ?? 0).toBe(0);

    console.log(
      `resume: wall ${a.wallMs} ms, billed ${a.billedS.toFixed(1)} s; from zero: wall ${b.wallMs} ms, billed ${b.billedS.toFixed(1)} s`,
    );
    expect(a.rented).toHaveLength(2);
    expect(b.rented).toHaveLength(2);
    expect(a.billedS).toBeLessThan(b.billedS);
    expect(a.wallMs).toBeLessThan(b.wallMs);
    expectNothingLeftRented(w.sim);
  }, 240_000);

  it('a checkpoint still being written is never uploaded half-written', async () => {
    await setUp();
    const date = '20260123';
    const record = join(sb.home, 'complete-checkpoints.txt');
    // Each checkpoint is written in two halves 2.5 s apart with the file held open: by then its
    // mtime is older than the settle time, so only the open-file check keeps the half out.
    const r = await run(date, ckptRecipe, [
      'steps=4',
      'step_ms=300',
      'mode=slow',
      'pause_ms=2500',
      `record=${record}`,
    ]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const complete = new Set(
      readFileSync(record, 'utf8')
        .trim()
        .split('\n')
        .map((l) => l.split(' ')[0]),
    );
    const engine = readFileSync(join(sb.home, 'logs', `${date}Z`, 'engine.log'), 'utf8');
    const synced = engine
      .split('\n')
      .filter((l) => l.includes('"event":"checkpoint.synced"'))
      .map((l) => JSON.parse(l).sha256 as string);
    expect(synced.length).toBeGreaterThanOrEqual(2);
    for (const h of synced) expect(complete.has(h)).toBe(true);
    const m = JSON.parse(readFileSync(join(jobDir(date), 'checkpoints/latest.json'), 'utf8'));
    const stored = JSON.parse(readFileSync(join(jobDir(date), 'checkpoints', m.name), 'utf8'));
    expect(stored.pad).toHaveLength(200_000);
  }, 120_000);
});
