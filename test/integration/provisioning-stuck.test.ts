/**
 * A run stuck in PROVISIONING alerts on Telegram, end to end through the CLI: the Vast simulator
 * over real HTTP holding every instance in `loading`, the workers' repeatable check every second,
 * the real Redis and the local HTTP stand-in for Telegram.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { fakeRecipe } from '../helpers/harness.js';
import { startTelegramStandIn, type TelegramStandIn } from '../helpers/telegramStandIn.js';
import { startVastWorld, vastRun, type VastWorld } from '../helpers/vastWorld.js';

const DATE = '20260112';
const TOKEN = '555666777:AAH-stuck-integration-token_0123456789';

let world: VastWorld | undefined;
let api: TelegramStandIn | undefined;

afterEach(async () => {
  await api?.close();
  api = undefined;
  await world?.close();
  world = undefined;
});

/** `stuckSec`: how long in PROVISIONING counts as stuck (a boot that does succeed takes a few s). */
async function run(stuckLoading: boolean, stuckSec = 4) {
  api = await startTelegramStandIn();
  world = await startVastWorld(inject('redisUrl'), {
    env: {
      // Stuck after stuckSec in PROVISIONING; one boot try of 12 s, then the symbol fails.
      RETRAIN_PROVISIONING_STUCK_MIN: String(stuckSec / 60),
      RETRAIN_ALERT_CHECK_SEC: '1',
      RETRAIN_BOOT_DEADLINE_SEC: '12',
      TELEGRAM_TOKEN: TOKEN,
      TELEGRAM_CHAT_ID: '-1001112223334',
      TELEGRAM_API_URL: api.url,
    },
    sim: stuckLoading ? { faults: { stuckLoadingRate: 1 } } : {},
  });
  const file = join(world.sb.home, 'retrain.config.yaml');
  writeFileSync(file, 'vast:\n  maxProvisionTries: 1\n');
  world.sb.env.RETRAIN_CONFIG = file;
  const r = await vastRun(world.sb.env, {
    symbols: ['BTCUSDT'],
    date: DATE,
    recipe: fakeRecipe,
    extra: ['--retries', '0', '--var', 'sleep=0.2'],
  });
  // The completion summary is the last message: everything before it has been sent.
  const engine = readFileSync(join(world.sb.home, 'logs', `${DATE}Z`, 'engine.log'), 'utf8');
  return { r, texts: api.texts(), engine };
}

describe('a job stuck in PROVISIONING', () => {
  it('past its deadline: exactly one Telegram alert naming the symbol, the run and how long, and one provisioning.stuck event', async () => {
    const { r, texts, engine } = await run(true);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const alerts = texts.filter((t) => t.includes('stuck in PROVISIONING'));
    expect(alerts, texts.join('\n---\n')).toHaveLength(1);
    const [alert] = alerts;
    expect(alert).toMatch(
      /^retrain run 20260112-1 \(2026-01-12\): BTCUSDT stuck in PROVISIONING for \d+ s$/m,
    );
    expect(alert).toMatch(/limit 4 s; vast instance \d+; attempt 1; job train__BTCUSDT__20260112/);
    expect(alert).not.toContain(TOKEN);
    const events = engine
      .split('\n')
      .filter((l) => l.includes('"event":"provisioning.stuck"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ symbol: 'BTCUSDT', runId: '20260112-1', attempt: 1, limitSec: 4 });
    expect(events[0]!.stuckSec as number).toBeGreaterThanOrEqual(4);
    expect(engine).not.toContain(TOKEN);
    // The symbol then failed its one boot try as usual.
    expect(texts.some((t) => t.includes('BTCUSDT failed'))).toBe(true);
  }, 150_000);

  it('provisioned in time: no alert', async () => {
    // A limit a normal boot stays under even on a loaded machine.
    const { r, texts, engine } = await run(false, 15);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(texts.some((t) => t.includes('finished'))).toBe(true);
    expect(texts.filter((t) => t.includes('stuck in PROVISIONING'))).toEqual([]);
    expect(engine).not.toContain('provisioning.stuck');
  }, 150_000);
});
