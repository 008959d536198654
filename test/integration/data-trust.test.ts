import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { fakeRecipe, runCli, sandbox, type Sandbox } from '../helpers/harness.js';
import { importMarketData } from '../helpers/marketData.js';
import { startS3Server, type S3ServerHandle } from '../helpers/s3server.js';

const DATE = '20260110';

describe('S3_COMPACT_* and R2_* select the S3 store', () => {
  let s3: S3ServerHandle;
  let sb: Sandbox;
  beforeAll(async () => {
    s3 = await startS3Server();
  }, 60_000);
  afterAll(async () => {
    await s3?.stop();
  });
  beforeEach(async () => {
    sb = await sandbox(inject('redisUrl'));
  });
  afterEach(() => sb.cleanup());

  const keysIn = async (bucket: string): Promise<string[]> => {
    const out = await s3.client.send(new ListObjectsV2Command({ Bucket: bucket }));
    return (out.Contents ?? []).map((o) => o.Key!).sort();
  };

  for (const group of ['S3_COMPACT', 'R2'] as const) {
    it(`${group}_* variables: data import and a run store to the bucket, nothing to the local store`, async () => {
      const bucket = await s3.createBucket();
      const env =
        group === 'S3_COMPACT'
          ? {
              ...sb.env,
              S3_COMPACT_ENDPOINT: s3.endpoint,
              S3_COMPACT_BUCKET: bucket,
              S3_COMPACT_ACCESS_KEY: s3.credentials.accessKeyId,
              S3_COMPACT_SECRET_KEY: s3.credentials.secretAccessKey,
            }
          : {
              ...sb.env,
              R2_ENDPOINT: s3.endpoint,
              R2_BUCKET: bucket,
              R2_ACCESS_KEY_ID: s3.credentials.accessKeyId,
              R2_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
            };
      await importMarketData(sb.home, env, 'BTCUSDT', DATE);
      const r = await runCli(
        ['run', '--symbols', 'BTCUSDT', '--date', DATE, '--ensure-features', '--recipe', fakeRecipe],
        env,
      );
      expect(r.code, `${r.stdout}${r.stderr}`).toBe(0);
      expect(r.stdout).toContain(`status:  s3://${bucket}/runs/${DATE}Z/status.json`);
      const keys = await keysIn(bucket);
      for (const k of [
        `market/BTCUSDT/${DATE}/ohlcv.csv`,
        `market/BTCUSDT/${DATE}/meta.json`,
        `datasets/v1/BTCUSDT/${DATE}/features.csv`,
        `ml-artifacts/train__BTCUSDT__${DATE}/model.bin`,
        `ml-artifacts/train__BTCUSDT__${DATE}/metrics.json`,
        `runs/${DATE}Z/status.json`,
      ]) {
        expect(keys).toContain(k);
      }
      const model = await s3.client.send(
        new GetObjectCommand({ Bucket: bucket, Key: `ml-artifacts/train__BTCUSDT__${DATE}/model.bin` }),
      );
      expect(Buffer.from(await model.Body!.transformToByteArray()).toString()).toBe(
        'FAKEBTCUSDT hit_rate=0.55',
      );
      expect(existsSync(join(sb.home, 'store'))).toBe(false);
      // Neither the secret nor the access key is printed.
      expect(`${r.stdout}${r.stderr}`).not.toContain(s3.credentials.secretAccessKey);
    }, 180_000);
  }

  it('a half-configured store is an error naming the missing variables, never the local store', async () => {
    const half = await runCli(['data', 'ls'], {
      ...sb.env,
      R2_ENDPOINT: s3.endpoint,
      R2_BUCKET: 'some-bucket',
    });
    expect(half.code).toBe(2);
    expect(half.stderr.trim()).toBe(
      'retrain: environment: the R2_* store is half-configured: R2_ACCESS_KEY_ID, R2_SECRET_ACCESS_KEY are missing',
    );
    const one = await runCli(['run', '--symbols', 'BTCUSDT', '--date', DATE, '--dry-run'], {
      ...sb.env,
      S3_COMPACT_ENDPOINT: s3.endpoint,
      S3_COMPACT_BUCKET: 'b1',
      S3_COMPACT_ACCESS_KEY: 'k',
    });
    expect(one.code).toBe(2);
    expect(one.stderr.trim()).toBe(
      'retrain: environment: the S3_COMPACT_* store is half-configured: S3_COMPACT_SECRET_KEY is missing',
    );
    expect(existsSync(join(sb.home, 'store'))).toBe(false);
  }, 180_000);
});

describe('nothing overwritten: forced re-runs and "already done" past the ledger', () => {
  let sb: Sandbox;
  beforeEach(async () => {
    sb = await sandbox(inject('redisUrl'));
  });
  afterEach(() => sb.cleanup());

  const run = (...extra: string[]) =>
    runCli(
      ['run', '--symbols', 'BTCUSDT', '--date', DATE, '--ensure-features', '--recipe', fakeRecipe, ...extra],
      sb.env,
    );

  it('a --force re-run keeps the earlier run and writes its own; stored artifacts say done once the ledger is gone', async () => {
    await importMarketData(sb.home, sb.env, 'BTCUSDT', DATE);
    const dir = (id: string) => join(sb.home, 'store/ml-artifacts', id);
    const first = await run('--var', 'hit_rate=0.55');
    expect(first.code, `${first.stdout}${first.stderr}`).toBe(0);
    const firstModel = readFileSync(join(dir(`train__BTCUSDT__${DATE}`), 'model.bin'));

    const forced = await run('--var', 'hit_rate=0.6', '--force');
    expect(forced.code, `${forced.stdout}${forced.stderr}`).toBe(0);
    expect(readdirSync(join(sb.home, 'store/ml-artifacts')).sort()).toEqual([
      `train__BTCUSDT__${DATE}`,
      `train__BTCUSDT__${DATE}__r2`,
    ]);
    expect(readFileSync(join(dir(`train__BTCUSDT__${DATE}`), 'model.bin')).equals(firstModel)).toBe(true);
    expect(readFileSync(join(dir(`train__BTCUSDT__${DATE}__r2`), 'model.bin'), 'utf8')).toBe(
      'FAKEBTCUSDT hit_rate=0.6',
    );
    const status = JSON.parse((await runCli(['status', '--date', DATE, '--json'], sb.env)).stdout);
    expect(status.symbols.BTCUSDT.metricsKey).toBe(`ml-artifacts/train__BTCUSDT__${DATE}__r2/metrics.json`);

    // The ledger of the date expires (retentionDays): the stored artifacts still say it is done.
    await sb.redis.del(`${sb.prefix}:ledger:${DATE}`, `${sb.prefix}:ledger:${DATE}:v`);
    const again = await run();
    expect(again.code, `${again.stdout}${again.stderr}`).toBe(0);
    expect(again.stdout).toContain(
      `skip BTCUSDT: BTCUSDT already succeeded for ${DATE} (its stored artifacts; use --force to retrain)`,
    );
    expect(readdirSync(join(sb.home, 'store/ml-artifacts'))).toHaveLength(2);
  }, 180_000);
});

describe('the flag spellings users type today', () => {
  let sb: Sandbox;
  beforeEach(async () => {
    sb = await sandbox(inject('redisUrl'));
  });
  afterEach(() => sb.cleanup());

  it('--symbol (repeatable), --dry_run, --max_concurrent, --timeout_minutes, --driver vastai', async () => {
    const r = await runCli(
      [
        'run',
        '--symbol',
        'btcusdt',
        '--symbol',
        'ETHUSDT',
        '--date',
        DATE,
        '--ensure-features',
        '--synthetic',
        '--dry_run',
        '--max_concurrent',
        '3',
        '--timeout_minutes=7',
        '--driver',
        'vastai',
      ],
      sb.env,
    );
    expect(r.code, `${r.stdout}${r.stderr}`).toBe(0);
    const specs = JSON.parse(r.stdout) as { symbol: string; driver: string; timeoutMinutes: number }[];
    expect(specs.map((s) => [s.symbol, s.driver, s.timeoutMinutes])).toEqual([
      ['BTCUSDT', 'vast', 7],
      ['ETHUSDT', 'vast', 7],
    ]);
    const bad = await runCli(['run', '--date', DATE, '--max_concurrent', '0', '--dry_run'], sb.env);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toBe('retrain: --max-concurrent must be a whole number >= 1, got "0"');
  }, 180_000);

  it('topN beyond the universe is an error, not a symbol named TOPN', async () => {
    for (const spec of ['top100000', 'top0']) {
      const r = await runCli(['run', '--symbols', spec, '--date', DATE, '--dry-run'], sb.env);
      expect(r.code).toBe(2);
      expect(r.stderr.trim()).toMatch(
        new RegExp(`^retrain: --symbols ${spec}: the shipped universe has \\d+ symbols`),
      );
    }
  }, 180_000);
});

describe('promotion.rules', () => {
  let sb: Sandbox;
  beforeEach(async () => {
    sb = await sandbox(inject('redisUrl'));
  });
  afterEach(() => sb.cleanup());

  it('a floor stops even a first model, and the decision names the rule; an ordered comparison decides the next', async () => {
    await importMarketData(sb.home, sb.env, 'BTCUSDT', DATE);
    await importMarketData(sb.home, sb.env, 'BTCUSDT', '20260111');
    const config = join(sb.home, 'retrain.config.yaml');
    const train = (date: string, floor: string, extra: string[] = []) => {
      writeFileSync(
        config,
        [
          'promotion:',
          `  floors: ["${floor}", { metric: directionalHitRate, op: ">", value: 0.5 }]`,
          '  rules:',
          '    - { metric: sharpe, direction: higher, tolerance: 0.05 }',
          '    - { metric: directionalHitRate, direction: higher }',
        ].join('\n'),
      );
      return runCli(
        [
          'run',
          '--config',
          config,
          '--symbols',
          'BTCUSDT',
          '--date',
          date,
          '--ensure-features',
          '--recipe',
          fakeRecipe,
          '--promote',
          'auto',
          ...extra,
        ],
        sb.env,
      );
    };
    const decision = (dashed: string) =>
      JSON.parse(
        readFileSync(join(sb.home, `store/models/candidates/BTCUSDT/${dashed}/decision.json`), 'utf8'),
      );

    // The fake recipe's net_bps_after_costs is 1.5: a floor of 2 stops the first model.
    const stopped = await train(DATE, 'net_bps_after_costs > 2');
    expect(stopped.code, `${stopped.stdout}${stopped.stderr}`).toBe(0);
    expect(decision('2026-01-10')).toMatchObject({
      decision: 'reject',
      rule: 'floor:net_bps_after_costs>2',
      rulesVersion: 'custom',
    });
    expect(existsSync(join(sb.home, 'store/models/production/BTCUSDT/manifest.json'))).toBe(false);

    const first = await train(DATE, 'net_bps_after_costs > 0', ['--force']);
    expect(first.code, `${first.stdout}${first.stderr}`).toBe(0);
    expect(decision('2026-01-10')).toMatchObject({ decision: 'promote', rule: 'no_production' });

    // Same sharpe (within tolerance), higher hit rate: the second compare rule decides.
    const second = await train('20260111', 'net_bps_after_costs > 0', ['--var', 'hit_rate=0.6']);
    expect(second.code, `${second.stdout}${second.stderr}`).toBe(0);
    expect(decision('2026-01-11')).toMatchObject({ decision: 'promote', rule: 'compare:directionalHitRate' });
    const manifest = JSON.parse(
      readFileSync(join(sb.home, 'store/models/production/BTCUSDT/manifest.json'), 'utf8'),
    );
    expect(manifest).toMatchObject({ jobId: 'train__BTCUSDT__20260111', rule: 'compare:directionalHitRate' });
  }, 180_000);

  it('a bad rule is a config error naming it', async () => {
    const config = join(sb.home, 'bad.yaml');
    writeFileSync(config, 'promotion:\n  floors: ["sharpe >> 1"]\n');
    const r = await runCli(
      ['run', '--config', config, '--symbols', 'BTCUSDT', '--date', DATE, '--dry-run'],
      sb.env,
    );
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toMatch(
      /^retrain: invalid configuration \(config file .*bad\.yaml\): promotion\.floors\.\[0\]: .*"sharpe >> 1"/,
    );
  }, 180_000);
});
