import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { generateOhlcv } from '../../src/data/synthetic.js';
import { fakeRecipe, runCli, sandbox, syntheticRun, type Sandbox } from '../helpers/harness.js';
import { importMarketData, ohlcvCsv } from '../helpers/marketData.js';

const DATE = '20260110';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Every file under a folder with its SHA-256 (what "the home is untouched" compares). */
function tree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!existsSync(root)) return out;
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else out[relative(root, p)] = sha(readFileSync(p));
    }
  };
  walk(root);
  return out;
}

describe('retrain data import / data ls', () => {
  let sb: Sandbox;
  beforeEach(async () => {
    sb = await sandbox(inject('redisUrl'));
  });
  afterEach(() => sb.cleanup());
  const market = (...p: string[]) => join(sb.home, 'store/market', ...p);

  it('imports a CSV (ISO timestamps) into one object per UTC day with its SHA-256 and meta', async () => {
    const file = join(sb.home, 'btc.csv');
    writeFileSync(file, ohlcvCsv('BTCUSDT', DATE, 3));
    const r = await runCli(['data', 'import', file, '--symbol', 'btcusdt'], sb.env);
    expect(r.code, `${r.stdout}${r.stderr}`).toBe(0);
    expect(r.stdout).toContain('BTCUSDT 3 days (20260108..20260110), 72 rows');
    expect(readdirSync(market('BTCUSDT')).sort()).toEqual(['20260108', '20260109', '20260110']);
    const day = readFileSync(market('BTCUSDT', DATE, 'ohlcv.csv'));
    const meta = JSON.parse(readFileSync(market('BTCUSDT', DATE, 'meta.json'), 'utf8'));
    expect(meta).toMatchObject({
      symbol: 'BTCUSDT',
      date: DATE,
      source: 'import',
      file: 'btc.csv',
      rows: 24,
      first: '2026-01-10T00:00:00Z',
      last: '2026-01-10T23:00:00Z',
      sha256: sha(day),
    });

    const ls = await runCli(['data', 'ls', '--json'], sb.env);
    expect(ls.code, `${ls.stdout}${ls.stderr}`).toBe(0);
    const rows = JSON.parse(ls.stdout) as { symbol: string; date: string; source: string; rows: number }[];
    expect(rows.map((x) => [x.symbol, x.date, x.source, x.rows])).toEqual([
      ['BTCUSDT', '20260108', 'import', 24],
      ['BTCUSDT', '20260109', 'import', 24],
      ['BTCUSDT', '20260110', 'import', 24],
    ]);
    const table = await runCli(
      ['data', 'ls', '--symbol', 'BTCUSDT', '--from', '20260109', '--to', '20260109'],
      sb.env,
    );
    expect(table.stdout).toMatch(/BTCUSDT\s*│\s*20260109\s*│\s*import\s*│\s*24/);
    expect(table.stdout).not.toContain('20260110');
    expect(table.stdout).toContain('BTCUSDT: 1 day');
  }, 180_000);

  it('imports Parquet written by hyparquet-writer (epoch milliseconds, a symbol column, two symbols)', async () => {
    const btc = generateOhlcv('BTCUSDT', DATE, { lookbackDays: 2 });
    const eth = generateOhlcv('ETHUSDT', DATE, { lookbackDays: 2 });
    const rows = [...btc.map((b) => ({ s: 'BTCUSDT', b })), ...eth.map((b) => ({ s: 'ETHUSDT', b }))];
    const buf = parquetWriteBuffer({
      columnData: [
        { name: 'symbol', data: rows.map((r) => r.s), type: 'STRING' },
        { name: 'timestamp', data: rows.map((r) => BigInt(r.b.ts * 1000)), type: 'INT64' },
        { name: 'open', data: rows.map((r) => r.b.open), type: 'DOUBLE' },
        { name: 'high', data: rows.map((r) => r.b.high), type: 'DOUBLE' },
        { name: 'low', data: rows.map((r) => r.b.low), type: 'DOUBLE' },
        { name: 'close', data: rows.map((r) => r.b.close), type: 'DOUBLE' },
        { name: 'volume', data: rows.map((r) => r.b.volume), type: 'DOUBLE' },
      ],
    });
    const file = join(sb.home, 'bars.parquet');
    writeFileSync(file, Buffer.from(buf));
    const r = await runCli(['data', 'import', file], sb.env);
    expect(r.code, `${r.stdout}${r.stderr}`).toBe(0);
    expect(r.stdout).toContain('BTCUSDT 2 days (20260109..20260110), 48 rows');
    expect(r.stdout).toContain('ETHUSDT 2 days (20260109..20260110), 48 rows');
    // The stored day holds exactly the bars of that UTC day.
    const stored = readFileSync(market('ETHUSDT', DATE, 'ohlcv.csv'), 'utf8')
      .trim()
      .split('\n');
    const dayBars = eth.filter((b) => b.ts >= Date.UTC(2026, 0, 10) / 1000);
    expect(stored).toHaveLength(25);
    expect(stored[1]!.split(',')[0]).toBe(String(dayBars[0]!.ts));
    expect(Number(stored[24]!.split(',')[4])).toBe(dayBars[23]!.close);
    const meta = JSON.parse(readFileSync(market('ETHUSDT', DATE, 'meta.json'), 'utf8'));
    expect(meta).toMatchObject({ source: 'import', file: 'bars.parquet', rows: 24 });
  }, 180_000);

  it('reports every problem as one line naming file, row and column, exits 2, and stores nothing of a bad file', async () => {
    const good = join(sb.home, 'good.csv');
    writeFileSync(good, ohlcvCsv('SOLUSDT', DATE, 1));
    const header = 'timestamp,open,high,low,close,volume';
    const okRows = ohlcvCsv('XRPUSDT', DATE, 1).trim().split('\n').slice(1);
    const bad = join(sb.home, 'bad.csv');
    const rows = [...okRows];
    rows[2] = '2026-01-10T02:00:00Z,1,0.5,0.4,1,10'; // line 4: high below max(open, close)
    rows[3] = '2026-01-10T03:00:00Z,1,2,1.5,1,10'; // line 5: low above min(open, close)
    rows[4] = '2026-01-10T04:00:00Z,0,2,0.5,1,10'; // line 6: open not > 0
    rows[5] = '2026-01-10T05:00:00Z,1,2,0.5,NaN,10'; // line 7: NaN close
    rows[6] = '2026-01-10T06:00:00Z,1,2,0.5,1,-3'; // line 8: negative volume
    rows[7] = '2026-01-10T06:00:00Z,1,2,0.5,1,3'; // line 9: duplicate timestamp
    rows[8] = '2026-01-10T05:30:00Z,1,2,0.5,1,3'; // line 10: goes back in time
    rows[9] = 'yesterday,1,2,0.5,1,3'; // line 11: not a timestamp
    rows[10] = '2026-01-10T10:00:00Z,1,inf,0.5,1,3'; // line 12: infinite high
    rows[11] = '2026-01-10T11:00:00Z,1,2,x,1,3'; // line 13: not a number
    writeFileSync(bad, [header, ...rows].join('\n') + '\n');
    const missing = join(sb.home, 'missing-column.csv');
    writeFileSync(missing, 'timestamp,open,high,low,close\n2026-01-10T00:00:00Z,1,2,0.5,1\n');
    const short = join(sb.home, 'short-day.csv');
    writeFileSync(short, [header, ...okRows.slice(0, 5)].join('\n') + '\n');

    const r = await runCli(['data', 'import', good, bad, missing, short, '--symbol', 'XRPUSDT'], sb.env);
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    for (const expected of [
      `${bad}: row 4, column high: high 0.5 is below max(open, close) 1`,
      `${bad}: row 5, column low: low 1.5 is above min(open, close) 1`,
      `${bad}: row 6, column open: open must be > 0, got 0`,
      `${bad}: row 7, column close: close is NaN (must be finite)`,
      `${bad}: row 8, column volume: volume must be >= 0, got -3`,
      `${bad}: row 9, column timestamp: duplicate timestamp 2026-01-10T06:00:00Z (row 8)`,
      `${bad}: row 10, column timestamp: timestamp 2026-01-10T05:30:00Z is before the previous row's 2026-01-10T06:00:00Z (must strictly increase)`,
      `${bad}: row 11, column timestamp: timestamp is neither ISO-8601 nor epoch seconds/milliseconds ("yesterday")`,
      `${bad}: row 12, column high: high is Infinity (must be finite)`,
      `${bad}: row 13, column low: low is not a number ("x")`,
      `${missing}: column volume: missing column volume (header: timestamp,open,high,low,close)`,
      `${short}: row 2, column timestamp: day 20260110 has 5 rows, fewer than the minimum 24`,
    ]) {
      expect(lines).toContain(expected);
    }
    // good.csv is SOLUSDT data: with --symbol XRPUSDT it has no symbol column, so it is XRPUSDT's and
    // stored; none of the bad files left anything (XRPUSDT's day is good.csv's).
    expect(r.stdout).toContain(`${good}: XRPUSDT 1 day (20260110..20260110), 24 rows`);
    const meta = JSON.parse(readFileSync(market('XRPUSDT', DATE, 'meta.json'), 'utf8'));
    expect(meta.file).toBe('good.csv');
    expect(readdirSync(market())).toEqual(['XRPUSDT']);

    // A bad file alone: nothing at all is stored.
    const alone = await runCli(['data', 'import', bad, '--symbol', 'ADAUSDT'], sb.env);
    expect(alone.code).toBe(2);
    expect(existsSync(market('ADAUSDT'))).toBe(false);
  }, 180_000);
});

describe('readiness on real data, synthetic only on request', () => {
  let sb: Sandbox;
  beforeEach(async () => {
    sb = await sandbox(inject('redisUrl'));
  });
  afterEach(() => sb.cleanup());
  const store = (...p: string[]) => join(sb.home, 'store', ...p);

  const status = async () => {
    const r = await runCli(['status', '--date', DATE, '--json'], sb.env);
    return JSON.parse(r.stdout).symbols as Record<
      string,
      { status: string; reason?: string; decision?: string; error?: { type: string; message: string } }
    >;
  };

  it('skips a symbol without market data (no_data) and one with a damaged day (bad_data) before renting anything', async () => {
    await importMarketData(sb.home, sb.env, 'ETHUSDT', DATE);
    // Damage one stored day after the import: its SHA-256 no longer matches its meta.
    const day = store('market/ETHUSDT/20260108/ohlcv.csv');
    writeFileSync(day, readFileSync(day, 'utf8').replace(/\n(\d+),/, '\n$1,9'));
    const r = await runCli(
      ['run', '--symbols', 'BTCUSDT,ETHUSDT', '--date', DATE, '--ensure-features', '--recipe', fakeRecipe],
      sb.env,
    );
    expect(r.code, `${r.stdout}${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/skip BTCUSDT: BTCUSDT: no market data for BTCUSDT on 20260110/);
    expect(r.stdout).toMatch(
      /skip ETHUSDT: ETHUSDT: .*market\/ETHUSDT\/20260108\/ohlcv\.csv has sha256 [0-9a-f]{64}, its meta\.json says/,
    );
    const ledger = await status();
    expect(ledger.BTCUSDT).toMatchObject({ status: 'skipped', reason: 'no_data' });
    expect(ledger.BTCUSDT!.error).toMatchObject({ type: 'no_data' });
    expect(ledger.BTCUSDT!.error!.message).toMatch(/no market data for BTCUSDT on 20260110/);
    expect(ledger.ETHUSDT).toMatchObject({ status: 'skipped', reason: 'bad_data' });
    expect(ledger.ETHUSDT!.error!.message).toMatch(/market\/ETHUSDT\/20260108\/ohlcv\.csv has sha256/);
    // Nothing was generated, built or rented.
    expect(existsSync(store('market/BTCUSDT'))).toBe(false);
    expect(existsSync(store('datasets'))).toBe(false);
    expect(existsSync(join(sb.home, 'models'))).toBe(false);
  }, 180_000);

  it('trains on imported data (features say source import)', async () => {
    await importMarketData(sb.home, sb.env, 'BTCUSDT', DATE);
    const r = await runCli(
      ['run', '--symbols', 'BTCUSDT', '--date', DATE, '--ensure-features', '--recipe', fakeRecipe],
      sb.env,
    );
    expect(r.code, `${r.stdout}${r.stderr}`).toBe(0);
    expect((await status()).BTCUSDT).toMatchObject({ status: 'success' });
    const meta = JSON.parse(readFileSync(store(`datasets/v1/BTCUSDT/${DATE}/meta.json`), 'utf8'));
    expect(meta).toMatchObject({ source: 'import', bars: 240 });
  }, 180_000);

  it('--synthetic generates marked data, and auto promotion of its candidate is downgraded to dry (synthetic_data)', async () => {
    const r = await runCli(
      ['run', ...syntheticRun('BTCUSDT', DATE, fakeRecipe), '--promote', 'auto'],
      sb.env,
    );
    expect(r.code, `${r.stdout}${r.stderr}`).toBe(0);
    expect(JSON.parse(readFileSync(store(`market/BTCUSDT/${DATE}/meta.json`), 'utf8')).source).toBe(
      'synthetic',
    );
    expect(JSON.parse(readFileSync(store(`datasets/v1/BTCUSDT/${DATE}/meta.json`), 'utf8')).source).toBe(
      'synthetic',
    );
    // No production at all, though there was none to beat.
    expect(existsSync(store('models/production'))).toBe(false);
    const decision = JSON.parse(
      readFileSync(store('models/candidates/BTCUSDT/2026-01-10/decision.json'), 'utf8'),
    );
    expect(decision).toMatchObject({
      requestedMode: 'auto',
      mode: 'dry',
      downgradedBy: 'synthetic_data',
      dataSource: 'synthetic',
      decision: 'promote',
      rule: 'no_production',
      promoted: false,
    });
    expect((await status()).BTCUSDT).toMatchObject({ status: 'success', reason: 'synthetic_data' });
    expect(r.stdout).toMatch(/BTCUSDT\s*│\s*success.*│\s*synthetic_data/);
  }, 180_000);
});

describe('existing production in the seeds layout', () => {
  let sb: Sandbox;
  beforeEach(async () => {
    sb = await sandbox(inject('redisUrl'));
  });
  afterEach(() => sb.cleanup());

  it('is kept against a worse candidate and archived to history by a better one', async () => {
    const legacy = join(sb.home, 'store/models/production/btcusdt');
    mkdirSync(legacy, { recursive: true });
    const legacyModel = Buffer.from('the model our users have today');
    const legacyMetrics = JSON.stringify({
      status: 'ok',
      directionalHitRate: 0.6,
      maxDrawdown: 0.1,
      sharpe: 1.2,
      net_bps_after_costs: 2,
      n_train: 1000,
      n_test: 200,
    });
    writeFileSync(join(legacy, 'model.bin'), legacyModel);
    writeFileSync(join(legacy, 'metrics.json'), legacyMetrics);
    const train = async (date: string, hitRate: string) => {
      await importMarketData(sb.home, sb.env, 'BTCUSDT', date);
      return runCli(
        [
          'run',
          '--symbols',
          'BTCUSDT',
          '--date',
          date,
          '--ensure-features',
          '--recipe',
          fakeRecipe,
          '--var',
          `hit_rate=${hitRate}`,
          '--promote',
          'auto',
        ],
        sb.env,
      );
    };
    const prod = join(sb.home, 'store/models/production/BTCUSDT');

    const worse = await train('20260110', '0.55');
    expect(worse.code, `${worse.stdout}${worse.stderr}`).toBe(0);
    const d1 = JSON.parse(
      readFileSync(join(sb.home, 'store/models/candidates/BTCUSDT/2026-01-10/decision.json'), 'utf8'),
    );
    expect(d1).toMatchObject({
      decision: 'reject',
      rule: 'lower_hit_rate',
      legacyProduction: 'models/production/btcusdt/',
      production: { directionalHitRate: 0.6 },
    });
    expect(existsSync(join(prod, 'manifest.json'))).toBe(false);
    expect(readFileSync(join(legacy, 'model.bin')).equals(legacyModel)).toBe(true);

    const better = await train('20260111', '0.7');
    expect(better.code, `${better.stdout}${better.stderr}`).toBe(0);
    const manifest = JSON.parse(readFileSync(join(prod, 'manifest.json'), 'utf8'));
    expect(manifest).toMatchObject({
      jobId: 'train__BTCUSDT__20260111',
      rule: 'higher_hit_rate',
      replaced: null,
    });
    expect(readFileSync(join(prod, 'model.bin'), 'utf8')).toBe('FAKEBTCUSDT hit_rate=0.7');
    const stamps = readdirSync(join(prod, 'history'));
    expect(stamps).toHaveLength(1);
    expect(manifest.history).toBe(`models/production/BTCUSDT/history/${stamps[0]}/`);
    expect(readFileSync(join(prod, 'history', stamps[0]!, 'model.bin')).equals(legacyModel)).toBe(true);
    expect(readFileSync(join(prod, 'history', stamps[0]!, 'metrics.json'), 'utf8')).toBe(legacyMetrics);
  }, 180_000);
});

describe('--dry-run writes nothing', () => {
  let sb: Sandbox;
  beforeEach(async () => {
    sb = await sandbox(inject('redisUrl'));
  });
  afterEach(() => sb.cleanup());

  const redisKeys = async () => (await sb.redis.keys(`${sb.prefix}:*`)).sort();

  it('leaves the home and Redis untouched and prints the host commands, secrets by name only', async () => {
    await importMarketData(sb.home, sb.env, 'BTCUSDT', DATE);
    const recipeDir = join(sb.home, 'recipe');
    mkdirSync(recipeDir);
    writeFileSync(
      join(recipeDir, 'recipe.yaml'),
      [
        'name: secretive',
        'version: 1',
        'secrets: [HF_TOKEN]',
        'env: { MODE: fast }',
        'setup:',
        '  - run: echo setup {{symbol}}',
        'train:',
        '  - run: python3 train.py --data {{dataset}} --date {{date}}',
        'outputs:',
        '  required: [model.bin, metrics.json]',
      ].join('\n'),
    );
    const before = { home: tree(sb.home), redis: await redisKeys() };
    const env = { ...sb.env, HF_TOKEN: 'hf_very_secret_value_42' };
    for (const args of [
      ['--symbols', 'BTCUSDT', '--ensure-features', '--dry-run'],
      ['--symbols', 'BTCUSDT,ETHUSDT', '--ensure-features', '--synthetic', '--dry-run'],
      ['--symbol', 'BTCUSDT', '--dry_run'],
    ]) {
      const r = await runCli(['run', '--date', DATE, '--recipe', recipeDir, ...args], env);
      expect(r.code, `${r.stdout}${r.stderr}`).toBe(0);
      expect(`${r.stdout}${r.stderr}`).not.toContain('hf_very_secret_value_42');
    }
    const r = await runCli(
      [
        'run',
        '--symbols',
        'BTCUSDT,ETHUSDT',
        '--date',
        DATE,
        '--recipe',
        recipeDir,
        '--dry-run',
        '--ensure-features',
        '--synthetic',
      ],
      env,
    );
    const specs = JSON.parse(r.stdout) as { symbol: string; dataSource?: string }[];
    expect(specs.map((s) => [s.symbol, s.dataSource])).toEqual([
      ['BTCUSDT', undefined],
      ['ETHUSDT', 'synthetic'],
    ]);
    expect(r.stderr).toContain("secrets (from this machine's environment, by name): HF_TOKEN");
    expect(r.stderr).toMatch(/\[1\/2 setup\] echo setup 'BTCUSDT'/);
    expect(r.stderr).toMatch(
      /\[2\/2 train\] python3 train\.py --data '\/.*\/inputs\/features\.csv' --date '20260110'/,
    );
    expect(r.stderr).toContain("env MODE='fast'");
    expect(r.stderr).toContain('ETHUSDT 20260110: driver local, recipe secretive@1');
    expect(r.stderr).toContain('SYNTHETIC data: never published to production');
    expect(r.stderr).not.toContain('hf_very_secret_value_42');

    expect(tree(sb.home)).toEqual(before.home);
    expect(await redisKeys()).toEqual(before.redis);
  }, 180_000);
});
