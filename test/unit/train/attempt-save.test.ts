/**
 * AttemptContext.save with a fake job handle: what reaches the job data, and when a save is skipped.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../../../src/config/load.js';
import { ConfigSchema } from '../../../src/config/schema.js';
import { AttemptContext, type TrainDeps } from '../../../src/train/attempt/context.js';
import type { LoadedRecipe } from '../../../src/recipes/loader.js';
import { LogSink } from '../../../src/train/attempt/steps/execute/logSink.js';
import type { JobHandle, TrainJobData } from '../../../src/train/types.js';
import type { LeaseInfo } from '../../../src/compute/provider.js';

const spec = { symbol: 'BTCUSDT', date: '20260110', jobId: 'train__BTCUSDT__x', timeoutMinutes: 5 };

/** A JobHandle over plain data that counts its writes. */
function fakeJob(data: Partial<TrainJobData>, attempt = 1): JobHandle & { writes: TrainJobData[] } {
  const writes: TrainJobData[] = [];
  let held = { spec, runId: 'r1', ...data } as TrainJobData;
  return {
    get data() {
      return held;
    },
    attempt,
    maxAttempts: 3,
    writes,
    async save(patch) {
      held = structuredClone({ ...held, ...patch });
      writes.push(held);
    },
    async progress() {},
    async log() {},
  };
}

const deps = {
  config: ConfigSchema.parse(defaultConfig('/tmp/attempt-save-home')),
  logger: pino({ level: 'silent' }),
  signal: new AbortController().signal,
};
const lease: LeaseInfo = {
  driver: 'local',
  id: 'local',
  host: 'localhost',
  workRoot: '/tmp/w',
  acquiredAt: '2026-01-10T00:00:00.000Z',
  hourlyCostUsd: 0,
};

describe('AttemptContext.save', () => {
  it('writes a change, and skips a save that changes nothing the job holds', async () => {
    const job = fakeJob({ state: 'PROVISIONING', attempt: 1, facts: {} });
    const ctx = new AttemptContext(job, deps as unknown as TrainDeps);
    await ctx.save({ lease });
    await ctx.save({ lease: { ...lease }, workdir: undefined, pid: undefined, logOffset: undefined });
    expect(job.writes).toHaveLength(1);
    expect(job.data.facts).toEqual({ lease });
    await ctx.save({ workdir: '/tmp/w/BTCUSDT/1' });
    await ctx.save({ lease: { ...lease, hourlyCostUsd: 0.5 } });
    expect(job.writes).toHaveLength(3);
    expect(job.data.facts).toEqual({ lease: { ...lease, hourlyCostUsd: 0.5 }, workdir: '/tmp/w/BTCUSDT/1' });
    // Clearing a fact is a change.
    await ctx.save({ workdir: undefined });
    expect(job.writes).toHaveLength(4);
    expect(job.data.facts).toEqual({ lease: { ...lease, hourlyCostUsd: 0.5 } });
  });

  it("a new attempt's first save is written even when its facts match the earlier attempt's", async () => {
    // The job holds attempt 1's facts; attempt 2 starts fresh (PENDING, no facts yet).
    const job = fakeJob({ state: 'EXECUTING', attempt: 1, facts: { pid: 7 } }, 2);
    const ctx = new AttemptContext(job, deps as unknown as TrainDeps);
    expect(ctx.fresh).toBe(true);
    await ctx.save({ pid: 7 });
    expect(job.writes).toHaveLength(1);
    expect(job.data).toMatchObject({ state: 'PENDING', attempt: 2, facts: { pid: 7 } });
  });
});

describe('facts that ride with a state change', () => {
  it("the local log's base is written with EXECUTING, and the follow's last offset with FETCHING: no write of their own", async () => {
    const home = await mkdtemp(join(tmpdir(), 'retrain-ride-'));
    try {
      const job = fakeJob({ state: 'TRANSFERRING', attempt: 1, facts: { workdir: '/tmp/w/x' } });
      const ledger = { apply: async () => undefined };
      const config = ConfigSchema.parse(defaultConfig(home));
      const ctx = new AttemptContext(job, { ...deps, config, ledger } as unknown as TrainDeps);
      ctx.recipe = { def: { secrets: [] } } as unknown as LoadedRecipe;
      // An earlier attempt's part of the local log.
      await mkdir(dirname(ctx.trainingLog), { recursive: true });
      await writeFile(ctx.trainingLog, 'earlier\n');

      await ctx.enter('EXECUTING', LogSink.baseFacts(ctx));
      expect(job.writes).toHaveLength(1);
      expect(job.data.facts).toMatchObject({ localLogBase: 8 });
      const sink = await LogSink.open(ctx);
      await sink.close(120);
      expect(job.writes).toHaveLength(1);
      expect(ctx.facts.logOffset).toBe(120);
      expect(job.data.facts?.logOffset).toBeUndefined();

      await ctx.enter('FETCHING');
      expect(job.writes).toHaveLength(2);
      expect(job.data).toMatchObject({ state: 'FETCHING', facts: { localLogBase: 8, logOffset: 120 } });
      // A resume in EXECUTING already has its base: nothing more to write.
      expect(LogSink.baseFacts(ctx)).toEqual({});
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });
});

describe('AttemptContext.enter', () => {
  it("starts the state change's four writes inside the handle's together (one write to Redis), and waits for them", async () => {
    const started: string[] = [];
    let inside = false;
    let answered = 0;
    const answer = (what: string) => {
      started.push(`${what}${inside ? ' (together)' : ''}`);
      return new Promise<void>((r) => setTimeout(() => r(void answered++), 5));
    };
    const job = fakeJob({ state: 'PENDING', attempt: 1, facts: {} });
    job.save = () => answer('job data');
    job.progress = () => answer('progress');
    job.log = () => answer('log line');
    job.together = <T>(issue: () => T): T => {
      inside = true;
      try {
        return issue();
      } finally {
        inside = false;
      }
    };
    const ledger = { apply: () => answer('ledger') };
    const ctx = new AttemptContext(job, { ...deps, ledger } as unknown as TrainDeps);

    await ctx.enter('PROVISIONING');

    expect(started.sort()).toEqual(
      ['job data', 'ledger', 'log line', 'progress'].map((w) => `${w} (together)`),
    );
    expect(answered).toBe(4);
  });
});
