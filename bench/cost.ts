/**
 * GPU cost of a run, against the Vast simulator (src/vast/sim): 20 symbols, cap 12, instances that
 * take 120 s to boot, trainings of 300-900 s per symbol. Time is scaled down by BENCH_COST_SCALE
 * (default 10: boots of 12 s, trainings of 30-90 s in real time) and the simulator bills running
 * time multiplied back up by the same factor, so the figures are in simulated seconds and dollars.
 *
 * (a) One instance per symbol (today's design): what the run is billed, against what its trainings
 *     alone would cost on the same instances (naive_ratio), and its wall time.
 * (b) The instance pool (vast.pool, src/compute/pool.ts): an instance whose symbol is done goes to
 *     the next waiting symbol of the run; the same figures, on a fresh simulator and world.
 *
 * What the scaling distorts: the orchestrator's own work on a host (connect, stage, fetch, destroy)
 * takes real time that is not scaled down, so it is billed BENCH_COST_SCALE times too long; the
 * bench prints how much that is.
 */
import { createStore } from '../src/storage/index.js';
import { keys } from '../src/storage/layout.js';
import { ensureDeploymentKey } from '../src/remote/ssh/keys.js';
import { defaultOffers, startVastSim } from '../src/vast/sim/server.js';
import { startSshd } from '../test/helpers/sshd.js';
import { runScaledSleep } from './lib/runs.js';
import {
  benchRedisUrl,
  figures,
  machineLine,
  REPO,
  round,
  say,
  stopPrivateRedis,
  syntheticSymbols,
  world,
} from './lib/world.js';
import { join } from 'node:path';

const SYMBOLS = 20;
const CAP = 12;
const BOOT_S = 120;
const TRAIN_MIN_S = 300;
const TRAIN_MAX_S = 900;
const SIM_KEY = 'bench-sim-account-key';

interface Phase {
  ratio: number;
  wallS: number;
  rented: number;
  billed: number;
  ideal: number;
}

/** One run of the 20 symbols on a fresh simulator, the pool on or off. */
async function phase(name: string, pooled: boolean, scale: number, redisUrl: string): Promise<Phase> {
  const w = await world(pooled ? 'cost-pooled' : 'cost-naive', redisUrl);
  const key = await ensureDeploymentKey(join(w.home, 'ssh'), 'default');
  // The rented "instances" are this sshd; SHLVL=1 skips root's ~/.bashrc (see bench/overhead.ts).
  const sshd = await startSshd({ authorizedKeys: [key.publicKey], extraConfig: ['SetEnv SHLVL=1'] });
  // Enough machines for the cap: the shipped fixture has 5 that pass the default filters, so the
  // bench adds 16 more RTX 3090s like its cheapest one, a cent apart.
  const base = defaultOffers().find((o) => o.id === 7001001)!;
  const offers = [
    ...defaultOffers(),
    ...Array.from({ length: 16 }, (_, i) => ({
      ...base,
      id: 7101001 + i,
      machine_id: 41001 + i,
      dph_total: round(base.dph_total + 0.01 * (i + 1), 6),
    })),
  ];
  const sim = await startVastSim({
    apiKey: SIM_KEY,
    offers,
    sshEndpoint: { host: sshd.host, port: sshd.port },
    bootDelayMs: (BOOT_S * 1000) / scale,
    timeScale: scale,
    seed: 7,
  });
  const savedKey = process.env.VAST_API_KEY;
  process.env.VAST_API_KEY = SIM_KEY; // read by the vast driver from the environment, never config
  try {
    const config = w.config({
      recipe: join(REPO, 'bench/recipes/sleep'),
      // The poll interval is scaled down like the rest (a 1 s poll would stand for 10 s).
      train: {
        driver: 'vast',
        maxConcurrent: CAP,
        workerConcurrency: CAP,
        retries: 0,
        pollMs: Math.max(50, Math.round(1000 / scale)),
      },
      vast: {
        apiUrl: sim.url,
        workRoot: join(w.home, 'remote'),
        sshUser: sshd.user,
        apiRetryBaseMs: 100,
        // 12 symbols renting at the same moment all go for the cheapest offers; each loser tries the
        // next, so give them room (the default 5 can run out in that race).
        maxProvisionTries: 20,
        // The idle grace is scaled down like the rest: 60 s stands for 600 s here otherwise.
        pool: { enabled: pooled, idleGraceSec: 60 / scale, slotsPerHost: 1 },
      },
    });
    const symbols = syntheticSymbols(SYMBOLS, 'G');
    const { r, wallS } = await runScaledSleep(config, symbols, {
      cap: CAP,
      scale,
      trainMinS: TRAIN_MIN_S,
      trainMaxS: TRAIN_MAX_S,
    });
    const store = createStore(config.store);

    const st = sim.state();
    const billed = Object.values(st.billedUsd).reduce((a, b) => a + b, 0);
    const billedS = Object.values(st.billedSeconds).reduce((a, b) => a + b, 0);
    // What the trainings alone cost: each symbol's own run time at the price of the instance it ran
    // on (runtime.json records it; a pooled instance carries several symbols).
    let ideal = 0;
    let trainS = 0;
    for (const j of r.jobs) {
      const rt = await store
        .getJson<{ hourlyCostUsd?: number }>(keys.artifact(j.jobId, 'runtime.json'))
        .catch(() => null);
      if (!rt) continue; // failed: its billed time stays in the ratio's numerator
      const s = (j.recipeMs / 1000) * scale;
      trainS += s;
      ideal += (s * Number(rt.hourlyCostUsd ?? 0)) / 3600;
    }
    const extraS = (billedS - trainS) / Math.max(1, r.jobs.length);
    const ratio = billed / ideal;
    say(
      `(${name}) ${st.rented.length} rented, ${st.destroyed.length} destroyed for ${r.jobs.length} symbols; billed ` +
        `$${round(billed, 4)} for ${round(billedS)} instance-seconds, against $${round(ideal, 4)} for the ` +
        `${round(trainS)} s of training alone: ${round(ratio, 3)}x; wall ${round(wallS)} s`,
    );
    say(
      `    billed beyond the training: ${round(extraS)} s per symbol, i.e. ${round(extraS / scale, 2)} s of real ` +
        `time (SSH wait, staging, following, fetching, ${pooled ? 'idle in the pool, ' : ''}destroying) that ` +
        `scaling does not shrink, billed ${scale}x`,
    );
    return { ratio, wallS, rented: st.rented.length, billed, ideal };
  } finally {
    if (savedKey === undefined) delete process.env.VAST_API_KEY;
    else process.env.VAST_API_KEY = savedKey;
    await sim.close();
    await sshd.stop();
    await w.cleanup();
  }
}

export async function cost(): Promise<void> {
  const scale = Number(process.env.BENCH_COST_SCALE ?? 10);
  const redisUrl = await benchRedisUrl();
  say(machineLine());
  say(
    `cost: ${SYMBOLS} symbols, cap ${CAP}, boot ${BOOT_S} s, trainings ${TRAIN_MIN_S}-${TRAIN_MAX_S} s, ` +
      `time scaled down ${scale}x (the simulator bills running time x ${scale})`,
  );
  try {
    const a = await phase('a: one instance per symbol', false, scale, redisUrl);
    const b = await phase('b: pooled', true, scale, redisUrl);
    figures({
      naive_ratio: round(a.ratio, 3),
      naive_wall_s: Math.round(a.wallS),
      pooled_ratio: round(b.ratio, 3),
      pooled_wall_s: Math.round(b.wallS),
      scale,
      naive_rented: a.rented,
      pooled_rented: b.rented,
      billed_usd: round(a.billed, 4),
      training_only_usd: round(a.ideal, 4),
      pooled_billed_usd: round(b.billed, 4),
      pooled_training_only_usd: round(b.ideal, 4),
    });
  } finally {
    stopPrivateRedis();
  }
}
