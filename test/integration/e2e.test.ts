import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { runCli, sandbox, type Sandbox } from '../helpers/harness.js';
import { importMarketData } from '../helpers/marketData.js';

const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
const json = (p: string) => JSON.parse(readFileSync(p, 'utf8'));

describe('end to end on the local driver', () => {
  let sb: Sandbox;
  beforeEach(async () => {
    sb = await sandbox(inject('redisUrl'));
  });
  afterEach(async () => sb.cleanup());

  it('trains three symbols, verifies every artifact, writes ledger, summary and decisions', async () => {
    const date = '20260110';
    const symbols = ['BTCUSDT', 'ETHUSDT', 'SOLUSDT'];
    const r = await runCli(
      [
        'run',
        '--symbols',
        symbols.join(','),
        '--date',
        date,
        '--ensure-features',
        '--synthetic',
        '--promote',
        'dry',
      ],
      sb.env,
    );
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const store = join(sb.home, 'store');
    // The table and the paths the user is told about.
    for (const s of symbols) expect(r.stdout).toMatch(new RegExp(`${s}.*success`));
    expect(r.stdout).toContain(join(store, `runs/${date}Z/status.json`));
    expect(r.stdout).toContain(join(store, `summary/${date}Z/engine_summary.json`));

    const status = json(join(store, `runs/${date}Z/status.json`));
    const summary = json(join(store, `summary/${date}Z/engine_summary.json`));
    expect(summary).toMatchObject({ total_symbols: 3, succeeded: 3, failed: 0, skipped: 0 });
    expect(summary.avg_train_minutes).toBeGreaterThan(0);
    expect(summary.median_train_minutes).toBeGreaterThan(0);
    expect(summary.total_wall_minutes).toBeGreaterThan(0);

    for (const s of symbols) {
      const entry = status.symbols[s];
      expect(entry).toMatchObject({
        status: 'success',
        attempts: 1,
        jobId: `train__${s}__${date}`,
        decision: 'promote',
      });
      expect(entry.history).toHaveLength(1);

      const dir = join(store, 'ml-artifacts', `train__${s}__${date}`);
      const sums = Object.fromEntries(
        readFileSync(join(dir, 'sha256.txt'), 'utf8')
          .trim()
          .split('\n')
          .map((l) => l.split(/\s+/).reverse()),
      );
      for (const name of [
        'model.bin',
        'metrics.json',
        'runtime.json',
        'job.json',
        'config.json',
        'costs.json',
        'split_indices.json',
        'training_log.json',
        'train.log',
      ]) {
        expect(sums[name], `${s} ${name} listed in sha256.txt`).toBeDefined();
        expect(sha(join(dir, name)), `${s} ${name} hash`).toBe(sums[name]);
      }
      const metrics = json(join(dir, 'metrics.json'));
      expect(metrics.directionalHitRate).toBeGreaterThanOrEqual(0);
      expect(metrics.directionalHitRate).toBeLessThanOrEqual(1);
      expect(summary.by_symbol[s]).toMatchObject({
        status: 'success',
        metrics_path: `ml-artifacts/train__${s}__${date}/metrics.json`,
        net_bps_after_costs: expect.any(Number),
        decision: 'promote',
      });
      const cand = join(store, 'models/candidates', s, '2026-01-10');
      expect(sha(join(cand, 'model.bin'))).toBe(sums['model.bin']);
      const decision = json(join(cand, 'decision.json'));
      expect(decision).toMatchObject({ decision: 'promote', mode: 'dry', promoted: false });
      // dry never writes production
      expect(existsSync(join(store, 'models/production', s))).toBe(false);
      expect(readFileSync(join(sb.home, 'logs', `${date}Z`, s, 'training.log'), 'utf8')).toContain(
        'RETRAIN_PROGRESS',
      );
    }
    const events = readFileSync(join(sb.home, 'logs', `${date}Z`, 'engine.log'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).event);
    for (const e of [
      'job_started',
      'coin_started',
      'coin_partial_saved',
      'coin_succeeded',
      'upload_succeeded',
      'promotion_decided',
      'job_completed',
    ]) {
      expect(events).toContain(e);
    }
  });

  it('promotes with --promote auto when there is no production, and keeps history on the next promotion', async () => {
    // Auto promotion publishes only models trained on real (imported) market data.
    await importMarketData(sb.home, sb.env, 'BTCUSDT', '20260111', 120);
    await importMarketData(sb.home, sb.env, 'BTCUSDT', '20260112', 120);
    const r1 = await runCli(
      ['run', '--symbols', 'BTCUSDT', '--date', '20260111', '--ensure-features', '--promote', 'auto'],
      sb.env,
    );
    expect(r1.code, r1.stderr).toBe(0);
    const prod = join(sb.home, 'store/models/production/BTCUSDT');
    const manifest = json(join(prod, 'manifest.json'));
    expect(manifest).toMatchObject({ symbol: 'BTCUSDT', jobId: 'train__BTCUSDT__20260111', replaced: null });
    expect(sha(join(prod, 'model.bin'))).toBe(manifest.sha256['model.bin']);

    // A canary run never publishes, even in auto.
    const r2 = await runCli(
      [
        'run',
        '--symbols',
        'BTCUSDT',
        '--date',
        '20260112',
        '--ensure-features',
        '--promote',
        'auto',
        '--canary',
      ],
      sb.env,
    );
    expect(r2.code, r2.stderr).toBe(0);
    expect(json(join(prod, 'manifest.json')).jobId).toBe('train__BTCUSDT__20260111');
    expect(json(join(sb.home, 'store/models/candidates/BTCUSDT/2026-01-12/decision.json')).mode).toBe('dry');
  }, 180_000);
});
