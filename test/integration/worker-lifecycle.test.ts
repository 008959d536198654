import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import {
  fakeRecipe,
  runCli,
  sandbox,
  startWorker,
  syntheticRun,
  type Sandbox,
  type WorkerProc,
} from '../helpers/harness.js';
import { importMarketData } from '../helpers/marketData.js';

const DATE = '20260110';

async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 30_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function ledgerEntry(sb: Sandbox, symbol: string) {
  return sb.redis.hget(`${sb.prefix}:ledger:${DATE}`, symbol).then((v) => (v ? JSON.parse(v) : undefined));
}

describe('worker lifecycle: a training survives its worker', () => {
  let sb: Sandbox;
  const workers: WorkerProc[] = [];
  beforeEach(async () => {
    // Short locks so a killed worker's job is picked up within seconds.
    sb = await sandbox(inject('redisUrl'), {
      RETRAIN_LOCK_DURATION_MS: '2000',
      RETRAIN_STALLED_INTERVAL_MS: '1000',
    });
  });
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop()));
    await sb.cleanup();
  });

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`${signal} to the worker mid-training: the next worker reattaches to the same process, no restart`, async () => {
      const events = join(sb.home, 'events.txt');
      const enq = await runCli(
        [
          'enqueue',
          ...syntheticRun('BTCUSDT', DATE, fakeRecipe),
          '--var',
          'sleep=6',
          '--var',
          `events=${events}`,
        ],
        sb.env,
      );
      expect(enq.code, enq.stderr).toBe(0);
      const first = startWorker(sb.env);
      workers.push(first);
      await waitFor('the training to start', () => existsSync(events) || undefined);
      const pid = await waitFor('the remote pid', async () => {
        const e = await ledgerEntry(sb, 'BTCUSDT');
        return e?.state === 'EXECUTING' ? true : undefined;
      });
      expect(pid).toBe(true);
      const exited = new Promise<number | null>((r) => first.proc.once('exit', (code) => r(code)));
      first.proc.kill(signal);
      const code = await exited;
      if (signal === 'SIGTERM') {
        expect(code).toBe(0);
        expect(first.output()).toContain('handed back on shutdown');
      }
      const second = startWorker(sb.env);
      workers.push(second);
      const entry = await waitFor('success', async () => {
        const e = await ledgerEntry(sb, 'BTCUSDT');
        return e?.status === 'success' ? e : undefined;
      });
      // One attempt, one training process: reattached, not restarted.
      expect(entry.attempts).toBe(1);
      expect(entry.history).toHaveLength(1);
      const marks = readFileSync(events, 'utf8').trim().split('\n');
      expect(marks.filter((m) => m.startsWith('start'))).toHaveLength(1);
      expect(marks.filter((m) => m.startsWith('end'))).toHaveLength(1);
      expect(second.output()).toContain('resuming at EXECUTING');
      const summaryPath = join(sb.home, 'store/summary', `${DATE}Z`, 'engine_summary.json');
      const summary = await waitFor('the summary', () =>
        existsSync(summaryPath) ? JSON.parse(readFileSync(summaryPath, 'utf8')) : undefined,
      );
      expect(summary).toMatchObject({ succeeded: 1, failed: 0 });
    });
  }

  it('status and promote commands read what the run wrote', async () => {
    // promote --mode auto publishes only models trained on real (imported) market data.
    await importMarketData(sb.home, sb.env, 'BTCUSDT', DATE);
    await importMarketData(sb.home, sb.env, 'ETHUSDT', DATE);
    const r = await runCli(
      ['run', '--symbols', 'BTCUSDT,ETHUSDT', '--date', DATE, '--ensure-features', '--recipe', fakeRecipe],
      sb.env,
    );
    expect(r.code, r.stderr).toBe(0);
    const st = await runCli(['status', '--date', DATE, '--json'], sb.env);
    expect(st.code).toBe(0);
    const parsed = JSON.parse(st.stdout);
    expect(Object.keys(parsed.symbols).sort()).toEqual(['BTCUSDT', 'ETHUSDT']);
    expect(parsed.symbols.BTCUSDT.status).toBe('success');
    const table = await runCli(['status'], sb.env);
    expect(table.stdout).toMatch(/ledger for 20260110/);
    expect(table.stdout).toMatch(/ETHUSDT.*success/);

    const dry = await runCli(['promote', '--symbol', 'BTCUSDT', '--date', DATE, '--mode', 'dry'], sb.env);
    expect(dry.code, dry.stderr).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ decision: 'promote', promoted: false });
    expect(existsSync(join(sb.home, 'store/models/production/BTCUSDT/manifest.json'))).toBe(false);
    const auto = await runCli(['promote', '--symbol', 'BTCUSDT', '--date', DATE, '--mode', 'auto'], sb.env);
    expect(JSON.parse(auto.stdout)).toMatchObject({ decision: 'promote', promoted: true });
    expect(existsSync(join(sb.home, 'store/models/production/BTCUSDT/manifest.json'))).toBe(true);
    const bad = await runCli(['promote', '--symbol', 'BTC/../x', '--date', DATE, '--mode', 'auto'], sb.env);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
  }, 180_000);
});
