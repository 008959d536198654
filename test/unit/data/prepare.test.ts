import { mkdtempSync, readdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FEATURES_V1_HEADER } from '../../../src/data/features.js';
import { storeMarketDay } from '../../../src/data/market.js';
import { prepareFeatures, type PrepareOptions } from '../../../src/data/prepare.js';
import { generateOhlcv } from '../../../src/data/synthetic.js';
import { utcDay } from '../../../src/data/contract.js';
import { InputError } from '../../../src/errors.js';
import { LocalStore } from '../../../src/storage/local.js';
import { keys } from '../../../src/storage/layout.js';
import { sha256Hex } from '../../../src/util/hash.js';

const DATE = '20260115';
const BUILD: PrepareOptions = { build: true, synthetic: false, write: true };

let root: string;
let store: LocalStore;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'retrain-prepare-'));
  store = new LocalStore(root);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

/** Stores `days` imported days of `symbol` ending at `date`. */
async function importDays(symbol: string, date: string, days: number): Promise<void> {
  const bars = generateOhlcv(symbol, date, { lookbackDays: days });
  const byDay = new Map<string, typeof bars>();
  for (const b of bars) byDay.set(utcDay(b.ts), [...(byDay.get(utcDay(b.ts)) ?? []), b]);
  for (const [day, list] of byDay)
    await storeMarketDay(store, symbol, day, list, { source: 'import', file: 'x.csv' });
}

const files = (dir = root): string[] =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(root.length + 1))
    .sort();

describe('prepareFeatures', () => {
  it('without --ensure-features, missing features are no_data (nothing generated)', async () => {
    const r = await prepareFeatures(store, 'v1', 'BTCUSDT', DATE, { ...BUILD, build: false });
    expect(r).toMatchObject({ ready: false, reason: 'no_data' });
    expect(files()).toEqual([]);
  });

  it('builds from the stored days up to the date, records source import, and reuses the file', async () => {
    await importDays('BTCUSDT', DATE, 10);
    const r = await prepareFeatures(store, 'v1', 'BTCUSDT', DATE, BUILD);
    expect(r).toMatchObject({ ready: true, built: true, source: 'import', generatedDays: 0 });
    const csv = readFileSync(join(root, keys.features('v1', 'BTCUSDT', DATE)), 'utf8');
    expect(csv.split('\n')[0]).toBe(FEATURES_V1_HEADER.join(','));
    expect(csv.trimEnd().split('\n')).toHaveLength(1 + 10 * 24 - 168 - 1);
    expect(r.ready && r.sha256).toBe(sha256Hex(csv));
    const meta = JSON.parse(readFileSync(join(root, keys.featuresMeta('v1', 'BTCUSDT', DATE)), 'utf8'));
    expect(meta).toMatchObject({ source: 'import', bars: 240 });
    expect(meta.days).toHaveLength(10);
    const again = await prepareFeatures(store, 'v1', 'BTCUSDT', DATE, BUILD);
    expect(again).toMatchObject({ ready: true, built: false, source: 'import', sha256: r.ready && r.sha256 });
  });

  it('uses no day after the date (no look-ahead)', async () => {
    await importDays('BTCUSDT', '20260120', 15);
    const r = await prepareFeatures(store, 'v1', 'BTCUSDT', DATE, BUILD);
    const meta = JSON.parse(readFileSync(join(root, keys.featuresMeta('v1', 'BTCUSDT', DATE)), 'utf8'));
    expect(r.ready).toBe(true);
    expect(meta.days[meta.days.length - 1]).toBe(DATE);
  });

  it('a missing date is no_data without --synthetic; with it, the missing days are generated and marked', async () => {
    const none = await prepareFeatures(store, 'v1', 'ETHUSDT', DATE, BUILD);
    expect(none).toMatchObject({ ready: false, reason: 'no_data' });
    expect(none.ready === false && none.detail).toMatch(/pass --synthetic for invented data/);
    expect(files()).toEqual([]);

    const syn = await prepareFeatures(store, 'v1', 'ETHUSDT', DATE, { ...BUILD, synthetic: true });
    expect(syn).toMatchObject({ ready: true, built: true, source: 'synthetic', generatedDays: 120 });
    const meta = JSON.parse(readFileSync(join(root, keys.marketMeta('ETHUSDT', DATE)), 'utf8'));
    expect(meta).toMatchObject({ source: 'synthetic', rows: 24 });
    expect(
      JSON.parse(readFileSync(join(root, keys.featuresMeta('v1', 'ETHUSDT', DATE)), 'utf8')).source,
    ).toBe('synthetic');
  });

  it('an imported date is never replaced by synthetic data, --synthetic or not', async () => {
    await importDays('BTCUSDT', DATE, 10);
    const before = readFileSync(join(root, keys.market('BTCUSDT', DATE)));
    const r = await prepareFeatures(store, 'v1', 'BTCUSDT', DATE, { ...BUILD, synthetic: true });
    expect(r).toMatchObject({ ready: true, source: 'import', generatedDays: 0 });
    expect(readFileSync(join(root, keys.market('BTCUSDT', DATE))).equals(before)).toBe(true);
  });

  it('a damaged or invalid stored day is bad_data naming it', async () => {
    await importDays('BTCUSDT', DATE, 10);
    const key = keys.market('BTCUSDT', '20260112');
    writeFileSync(join(root, key), 'ts,open,high,low,close,volume\n1,2,3\n');
    const tampered = await prepareFeatures(store, 'v1', 'BTCUSDT', DATE, BUILD);
    expect(tampered).toMatchObject({ ready: false, reason: 'bad_data' });
    expect(tampered.ready === false && tampered.detail).toMatch(
      /market\/BTCUSDT\/20260112\/ohlcv\.csv has sha256/,
    );

    // The same content with a matching meta (written by hand): the contract check names row and column.
    await store.putJson(keys.marketMeta('BTCUSDT', '20260112'), {
      source: 'import',
      sha256: sha256Hex('ts,open,high,low,close,volume\n1,2,3\n'),
    });
    const invalid = await prepareFeatures(store, 'v1', 'BTCUSDT', DATE, BUILD);
    expect(invalid.ready === false && invalid.detail).toMatch(
      /20260112\/ohlcv\.csv: row 2, column low: low is not a number/,
    );
    expect(files().some((f) => f.startsWith('datasets/'))).toBe(false);
  });

  it('too few bars for the features is bad_data', async () => {
    await importDays('BTCUSDT', DATE, 3);
    const r = await prepareFeatures(store, 'v1', 'BTCUSDT', DATE, BUILD);
    expect(r).toMatchObject({ ready: false, reason: 'bad_data' });
    expect(r.ready === false && r.detail).toMatch(
      /72 bars in the 3 stored day\(s\) up to 20260115; features need at least 170/,
    );
  });

  it('with write: false (--dry-run) answers the same and stores nothing', async () => {
    await importDays('BTCUSDT', DATE, 10);
    const before = files();
    const dry = await prepareFeatures(store, 'v1', 'BTCUSDT', DATE, { ...BUILD, write: false });
    expect(files()).toEqual(before);
    const drySyn = await prepareFeatures(store, 'v1', 'SOLUSDT', DATE, {
      build: true,
      synthetic: true,
      write: false,
    });
    expect(drySyn).toMatchObject({ ready: true, source: 'synthetic', generatedDays: 120 });
    expect(files()).toEqual(before);
    const real = await prepareFeatures(store, 'v1', 'BTCUSDT', DATE, BUILD);
    expect(real.ready && real.sha256).toBe(dry.ready && dry.sha256);
  });

  it('rejects an unknown featureset when it has to build, and returns existing features of any', async () => {
    await expect(prepareFeatures(store, 'v9', 'BTCUSDT', DATE, BUILD)).rejects.toThrow(InputError);
    await store.putBytes(keys.features('custom', 'BTCUSDT', DATE), 'x');
    expect(await prepareFeatures(store, 'custom', 'BTCUSDT', DATE, BUILD)).toMatchObject({
      ready: true,
      built: false,
      bytes: 1,
      source: 'unknown',
    });
  });
});
