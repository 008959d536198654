/**
 * Orchestration overhead: N symbols (BENCH_N, default 1000) with a recipe that does nothing, one
 * Redis, concurrency 8, through the whole pipeline (plan, enqueue, train state machine, staging,
 * detached run, follow, collect, store, ledger). Per symbol, overhead = the train job's wall time
 * (finishedOn - processedOn) minus the recipe's own run time (it prints it). Run with the local
 * driver, then the ssh driver against a loopback sshd, beside a bare BullMQ worker doing the same
 * no-op on the same Redis. Knobs (bench/README.md): BENCH_N, BENCH_CONCURRENCY, BENCH_SKIP_LOCAL,
 * BENCH_SKIP_SSH, BENCH_SSH_RC (a second ssh run whose login shells read the rc files).
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startSshd } from '../test/helpers/sshd.js';
import { startLatencyProxy } from './lib/latencyProxy.js';
import { createStore } from '../src/storage/index.js';
import {
  bareBullmq,
  BENCH_DATE,
  runPipeline,
  seedFeatures,
  throughput,
  type RunTimings,
} from './lib/runs.js';
import {
  benchRedisUrl,
  figures,
  fileCreateCpuUs,
  machineLine,
  NOOP_RECIPE,
  percentile,
  round,
  say,
  stopPrivateRedis,
  syntheticSymbols,
  world,
} from './lib/world.js';

const run = promisify(execFile);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);

interface Variant {
  p50: number;
  p99: number;
  perSec: number;
  /** CPU (user + system) of this process, the orchestrator, per symbol. */
  cpuPerSymbol: number;
}

function report(name: string, r: RunTimings): Variant {
  if (r.failed.length) {
    say(`${name}: ${r.failed.length} symbols did not succeed, e.g. ${r.failed[0]}`);
  }
  const overhead = r.jobs.map((j) => j.jobMs - j.recipeMs);
  const recipe = r.jobs.map((j) => j.recipeMs);
  const perSec = throughput(r.jobs);
  const v = {
    p50: percentile(overhead, 50),
    p99: percentile(overhead, 99),
    perSec,
    cpuPerSymbol: r.cpuMs / r.jobs.length,
  };
  say(
    `${name}: ${r.jobs.length} symbols, plan ${round(r.planMs / 1000, 2)} s, enqueue ${round(r.enqueueMs / 1000, 2)} s, ` +
      `run ${round(r.wallMs / 1000, 1)} s; ${round(perSec, 2)} symbols/s`,
  );
  say(
    `  overhead per symbol: p50 ${round(v.p50)} ms, p99 ${round(v.p99)} ms, mean ${round(mean(overhead))} ms ` +
      `(recipe's own run time: mean ${round(mean(recipe), 2)} ms)`,
  );
  say(
    `  CPU per symbol: ${round(r.cpuMs / r.jobs.length)} ms in this process ` +
      `(${round(r.mainCpuMs / r.jobs.length)} on its main thread, the rest in libuv's and V8's threads) + ` +
      `${round(r.childCpuMs / r.jobs.length)} ms in the commands it ran (2 cores: at most ` +
      `${round(2000 / ((r.cpuMs + r.childCpuMs) / r.jobs.length), 1)} symbols/s from these alone)`,
  );
  const states = new Map<string, number[]>();
  for (const j of r.jobs)
    for (const [s, sec] of Object.entries(j.states)) states.set(s, [...(states.get(s) ?? []), sec * 1000]);
  say(
    '  time per state (p50 ms): ' +
      [...states].map(([s, ms]) => `${s} ${round(percentile(ms, 50))}`).join(', '),
  );
  return v;
}

function mean(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
}

async function localRun(redisUrl: string, symbols: string[]): Promise<Variant> {
  const w = await world('overhead-local', redisUrl);
  try {
    const config = w.config({
      recipe: NOOP_RECIPE,
      train: { driver: 'local', workerConcurrency: CONCURRENCY, maxConcurrent: CONCURRENCY, retries: 0 },
    });
    await seedFeatures(createStore(config.store), symbols, BENCH_DATE);
    return report(
      'local driver',
      await runPipeline(config, symbols, { cap: CONCURRENCY, recipe: NOOP_RECIPE }),
    );
  } finally {
    await w.cleanup();
  }
}

async function sshRun(redisUrl: string, symbols: string[], keepRc: boolean, rttMs = 0): Promise<Variant> {
  const w = await world('overhead-ssh', redisUrl);
  const keyPath = join(w.home, 'bench_ed25519');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'retrain-bench', '-f', keyPath]);
  // The login shell of each ssh session would source root's ~/.bashrc here (on this machine: pyenv
  // init, ~150 ms); SHLVL=1 makes bash skip it, so the figure is retrain's own cost. With
  // BENCH_SSH_RC=1 a second ssh run keeps the rc files (a GPU image's conda or pyenv init).
  const sshd = await startSshd({
    authorizedKeys: [await readFile(`${keyPath}.pub`, 'utf8')],
    extraConfig: keepRc ? [] : ['SetEnv SHLVL=1'],
  });
  // With a round trip, the driver reaches sshd through a proxy that delays every packet.
  const proxy = rttMs > 0 ? await startLatencyProxy(sshd, rttMs) : undefined;
  const at = proxy ?? sshd;
  try {
    const remote = join(w.home, 'remote');
    await mkdir(remote, { recursive: true });
    const config = w.config({
      recipe: NOOP_RECIPE,
      train: { driver: 'ssh', workerConcurrency: CONCURRENCY, maxConcurrent: CONCURRENCY, retries: 0 },
      ssh: { host: at.host, port: at.port, user: sshd.user, keyPath, workRoot: remote },
    });
    await seedFeatures(createStore(config.store), symbols, BENCH_DATE);
    return report(
      `ssh driver (loopback sshd :${sshd.port}${keepRc ? ', login shell reading ~/.bashrc' : ''}` +
        `${rttMs ? `, ${rttMs} ms round trip` : ''})`,
      await runPipeline(config, symbols, { cap: CONCURRENCY, recipe: NOOP_RECIPE }),
    );
  } finally {
    await proxy?.close();
    await sshd.stop();
    await w.cleanup();
  }
}

export async function overhead(): Promise<void> {
  const n = Number(process.env.BENCH_N ?? 1000);
  const redisUrl = await benchRedisUrl();
  say(machineLine());
  say(
    `file creation on this machine now: ${round(fileCreateCpuUs(tmpdir()))} µs of CPU to create, write, ` +
      'fsync and rename a small file (its VM makes this vary several times over; file operations are a large part of a symbol)',
  );
  say(`overhead: ${n} symbols, no-op recipe, concurrency ${CONCURRENCY}, Redis ${redisUrl}`);
  const symbols = syntheticSymbols(n);
  try {
    const bare = await bareBullmq(redisUrl, `bench-bare-${process.pid}`, n, CONCURRENCY);
    say(
      `bare BullMQ worker: ${n} no-op jobs, ${round(bare.perSec, 1)} jobs/s, ` +
        `job time p50 ${round(percentile(bare.jobMs, 50), 2)} ms, p99 ${round(percentile(bare.jobMs, 99), 2)} ms`,
    );
    const local =
      process.env.BENCH_SKIP_LOCAL === '1'
        ? { p50: NaN, p99: NaN, perSec: NaN, cpuPerSymbol: NaN }
        : await localRun(redisUrl, symbols);
    const skipSsh = process.env.BENCH_SKIP_SSH === '1';
    const ssh = skipSsh ? undefined : await sshRun(redisUrl, symbols, false);
    const sshRc =
      skipSsh || process.env.BENCH_SSH_RC !== '1' ? undefined : await sshRun(redisUrl, symbols, true);
    // A host across a real network: each round trip a symbol waits on costs RTT (BENCH_SSH_RTT_MS),
    // so (p50 there - p50 on loopback) / RTT is the round trips per symbol. Fewer symbols: each
    // takes seconds.
    const rtt = Number(process.env.BENCH_SSH_RTT_MS ?? 0);
    const sshWan =
      skipSsh || !ssh || rtt <= 0
        ? undefined
        : await sshRun(redisUrl, symbols.slice(0, Number(process.env.BENCH_SSH_RTT_N ?? 20)), false, rtt);
    const roundTrips = sshWan && ssh ? (sshWan.p50 - ssh.p50) / rtt : undefined;
    if (roundTrips !== undefined) say(`round trips a symbol waits on over ssh: ${round(roundTrips, 1)}`);
    say(
      'targets at concurrency 1: p50 overhead <= 60 ms local, <= 120 ms over ssh, with rc files <= 1.3x ' +
        'the plain ssh figure; orchestrator CPU per symbol <= 15 ms local, <= 20 ms over ssh',
    );
    if (ssh && sshRc) say(`ssh with rc files / plain ssh, p50: ${round(sshRc.p50 / ssh.p50, 2)}x`);
    figures({
      local_p50_ms: round(local.p50),
      local_p99_ms: round(local.p99),
      ssh_p50_ms: ssh ? round(ssh.p50) : null,
      ssh_p99_ms: ssh ? round(ssh.p99) : null,
      retrain_per_s: round(local.perSec, 2),
      bare_bullmq_per_s: round(bare.perSec, 1),
      ...(ssh ? { ssh_retrain_per_s: round(ssh.perSec, 2) } : {}),
      ssh_rc_p50_ms: sshRc ? round(sshRc.p50) : null,
      cpu_ms_per_symbol_local: round(local.cpuPerSymbol, 1),
      cpu_ms_per_symbol_ssh: ssh ? round(ssh.cpuPerSymbol, 1) : null,
      ...(sshWan
        ? { ssh_rtt_ms: rtt, ssh_rtt_p50_ms: round(sshWan.p50), ssh_round_trips: round(roundTrips!, 1) }
        : {}),
      concurrency: CONCURRENCY,
      n,
    });
  } finally {
    stopPrivateRedis();
  }
}
