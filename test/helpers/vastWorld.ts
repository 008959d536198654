/**
 * A world for GPU-path tests: a sandbox (own RETRAIN_HOME + Redis prefix), a real sshd on loopback
 * standing in for every rented host, and the Vast simulator over real HTTP, wired into the
 * sandbox's environment so the CLI and workers rent from the simulator.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { ensureDeploymentKey } from '../../src/remote/ssh/keys.js';
import { defaultOffers, startVastSim, type VastSim, type VastSimOptions } from '../../src/vast/sim/server.js';
import { expect } from 'vitest';
import { BIN, REPO, fakeRecipe, runCli, sandbox, type CliResult, type Sandbox } from './harness.js';

export { waitFor } from './harness.js';
import { startSshd, type SshdHandle } from './sshd.js';

export const SIM_API_KEY = 'sim-account-key-world';

export interface VastWorld {
  sb: Sandbox;
  sshd: SshdHandle;
  sim: VastSim;
  remoteRoot: string;
  close(): Promise<void>;
}

export async function startVastWorld(
  redisUrl: string,
  /**
   * `env` overrides the world's defaults; `sim` the simulator's options. `gateSsh`: SSH to an
   * instance works only while it holds the deployment's key (the simulator's per-instance gate).
   */
  opts: { env?: NodeJS.ProcessEnv; sim?: Partial<VastSimOptions>; gateSsh?: boolean } = {},
): Promise<VastWorld> {
  const sb = await sandbox(redisUrl);
  const key = await ensureDeploymentKey(join(sb.home, 'ssh'), 'default');
  const sshd = await startSshd({ authorizedKeys: [key.publicKey] });
  const sim = await startVastSim({
    apiKey: SIM_API_KEY,
    offers: defaultOffers(),
    sshEndpoint: { host: sshd.host, port: sshd.port },
    bootDelayMs: 300,
    seed: 5,
    // As on Vast, SSH reaches only an instance that holds the deployment key (src/vast/sim/README.md).
    ...(opts.gateSsh || opts.sim?.profile === 'vast-like' ? { sshAuthorizedKeys: [key.publicKey] } : {}),
    ...opts.sim,
  });
  const remoteRoot = join(sb.home, 'remote');
  Object.assign(sb.env, {
    VAST_API_URL: sim.url,
    VAST_API_KEY: SIM_API_KEY,
    RETRAIN_DRIVER: 'vast',
    RETRAIN_REMOTE_ROOT: remoteRoot,
    RETRAIN_SSH_USER: sshd.user,
    RETRAIN_BOOT_DEADLINE_SEC: '20',
    RETRAIN_VAST_RETRY_MS: '100',
    // The shared instance poller at test speed (Vast's default 10 s would dominate every boot).
    RETRAIN_VAST_POLL_SEC: '0.5',
    // Vast's API intervals at the simulator's usual 10x (a vast-like sim divides them the same way).
    RETRAIN_VAST_API_TIME_SCALE: '10',
    ...opts.env,
  });
  return {
    sb,
    sshd,
    sim,
    remoteRoot,
    async close() {
      await sim.close();
      await sshd.stop();
      await sb.cleanup();
    },
  };
}

/** Every instance rented was destroyed and none is alive. */
export function rentedAllDestroyed(sim: VastSim): boolean {
  const st = sim.state();
  return st.alive.length === 0 && [...st.destroyed].sort().join() === [...st.rented].sort().join();
}

/** The same, as an assertion that shows which instances differ when it fails. */
export function expectNothingLeftRented(sim: VastSim): void {
  const st = sim.state();
  expect([...st.destroyed].sort()).toEqual([...st.rented].sort());
  expect(st.alive).toEqual([]);
}

/**
 * `retrain run --driver vast` of `symbols` on `date` with `recipe`, building missing features, in
 * the world's environment; `extra` are more flags.
 */
export function vastRun(
  env: NodeJS.ProcessEnv,
  opts: { symbols: string[]; date: string; recipe: string; extra?: string[] },
): Promise<CliResult> {
  const args = ['run', '--driver', 'vast', '--symbols', opts.symbols.join(','), '--date', opts.date];
  args.push('--ensure-features', '--synthetic', '--recipe', opts.recipe, ...(opts.extra ?? []));
  return runCli(args, env, 240_000);
}

/** The artifacts of a job in the local store, each checked against the stored sha256.txt. */
export function verifyStoredArtifacts(home: string, jobId: string): string[] {
  const dir = join(home, 'store/ml-artifacts', jobId);
  const lines = readFileSync(join(dir, 'sha256.txt'), 'utf8').trim().split('\n');
  const bad: string[] = [];
  for (const line of lines) {
    const [hash, name] = line.split(/\s+/);
    const actual = createHash('sha256')
      .update(readFileSync(join(dir, name!)))
      .digest('hex');
    if (actual !== hash) bad.push(name!);
  }
  return bad;
}

/** Live processes whose command line holds `word`, the retrain CLI itself left out. */
export function processesWith(word: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      if (cmd.includes(word) && !cmd.includes('retrain.mjs') && !/\) Z /.test(stat)) pids.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return pids;
}

/** Files named `name` anywhere under `dir`. */
export function findFiles(dir: string, name: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...findFiles(p, name));
    else if (e.name === name) out.push(p);
  }
  return out;
}

/**
 * Starts `retrain run --driver vast` as a process of its own: the fake recipe on synthetic data, two
 * trainings at a time, each sleeping 120 s with `marker` on its command line (tests find them with
 * it, then cancel or interrupt the run). Output is piped, for the test to read.
 */
export function spawnSleepingVastRun(
  env: NodeJS.ProcessEnv,
  symbols: readonly string[],
  date: string,
  marker: string,
): ChildProcessByStdio<null, Readable, Readable> {
  return spawn(
    process.execPath,
    [
      BIN,
      'run',
      '--driver',
      'vast',
      '--symbols',
      symbols.join(','),
      '--date',
      date,
      '--ensure-features',
      '--synthetic',
      '--recipe',
      fakeRecipe,
      '--max-concurrent',
      '2',
      '--var',
      'sleep=120',
      '--var',
      `marker=${marker}`,
    ],
    { env, cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] },
  );
}
