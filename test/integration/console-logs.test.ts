/**
 * `retrain logs` against real Redis and the local store: a finished symbol's stored log, a failed
 * one's attempt log, and a training under way followed live from another process (the worker is a
 * process of its own, as on another machine).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { Ledger } from '../../src/ledger/ledger.js';
import { LocalStore } from '../../src/storage/index.js';
import {
  BIN,
  fakeRecipe,
  REPO,
  runCli,
  sandbox,
  startWorker,
  syntheticRun,
  type Sandbox,
  type WorkerProc,
} from '../helpers/harness.js';

const DATE = '20260112';

describe('retrain logs', () => {
  let sb: Sandbox;
  let worker: WorkerProc | undefined;
  afterEach(async () => {
    await worker?.stop();
    worker = undefined;
    await sb?.cleanup();
  });

  const ledger = () =>
    new Ledger({ redis: sb.redis, prefix: sb.prefix, store: new LocalStore(join(sb.home, 'store')) });
  const run = (symbol: string, extra: string[]) =>
    runCli(['run', ...syntheticRun(symbol, DATE, fakeRecipe), ...extra], sb.env);

  it("prints a finished symbol's kept log, and a failed symbol's last attempt", async () => {
    sb = await sandbox(inject('redisUrl'));
    const ok = await run('BTCUSDT', ['--var', 'lines=4']);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    const bad = await run('ETHUSDT', [
      '--retries',
      '1',
      '--var',
      `counter=${join(sb.home, 'eth-counter')}`,
      '--var',
      'fail_until=5',
    ]);
    expect(bad.code).toBe(1);

    const done = await runCli(['logs', 'BTCUSDT', '--date', DATE], sb.env);
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout.split('\n').filter((l) => /^line \d$/.test(l))).toEqual([
      'line 1',
      'line 2',
      'line 3',
      'line 4',
    ]);
    expect(done.stdout).toContain('done');
    expect(done.stderr).toContain('attempt 1 (success)');

    // Without --date: the most recent date that has the symbol. The failed symbol's last attempt.
    const failed = await runCli(['logs', 'ETHUSDT'], sb.env);
    expect(failed.code, failed.stderr).toBe(0);
    expect(failed.stdout).toContain('attempt 2: failing on purpose');
    expect(failed.stderr).toContain('attempt 2 (failed)');
    const first = await runCli(['logs', 'ETHUSDT', '--attempt', '1'], sb.env);
    expect(first.stdout).toContain('attempt 1: failing on purpose');
    expect(first.stdout).not.toContain('attempt 2');

    const none = await runCli(['logs', 'SOLUSDT', '--date', DATE], sb.env);
    expect(none.code).toBe(2);
    expect(none.stderr.trim()).toBe(`retrain: SOLUSDT has no ledger entry for ${DATE}`);
    const badAttempt = await runCli(['logs', 'BTCUSDT', '--attempt', 'x'], sb.env);
    expect(badAttempt.code).toBe(2);
  }, 180_000);

  it("--follow prints a running training's lines as they come, from another process, and ends with it", async () => {
    sb = await sandbox(inject('redisUrl'));
    const enq = await runCli(
      ['enqueue', ...syntheticRun('SOLUSDT', DATE, fakeRecipe), '--var', 'lines=8', '--var', 'sleep=16'],
      sb.env,
    );
    expect(enq.code, enq.stderr).toBe(0);
    worker = startWorker(sb.env);
    const l = ledger();
    const end = Date.now() + 60_000;
    while ((await l.getEntry(DATE, 'SOLUSDT'))?.state !== 'EXECUTING' && Date.now() < end)
      await new Promise((r) => setTimeout(r, 100));
    expect((await l.getEntry(DATE, 'SOLUSDT'))?.state, worker.output()).toBe('EXECUTING');

    const child = spawn(process.execPath, [BIN, 'logs', 'SOLUSDT', '--date', DATE, '--follow'], {
      env: sb.env,
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    /** When each `line N` arrived. */
    const seen: { line: string; at: number }[] = [];
    child.stdout.on('data', (d: Buffer) => {
      out += d;
      for (const m of d.toString().matchAll(/^line \d+$/gm)) seen.push({ line: m[0], at: Date.now() });
    });
    child.stderr.on('data', (d) => (err += d));
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    const entry = await l.getEntry(DATE, 'SOLUSDT');
    expect(code, out + err).toBe(0);
    expect(entry?.status).toBe('success');
    expect(seen.map((s) => s.line)).toEqual(Array.from({ length: 8 }, (_, i) => `line ${i + 1}`));
    expect(out).toContain('done');
    expect(err).toContain('SOLUSDT ended: success');
    // Live, not a replay at the end: lines came while the training ran, spread over its seconds
    // (one every 2 s), not all at once when it ended.
    // When the worker recorded the end: the ledger's own timestamp (same machine clock), so a
    // follower that exits quickly cannot slip between two polls of ours.
    const endedAt = Date.parse(entry?.endedAt ?? '');
    expect(endedAt).toBeGreaterThan(0);
    expect(seen[0]!.at).toBeLessThan(endedAt);
    expect(seen.at(-1)!.at - seen[0]!.at).toBeGreaterThan(1000);
  }, 180_000);
});
