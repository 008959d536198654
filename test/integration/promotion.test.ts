import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { redisProductionLock } from '../../src/promotion/lock.js';
import type { ProductionManifest } from '../../src/promotion/manifest.js';
import { fakeRecipe, runCli, sandbox, type Sandbox } from '../helpers/harness.js';
import { importMarketData } from '../helpers/marketData.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('promotion through the CLI: first run, a better run, rollback', () => {
  let sb: Sandbox;
  beforeEach(async () => {
    sb = await sandbox(inject('redisUrl'));
  });
  afterEach(() => sb.cleanup());

  const train = async (date: string, hitRate: string) => {
    // Auto promotion publishes only models trained on real (imported) market data.
    await importMarketData(sb.home, sb.env, 'BTCUSDT', date);
    return runCli(
      [
        'run',
        '--symbols',
        'BTCUSDT',
        '--date',
        date,
        '--ensure-features',
        '--recipe',
        fakeRecipe,
        '--var',
        `hit_rate=${hitRate}`,
        '--promote',
        'auto',
      ],
      sb.env,
    );
  };

  it('promotes the first run, promotes and archives on a better one, and rolls back to the first', async () => {
    const prod = join(sb.home, 'store/models/production/BTCUSDT');
    const file = (name: string) => readFileSync(join(prod, name));
    const manifest = () => JSON.parse(file('manifest.json').toString()) as ProductionManifest;
    const historyStamps = () => readdirSync(join(prod, 'history')).sort();

    // 1. first run: no production yet → promoted; the three documented files with lineage
    const r1 = await train('20260111', '0.55');
    expect(r1.code, r1.stderr).toBe(0);
    const m1 = manifest();
    expect(m1).toMatchObject({
      symbol: 'BTCUSDT',
      jobId: 'train__BTCUSDT__20260111',
      date: '20260111',
      rule: 'no_production',
      metrics: { directionalHitRate: 0.55 },
      replaced: null,
      history: null,
    });
    const first = { model: file('model.bin'), metrics: file('metrics.json') };
    expect(first.model.toString()).toBe('FAKEBTCUSDT hit_rate=0.55');
    expect(m1.sha256).toEqual({ 'model.bin': sha(first.model), 'metrics.json': sha(first.metrics) });

    // nothing to roll back to yet
    const none = await runCli(['rollback', '--symbol', 'BTCUSDT'], sb.env);
    expect(none.code).toBe(2);
    expect(none.stderr.trim()).toBe(
      'retrain: no history for BTCUSDT: nothing to roll back to (models/production/BTCUSDT/history/ is empty)',
    );

    // 2. a better candidate (higher hit rate) → promoted; the first goes to history
    const r2 = await train('20260112', '0.6');
    expect(r2.code, r2.stderr).toBe(0);
    const m2 = manifest();
    expect(m2).toMatchObject({
      jobId: 'train__BTCUSDT__20260112',
      rule: 'higher_hit_rate',
      replaced: { jobId: 'train__BTCUSDT__20260111', date: '20260111', sha256: m1.sha256 },
    });
    expect(file('model.bin').toString()).toBe('FAKEBTCUSDT hit_rate=0.6');
    const [stamp1] = historyStamps();
    expect(historyStamps()).toHaveLength(1);
    expect(m2.history).toBe(`models/production/BTCUSDT/history/${stamp1}/`);
    expect(readFileSync(join(prod, 'history', stamp1!, 'model.bin')).equals(first.model)).toBe(true);
    expect(readFileSync(join(prod, 'history', stamp1!, 'metrics.json')).equals(first.metrics)).toBe(true);
    const decision = JSON.parse(
      readFileSync(join(sb.home, 'store/models/candidates/BTCUSDT/2026-01-12/decision.json'), 'utf8'),
    );
    expect(decision).toMatchObject({ decision: 'promote', promoted: true, historyStamp: stamp1 });

    // bad requests: one line, exit 2, nothing changed
    for (const [args, line] of [
      [['--symbol', 'ETHUSDT'], /^retrain: unknown symbol ETHUSDT: it has no production model/],
      [
        ['--symbol', 'BTCUSDT', '--to', 'last-week'],
        /^retrain: invalid --to "last-week": expected a history stamp/,
      ],
      [
        ['--symbol', 'BTCUSDT', '--to', '20200101T000000Z'],
        /^retrain: no history entry 20200101T000000Z for BTCUSDT \(have: /,
      ],
      [['--symbol', '../../etc'], /^retrain: invalid symbol "..\/..\/etc"/],
    ] as const) {
      const r = await runCli(['rollback', ...args], sb.env);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(line);
    }
    const dry = await runCli(['rollback', '--symbol', 'BTCUSDT', '--dry-run'], sb.env);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout.trim()).toBe(
      `BTCUSDT: would restore train__BTCUSDT__20260111 (20260111) from history ${stamp1}, replacing train__BTCUSDT__20260112 (20260112) (dry run: nothing written)`,
    );
    expect(manifest()).toEqual(m2);
    expect(historyStamps()).toEqual([stamp1]);

    // 3. rollback: the first model is production again, with lineage; the second is in history.
    // It waits for the symbol's production lock (held here as a promotion in a worker would).
    let released = 0;
    const held = redisProductionLock(sb.redis, sb.prefix).hold('BTCUSDT', async () => {
      // Longer than the CLI takes to start and ask for the lock, even on a loaded machine.
      await new Promise((r) => setTimeout(r, 4000));
      expect(manifest()).toEqual(m2); // the rollback has not written while the lock was held
      released = Date.now();
    });
    const rb = await runCli(['rollback', '--symbol', 'BTCUSDT'], sb.env);
    await held;
    expect(rb.code, rb.stderr).toBe(0);
    expect(released).toBeGreaterThan(0);
    expect(statSync(join(prod, 'manifest.json')).mtimeMs).toBeGreaterThanOrEqual(released - 5);
    const stamps = historyStamps();
    expect(stamps).toHaveLength(2);
    const stamp2 = stamps.find((s) => s !== stamp1)!;
    expect(rb.stdout.trim()).toBe(
      `BTCUSDT: production is now train__BTCUSDT__20260111 (20260111) from history ${stamp1}; replaced train__BTCUSDT__20260112 (20260112), archived to history ${stamp2}`,
    );
    expect(file('model.bin').equals(first.model)).toBe(true);
    expect(file('metrics.json').equals(first.metrics)).toBe(true);
    const m3 = manifest();
    expect(m3).toMatchObject({
      jobId: 'train__BTCUSDT__20260111',
      date: '20260111',
      rule: 'rollback',
      sha256: m1.sha256,
      restoredFrom: `models/production/BTCUSDT/history/${stamp1}/`,
      rolledBackFrom: {
        jobId: 'train__BTCUSDT__20260112',
        sha256: m2.sha256,
        history: `models/production/BTCUSDT/history/${stamp2}/`,
      },
    });
    expect(readFileSync(join(prod, 'history', stamp2, 'model.bin')).toString()).toBe(
      'FAKEBTCUSDT hit_rate=0.6',
    );
    // the files readers follow (manifest.files) hold the same bytes
    expect(readFileSync(join(sb.home, 'store', m3.files!['model.bin'])).equals(first.model)).toBe(true);
    expect(existsSync(join(sb.home, 'store', m3.files!['metrics.json']))).toBe(true);
  }, 180_000);
});
