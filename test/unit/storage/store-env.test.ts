/** The users' storage variables: S3_COMPACT_* and R2_* (config/storeEnv.ts). */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/errors.js';
import { s3CredentialsFromEnv } from '../../../src/storage/index.js';

const COMPACT = {
  S3_COMPACT_ENDPOINT: 'https://s3.example.com',
  S3_COMPACT_BUCKET: 'compact-bucket',
  S3_COMPACT_ACCESS_KEY: 'AKIACOMPACT',
  S3_COMPACT_SECRET_KEY: 'compact-secret',
};
const R2 = {
  R2_ENDPOINT: 'https://acc.r2.cloudflarestorage.com',
  R2_BUCKET: 'r2-bucket',
  R2_ACCESS_KEY_ID: 'r2-key',
  R2_SECRET_ACCESS_KEY: 'r2-secret',
};

describe('S3_COMPACT_* / R2_* store variables', () => {
  let cwd: string;
  beforeEach(async () => {
    cwd = await mkdtemp(join(tmpdir(), 'store-env-'));
  });
  afterEach(() => rm(cwd, { recursive: true, force: true }));
  const load = (env: Record<string, string>) => loadConfig({ env, cwd });

  it('S3_COMPACT_* selects the S3 store (path style, us-east-1 unless S3_COMPACT_REGION)', () => {
    expect(load(COMPACT).store).toEqual({
      kind: 's3',
      endpoint: 'https://s3.example.com',
      bucket: 'compact-bucket',
      region: 'us-east-1',
      forcePathStyle: true,
    });
    expect(load({ ...COMPACT, S3_COMPACT_REGION: 'eu-west-3' }).store).toMatchObject({ region: 'eu-west-3' });
    expect(s3CredentialsFromEnv(COMPACT)).toEqual({
      credentials: { accessKeyId: 'AKIACOMPACT', secretAccessKey: 'compact-secret' },
    });
  });

  it('R2_* selects the S3 store with region auto (none to set)', () => {
    expect(load(R2).store).toEqual({
      kind: 's3',
      endpoint: 'https://acc.r2.cloudflarestorage.com',
      bucket: 'r2-bucket',
      region: 'auto',
      forcePathStyle: true,
    });
    expect(s3CredentialsFromEnv(R2)).toEqual({
      credentials: { accessKeyId: 'r2-key', secretAccessKey: 'r2-secret' },
    });
  });

  it('credentials never enter the configuration', () => {
    const text = JSON.stringify(load({ ...COMPACT }));
    expect(text).not.toContain('compact-secret');
    expect(text).not.toContain('AKIACOMPACT');
  });

  it('half-configured: an error naming every missing variable, even with RETRAIN_STORE=local', () => {
    const { R2_ACCESS_KEY_ID: _a, R2_SECRET_ACCESS_KEY: _b, ...half } = R2;
    expect(() => load(half)).toThrow(
      new ConfigError(
        'environment: the R2_* store is half-configured: R2_ACCESS_KEY_ID, R2_SECRET_ACCESS_KEY are missing',
      ),
    );
    expect(() => load({ S3_COMPACT_SECRET_KEY: 'x', RETRAIN_STORE: 'local' })).toThrow(
      'environment: the S3_COMPACT_* store is half-configured: S3_COMPACT_ENDPOINT, S3_COMPACT_BUCKET, S3_COMPACT_ACCESS_KEY are missing',
    );
    expect(() => load({ ...COMPACT, ...R2 })).toThrow(
      /both S3_COMPACT_\* and R2_\* storage variables are set/,
    );
  });

  it('RETRAIN_STORE=local keeps the local store when a group is fully set; S3_* still override fields', () => {
    expect(load({ ...R2, RETRAIN_STORE: 'local' }).store).toMatchObject({ kind: 'local' });
    expect(load({ ...R2, S3_PREFIX: 'team/a' }).store).toMatchObject({
      bucket: 'r2-bucket',
      prefix: 'team/a',
    });
  });
});
