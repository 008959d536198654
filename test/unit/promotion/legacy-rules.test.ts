import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { storeMarketDay } from '../../../src/data/market.js';
import { generateOhlcv } from '../../../src/data/synthetic.js';
import { decideWithRules, PromotionRulesSchema } from '../../../src/promotion/custom.js';
import { promoteCandidate, type PromoteOptions } from '../../../src/promotion/guard.js';
import type { ProductionManifest } from '../../../src/promotion/manifest.js';
import { keys } from '../../../src/storage/layout.js';
import { LocalStore } from '../../../src/storage/local.js';

const SYM = 'BTCUSDT';
const metrics = (directionalHitRate: number, maxDrawdown: number, more: Record<string, number> = {}) => ({
  directionalHitRate,
  maxDrawdown,
  sharpe: 1.1,
  net_bps_after_costs: 4.2,
  n_train: 1000,
  n_test: 200,
  ...more,
});

describe('guard: legacy production, synthetic data, configured rules', () => {
  let root: string;
  let store: LocalStore;
  let clock: number;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'guard-legacy-'));
    store = new LocalStore(root);
    clock = Date.UTC(2026, 0, 16, 0, 30, 0);
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  async function putCandidate(date: string, m: unknown) {
    await store.putBytes(keys.candidate(SYM, date, 'model.bin'), `model-${date}`);
    await store.putBytes(keys.candidate(SYM, date, 'metrics.json'), JSON.stringify(m));
  }
  const run = (date: string, over: Partial<PromoteOptions> = {}) =>
    promoteCandidate({
      store,
      symbol: SYM,
      date,
      jobId: `train__${SYM}__${date}`,
      mode: 'auto',
      canary: false,
      maxDrawdownTolerance: 1.1,
      now: () => new Date((clock += 1000)),
      ...over,
    });
  async function putLegacy(dir: string, m: unknown) {
    await store.putBytes(`models/production/${dir}/model.bin`, 'legacy-model');
    await store.putBytes(`models/production/${dir}/metrics.json`, JSON.stringify(m));
  }

  for (const dir of ['btcusdt', 'BtcUsdt', 'BTCUSDT']) {
    it(`a seeds-layout production in models/production/${dir}/ is compared with, kept, then archived`, async () => {
      await putLegacy(dir, { status: 'ok', ...metrics(0.6, 0.1) });
      await putCandidate('20260115', metrics(0.55, 0.1));
      const kept = await run('20260115');
      expect(kept).toMatchObject({
        decision: 'reject',
        rule: 'lower_hit_rate',
        promoted: false,
        legacyProduction: `models/production/${dir}/`,
      });
      expect(await store.exists(keys.production(SYM, 'manifest.json'))).toBe(false);

      await putCandidate('20260116', metrics(0.65, 0.1));
      const won = await run('20260116');
      expect(won).toMatchObject({ decision: 'promote', rule: 'higher_hit_rate', promoted: true });
      const history = keys.productionHistory(SYM, won.historyStamp!, 'model.bin');
      expect((await store.getBytes(history)).toString()).toBe('legacy-model');
      const m = await store.getJson<ProductionManifest>(keys.production(SYM, 'manifest.json'));
      expect(m).toMatchObject({
        jobId: 'train__BTCUSDT__20260116',
        replaced: null,
        history: `models/production/BTCUSDT/history/${won.historyStamp}/`,
      });
      // From now on the manifest is production: the legacy folder is no longer read.
      await putCandidate('20260117', metrics(0.62, 0.1));
      expect(await run('20260117')).toMatchObject({ decision: 'reject', rule: 'lower_hit_rate' });
      expect((await run('20260117')).legacyProduction).toBeUndefined();
    });
  }

  it('synthetic market data for the date: auto is downgraded to dry with synthetic_data', async () => {
    const bars = generateOhlcv(SYM, '20260115', { lookbackDays: 1 });
    await storeMarketDay(store, SYM, '20260115', bars, { source: 'synthetic' });
    await putCandidate('20260115', metrics(0.55, 0.1));
    const r = await run('20260115');
    expect(r).toMatchObject({
      mode: 'dry',
      requestedMode: 'auto',
      downgradedBy: 'synthetic_data',
      dataSource: 'synthetic',
      decision: 'promote',
      promoted: false,
    });
    expect(r.reason).toMatch(/not published: trained on synthetic data/);
    expect(await store.exists(keys.production(SYM, 'manifest.json'))).toBe(false);
    // The spec's flag alone is enough (features built from a window holding synthetic days).
    await putCandidate('20260116', metrics(0.55, 0.1));
    expect(await run('20260116', { syntheticData: true })).toMatchObject({
      mode: 'dry',
      downgradedBy: 'synthetic_data',
    });
    // Canary says so first.
    expect(await run('20260116', { canary: true })).toMatchObject({ mode: 'dry', downgradedBy: 'canary' });
  });

  it('configured rules: floors stop a first model, the comparison names its rule', async () => {
    const rules = PromotionRulesSchema.parse({
      floors: ['net_bps_after_costs > 0', { metric: 'directionalHitRate', op: '>', value: 0.5 }],
      compare: [{ metric: 'sharpe', direction: 'higher', tolerance: 0.1 }],
    });
    await putCandidate('20260115', metrics(0.55, 0.1, { net_bps_after_costs: -1 }));
    expect(await run('20260115', { rules })).toMatchObject({
      decision: 'reject',
      rule: 'floor:net_bps_after_costs>0',
      rulesVersion: 'custom',
    });
    await putCandidate('20260115', metrics(0.55, 0.1));
    expect(await run('20260115', { rules })).toMatchObject({ decision: 'promote', rule: 'no_production' });
    await putCandidate('20260116', metrics(0.5, 0.3, { sharpe: 1.5 }));
    expect(await run('20260116', { rules })).toMatchObject({
      decision: 'reject',
      rule: 'floor:directionalHitRate>0.5',
    });
    await putCandidate('20260117', metrics(0.52, 0.3, { sharpe: 1.5 }));
    expect(await run('20260117', { rules })).toMatchObject({ decision: 'promote', rule: 'compare:sharpe' });
  });
});

describe('decideWithRules', () => {
  const rules = (r: unknown) => PromotionRulesSchema.parse(r);
  const p = metrics(0.55, 0.1, { sharpe: 1 });

  it('goes down the list while metrics are within tolerance', () => {
    const r = rules({
      compare: [
        { metric: 'sharpe', direction: 'higher', tolerance: 0.2 },
        { metric: 'maxDrawdown', direction: 'lower', tolerance: 0.01 },
      ],
    });
    expect(decideWithRules(metrics(0.5, 0.05, { sharpe: 1.1 }), p, r, 1.1)).toMatchObject({
      decision: 'promote',
      rule: 'compare:maxDrawdown',
    });
    expect(decideWithRules(metrics(0.5, 0.2, { sharpe: 1.1 }), p, r, 1.1)).toMatchObject({
      decision: 'reject',
      rule: 'compare:maxDrawdown',
    });
    expect(decideWithRules(metrics(0.5, 0.105, { sharpe: 0.9 }), p, r, 1.1)).toMatchObject({
      decision: 'reject',
      rule: 'no_improvement',
    });
    expect(decideWithRules(metrics(0.5, 0.5, { sharpe: 0.7 }), p, r, 1.1)).toMatchObject({
      decision: 'reject',
      rule: 'compare:sharpe',
    });
  });

  it('without compare, rules v1 decide after the floors', () => {
    const r = rules({ floors: ['sharpe >= 0.5'] });
    expect(decideWithRules(metrics(0.6, 0.1), p, r, 1.1)).toMatchObject({ rule: 'higher_hit_rate' });
    expect(decideWithRules(metrics(0.6, 0.1, { sharpe: 0.4 }), p, r, 1.1)).toMatchObject({
      decision: 'reject',
      rule: 'floor:sharpe>=0.5',
    });
  });

  it('a metric the candidate lacks fails its floor', () => {
    const r = rules({ floors: ['calmar > 1'] });
    expect(decideWithRules(metrics(0.6, 0.1), null, r, 1.1)).toMatchObject({
      decision: 'reject',
      rule: 'floor:calmar>1',
      reason: 'candidate has no numeric calmar (floor calmar > 1)',
    });
  });
});
