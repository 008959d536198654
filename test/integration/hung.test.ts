/** A training that is alive but gives no sign of work is killed after heartbeatStaleMin and retried. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { fakeRecipe, runCli, sandbox, syntheticRun, type Sandbox } from '../helpers/harness.js';
import { startTelegramStandIn } from '../helpers/telegramStandIn.js';
import { processesWith } from '../helpers/vastWorld.js';

const DATE = '20260114';
let sb: Sandbox;
beforeEach(async () => {
  // 3 s of silence is "hung" here (5 min by default).
  sb = await sandbox(inject('redisUrl'), { RETRAIN_HEARTBEAT_STALE_MIN: '0.05' });
});
afterEach(async () => sb.cleanup());

function run(vars: string[], extra: string[] = []) {
  const args = ['run', ...syntheticRun('BTCUSDT', DATE, fakeRecipe)];
  for (const v of vars) args.push('--var', v);
  return runCli([...args, ...extra], sb.env);
}

function entry() {
  return JSON.parse(readFileSync(join(sb.home, 'store/runs', `${DATE}Z`, 'status.json'), 'utf8')).symbols
    .BTCUSDT;
}

describe('hung trainings', () => {
  it('silent with no heartbeat: killed after the stale limit, retried, then failed as hung', async () => {
    const marker = `retrain-hung-${Date.now()}`;
    const events = join(sb.home, 'events.txt');
    const api = await startTelegramStandIn();
    Object.assign(sb.env, {
      TELEGRAM_TOKEN: '123456:hung-test-token',
      TELEGRAM_CHAT_ID: '-100123',
      TELEGRAM_API_URL: api.url,
    });
    const r = await run(['hang=120', `marker=${marker}`, `events=${events}`], ['--retries', '1']).finally(
      () => api.close(),
    );
    expect(r.code).toBe(1);
    expect(entry()).toMatchObject({ status: 'failed', reason: 'hung', attempts: 2 });
    expect(readFileSync(events, 'utf8').match(/^start /gm)).toHaveLength(2);
    expect(processesWith(marker)).toEqual([]);
    const log = readFileSync(join(sb.home, 'logs', `${DATE}Z`, 'engine.log'), 'utf8');
    expect(log).toContain('"event":"training.hung"');
    // Alerted when the first attempt was found hung (then killed and retried), and at the failure.
    const texts = api.texts();
    expect(texts.filter((t) => /BTCUSDT attempt 1 hung; killed, retrying/.test(t))).toHaveLength(1);
    expect(texts.some((t) => /BTCUSDT failed/.test(t) && /hung/.test(t))).toBe(true);
  });

  it('silent but touching $RETRAIN_HEARTBEAT_FILE: left alone and succeeds', async () => {
    const r = await run(['hang=7', 'beat=1']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(entry()).toMatchObject({ status: 'success', attempts: 1 });
  });
});
