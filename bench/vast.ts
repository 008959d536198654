/**
 * The rental path against a simulator as hard as Vast (src/vast/sim, profile vast-like: per-endpoint
 * rate limits with 429s, competitors and churn, bad images, transient statuses, slow creates, odd
 * rows, lost key attaches), every instance a real sshd reachable only with the deployment's key:
 * 32 symbols, cap 32 (BENCH_VAST_SYMBOLS changes both), instances that take 60 s to boot, trainings
 * of 300-400 s. Time is scaled down by BENCH_COST_SCALE (default 10) as in the cost bench: the
 * simulator divides its boot delays and rate-limit intervals by it, and retrain's poll interval,
 * API intervals, create timeout and graces are divided alike; the figures are in simulated seconds.
 *
 * Prints the API calls per symbol by endpoint and the 429s, the calls per (simulated) minute while
 * every symbol trains (steady state: the only calls then are the shared poller's), the time from
 * enqueue to EXECUTING (p50/p95), the successes and rented vs destroyed. Run it with two symbol
 * counts to see that the steady-state rate does not grow with the instances.
 */
import { join } from 'node:path';
import { ensureDeploymentKey } from '../src/remote/ssh/keys.js';
import { VAST_SPEC_INTERVALS_SEC } from '../src/vast/budget.js';
import { defaultOffers, startVastSim, type VastSim } from '../src/vast/sim/server.js';
import { startSshd } from '../test/helpers/sshd.js';
import { runScaledSleep } from './lib/runs.js';
import {
  benchRedisUrl,
  figures,
  machineLine,
  percentile,
  REPO,
  round,
  say,
  stopPrivateRedis,
  syntheticSymbols,
  world,
} from './lib/world.js';

const BOOT_S = 60;
const TRAIN_MIN_S = 300;
const TRAIN_MAX_S = 400;
const SIM_KEY = 'bench-vast-account-key';

interface Sample {
  at: number;
  rented: number;
  destroyed: number;
  calls: number;
}

/** Samples the simulator's own counters (in process: no API call) every 250 ms. */
function sampler(sim: VastSim): { samples: Sample[]; stop(): void } {
  const samples: Sample[] = [];
  const take = () => {
    const st = sim.state();
    const calls = Object.values(st.calls).reduce((a, c) => a + c.ok + c.r429, 0);
    samples.push({ at: Date.now(), rented: st.rented.length, destroyed: st.destroyed.length, calls });
  };
  take();
  const t = setInterval(take, 250);
  return { samples, stop: () => (clearInterval(t), take()) };
}

/**
 * Calls per real minute over the steady window: from a second after the last rental to a second
 * before the first destroy (every instance up, nobody renting or releasing).
 */
function steadyRate(samples: Sample[]): { perMin: number; windowS: number } {
  const total = samples.at(-1)!.rented;
  const lastRent = samples.find((s) => s.rented === total)!.at;
  const firstDestroy = samples.find((s) => s.destroyed > 0)?.at ?? samples.at(-1)!.at;
  const from = samples.find((s) => s.at >= lastRent + 1000);
  const to = [...samples].reverse().find((s) => s.at <= firstDestroy - 1000);
  if (!from || !to || to.at - from.at < 2000) return { perMin: NaN, windowS: 0 };
  return {
    perMin: ((to.calls - from.calls) * 60_000) / (to.at - from.at),
    windowS: (to.at - from.at) / 1000,
  };
}

export async function vast(): Promise<void> {
  const scale = Number(process.env.BENCH_COST_SCALE ?? 10);
  const n = Number(process.env.BENCH_VAST_SYMBOLS ?? 32);
  const redisUrl = await benchRedisUrl();
  say(machineLine());
  say(
    `vast: ${n} symbols, cap ${n}, profile vast-like, boot ${BOOT_S} s, trainings ${TRAIN_MIN_S}-${TRAIN_MAX_S} s, ` +
      `time scaled down ${scale}x`,
  );
  const w = await world('vast', redisUrl);
  const key = await ensureDeploymentKey(join(w.home, 'ssh'), 'default');
  const sshd = await startSshd({ authorizedKeys: [key.publicKey], extraConfig: ['SetEnv SHLVL=1'] });
  // Twice as many machines as symbols, a cent apart: competitors, churn and bad images take some.
  const base = defaultOffers().find((o) => o.id === 7001001)!;
  const offers = Array.from({ length: 2 * n }, (_, i) => ({
    ...base,
    id: 7201001 + i,
    machine_id: 42001 + i,
    dph_total: round(base.dph_total + 0.005 * i, 6),
  }));
  const sim = await startVastSim({
    apiKey: SIM_KEY,
    offers,
    sshEndpoint: { host: sshd.host, port: sshd.port },
    sshAuthorizedKeys: [key.publicKey],
    bootDelayMs: (BOOT_S * 1000) / scale,
    timeScale: scale,
    profile: 'vast-like',
    seed: 13,
  });
  const savedKey = process.env.VAST_API_KEY;
  process.env.VAST_API_KEY = SIM_KEY;
  const s = sampler(sim);
  try {
    const config = w.config({
      recipe: join(REPO, 'bench/recipes/sleep'),
      train: {
        driver: 'vast',
        maxConcurrent: n,
        workerConcurrency: n,
        maxInstances: n,
        pollMs: Math.max(50, 1000 / scale),
      },
      vast: {
        apiUrl: sim.url,
        workRoot: join(w.home, 'remote'),
        sshUser: sshd.user,
        apiRetryBaseMs: 100,
        // Vast's figures at this scale.
        apiBudget: { enabled: true, marginMs: 150, timeScale: scale, intervalsSec: {} },
        pollSec: 10 / scale,
        createTimeoutSec: 120 / scale,
        transientGraceSec: 120 / scale,
        healthCheckSec: Math.max(1, 30 / scale),
        bootDeadlineSec: Math.max(5, Math.round(600 / scale)),
        offers: { cacheSec: 30 / scale, priceTolerance: 0.05, scanLimit: 512 },
        maxProvisionTries: 10,
        pool: { enabled: false, idleGraceSec: 0, slotsPerHost: 1 },
      },
    });
    const symbols = syntheticSymbols(n, 'V');
    const { r, wallS } = await runScaledSleep(config, symbols, {
      cap: n,
      scale,
      trainMinS: TRAIN_MIN_S,
      trainMaxS: TRAIN_MAX_S,
    });
    s.stop();
    const st = sim.state();
    const success = n - r.failed.length;
    const perSymbol: Record<string, number> = {};
    const r429: Record<string, number> = {};
    for (const [ep, c] of Object.entries(st.calls)) {
      perSymbol[ep] = round((c.ok + c.r429) / n, 2);
      if (c.r429) r429[ep] = c.r429;
    }
    const totalCalls = Object.values(st.calls).reduce((a, c) => a + c.ok + c.r429, 0);
    const total429 = Object.values(st.calls).reduce((a, c) => a + c.r429, 0);
    const steady = steadyRate(s.samples);
    // Per simulated minute: a real minute here is `scale` minutes of Vast time.
    const steadySim = steady.perMin / scale;
    const toExec = r.jobs.map(
      (j) =>
        ((j.processedOn - r.enqueuedAt) / 1000 +
          (j.states.PENDING ?? 0) +
          (j.states.PROVISIONING ?? 0) +
          (j.states.TRANSFERRING ?? 0)) *
        scale,
    );
    say(`calls per symbol by endpoint: ${JSON.stringify(perSymbol)} (${round(totalCalls / n, 2)} in all)`);
    say(`429s: ${total429} (${round(total429 / n, 3)} per symbol) ${JSON.stringify(r429)}`);
    say(
      `steady state (every instance up, ${round(steady.windowS * scale)} simulated s): ${round(steadySim, 2)} calls per ` +
        `simulated minute (${round(steady.perMin, 1)} per real minute); Vast's own list interval allows 60`,
    );
    say(
      `enqueue to EXECUTING: p50 ${round(percentile(toExec, 50))} s, p95 ${round(percentile(toExec, 95))} s ` +
        `(creates alone: ${n} x ${VAST_SPEC_INTERVALS_SEC.create} s = ${round(n * VAST_SPEC_INTERVALS_SEC.create)} s)`,
    );
    say(
      `${success}/${n} succeeded; ${st.rented.length} rented, ${st.destroyed.length} destroyed, ${st.alive.length} alive; ` +
        `wall ${round(wallS)} s; faults: ${JSON.stringify(st.faultsInjected)}`,
    );
    figures({
      success,
      symbols: n,
      rented: st.rented.length,
      destroyed: st.destroyed.length,
      calls_per_symbol: round(totalCalls / n, 2),
      r429_per_symbol: round(total429 / n, 3),
      steady_calls_per_min: round(steadySim, 2),
      to_executing_p50_s: round(percentile(toExec, 50)),
      to_executing_p95_s: round(percentile(toExec, 95)),
      scale,
    });
  } finally {
    s.stop();
    if (savedKey === undefined) delete process.env.VAST_API_KEY;
    else process.env.VAST_API_KEY = savedKey;
    await sim.close();
    await sshd.stop();
    await w.cleanup();
    stopPrivateRedis();
  }
}
