import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { promoteCandidate, type PromoteOptions, type PromotionResult } from '../../../src/promotion/guard.js';
import { publishProduction, type ProductionManifest } from '../../../src/promotion/publish.js';
import { keys } from '../../../src/storage/layout.js';
import { LocalStore } from '../../../src/storage/local.js';
import { sha256Hex } from '../../../src/util/hash.js';

const SYM = 'BTCUSDT';
const metrics = (directionalHitRate: number, maxDrawdown: number) => ({
  directionalHitRate,
  maxDrawdown,
  sharpe: 1.1,
  net_bps_after_costs: 4.2,
  n_train: 1000,
  n_test: 200,
});

describe('promotion guard', () => {
  let root: string;
  let store: LocalStore;
  let clock: number;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'guard-'));
    store = new LocalStore(root);
    clock = Date.UTC(2026, 0, 16, 0, 30, 0);
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  async function putCandidate(date: string, m: unknown, model = `model-${date}`, metricsText?: string) {
    await store.putBytes(keys.candidate(SYM, date, 'model.bin'), model);
    await store.putBytes(keys.candidate(SYM, date, 'metrics.json'), metricsText ?? JSON.stringify(m));
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
  /** Puts model bytes at a scratch key and returns it (a publish source). */
  async function putModel(bytes: string): Promise<string> {
    const key = `scratch/${sha256Hex(bytes)}/model.bin`;
    await store.putBytes(key, bytes);
    return key;
  }
  const decisionOf = (date: string) =>
    store.getJson<PromotionResult>(keys.candidate(SYM, date, 'decision.json'));
  const productionKeys = () => store.list(keys.productionPrefix(SYM));

  it('first promotion (no production) writes production and a manifest, and no history', async () => {
    await putCandidate('20260115', metrics(0.55, 0.1));
    const r = await run('20260115');
    expect(r).toMatchObject({
      decision: 'promote',
      rule: 'no_production',
      promoted: true,
      mode: 'auto',
      production: null,
    });
    const version = (await store.getJson<ProductionManifest>(keys.production(SYM, 'manifest.json'))).version;
    expect(version).toMatch(/^\d{8}T\d{6}Z$/);
    expect(await productionKeys()).toEqual([
      'models/production/BTCUSDT/manifest.json',
      'models/production/BTCUSDT/metrics.json',
      'models/production/BTCUSDT/model.bin',
      `models/production/BTCUSDT/versions/${version}/metrics.json`,
      `models/production/BTCUSDT/versions/${version}/model.bin`,
    ]);
    expect((await store.getBytes(keys.production(SYM, 'model.bin'))).toString()).toBe('model-20260115');
    const manifest = await store.getJson<ProductionManifest>(keys.production(SYM, 'manifest.json'));
    expect(manifest).toMatchObject({
      symbol: SYM,
      jobId: 'train__BTCUSDT__20260115',
      date: '20260115',
      rule: 'no_production',
      replaced: null,
      history: null,
      metrics: metrics(0.55, 0.1),
    });
    expect(manifest.sha256['model.bin']).toBe(sha256Hex('model-20260115'));
    expect(manifest.sha256['metrics.json']).toBe(
      sha256Hex(await store.getBytes(keys.production(SYM, 'metrics.json'))),
    );
    expect(await decisionOf('20260115')).toEqual(r);
  });

  it('a better candidate moves the old production to history and the manifest names it', async () => {
    await putCandidate('20260115', metrics(0.55, 0.1));
    await run('20260115');
    const first = await store.getJson<ProductionManifest>(keys.production(SYM, 'manifest.json'));

    await putCandidate('20260116', metrics(0.57, 0.105));
    const r = await run('20260116');
    expect(r).toMatchObject({ decision: 'promote', rule: 'higher_hit_rate', promoted: true });
    expect(r.historyStamp).toMatch(/^\d{8}T\d{6}Z$/);
    const stamp = r.historyStamp!;
    expect(await store.list(`${keys.productionPrefix(SYM)}history/`)).toEqual([
      keys.productionHistory(SYM, stamp, 'manifest.json'),
      keys.productionHistory(SYM, stamp, 'metrics.json'),
      keys.productionHistory(SYM, stamp, 'model.bin'),
    ]);
    expect((await store.getBytes(keys.productionHistory(SYM, stamp, 'model.bin'))).toString()).toBe(
      'model-20260115',
    );
    expect(await store.getJson(keys.productionHistory(SYM, stamp, 'manifest.json'))).toEqual(first);
    const manifest = await store.getJson<ProductionManifest>(keys.production(SYM, 'manifest.json'));
    expect(manifest.jobId).toBe('train__BTCUSDT__20260116');
    expect(manifest.replaced).toEqual({ jobId: first.jobId, date: '20260115', sha256: first.sha256 });
    expect(manifest.history).toBe(`models/production/BTCUSDT/history/${stamp}/`);
    expect((await store.getBytes(keys.production(SYM, 'model.bin'))).toString()).toBe('model-20260116');
  });

  it('a worse candidate is rejected and production is unchanged', async () => {
    await putCandidate('20260115', metrics(0.55, 0.1));
    await run('20260115');
    const before = await Promise.all((await productionKeys()).map((k) => store.getBytes(k)));

    await putCandidate('20260116', metrics(0.5, 0.05));
    const r = await run('20260116');
    expect(r).toMatchObject({ decision: 'reject', rule: 'lower_hit_rate', promoted: false });
    expect(r.production).toEqual(metrics(0.55, 0.1));
    const after = await Promise.all((await productionKeys()).map((k) => store.getBytes(k)));
    expect(after).toEqual(before);
    expect(await decisionOf('20260116')).toMatchObject({ decision: 'reject', rule: 'lower_hit_rate' });
  });

  it('the drawdown guard rejects a higher hit rate with too much drawdown', async () => {
    await putCandidate('20260115', metrics(0.55, 0.1));
    await run('20260115');
    await putCandidate('20260116', metrics(0.6, 0.2));
    const r = await run('20260116');
    expect(r).toMatchObject({ decision: 'reject', rule: 'drawdown_guard', promoted: false });
    expect((await store.getBytes(keys.production(SYM, 'model.bin'))).toString()).toBe('model-20260115');
  });

  it('dry decides and writes decision.json only', async () => {
    await putCandidate('20260115', metrics(0.55, 0.1));
    const r = await run('20260115', { mode: 'dry' });
    expect(r).toMatchObject({
      decision: 'promote',
      rule: 'no_production',
      promoted: false,
      mode: 'dry',
      requestedMode: 'dry',
    });
    expect(await productionKeys()).toEqual([]);
    expect(await decisionOf('20260115')).toEqual(r);
  });

  it('canary downgrades auto to dry', async () => {
    await putCandidate('20260115', metrics(0.55, 0.1));
    const r = await run('20260115', { mode: 'auto', canary: true });
    expect(r).toMatchObject({
      decision: 'promote',
      promoted: false,
      mode: 'dry',
      requestedMode: 'auto',
      canary: true,
    });
    expect(await productionKeys()).toEqual([]);
    expect(await store.exists(keys.candidate(SYM, '20260115', 'decision.json'))).toBe(true);
  });

  it('off writes nothing', async () => {
    await putCandidate('20260115', metrics(0.55, 0.1));
    const before = await store.list('');
    const r = await run('20260115', { mode: 'off' });
    expect(r).toMatchObject({
      decision: 'skipped',
      rule: 'promotion_off',
      reason: 'promotion off',
      promoted: false,
      mode: 'off',
    });
    expect(await store.list('')).toEqual(before);
  });

  it('rejects NaN metrics (python json) naming the field, and never promotes', async () => {
    const text =
      '{"directionalHitRate": NaN, "maxDrawdown": 0.1, "sharpe": 1, "net_bps_after_costs": 1, "n_train": 5, "n_test": 5}';
    await putCandidate('20260115', null, 'm', text);
    const r = await run('20260115');
    expect(r).toMatchObject({ decision: 'reject', rule: 'invalid_candidate_metrics', promoted: false });
    expect(r.reason).toMatch(/directionalHitRate/);
    expect(await productionKeys()).toEqual([]);
    expect((await decisionOf('20260115')).reason).toMatch(/directionalHitRate/);
  });

  it.each<[string, string]>([
    ['malformed JSON', '{"directionalHitRate": 0.5'],
    ['a missing field', JSON.stringify({ ...metrics(0.5, 0.1), n_test: undefined })],
    ['an out-of-range field', JSON.stringify(metrics(1.5, 0.1))],
  ])('rejects candidate metrics with %s', async (_label, text) => {
    await putCandidate('20260115', null, 'm', text);
    const r = await run('20260115');
    expect(r).toMatchObject({ decision: 'reject', rule: 'invalid_candidate_metrics', promoted: false });
    expect(await productionKeys()).toEqual([]);
  });

  it('rejects a candidate without model.bin', async () => {
    await store.putJson(keys.candidate(SYM, '20260115', 'metrics.json'), metrics(0.6, 0.1));
    const r = await run('20260115');
    expect(r).toMatchObject({ decision: 'reject', rule: 'missing_candidate', promoted: false });
    expect(await productionKeys()).toEqual([]);
  });

  it('never replaces a production whose metrics cannot be read or verified', async () => {
    // metrics that fail validation (a production published before a rules change, say)
    await publishProduction({
      store,
      symbol: SYM,
      date: '20260110',
      jobId: `train__${SYM}__20260110`,
      rule: 'no_production',
      decidedAt: new Date(clock),
      metrics: metrics(0.5, 0.1),
      metricsBytes: Buffer.from('{"directionalHitRate": NaN}'),
      modelKey: await putModel('prod'),
    });
    await putCandidate('20260115', metrics(0.9, 0.01));
    const r = await run('20260115');
    expect(r).toMatchObject({ decision: 'reject', rule: 'invalid_production_metrics', promoted: false });
    expect(r.reason).toMatch(/production .*directionalHitRate/);
    expect((await store.getBytes(keys.production(SYM, 'model.bin'))).toString()).toBe('prod');

    // metrics.json unlike the manifest's SHA-256 (damage): reject, naming the file
    const m = await store.getJson<ProductionManifest>(keys.production(SYM, 'manifest.json'));
    await store.putJson(m.files!['metrics.json'], metrics(0.5, 0.1));
    const r2 = await run('20260115');
    expect(r2).toMatchObject({ decision: 'reject', rule: 'invalid_production_metrics' });
    expect(r2.reason).toMatch(/metrics\.json .* has sha256 [0-9a-f]{64}, the manifest says/);

    // an unreadable manifest
    await store.putBytes(keys.production(SYM, 'manifest.json'), '{"jobId": ');
    const r3 = await run('20260115');
    expect(r3).toMatchObject({ decision: 'reject', rule: 'invalid_production_metrics' });
    expect(r3.reason).toMatch(/manifest\.json is not valid JSON/);
    expect((await store.getBytes(keys.production(SYM, 'model.bin'))).toString()).toBe('prod');
  });

  // Issue 14 changed this contract: files without a manifest (the seeds' layout) are production.
  // Before, they were 'no production: promoted over, and archived to history'.
  it('files without a manifest are the (legacy) production: unreadable metrics are never replaced', async () => {
    await store.putBytes(keys.production(SYM, 'model.bin'), 'stray');
    await store.putBytes(keys.production(SYM, 'metrics.json'), '{"directionalHitRate": NaN}');
    await putCandidate('20260115', metrics(0.5, 0.1));
    const r = await run('20260115');
    expect(r).toMatchObject({ decision: 'reject', rule: 'invalid_production_metrics', promoted: false });
    expect(r.reason).toMatch(/production \(no manifest\) invalid metrics: directionalHitRate/);
    expect((await store.getBytes(keys.production(SYM, 'model.bin'))).toString()).toBe('stray');
    expect(await store.exists(keys.production(SYM, 'manifest.json'))).toBe(false);
  });

  it('a retry after a completed publish reports the promotion without writing again', async () => {
    await putCandidate('20260115', metrics(0.55, 0.1));
    await run('20260115');
    const before = await store.list('models/production/');
    const r = await run('20260115');
    expect(r).toMatchObject({ decision: 'promote', rule: 'already_production', promoted: true });
    expect(await store.list('models/production/')).toEqual(before);
  });

  it('two promotions within the same second get distinct history folders', async () => {
    const fixed = () => new Date(Date.UTC(2026, 0, 16, 1, 0, 0));
    await putCandidate('20260115', metrics(0.5, 0.1));
    await run('20260115', { now: fixed });
    await putCandidate('20260116', metrics(0.55, 0.1));
    const a = await run('20260116', { now: fixed });
    await putCandidate('20260117', metrics(0.6, 0.1));
    const b = await run('20260117', { now: fixed });
    expect(a.historyStamp).toBe('20260116T010000Z');
    expect(b.historyStamp).toBe('20260116T010000Z-2');
  });

  it('archives first, writes the new files (versioned, then top level) and flips the manifest last', async () => {
    await putCandidate('20260115', metrics(0.55, 0.1));
    const first = await run('20260115');
    expect(first.promoted).toBe(true);
    const v1 = (await store.getJson<ProductionManifest>(keys.production(SYM, 'manifest.json'))).version!;
    await putCandidate('20260116', metrics(0.6, 0.1));
    const ops: string[] = [];
    const prod = keys.productionPrefix(SYM);
    const spy = new Proxy(store, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver) as unknown;
        if (
          typeof v !== 'function' ||
          !['putFile', 'putBytes', 'putJson', 'copy', 'delete'].includes(String(prop))
        )
          return v;
        return (...args: unknown[]) => {
          const key = String(prop === 'copy' ? args[1] : args[0]);
          if (key.startsWith(prod)) ops.push(`${String(prop)} ${key.slice(prod.length)}`);
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const r = await run('20260116', { store: spy });
    const h = `history/${r.historyStamp}/`;
    const v2 = (await store.getJson<ProductionManifest>(keys.production(SYM, 'manifest.json'))).version!;
    expect(v2).not.toBe(v1);
    expect(ops).toEqual([
      `copy ${h}model.bin`,
      `copy ${h}metrics.json`,
      `copy ${h}manifest.json`,
      `putFile versions/${v2}/model.bin`,
      `putBytes versions/${v2}/metrics.json`,
      'putFile model.bin',
      'putBytes metrics.json',
      'putJson manifest.json',
    ]);
    // the manifest is never deleted, and both the new and the replaced version stay readable
    expect(await store.list(`${prod}versions/`)).toEqual([
      `${prod}versions/${v1}/metrics.json`,
      `${prod}versions/${v1}/model.bin`,
      `${prod}versions/${v2}/metrics.json`,
      `${prod}versions/${v2}/model.bin`,
    ]);
  });

  it('a failed publish records the error in decision.json and throws', async () => {
    await putCandidate('20260115', metrics(0.55, 0.1));
    const broken = Object.assign(Object.create(store) as LocalStore, {
      putFile: () => Promise.reject(new Error('bucket gone')),
    });
    await expect(run('20260115', { store: broken })).rejects.toThrow('bucket gone');
    const d = await decisionOf('20260115');
    expect(d).toMatchObject({ decision: 'promote', promoted: false });
    expect(d.error).toMatch(/bucket gone/);
    expect(await store.exists(keys.production(SYM, 'manifest.json'))).toBe(false);
  });
});
