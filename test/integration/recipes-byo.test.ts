/**
 * Bring your own training, driver local (docs/recipes-byo.md): versioned references, extra store
 * inputs and synced folders (hash-verified, synced on failure too), the cleanup after a failure,
 * the disk check, and GPU detection for the concurrency default. Real Redis, real CLI, the local
 * store.
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { fakeVariantRecipe, runCli, sandbox, syntheticRun, type Sandbox } from '../helpers/harness.js';

const DATE = '20260110';
const JOB = `train__BTCUSDT__${DATE}`;
const byoHooks = fakeVariantRecipe('byo-hooks');
const byoDisk = fakeVariantRecipe('byo-disk');
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const status = (sb: Sandbox) =>
  JSON.parse(readFileSync(join(sb.home, 'store', `runs/${DATE}Z/status.json`), 'utf8')).symbols;
const engineLog = (sb: Sandbox) =>
  readFileSync(join(sb.home, 'logs', `${DATE}Z`, 'engine.log'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

function run(sb: Sandbox, recipe: string, extra: string[] = []) {
  return runCli(['run', ...syntheticRun('BTCUSDT', DATE, recipe), ...extra], sb.env);
}

/** Puts the BTCUSDT hyperparams the byo-hooks recipe asks for into the local store. */
function seedInputs(sb: Sandbox, opts: { sha256Txt?: string } = {}): Buffer {
  const dir = join(sb.home, 'store/hyperparams/BTCUSDT');
  mkdirSync(join(dir, 'nested'), { recursive: true });
  const params = Buffer.from(JSON.stringify({ eta: 0.1, depth: 6, seed: Date.now() }) + '\n');
  writeFileSync(join(dir, 'params.json'), params);
  writeFileSync(join(dir, 'nested/extra.txt'), 'nested input\n');
  if (opts.sha256Txt !== undefined) writeFileSync(join(dir, 'sha256.txt'), opts.sha256Txt);
  return params;
}

describe('recipes: bring your own training (driver local)', () => {
  let sb: Sandbox;
  beforeEach(async () => {
    sb = await sandbox(inject('redisUrl'));
  });
  afterEach(async () => sb.cleanup());

  it('name@1 is accepted and recorded in the JobSpec; name@2 is refused with one clear line', async () => {
    const ok = await runCli(['run', '--dry-run', ...syntheticRun('BTCUSDT', DATE, 'xgboost-gpu@1')], sb.env);
    expect(ok.code, ok.stderr).toBe(0);
    const specs = JSON.parse(ok.stdout);
    expect(specs[0].recipe).toMatchObject({ name: 'xgboost-gpu', version: 1, ref: 'xgboost-gpu@1' });

    const bad = await runCli(['run', ...syntheticRun('BTCUSDT', DATE, 'xgboost-gpu@2')], sb.env);
    expect(bad.code).not.toBe(0);
    const lines = bad.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/xgboost-gpu@2: version 2 is not available .*is version 1; use xgboost-gpu@1/);
    // Nothing was enqueued or written for the refused run.
    expect(existsSync(join(sb.home, 'store', `runs/${DATE}Z/status.json`))).toBe(false);
  });

  it('inputs reach the host hash-verified and sync folders come back to the store with the same hashes', async () => {
    const params = seedInputs(sb);
    const r = await run(sb, byoHooks, ['--promote', 'dry']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(status(sb).BTCUSDT).toMatchObject({ status: 'success' });
    // The training copied hp/params.json (an input) into logs/, which was synced back.
    const synced = join(sb.home, 'store/ml-artifacts', JOB, 'sync/logs');
    expect(sha(readFileSync(join(synced, 'params.json')))).toBe(sha(params));
    expect(readFileSync(join(synced, 'progress.txt'), 'utf8')).toBe('epoch 1 of BTCUSDT\n');
    // The log names each extra input with its SHA-256, nested paths included.
    const staged = engineLog(sb).find((e) => e.event === 'inputs.extra') as {
      sha256: Record<string, string>;
    };
    expect(staged.sha256).toMatchObject({
      'hp/params.json': sha(params),
      'hp/nested/extra.txt': sha('nested input\n'),
    });
  });

  it('syncs the folders and runs the cleanup when the training fails', async () => {
    const params = seedInputs(sb);
    const mark = join(sb.home, 'cleanup-mark.txt');
    const r = await run(sb, byoHooks, ['--var', 'fail=1', '--var', `cleanup_mark=${mark}`, '--retries', '0']);
    expect(r.code).toBe(1);
    expect(status(sb).BTCUSDT).toMatchObject({ status: 'failed', reason: 'recipe_failed' });
    const synced = join(sb.home, 'store/ml-artifacts', JOB, 'sync/logs');
    expect(sha(readFileSync(join(synced, 'params.json')))).toBe(sha(params));
    expect(readFileSync(mark, 'utf8')).toBe('cleanup BTCUSDT\n');
    expect(engineLog(sb).some((e) => e.event === 'cleanup.done' && e.outcome === 'failed')).toBe(true);
  });

  it('a failing cleanup is logged and does not fail a good symbol', async () => {
    seedInputs(sb);
    const mark = join(sb.home, 'cleanup-mark.txt');
    const r = await run(sb, byoHooks, ['--var', 'cleanup_fail=1', '--var', `cleanup_mark=${mark}`]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(status(sb).BTCUSDT).toMatchObject({ status: 'success', attempts: 1 });
    expect(readFileSync(mark, 'utf8')).toBe('cleanup BTCUSDT\n');
    const failed = engineLog(sb).find((e) => e.event === 'cleanup.failed');
    expect(failed).toMatchObject({ code: 3, outcome: 'succeeded' });
  });

  it('an input that differs from its prefix sha256.txt fails the symbol (reason checksum), nothing trained', async () => {
    seedInputs(sb, { sha256Txt: `${'0'.repeat(64)}  params.json\n` });
    const r = await run(sb, byoHooks, ['--retries', '0']);
    expect(r.code).toBe(1);
    expect(status(sb).BTCUSDT).toMatchObject({ status: 'failed', reason: 'checksum' });
    expect(existsSync(join(sb.home, 'store/ml-artifacts', JOB, 'sync'))).toBe(false);
  });

  it('an input prefix with nothing in the store is refused by name', async () => {
    const r = await run(sb, byoHooks, ['--retries', '0']);
    expect(r.code).toBe(1);
    const e = status(sb).BTCUSDT;
    expect(e).toMatchObject({ status: 'failed', reason: 'bad_input' });
    expect(e.error.message).toContain('nothing in the store under hyperparams/BTCUSDT/');
  });

  it('a host with less free disk than minDiskGb fails before staging with reason disk', async () => {
    const r = await run(sb, byoDisk, ['--retries', '0']);
    expect(r.code).toBe(1);
    const e = status(sb).BTCUSDT;
    expect(e).toMatchObject({ status: 'failed', reason: 'disk' });
    expect(e.error.message).toMatch(/GB free under .*needs minDiskGb 99999/);
    // Nothing was staged: no work dir holds the inputs.
    const staged = engineLog(sb).filter((l) => l.event === 'inputs.staged');
    expect(staged).toEqual([]);
  });

  describe('GPU detection for the concurrency default', () => {
    const enqueue = (env: NodeJS.ProcessEnv) =>
      runCli(['enqueue', '--mode', 'hybrid', ...syntheticRun('BTCUSDT', DATE, byoHooks)], env);

    it('CUDA_VISIBLE_DEVICES: 2 GPUs, at most 12 at once', async () => {
      const r = await enqueue({ ...sb.env, CUDA_VISIBLE_DEVICES: '0,1' });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('at most 12 at once, driver local (2 GPUs (CUDA_VISIBLE_DEVICES=0,1))');
    });

    it('CUDA_VISIBLE_DEVICES empty: no GPU, at most 2, whatever nvidia-smi says', async () => {
      const bin = standInSmi(sb);
      const r = await enqueue({ ...sb.env, CUDA_VISIBLE_DEVICES: '', PATH: `${bin}:${sb.env.PATH}` });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(
        'at most 2 at once, driver local (no GPU (CUDA_VISIBLE_DEVICES hides them all))',
      );
    });

    it('a stand-in nvidia-smi on PATH: its GPUs are counted, at most 12 at once', async () => {
      const bin = standInSmi(sb);
      const env: NodeJS.ProcessEnv = { ...sb.env, PATH: `${bin}:${sb.env.PATH}` };
      delete env.CUDA_VISIBLE_DEVICES;
      const r = await enqueue(env);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(
        'at most 12 at once, driver local (2 GPUs (nvidia-smi: NVIDIA H100 80GB HBM3))',
      );
    });

    it('neither: no GPU, at most 2 at once', async () => {
      const env = { ...sb.env };
      delete env.CUDA_VISIBLE_DEVICES;
      const r = await enqueue(env);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('at most 2 at once, driver local (no GPU)');
    });
  });
});

/** A directory holding an `nvidia-smi` that lists two H100s, as the real one does with -L. */
function standInSmi(sb: Sandbox): string {
  const bin = join(sb.home, 'fake-bin');
  mkdirSync(bin, { recursive: true });
  const smi = join(bin, 'nvidia-smi');
  writeFileSync(
    smi,
    [
      '#!/bin/sh',
      '[ "$1" = -L ] || exit 2',
      "echo 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-6f1c2d3e-0000-0000-0000-000000000001)'",
      "echo 'GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-6f1c2d3e-0000-0000-0000-000000000002)'",
      '',
    ].join('\n'),
  );
  chmodSync(smi, 0o755);
  return bin;
}
