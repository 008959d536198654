import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/errors.js';
import { runDateForSlot, slotOf } from '../../../scheduler/slot.js';

describe('a slot plans the UTC day before it', () => {
  it.each([
    ['2026-01-16T00:15:00Z', '20260115'],
    ['2026-01-01T00:15:00Z', '20251231'],
    ['2024-03-01T00:15:00Z', '20240229'],
    ['2025-03-01T00:15:00Z', '20250228'],
    ['2026-07-04T23:59:59Z', '20260703'],
  ])('slot %s → %s', (slot, date) => {
    expect(runDateForSlot(Date.parse(slot))).toBe(date);
  });
});

describe('slotOf', () => {
  it('reads BullMQ prevMillis, else the scheduler job id, never the creation time', () => {
    expect(slotOf({ id: 'x', opts: { prevMillis: 1768522500000 } })).toBe(1768522500000);
    expect(slotOf({ id: 'repeat:daily-retrain:1768522500000', opts: {} })).toBe(1768522500000);
    expect(slotOf({ id: '42', opts: {} })).toBeUndefined();
    expect(slotOf({ id: undefined, opts: { prevMillis: 0 } })).toBeUndefined();
  });
});

describe('schedule config', () => {
  it('defaults to 15 0 * * * UTC, enabled; env overrides the cron and symbols', () => {
    const c = loadConfig({ env: {}, cwd: '/tmp/nowhere' });
    expect(c.schedule).toEqual({
      enabled: true,
      cron: '15 0 * * *',
      tz: 'UTC',
      ensureFeatures: false,
      recheckSec: 60,
    });
    const e = loadConfig({
      env: {
        RETRAIN_SCHEDULE_CRON: '0 2 * * 1-5',
        RETRAIN_SCHEDULE_SYMBOLS: 'top5',
        RETRAIN_SCHEDULE_ENABLED: 'false',
      },
      cwd: '/tmp/nowhere',
    });
    expect(e.schedule).toMatchObject({ cron: '0 2 * * 1-5', symbols: 'top5', enabled: false });
  });
  it.each(['61 0 * * *', '15 0 * *', 'every day', '15 0 * * * * * *'])(
    'refuses the cron %j in one line naming schedule.cron',
    (cron) => {
      const load = () => loadConfig({ env: { RETRAIN_SCHEDULE_CRON: cron }, cwd: '/tmp/nowhere' });
      expect(load).toThrow(ConfigError);
      expect(load).toThrow(/^invalid configuration: schedule\.cron: must be a valid cron pattern/);
    },
  );
  it('accepts a 6-field pattern with seconds (tests) and only UTC', () => {
    expect(
      loadConfig({ env: { RETRAIN_SCHEDULE_CRON: '*/2 * * * * *' }, cwd: '/tmp/nowhere' }).schedule.cron,
    ).toBe('*/2 * * * * *');
    expect(() =>
      loadConfig({ env: {}, cwd: '/tmp/nowhere', overrides: { schedule: { tz: 'Europe/Paris' } } }),
    ).toThrow(/schedule\.tz/);
  });
});
