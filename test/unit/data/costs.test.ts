import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { costsFor, loadCostTable } from '../../../src/data/costs.js';
import { ConfigError } from '../../../src/errors.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'retrain-costs-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function override(name: string, content: unknown): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

describe('shipped cost table', () => {
  it('covers the shipped universe and has a "*" default', async () => {
    const table = await loadCostTable();
    const universe = JSON.parse(
      await readFile(new URL('../../../src/data/universe.json', import.meta.url), 'utf8'),
    ) as string[];
    expect(universe.length).toBeGreaterThanOrEqual(40);
    expect(new Set(universe).size).toBe(universe.length);
    for (const s of universe) {
      expect(s).toMatch(/^[A-Z0-9]+$/);
      expect(table[s], s).toBeDefined();
    }
    expect(table['*']).toBeDefined();
    expect(universe.slice(0, 2)).toEqual(['BTCUSDT', 'ETHUSDT']);
  });

  it('gives majors cheaper costs than the default', async () => {
    const table = await loadCostTable();
    const btc = costsFor(table, 'BTCUSDT');
    const dflt = costsFor(table, 'NOSUCHUSDT');
    expect(btc).toEqual({
      symbol: 'BTCUSDT',
      taker_fee_bps: 4,
      maker_fee_bps: 1,
      median_spread_bps: 1,
      slippage_bps_per_sigma: 2,
    });
    expect(dflt.symbol).toBe('NOSUCHUSDT');
    expect(dflt.median_spread_bps).toBeGreaterThan(btc.median_spread_bps);
    expect(Object.keys(dflt)).toEqual([
      'symbol',
      'taker_fee_bps',
      'maker_fee_bps',
      'median_spread_bps',
      'slippage_bps_per_sigma',
    ]);
  });
});

describe('loadCostTable with an override file', () => {
  it('merges partial entries over the shipped table and the default', async () => {
    const path = await override('ok.json', {
      BTCUSDT: { taker_fee_bps: 2.5 },
      NEWUSDT: { median_spread_bps: 20 },
      '*': { slippage_bps_per_sigma: 15 },
    });
    const table = await loadCostTable(path);
    expect(costsFor(table, 'BTCUSDT')).toMatchObject({
      taker_fee_bps: 2.5,
      maker_fee_bps: 1,
      median_spread_bps: 1,
    });
    const shipped = await loadCostTable();
    expect(costsFor(table, 'NEWUSDT')).toMatchObject({
      ...shipped['*'],
      median_spread_bps: 20,
    });
    expect(costsFor(table, 'OTHERUSDT').slippage_bps_per_sigma).toBe(15);
    // the shipped table is not mutated
    expect(costsFor(await loadCostTable(), 'BTCUSDT').taker_fee_bps).toBe(4);
  });

  it.each([
    ['wrong type', { BTCUSDT: { taker_fee_bps: 'four' } }, /BTCUSDT\.taker_fee_bps/],
    ['negative', { ETHUSDT: { maker_fee_bps: -1 } }, /ETHUSDT\.maker_fee_bps/],
    ['unknown field', { BTCUSDT: { fee: 1 } }, /BTCUSDT/],
    ['bad symbol', { 'btc-usdt': { taker_fee_bps: 1 } }, /btc-usdt/],
    ['not an object', [1, 2], /\(root\)|expected record/],
  ])('rejects %s with a one-line ConfigError naming file and field', async (name, content, field) => {
    const path = await override(`${name.replace(/ /g, '-')}.json`, content);
    const err = await loadCostTable(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    const message = (err as Error).message;
    expect(message).toContain(path);
    expect(message).toMatch(field);
    expect(message).not.toContain('\n');
  });

  it('rejects unreadable and malformed files', async () => {
    await expect(loadCostTable(join(dir, 'missing.json'))).rejects.toThrow(
      /missing\.json: cannot read \(ENOENT\)/,
    );
    const bad = await override('bad.json', '{not json');
    await expect(loadCostTable(bad)).rejects.toThrow(ConfigError);
    await expect(loadCostTable(bad)).rejects.toThrow(/invalid JSON/);
  });
});
