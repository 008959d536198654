/**
 * The attempt runner, driven directly with a fake job handle: an attempt that stops dead right
 * after entering each state (as a worker killed at `enter:<STATE>` would: no catch, no finally) is
 * resumed from the job data it saved, by a second run of the runner. Real parts beneath it: the
 * local compute provider (priced, to see the booking), the local store, the ledger on Redis.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalProvider } from '../../../src/compute/local.js';
import type { ComputeProvider, LeaseInfo } from '../../../src/compute/provider.js';
import { defaultConfig } from '../../../src/config/load.js';
import { ConfigSchema } from '../../../src/config/schema.js';
import { trainJobId } from '../../../src/jobspec/build.js';
import type { JobSpec } from '../../../src/jobspec/types.js';
import { Ledger } from '../../../src/ledger/ledger.js';
import { loadRecipe } from '../../../src/recipes/loader.js';
import { keys } from '../../../src/storage/layout.js';
import { LocalStore } from '../../../src/storage/local.js';
import { parseStateLine, STATE_ORDER, type TrainState } from '../../../src/train/states.js';
import { trainSymbol } from '../../../src/train/trainSymbol.js';
import type { JobHandle, TrainJobData } from '../../../src/train/types.js';
import { parseSha256Txt, sha256File } from '../../../src/util/hash.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const DATE = '20260110';
const SYMBOL = 'BTCUSDT';
/** $36/h: a second of rental books a cent, so the booking shows in the ledger. */
const HOURLY = 36;

/** A JobHandle over plain data; with `stopAt`, the save that enters that state never returns. */
class FakeJob implements JobHandle {
  readonly attempt = 1;
  readonly maxAttempts = 1;
  readonly lines: string[] = [];
  /** The job data as saved when the attempt stopped. */
  stopped: TrainJobData | undefined;
  readonly reachedStop: Promise<void>;
  private onStop!: () => void;

  constructor(
    public data: TrainJobData,
    private readonly stopAt?: TrainState,
  ) {
    this.reachedStop = new Promise((resolve) => (this.onStop = resolve));
  }

  async save(patch: Partial<TrainJobData>): Promise<void> {
    this.data = structuredClone({ ...this.data, ...patch });
    if (this.stopAt && !this.stopped && this.data.state === this.stopAt) {
      this.stopped = structuredClone(this.data);
      this.onStop();
      await new Promise(() => undefined); // the worker is gone
    }
  }
  async progress(): Promise<void> {}
  async log(line: string): Promise<void> {
    this.lines.push(line);
  }
  /** The states this job entered, in order. */
  entered(): TrainState[] {
    return this.lines.flatMap((l) => parseStateLine(l)?.state ?? []);
  }
}

/** The local provider, priced, counting what the attempt asks of it. */
function countingProvider(root: string) {
  const inner = new LocalProvider({ root });
  const calls = { acquire: 0, reattach: 0, release: 0 };
  const priced = (info: LeaseInfo): LeaseInfo => ({ ...info, hourlyCostUsd: HOURLY });
  const provider: ComputeProvider = {
    driver: 'local',
    async acquire(spec, ctx) {
      calls.acquire++;
      const lease = await inner.acquire(spec, {
        ...ctx,
        onLeaseCreated: async (info) => ctx.onLeaseCreated?.(priced(info)),
      });
      return { ...lease, info: priced(lease.info) };
    },
    async reattach(info) {
      calls.reattach++;
      return inner.reattach(info);
    },
    async release(info) {
      calls.release++;
      return inner.release(info);
    },
    list: () => inner.list(),
  } as ComputeProvider;
  return { provider, calls };
}

const TRAIN_SH = `#!/bin/sh
set -e
echo run >> "$1"
echo "training ${SYMBOL}"
printf 'weights' > "$2/model.bin"
printf '{"directionalHitRate":0.55,"maxDrawdown":0.1,"sharpe":1.2,"net_bps_after_costs":3.5,"n_train":80,"n_test":20}' > "$2/metrics.json"
`;

describe('attempt runner: a resume from each state', () => {
  let dir: string;
  let redis: Redis;
  let ledger: Ledger;
  let prefix: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'attempt-resume-'));
    redis = new Redis(REDIS_URL);
    prefix = `test-attempt-${randomBytes(6).toString('hex')}`;
  });
  afterEach(async () => {
    await ledger?.mirrorIdle(DATE);
    const found = await redis.keys(`${prefix}:*`);
    if (found.length) await redis.del(...found);
    redis.disconnect();
    await rm(dir, { recursive: true, force: true });
  });

  async function world() {
    const home = join(dir, 'home');
    const store = new LocalStore(join(dir, 'store'));
    ledger = new Ledger({ redis, prefix, store });
    const recipeDir = join(dir, 'recipe');
    const runs = join(dir, 'runs.txt');
    await rm(recipeDir, { recursive: true, force: true });
    await mkdir(recipeDir, { recursive: true });
    await writeFile(join(recipeDir, 'train.sh'), TRAIN_SH);
    await chmod(join(recipeDir, 'train.sh'), 0o755);
    await writeFile(
      join(recipeDir, 'recipe.yaml'),
      JSON.stringify({
        name: 'resume-test',
        version: 1,
        files: ['train.sh'],
        vars: {},
        env: {},
        secrets: [],
        train: [{ run: `sh {{recipe_dir}}/train.sh ${runs} {{outdir}}` }],
        outputs: { required: ['model.bin', 'metrics.json'], optional: [] },
        partial: [],
      }),
    );
    const recipe = await loadRecipe(recipeDir, { recipesDir: '/nonexistent' });
    const features = join(dir, 'features.csv');
    await writeFile(features, 'ts,close\n1,100\n2,101\n');
    const datasetKey = `features/${SYMBOL}/${DATE}.csv`;
    await store.putFile(datasetKey, features);
    const { sha256, bytes } = await sha256File(features);
    const spec: JobSpec = {
      v: 1,
      jobId: trainJobId(SYMBOL, DATE),
      symbol: SYMBOL,
      date: DATE,
      featureset: 'v1',
      driver: 'local',
      recipe: { name: 'resume-test', version: 1, ref: recipeDir, sha256: recipe.sha256, vars: {} },
      dataset: { key: datasetKey, sha256, bytes },
      costs: {
        symbol: SYMBOL,
        taker_fee_bps: 5,
        maker_fee_bps: 2,
        median_spread_bps: 1,
        slippage_bps_per_sigma: 1,
      },
      timeoutMinutes: 5,
      retries: 0,
      promote: 'off',
      canary: false,
    };
    const config = ConfigSchema.parse({ ...defaultConfig(home), train: { pollMs: 50 } });
    const { provider, calls } = countingProvider(join(home, 'models'));
    const deps = {
      config,
      store,
      ledger,
      provider,
      logger: pino({ level: 'silent' }),
      signal: new AbortController().signal,
    };
    const trainings = async () =>
      (await readFile(runs, 'utf8').catch(() => '')).split('\n').filter(Boolean).length;
    return { spec, store, deps, calls, trainings };
  }

  /** The states a resume enters after stopping right after entering `s`. */
  const expectedAfter: Record<string, TrainState[]> = {
    PENDING: ['PROVISIONING', 'TRANSFERRING', 'EXECUTING', 'FETCHING', 'RELEASING', 'SUCCEEDED'],
    // Nothing rented was recorded yet: rent again.
    PROVISIONING: ['PROVISIONING', 'TRANSFERRING', 'EXECUTING', 'FETCHING', 'RELEASING', 'SUCCEEDED'],
    TRANSFERRING: ['TRANSFERRING', 'EXECUTING', 'FETCHING', 'RELEASING', 'SUCCEEDED'],
    // Reattached to the same work dir: started there, not entered again.
    EXECUTING: ['FETCHING', 'RELEASING', 'SUCCEEDED'],
    FETCHING: ['FETCHING', 'RELEASING', 'SUCCEEDED'],
    RELEASING: ['SUCCEEDED'],
    SUCCEEDED: ['SUCCEEDED'],
  };

  it.each(STATE_ORDER.map((s) => [s]))(
    'stopped right after entering %s: the resume trains once in all, releases once, stores verified artifacts',
    async (stopAt) => {
      const w = await world();
      const first = new FakeJob({ spec: w.spec, runId: `run-${randomBytes(3).toString('hex')}` }, stopAt);
      void trainSymbol(first, w.deps);
      await first.reachedStop;
      expect(first.stopped?.state).toBe(stopAt);

      const resumed = new FakeJob(structuredClone(first.stopped!));
      const result = await trainSymbol(resumed, w.deps);

      expect(resumed.entered()).toEqual(expectedAfter[stopAt]);
      expect(resumed.data.state).toBe('SUCCEEDED');
      expect(await w.trainings()).toBe(1);
      // One host, given back once; a resume before anything was rented rents it then.
      expect(w.calls.acquire).toBe(1);
      expect(w.calls.release).toBe(1);
      expect(resumed.data.facts?.lease).toBeUndefined();

      expect(result).toMatchObject({
        symbol: SYMBOL,
        date: DATE,
        jobId: w.spec.jobId,
        metricsKey: keys.artifact(w.spec.jobId, 'metrics.json'),
        metrics: { net_bps_after_costs: 3.5, n_train: 80 },
      });
      const sums = parseSha256Txt(
        (await w.store.getBytes(keys.artifact(w.spec.jobId, 'sha256.txt'))).toString('utf8'),
      );
      expect(Object.keys(sums).sort()).toEqual(
        ['costs.json', 'job.json', 'metrics.json', 'model.bin', 'runtime.json', 'train.log'].sort(),
      );
      expect(result.artifacts.map((a) => [a.name, a.sha256]).sort()).toEqual(Object.entries(sums).sort());
      expect((await w.store.getBytes(keys.artifact(w.spec.jobId, 'model.bin'))).toString()).toBe('weights');

      const entry = await w.deps.ledger.getEntry(DATE, SYMBOL);
      expect(entry?.state).toBe('SUCCEEDED');
      // Booked once, for the one rental (a cent a second at $36/h).
      expect(entry?.costUsd).toBeGreaterThan(0);
      expect(entry?.costUsd).toBeLessThan(2);
    },
  );

  it('the local driver stages each input as itself, no tar: the work dir holds the dataset as stored', async () => {
    const w = await world();
    const job = new FakeJob({ spec: w.spec, runId: 'run-staged' }, 'EXECUTING');
    void trainSymbol(job, w.deps);
    await job.reachedStop;
    const workdir = job.stopped!.facts!.workdir!;
    expect((await readdir(workdir)).sort()).toEqual(['inputs', 'out', 'recipe', 'run.sh']);
    expect((await readdir(join(workdir, 'inputs'))).sort()).toEqual([
      'costs.json',
      'features.csv',
      'job.json',
    ]);
    expect((await sha256File(join(workdir, 'inputs', 'features.csv'))).sha256).toBe(w.spec.dataset.sha256);
    expect(JSON.parse(await readFile(join(workdir, 'inputs', 'job.json'), 'utf8'))).toMatchObject({
      jobId: w.spec.jobId,
      symbol: SYMBOL,
    });
    expect(await w.trainings()).toBe(0);
  });

  it('a dataset changed in the store since the plan fails the attempt naming it: nothing trains, the host is given back', async () => {
    const w = await world();
    await w.store.putBytes(w.spec.dataset.key, 'ts,close\n1,100\n2,999\n');
    const job = new FakeJob({ spec: w.spec, runId: 'run-changed' });
    await expect(trainSymbol(job, w.deps)).rejects.toThrow(
      `checksum mismatch for ${w.spec.dataset.key}: expected ${w.spec.dataset.sha256}`,
    );
    expect(await w.trainings()).toBe(0);
    expect(w.calls.acquire).toBe(1);
    expect(w.calls.release).toBe(1);
  });
});
