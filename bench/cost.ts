/**
 * GPU cost of a run, against the Vast simulator (src/vast/sim): 20 symbols, cap 12, instances that
 * take 120 s to boot, trainings of 300-900 s per symbol. Time is scaled down by BENCH_COST_SCALE
 * (default 10: boots of 12 s, trainings of 30-90 s in real time) and the simulator bills running
 * time multiplied back up by the same factor, so the figures are in simulated seconds and dollars.
 *
 * (a) One instance per symbol (today's design): what the run is billed, against what its trainings
 *     alone would cost on the same instances (naive_ratio), and its wall time.
 * (b) A pool of instances reused across symbols: not built yet, so pooled_ratio/pooled_wall_s are
 *     null.
 *
 * What the scaling distorts: the orchestrator's own work on a host (connect, stage, fetch, destroy)
 * takes real time that is not scaled down, so it is billed BENCH_COST_SCALE times too long; the
 * bench prints how much that is.
 */
import { createStore } from '../src/storage/index.js';
import { ensureDeploymentKey } from '../src/remote/ssh/keys.js';
import { defaultOffers, startVastSim } from '../src/vast/sim/server.js';
import { startSshd } from '../test/helpers/sshd.js';
import { BENCH_DATE, runPipeline, seedFeatures } from './lib/runs.js';
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

export async function cost(): Promise<void> {
  const scale = Number(process.env.BENCH_COST_SCALE ?? 10);
  const redisUrl = await benchRedisUrl();
  say(machineLine());
  say(
    `cost: ${SYMBOLS} symbols, cap ${CAP}, boot ${BOOT_S} s, trainings ${TRAIN_MIN_S}-${TRAIN_MAX_S} s, ` +
      `time scaled down ${scale}x (the simulator bills running time x ${scale})`,
  );
  const w = await world('cost', redisUrl);
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
      vast: { apiUrl: sim.url, workRoot: join(w.home, 'remote'), sshUser: sshd.user, apiRetryBaseMs: 100 },
    });
    const symbols = syntheticSymbols(SYMBOLS, 'G');
    await seedFeatures(createStore(config.store), symbols, BENCH_DATE, 50);
    const t = performance.now();
    const r = await runPipeline(config, symbols, {
      cap: CAP,
      recipe: join(REPO, 'bench/recipes/sleep'),
      vars: { min_ms: String((TRAIN_MIN_S * 1000) / scale), max_ms: String((TRAIN_MAX_S * 1000) / scale) },
    });
    const wallS = ((performance.now() - t) / 1000) * scale;
    if (r.failed.length) say(`${r.failed.length} symbols did not succeed, e.g. ${r.failed[0]}`);

    const st = sim.state();
    const billed = Object.values(st.billedUsd).reduce((a, b) => a + b, 0);
    const billedS = Object.values(st.billedSeconds).reduce((a, b) => a + b, 0);
    // What the trainings alone cost: each symbol's own run time on the instance it ran on.
    let ideal = 0;
    let trainS = 0;
    for (const j of r.jobs) {
      const inst = st.instances.find((i) => i.label?.endsWith(j.jobId));
      const s = (j.recipeMs / 1000) * scale;
      trainS += s;
      ideal += (s * Number(inst?.dph_total ?? 0)) / 3600;
    }
    const extraS = (billedS - trainS) / Math.max(1, r.jobs.length);
    const naiveRatio = billed / ideal;
    say(
      `(a) one instance per symbol: ${st.rented.length} rented, ${st.destroyed.length} destroyed; billed ` +
        `$${round(billed, 4)} for ${round(billedS)} instance-seconds, against $${round(ideal, 4)} for the ` +
        `${round(trainS)} s of training alone: ${round(naiveRatio, 3)}x; wall ${round(wallS)} s`,
    );
    say(
      `    billed beyond the training: ${round(extraS)} s per instance, i.e. ${round(extraS / scale, 2)} s of real ` +
        `time on the host (SSH wait, staging, following, fetching, destroying) that scaling does not shrink, ` +
        `billed ${scale}x`,
    );
    say('(b) pooled instances: not measured -- the instance pool is not built yet');
    figures({
      naive_ratio: round(naiveRatio, 3),
      naive_wall_s: Math.round(wallS),
      pooled_ratio: null,
      pooled_wall_s: null,
      scale,
      billed_usd: round(billed, 4),
      training_only_usd: round(ideal, 4),
    });
  } finally {
    if (savedKey === undefined) delete process.env.VAST_API_KEY;
    else process.env.VAST_API_KEY = savedKey;
    await sim.close();
    await sshd.stop();
    await w.cleanup();
    stopPrivateRedis();
  }
}
