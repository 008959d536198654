/**
 * A train job stuck in PROVISIONING: the decision (src/train/stuck.ts), the claim that makes it one
 * alert per attempt (real Redis), and the message (through the real notifier to the local HTTP
 * stand-in for Telegram).
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { createNotifier, formatProvisioningStuck } from '../../../src/notify/index.js';
import { humanDuration } from '../../../src/notify/format.js';
import {
  claimStuckAlert,
  HOST_PROVISION_LIMIT_SEC,
  provisioningLimitSec,
  provisioningStuck,
  stuckClaimKey,
  type StuckProvisioning,
} from '../../../src/train/stuck.js';
import type { TrainJobData, TrainState } from '../../../src/train/types.js';
import { startTelegramStandIn, type TelegramStandIn } from '../../helpers/telegramStandIn.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const TOKEN = '123456789:AAF-stuck-test-token-do-not-leak_xyz';
const T0 = Date.UTC(2026, 0, 11, 0, 30);

const config = (env: Record<string, string> = {}) =>
  loadConfig({ env: { RETRAIN_HOME: '/tmp/retrain-stuck', ...env }, cwd: '/tmp/nowhere' });

function job(
  o: {
    state?: TrainState;
    driver?: string;
    since?: number | null;
    deadline?: number;
    timeoutMinutes?: number;
    lease?: boolean;
  } = {},
): TrainJobData {
  const since = o.since === undefined ? T0 : o.since;
  return {
    runId: '20260110-1',
    attempt: 2,
    state: o.state ?? 'PROVISIONING',
    spec: {
      symbol: 'BTCUSDT',
      date: '20260110',
      jobId: 'train__BTCUSDT__20260110',
      driver: o.driver ?? 'vast',
      timeoutMinutes: o.timeoutMinutes ?? 45,
    } as TrainJobData['spec'],
    facts: {
      ...(since !== null ? { stateSince: new Date(since).toISOString() } : {}),
      ...(o.deadline !== undefined ? { deadline: o.deadline } : {}),
      ...(o.lease
        ? {
            lease: {
              driver: 'vast' as const,
              id: '4242',
              host: '',
              workRoot: '/root/retrain',
              acquiredAt: new Date(T0).toISOString(),
              hourlyCostUsd: 0.3,
            },
          }
        : {}),
    },
  };
}
const at = (sec: number) => new Date(T0 + sec * 1000);

describe('provisioningStuck: the decision', () => {
  it('vast: the limit is bootDeadlineSec x maxProvisionTries plus a minute, the derived default', () => {
    const c = config();
    expect(provisioningLimitSec(c, 'vast')).toBe(600 * 5 + 60);
    expect(provisioningLimitSec(c, 'local')).toBe(HOST_PROVISION_LIMIT_SEC);
    expect(provisioningLimitSec(c, 'ssh')).toBe(HOST_PROVISION_LIMIT_SEC);
    const short = config({ RETRAIN_BOOT_DEADLINE_SEC: '60' });
    // 5 tries x 60 s + 60 s = 6 min; the symbol's 45 min timeout does not bind.
    expect(provisioningStuck(job(), short, at(359))).toBeNull();
    expect(provisioningStuck(job(), short, at(360))).toMatchObject({
      symbol: 'BTCUSDT',
      runId: '20260110-1',
      date: '20260110',
      jobId: 'train__BTCUSDT__20260110',
      attempt: 2,
      driver: 'vast',
      stuckSec: 360,
      limitSec: 360,
    });
  });

  it("is capped by the symbol's own time limit: the attempt's deadline, else its timeout", () => {
    const c = config(); // vast default: 51 min
    expect(provisioningStuck(job(), c, at(44 * 60))).toBeNull();
    expect(provisioningStuck(job(), c, at(45 * 60))).toMatchObject({ limitSec: 45 * 60 });
    // The attempt began 10 min before PROVISIONING: its deadline comes 35 min after.
    const d = job({ deadline: T0 + 35 * 60_000 });
    expect(provisioningStuck(d, c, at(35 * 60 - 1))).toBeNull();
    expect(provisioningStuck(d, c, at(36 * 60))).toMatchObject({ limitSec: 35 * 60, stuckSec: 36 * 60 });
  });

  it('alerts.provisioningStuckMin overrides the derived limit (for every driver)', () => {
    const c = config({ RETRAIN_PROVISIONING_STUCK_MIN: '2' });
    expect(provisioningStuck(job({ driver: 'local' }), c, at(119))).toBeNull();
    expect(provisioningStuck(job({ driver: 'local' }), c, at(120))).toMatchObject({ limitSec: 120 });
    expect(provisioningStuck(job({ driver: 'vast' }), c, at(120))).toMatchObject({ limitSec: 120 });
  });

  it('local and ssh: 5 min', () => {
    const c = config();
    expect(provisioningStuck(job({ driver: 'ssh' }), c, at(299))).toBeNull();
    expect(provisioningStuck(job({ driver: 'ssh' }), c, at(300))).not.toBeNull();
  });

  it('only PROVISIONING counts; no time recorded: not judged; the instance it waits on is named', () => {
    const c = config({ RETRAIN_PROVISIONING_STUCK_MIN: '1' });
    for (const state of ['PENDING', 'TRANSFERRING', 'EXECUTING', 'FAILED'] as TrainState[]) {
      expect(provisioningStuck(job({ state }), c, at(3600))).toBeNull();
    }
    expect(provisioningStuck(job({ since: null }), c, at(3600))).toBeNull();
    expect(provisioningStuck(undefined, c, at(3600))).toBeNull();
    expect(provisioningStuck(job({ lease: true }), c, at(61))?.instance).toBe('4242');
    expect(provisioningStuck(job(), c, at(61))?.instance).toBeUndefined();
  });
});

const stuck = (symbol: string, o: Partial<StuckProvisioning> = {}): StuckProvisioning => ({
  runId: '20260110-1',
  date: '20260110',
  symbol,
  jobId: `train__${symbol}__20260110`,
  attempt: 1,
  driver: 'vast',
  since: '2026-01-11T00:30:00.000Z',
  stuckSec: 3120,
  limitSec: 3060,
  ...o,
});

describe('the alert', () => {
  let api: TelegramStandIn | undefined;
  let redis: Redis | undefined;
  afterEach(async () => {
    await api?.close();
    api = undefined;
    redis?.disconnect();
    redis = undefined;
  });

  it('names the symbol, the run, how long and the limit; several symbols of a run are one message', () => {
    const one = formatProvisioningStuck([stuck('BTCUSDT', { instance: '4242' })]);
    expect(one).toContain('retrain run 20260110-1 (2026-01-10): BTCUSDT stuck in PROVISIONING for 52.0 min');
    expect(one).toContain('limit 51.0 min; vast instance 4242; attempt 1');
    const many = formatProvisioningStuck([stuck('BTCUSDT'), stuck('ETHUSDT', { stuckSec: 45 })]);
    expect(many.split('\n')[0]).toBe('retrain run 20260110-1 (2026-01-10): 2 symbols stuck in PROVISIONING');
    expect(many).toContain('ETHUSDT: 45 s (');
    expect(humanDuration(7200)).toBe('2.0 h');
  });

  it('goes to Telegram once per run of the check, without the token in the text', async () => {
    api = await startTelegramStandIn();
    const c = loadConfig({
      env: { RETRAIN_HOME: '/tmp/retrain-stuck', TELEGRAM_CHAT_ID: '-100123', TELEGRAM_API_URL: api.url },
      cwd: '/tmp/nowhere',
    });
    const notifier = createNotifier(c, { env: { TELEGRAM_TOKEN: TOKEN } });
    notifier.provisioningStuck([
      stuck('BTCUSDT'),
      stuck('ETHUSDT'),
      stuck('SOLUSDT', { runId: '20260110-2' }),
    ]);
    await notifier.flush(5000);
    const texts = api.texts();
    expect(texts).toHaveLength(2);
    expect(texts[0]).toContain('2 symbols stuck in PROVISIONING');
    expect(texts[1]).toContain('retrain run 20260110-2 (2026-01-10): SOLUSDT stuck in PROVISIONING');
    expect(JSON.stringify(api.requests.map((r) => r.body))).not.toContain(TOKEN);
  });

  it('is claimed once per job attempt across concurrent checkers (SET NX with a TTL)', async () => {
    redis = new Redis(REDIS_URL);
    const prefix = `test-stuck-${randomBytes(6).toString('hex')}`;
    const s = stuck('BTCUSDT');
    try {
      const wins = await Promise.all(Array.from({ length: 8 }, () => claimStuckAlert(redis!, prefix, s, 60)));
      expect(wins.filter(Boolean)).toHaveLength(1);
      expect(await claimStuckAlert(redis, prefix, s, 60)).toBe(false);
      const ttl = await redis.ttl(stuckClaimKey(prefix, s));
      expect(ttl).toBeGreaterThan(50);
      expect(ttl).toBeLessThanOrEqual(60);
      // The next attempt of the same job is a new claim.
      expect(await claimStuckAlert(redis, prefix, { ...s, attempt: 2 }, 60)).toBe(true);
    } finally {
      const found = await redis.keys(`${prefix}:*`);
      if (found.length) await redis.del(...found);
    }
  });
});
