import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { fakeRecipe, runCli, sandbox, syntheticRun, type Sandbox } from '../helpers/harness.js';

const status = (sb: Sandbox, date: string) =>
  JSON.parse(readFileSync(join(sb.home, 'store', `runs/${date}Z/status.json`), 'utf8')).symbols;

function processesWith(marker: string): string[] {
  const out = execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.includes(marker) && !l.includes('ps -eo'));
}

/** Gaps between the end of one attempt and the start of the next, from the ledger history. */
function retryDelays(entry: { history: { startedAt: string; endedAt?: string }[] }): number[] {
  const h = entry.history;
  return h.slice(1).map((item, i) => Date.parse(item.startedAt) - Date.parse(h[i]!.endedAt!));
}

describe('timeouts, retries, resume', () => {
  let sb: Sandbox;
  beforeEach(async () => {
    sb = await sandbox(inject('redisUrl'));
  });
  afterEach(async () => sb.cleanup());

  it('kills a training that sleeps past its limit (no process left), retries it, then fails it with reason timeout', async () => {
    const marker = `retrain-timeout-marker-${process.pid}-${Date.now()}`;
    const r = await runCli(
      [
        'run',
        ...syntheticRun('BTCUSDT', '20260110', fakeRecipe),
        '--var',
        'sleep=120',
        '--var',
        `marker=${marker}`,
        '--timeout-minutes',
        '0.06',
        '--retries',
        '1',
      ],
      sb.env,
    );
    expect(r.code).toBe(1);
    const e = status(sb, '20260110').BTCUSDT;
    expect(e).toMatchObject({ status: 'failed', reason: 'timeout', attempts: 2 });
    expect(e.error.type).toBe('TimeoutError');
    expect(e.history.map((h: { outcome: string }) => h.outcome)).toEqual(['retrying', 'failed']);
    expect(processesWith(marker)).toEqual([]);
    const summary = JSON.parse(
      readFileSync(join(sb.home, 'store/summary/20260110Z/engine_summary.json'), 'utf8'),
    );
    expect(summary).toMatchObject({
      failed: 1,
      succeeded: 0,
      by_symbol: { BTCUSDT: { status: 'failed', reason: 'timeout' } },
    });
  });

  it('retries with growing, jittered delays: failing twice then passing ends success with attempts 3', async () => {
    const runOnce = async (date: string) => {
      const counter = join(sb.home, `counter-${date}`);
      const r = await runCli(
        [
          'run',
          ...syntheticRun('ETHUSDT', date, fakeRecipe),
          '--var',
          `counter=${counter}`,
          '--var',
          'fail_until=2',
        ],
        { ...sb.env, RETRAIN_BACKOFF_MS: '1000' },
      );
      expect(r.code, r.stderr).toBe(0);
      const e = status(sb, date).ETHUSDT;
      expect(e).toMatchObject({ status: 'success', attempts: 3 });
      expect(e.history.map((h: { outcome: string }) => h.outcome)).toEqual([
        'retrying',
        'retrying',
        'success',
      ]);
      return retryDelays(e);
    };
    const a = await runOnce('20260110');
    const b = await runOnce('20260111');
    for (const d of [a, b]) {
      // attempt 1 waits 1000·U(0.75,1.25), attempt 2 waits 2000·U(0.75,1.25) (+ scheduling slack)
      expect(d[0]).toBeGreaterThanOrEqual(700);
      expect(d[1]).toBeGreaterThan(d[0]!);
      expect(d[1]).toBeGreaterThanOrEqual(1450);
    }
    expect(a).not.toEqual(b);
  });

  it('a second run of the same date skips successes; --force retrains them; failures are retried', async () => {
    const args = [
      'run',
      '--symbols',
      'BTCUSDT,ETHUSDT',
      '--date',
      '20260110',
      '--ensure-features',
      '--synthetic',
      '--recipe',
      fakeRecipe,
    ];
    const first = await runCli(args, sb.env);
    expect(first.code, first.stderr).toBe(0);
    const second = await runCli(args, sb.env);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain('0 to train, 2 skipped');
    expect(second.stdout).toMatch(/BTCUSDT already succeeded for 20260110/);
    expect(status(sb, '20260110').BTCUSDT.history).toHaveLength(1);

    const forced = await runCli([...args, '--force'], sb.env);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stdout).toContain('2 to train, 0 skipped');
    const s = status(sb, '20260110');
    expect(s.BTCUSDT.history).toHaveLength(2);
    expect(s.ETHUSDT).toMatchObject({ status: 'success' });
  });

  it('a failed symbol is trained again by the next run of the date', async () => {
    const counter = join(sb.home, 'counter');
    const args = [
      'run',
      ...syntheticRun('SOLUSDT', '20260110', fakeRecipe),
      '--retries',
      '0',
      '--var',
      `counter=${counter}`,
      '--var',
      'fail_until=1',
    ];
    const first = await runCli(args, sb.env);
    expect(first.code).toBe(1);
    expect(status(sb, '20260110').SOLUSDT).toMatchObject({ status: 'failed', reason: 'recipe_failed' });
    const second = await runCli(args, sb.env);
    expect(second.code, second.stderr).toBe(0);
    const e = status(sb, '20260110').SOLUSDT;
    expect(e.status).toBe('success');
    expect(e.history.map((h: { outcome: string }) => h.outcome)).toEqual(['failed', 'success']);
  });

  it('a symbol without features is skipped with reason no_data before anything runs', async () => {
    const r = await runCli(
      ['run', '--symbols', 'BTCUSDT', '--date', '20260110', '--recipe', fakeRecipe],
      sb.env,
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/skip BTCUSDT: .*no features/);
    expect(status(sb, '20260110').BTCUSDT).toMatchObject({
      status: 'skipped',
      reason: 'no_data',
      attempts: 0,
    });
  });
});
