/** Store configuration: RETRAIN_STORE / S3_* env, config files, and createStore's credentials. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/errors.js';
import { createStore, LazyS3Store, LocalStore } from '../../../src/storage/index.js';
import { S3Store } from '../../../src/storage/s3.js';

describe('store configuration', () => {
  let cwd: string;
  beforeEach(async () => {
    cwd = await mkdtemp(join(tmpdir(), 'store-config-'));
  });
  afterEach(async () => {
    await rm(cwd, { recursive: true, force: true });
  });

  const load = (env: Record<string, string>, file?: string) => loadConfig({ env, cwd, file });
  const writeConfig = async (yaml: string) => {
    const path = join(cwd, 'retrain.config.yaml');
    await writeFile(path, yaml);
    return path;
  };

  it('defaults to the local store and ignores S3_* variables then', () => {
    const c = load({ S3_BUCKET: 'ignored', S3_ENDPOINT: 'http://x:9000', S3_FORCE_PATH_STYLE: 'nonsense' });
    expect(c.store).toEqual({ kind: 'local', root: join(cwd, 'var', 'store') });
    expect(load({ RETRAIN_STORE_ROOT: '/data/store' }).store).toEqual({ kind: 'local', root: '/data/store' });
  });

  it('RETRAIN_STORE=s3 takes S3_* (with defaults for region and path style), not RETRAIN_STORE_ROOT', () => {
    expect(load({ RETRAIN_STORE: 's3', S3_BUCKET: 'artifacts', RETRAIN_STORE_ROOT: '/x' }).store).toEqual({
      kind: 's3',
      bucket: 'artifacts',
      region: 'us-east-1',
      forcePathStyle: false,
    });
    const r2 = load({
      RETRAIN_STORE: 's3',
      S3_ENDPOINT: 'https://0123abcd.r2.cloudflarestorage.com',
      S3_BUCKET: 'retrain-artifacts',
      S3_REGION: 'auto',
      S3_FORCE_PATH_STYLE: '1',
      S3_PREFIX: 'prod/v1',
    });
    expect(r2.store).toEqual({
      kind: 's3',
      endpoint: 'https://0123abcd.r2.cloudflarestorage.com',
      bucket: 'retrain-artifacts',
      region: 'auto',
      forcePathStyle: true,
      prefix: 'prod/v1',
    });
  });

  it('credentials are never part of the configuration', () => {
    const c = load({
      RETRAIN_STORE: 's3',
      S3_BUCKET: 'artifacts',
      S3_ACCESS_KEY_ID: 'AKIDEXAMPLE',
      S3_SECRET_ACCESS_KEY: 'very-secret-value',
    });
    expect(JSON.stringify(c)).not.toContain('very-secret-value');
    expect(JSON.stringify(c)).not.toContain('AKIDEXAMPLE');
  });

  it('a config file can name an S3 store; env overrides its fields or switches the kind back', async () => {
    const file = await writeConfig(
      'store:\n  kind: s3\n  bucket: from-file\n  endpoint: http://minio:9000\n  forcePathStyle: true\n',
    );
    expect(load({}, file).store).toEqual({
      kind: 's3',
      bucket: 'from-file',
      endpoint: 'http://minio:9000',
      region: 'us-east-1',
      forcePathStyle: true,
    });
    expect(load({ S3_BUCKET: 'from-env' }, file).store).toMatchObject({ kind: 's3', bucket: 'from-env' });
    expect(load({ RETRAIN_STORE: 'local' }, file).store).toEqual({
      kind: 'local',
      root: join(cwd, 'var', 'store'),
    });
  });

  it('one-line errors naming the bad field or variable', async () => {
    expect(() => load({ RETRAIN_STORE: 's3' })).toThrow(ConfigError);
    expect(() => load({ RETRAIN_STORE: 's3' })).toThrow(/store\.bucket/);
    expect(() => load({ RETRAIN_STORE: 'gcs' })).toThrow(/RETRAIN_STORE="gcs" must be local or s3/);
    expect(() => load({ RETRAIN_STORE: 's3', S3_BUCKET: 'b1x', S3_FORCE_PATH_STYLE: 'maybe' })).toThrow(
      /S3_FORCE_PATH_STYLE/,
    );
    expect(() => load({ RETRAIN_STORE: 's3', S3_BUCKET: 'Bad_Bucket' })).toThrow(/store\.bucket/);
    expect(() =>
      load({ RETRAIN_STORE: 's3', S3_BUCKET: 'ok-bucket', S3_ENDPOINT: 'http://u:p@h:9000' }),
    ).toThrow(/store\.endpoint/);
    expect(() => load({ RETRAIN_STORE: 's3', S3_BUCKET: 'ok-bucket', S3_PREFIX: 'a/../b' })).toThrow(
      /store\.prefix/,
    );
    const withRoot = await writeConfig('store:\n  kind: s3\n  bucket: b-1\n  root: /x\n');
    expect(() => load({}, withRoot)).toThrow(/unknown field "root" at store/);
    const withKey = await writeConfig('store:\n  kind: s3\n  bucket: b-1\n  secretAccessKey: nope\n');
    expect(() => load({}, withKey)).toThrow(/unknown field "secretAccessKey" at store/);
  });

  it('createStore: static credentials from S3_ACCESS_KEY_ID/S3_SECRET_ACCESS_KEY, or the AWS chain', async () => {
    const cfg = { kind: 's3' as const, bucket: 'artifacts', region: 'auto', forcePathStyle: true };
    const withKeys = createStore(cfg, { S3_ACCESS_KEY_ID: 'AKID', S3_SECRET_ACCESS_KEY: 'SECRET' });
    expect(withKeys).toBeInstanceOf(LazyS3Store);
    const built = await (withKeys as LazyS3Store).resolve();
    expect(built).toBeInstanceOf(S3Store);
    const creds = await built.client.config.credentials();
    expect(creds).toMatchObject({ accessKeyId: 'AKID', secretAccessKey: 'SECRET' });
    expect(withKeys.locate('runs/20260101Z/status.json')).toBe('s3://artifacts/runs/20260101Z/status.json');
    expect(built.locate('runs/20260101Z/status.json')).toBe(withKeys.locate('runs/20260101Z/status.json'));
    await (withKeys as LazyS3Store).destroy();

    const chain = createStore({ ...cfg, prefix: 'team' }, {});
    expect(chain.locate('a/b')).toBe('s3://artifacts/team/a/b');
    await (chain as LazyS3Store).destroy();

    expect(() => createStore(cfg, { S3_ACCESS_KEY_ID: 'AKID' })).toThrow(/S3_SECRET_ACCESS_KEY is missing/);
    expect(() => createStore(cfg, { S3_SECRET_ACCESS_KEY: 'SECRET' })).toThrow(/S3_ACCESS_KEY_ID is missing/);
    expect(createStore({ kind: 'local', root: cwd })).toBeInstanceOf(LocalStore);
  });
});
