import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { fakeRecipe, runCli, sandbox, type Sandbox } from '../helpers/harness.js';
import { startTelegramStandIn, type StandInMode, type TelegramStandIn } from '../helpers/telegramStandIn.js';

const TOKEN = '987654321:AAH-integration-secret-token_0123456789';
const CHAT = '-1009876543210';
const SYMBOLS = ['BTCUSDT', 'ETHUSDT', 'SOLUSDT'];

/** Every file under logs/ (engine.log, training logs), concatenated. */
function allLogs(home: string): string {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(readFileSync(p, 'utf8'));
    }
  };
  walk(join(home, 'logs'));
  return out.join('\n');
}

const statuses = (sb: Sandbox, date: string): Record<string, { status: string; reason?: string }> =>
  JSON.parse(readFileSync(join(sb.home, 'store', `runs/${date}Z/status.json`), 'utf8')).symbols;

/**
 * Three symbols, one at a time, no retries, sharing one attempt counter of which the first attempt
 * fails: exactly one symbol (the first to train) fails with recipe_failed, the other two succeed.
 */
function runArgs(sb: Sandbox, date: string): string[] {
  return [
    'run',
    '--symbols',
    SYMBOLS.join(','),
    '--date',
    date,
    '--ensure-features',
    '--synthetic',
    '--recipe',
    fakeRecipe,
    '--mode',
    'sequential',
    '--retries',
    '0',
    '--var',
    `counter=${join(sb.home, `counter-${date}`)}`,
    '--var',
    'fail_until=1',
  ];
}

const telegramEnv = (api: TelegramStandIn) => ({
  TELEGRAM_TOKEN: TOKEN,
  TELEGRAM_CHAT_ID: CHAT,
  TELEGRAM_API_URL: api.url,
});

describe('Telegram alerts through the real CLI', () => {
  let sb: Sandbox;
  let api: TelegramStandIn | undefined;
  beforeEach(async () => {
    sb = await sandbox(inject('redisUrl'));
  });
  afterEach(async () => {
    await api?.close();
    api = undefined;
    await sb.cleanup();
  });

  it('sends a start message, a failure alert and a completion summary with the right counts; the token is never logged', async () => {
    api = await startTelegramStandIn();
    const date = '20260110';
    const r = await runCli(runArgs(sb, date), { ...sb.env, ...telegramEnv(api) });
    expect(r.code, r.stderr + r.stdout).toBe(1);
    const st = statuses(sb, date);
    const failed = SYMBOLS.filter((s) => st[s]!.status === 'failed');
    expect(failed).toHaveLength(1);
    expect(SYMBOLS.filter((s) => st[s]!.status === 'success')).toHaveLength(2);
    const bad = failed[0]!;

    for (const req of api.requests) {
      expect(req.method).toBe('POST');
      expect(req.path).toBe(`/bot${TOKEN}/sendMessage`);
      expect(req.body.chat_id).toBe(CHAT);
    }
    const [start, failure, done, ...rest] = api.texts();
    expect(rest).toEqual([]);
    expect(start).toBe(
      [
        'retrain run 20260110-1 started (2026-01-10)',
        '3 symbols: 3 to train, 0 skipped',
        'mode sequential (at most 1 at once), driver local, promotion off',
      ].join('\n'),
    );
    expect(failure).toMatch(
      new RegExp(`^retrain run 20260110-1 \\(2026-01-10\\): ${bad} failed\\n${bad}: recipe_failed — .+$`),
    );
    expect(done!.split('\n').slice(0, 2)).toEqual([
      'retrain run 20260110-1 finished (2026-01-10)',
      '2 succeeded, 1 failed, 0 skipped (of 3)',
    ]);
    expect(done).toMatch(/\nwall time \d+\.\d min, cost \$0\.00\npromoted: none\nfailed:\n/);
    expect(done!.endsWith(`\n${bad} (recipe_failed)`)).toBe(true);

    const logs = allLogs(sb.home);
    expect(logs).toContain('coin_failed');
    for (const text of [r.stdout, r.stderr, logs]) {
      expect(text).not.toContain(TOKEN);
      expect(text).not.toContain('/bot');
    }
  });

  it('`retrain enqueue` (no workers) still gets its start message out before it exits', async () => {
    api = await startTelegramStandIn();
    const r = await runCli(
      [
        'enqueue',
        '--symbols',
        'BTCUSDT,ETHUSDT',
        '--date',
        '20260111',
        '--ensure-features',
        '--synthetic',
        '--recipe',
        fakeRecipe,
      ],
      { ...sb.env, ...telegramEnv(api) },
    );
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(api.texts()).toEqual([
      [
        'retrain run 20260111-1 started (2026-01-11)',
        '2 symbols: 2 to train, 0 skipped',
        'mode hybrid (at most 2 at once), driver local, promotion off',
      ].join('\n'),
    ]);
    expect(r.stdout + r.stderr).not.toContain(TOKEN);
  });

  it('a Bot API answering 500, or 429 with retry_after=30, neither changes the result nor slows the run', async () => {
    const timed = async (date: string, mode?: StandInMode) => {
      const stub = mode ? await startTelegramStandIn(mode) : undefined;
      api = stub;
      const t0 = performance.now();
      const r = await runCli(runArgs(sb, date), { ...sb.env, ...(stub ? telegramEnv(stub) : {}) });
      const ms = performance.now() - t0;
      // From the run's end (the finalize processor's job_completed event) to the process exit:
      // where pending messages are flushed; short, so much less noisy than the whole wall time.
      const completed = readFileSync(join(sb.home, 'logs', `${date}Z`, 'engine.log'), 'utf8')
        .split('\n')
        .find((l) => l.includes('"event":"job_completed"'));
      const tailMs = Date.now() - Date.parse(JSON.parse(completed!).time);
      const st = statuses(sb, date);
      const outcome = SYMBOLS.map((s) => st[s]!.status)
        .sort()
        .join(',');
      const requests = stub?.requests.length ?? 0;
      await stub?.close();
      api = undefined;
      return { r, ms, tailMs, outcome, requests };
    };
    // Whole-process wall times on a shared 2-core machine vary by seconds from run to run, so the
    // modes are interleaved over two rounds and each is judged by its best run.
    const modes: (StandInMode | undefined)[] = [undefined, { kind: '500' }, { kind: '429', retryAfter: 30 }];
    const runs: Awaited<ReturnType<typeof timed>>[][] = [[], [], []];
    let day = 12;
    for (let round = 0; round < 2; round++) {
      for (const [i, mode] of modes.entries()) runs[i]!.push(await timed(`202601${day++}`, mode));
    }
    const best = runs.map((rs) => Math.min(...rs.map((x) => x.ms)));
    const bestTail = runs.map((rs) => Math.min(...rs.map((x) => x.tailMs)));
    const show = (f: (x: (typeof runs)[0][0]) => number) =>
      runs.map((rs) => rs.map((x) => f(x).toFixed(0)).join('/')).join(' | ');
    console.log(
      `wall ms (no Telegram | 500 | 429): ${show((x) => x.ms)}; end to exit: ${show((x) => x.tailMs)}`,
    );
    for (const run of runs.flat()) {
      expect(run.r.code, run.r.stderr + run.r.stdout).toBe(1);
      expect(run.outcome).toBe('failed,success,success');
    }
    const [, down, limited] = runs;
    // Telegram was really tried; under the 429 nothing was sent again before retry_after passed.
    for (const run of down!) expect(run.requests).toBeGreaterThanOrEqual(1);
    for (const run of limited!) expect(run.requests).toBe(1);
    // Identical runs' wall times fall on two levels about a second apart (2.3 or 3.3 s seen in one
    // suite run), so the whole run gets that step of slack; waiting on a 429's retry_after would
    // cost 30 s, on the 500's retries seconds. The end-to-exit tail has no such step.
    expect(best[1]! - best[0]!).toBeLessThan(1500);
    expect(best[2]! - best[0]!).toBeLessThan(1500);
    expect(bestTail[1]! - bestTail[0]!).toBeLessThan(1000);
    expect(bestTail[2]! - bestTail[0]!).toBeLessThan(1000);

    const logs = allLogs(sb.home);
    expect(logs).toContain('telegram: 3 message(s) not sent before shutdown');
    expect(logs).not.toContain(TOKEN);
    for (const run of runs.flat()) expect(run.r.stdout + run.r.stderr).not.toContain(TOKEN);
  });
});
