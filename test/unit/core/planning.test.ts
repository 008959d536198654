import { describe, expect, it } from 'vitest';
import {
  buildJobSpec,
  jobSpecHash,
  serializeJobSpec,
  effectivePromoteMode,
} from '../../../src/jobspec/build.js';
import { concurrencyCap } from '../../../src/plan/concurrency.js';
import { jitteredDelay } from '../../../queues/backoff.js';
import { loadConfig } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/errors.js';
import { buildSummary } from '../../../src/telemetry/summary.js';
import type { JobSpecInput } from '../../../src/jobspec/build.js';

const input = (): JobSpecInput => ({
  symbol: 'BTCUSDT',
  date: '20260110',
  featureset: 'v1',
  driver: 'local',
  recipe: {
    name: 'reference',
    version: 1,
    ref: 'reference',
    sha256: 'a'.repeat(64),
    vars: { epochs: '30', lr: '0.1' },
  },
  dataset: { key: 'datasets/v1/BTCUSDT/20260110/features.csv', sha256: 'b'.repeat(64), bytes: 10 },
  costs: {
    symbol: 'BTCUSDT',
    taker_fee_bps: 4,
    maker_fee_bps: 1,
    median_spread_bps: 1,
    slippage_bps_per_sigma: 2,
  },
  timeoutMinutes: 45,
  retries: 2,
  promote: 'auto',
  canary: false,
});

describe('JobSpec', () => {
  it('is deterministic: same inputs, byte-identical JSON and the same jobId', () => {
    const a = buildJobSpec(input());
    const b = buildJobSpec({ ...input(), recipe: { ...input().recipe, vars: { lr: '0.1', epochs: '30' } } });
    expect(serializeJobSpec(a)).toBe(serializeJobSpec(b));
    expect(a.jobId).toBe('train__BTCUSDT__20260110');
    expect(jobSpecHash(a)).toBe(jobSpecHash(b));
    expect(serializeJobSpec(a)).not.toMatch(/20\d\d-\d\d-\d\dT/); // no wall clock
    expect(jobSpecHash(buildJobSpec({ ...input(), date: '20260111' }))).not.toBe(jobSpecHash(a));
  });
  it('canary downgrades auto to dry', () => {
    expect(buildJobSpec({ ...input(), canary: true }).promote).toBe('dry');
    expect(effectivePromoteMode('off', true)).toBe('off');
  });
});

describe('concurrency cap', () => {
  const base = { symbols: 20, maxInstances: 32, gpu: false };
  it('follows DESIGN.md', () => {
    expect(concurrencyCap({ ...base, mode: 'sequential' })).toBe(1);
    expect(concurrencyCap({ ...base, mode: 'parallel' })).toBe(20);
    expect(concurrencyCap({ ...base, mode: 'parallel', maxInstances: 8 })).toBe(8);
    expect(concurrencyCap({ ...base, mode: 'hybrid' })).toBe(2);
    expect(concurrencyCap({ ...base, mode: 'hybrid', gpu: true })).toBe(12);
    expect(concurrencyCap({ ...base, mode: 'hybrid', maxConcurrent: 5 })).toBe(5);
  });
});

describe('jittered backoff', () => {
  it('grows and never repeats exactly', () => {
    for (let i = 0; i < 200; i++) {
      const d1 = jitteredDelay(1, 1000);
      const d2 = jitteredDelay(2, 1000);
      const d3 = jitteredDelay(3, 1000);
      expect(d1).toBeGreaterThanOrEqual(750);
      expect(d1).toBeLessThanOrEqual(1250);
      expect(d2).toBeGreaterThan(d1);
      expect(d3).toBeGreaterThan(d2);
    }
    expect(new Set(Array.from({ length: 20 }, () => jitteredDelay(1, 1000))).size).toBeGreaterThan(1);
  });
});

describe('config', () => {
  it('embedded defaults', () => {
    const c = loadConfig({ env: {}, cwd: '/tmp/nowhere' });
    expect(c.home).toBe('/tmp/nowhere/var');
    expect(c.train).toMatchObject({ driver: 'local', mode: 'hybrid', timeoutMinutes: 45, retries: 2 });
    expect(c.promotion.mode).toBe('off');
    expect(Object.isFrozen(c)).toBe(true);
  });
  it('env overrides and one-line errors naming the field', () => {
    expect(loadConfig({ env: { REDIS_URL: 'redis://h:1', RETRAIN_PROMOTE: 'dry' } }).promotion.mode).toBe(
      'dry',
    );
    expect(() => loadConfig({ env: { RETRAIN_PROMOTE: 'yolo' } })).toThrow(ConfigError);
    expect(() => loadConfig({ env: { RETRAIN_PROMOTE: 'yolo' } })).toThrow(/promotion\.mode/);
    expect(() => loadConfig({ env: { RETRAIN_POLL_MS: 'fast' } })).toThrow(/RETRAIN_POLL_MS/);
  });
});

describe('summary', () => {
  it('counts statuses and computes minutes', () => {
    const mk = (symbol: string, status: string, trainMinutes?: number) =>
      ({ symbol, status, attempts: 1, costUsd: 0, history: [], updatedAt: '', trainMinutes }) as never;
    const s = buildSummary({
      date: '20260110',
      runId: '20260110-1',
      symbols: ['A1', 'B1', 'C1', 'D1'],
      ledger: { A1: mk('A1', 'success', 1), B1: mk('B1', 'success', 3), C1: mk('C1', 'failed') },
      startedAt: new Date(0),
      endedAt: new Date(120_000),
    });
    expect(s).toMatchObject({
      total_symbols: 4,
      succeeded: 2,
      failed: 1,
      skipped: 1,
      avg_train_minutes: 2,
      median_train_minutes: 2,
      total_wall_minutes: 2,
    });
    expect(s.by_symbol.D1!.status).toBe('skipped');
  });
});
