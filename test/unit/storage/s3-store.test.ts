/**
 * S3Store against a real S3-compatible server (moto_server started here, or S3_TEST_ENDPOINT), plus a
 * stub HTTP server for the answers a real server does not give on demand (403, 503, corruption).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect, promisify } from 'node:util';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { ChecksumError, StoreError } from '../../../src/errors.js';
import { createStore, LazyS3Store } from '../../../src/storage/index.js';
import { S3Store, type S3StoreOptions } from '../../../src/storage/s3.js';
import { sha256Hex } from '../../../src/util/hash.js';
import {
  s3ErrorXml,
  startS3Server,
  startStubS3,
  type S3ServerHandle,
  type StubResponse,
} from '../../helpers/s3server.js';
import { runStoreContract } from './store-contract.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;

let server: S3ServerHandle | undefined;
let sharedBucket = '';

beforeAll(async () => {
  server = await startS3Server();
  sharedBucket = await server.createBucket();
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

function srv(): S3ServerHandle {
  if (!server) throw new Error('the S3 test server did not start');
  return server;
}

function storeOn(bucket: string, opts: Partial<S3StoreOptions> = {}): S3Store {
  const s = srv();
  return new S3Store({
    bucket,
    endpoint: s.endpoint,
    region: s.region,
    forcePathStyle: true,
    credentials: s.credentials,
    maxAttempts: 2,
    ...opts,
  });
}

const uniquePrefix = () => `t-${randomBytes(5).toString('hex')}`;

runStoreContract('S3Store, key prefix per test', async () => {
  const prefix = uniquePrefix();
  const store = storeOn(sharedBucket, { prefix });
  return {
    store,
    cleanup: async () => {
      await srv().emptyPrefix(sharedBucket, `${prefix}/`);
      store.destroy();
    },
  };
});

runStoreContract('S3Store, bucket per test, no prefix', async () => {
  const bucket = await srv().createBucket();
  const store = storeOn(bucket);
  return {
    store,
    cleanup: async () => {
      await srv().deleteBucket(bucket);
      store.destroy();
    },
  };
});

describe('S3Store specifics', () => {
  async function withStore(
    fn: (store: S3Store, prefix: string, scratch: string) => Promise<void>,
    opts: Partial<S3StoreOptions> = {},
  ): Promise<void> {
    const prefix = uniquePrefix();
    const store = storeOn(sharedBucket, { prefix, ...opts });
    const scratch = await mkdtemp(join(tmpdir(), 's3-store-'));
    try {
      await fn(store, prefix, scratch);
    } finally {
      store.destroy();
      await srv().emptyPrefix(sharedBucket, `${prefix}/`);
      await rm(scratch, { recursive: true, force: true });
    }
  }

  async function caught(p: Promise<unknown>): Promise<Error> {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    return err as Error;
  }

  it('stores keys below the prefix, locates them as s3:// URLs and records their sha256', async () => {
    await withStore(async (store, prefix) => {
      const r = await store.putBytes('ml-artifacts/job-1/metrics.json', '{"a":1}\n');
      expect(store.locate('ml-artifacts/job-1/metrics.json')).toBe(
        `s3://${sharedBucket}/${prefix}/ml-artifacts/job-1/metrics.json`,
      );
      const head = await srv().client.send(
        new HeadObjectCommand({ Bucket: sharedBucket, Key: `${prefix}/ml-artifacts/job-1/metrics.json` }),
      );
      expect(head.Metadata?.sha256).toBe(r.sha256);
      expect(head.ContentLength).toBe(r.bytes);
      expect(await store.list('')).toEqual(['ml-artifacts/job-1/metrics.json']);
    });
  });

  it('uploads a large file as a verified multipart upload and downloads it intact', async () => {
    await withStore(
      async (store, prefix, scratch) => {
        const src = join(scratch, 'model.bin');
        const data = randomBytes(11 * MiB + 12_345);
        await writeFile(src, data);
        const sha = sha256Hex(data);
        const r = await store.putFile('ml-artifacts/job-2/model.bin', src, sha);
        expect(r).toEqual({ key: 'ml-artifacts/job-2/model.bin', sha256: sha, bytes: data.length });

        const head = await srv().client.send(
          new HeadObjectCommand({ Bucket: sharedBucket, Key: `${prefix}/ml-artifacts/job-2/model.bin` }),
        );
        expect(head.ETag).toMatch(/-3"$/); // three parts of 5 MiB, 5 MiB and the rest
        expect(head.Metadata?.sha256).toBe(sha);

        const dest = join(scratch, 'back', 'model.bin');
        await store.getFile('ml-artifacts/job-2/model.bin', dest, sha);
        expect(sha256Hex(await readFile(dest))).toBe(sha);
        expect((await store.getBytes('ml-artifacts/job-2/model.bin')).length).toBe(data.length);

        // A wrong expected sha256 sends nothing: no object, no multipart upload left behind.
        const err = await caught(store.putFile('ml-artifacts/job-2/other.bin', src, '0'.repeat(64)));
        expect(err).toBeInstanceOf(ChecksumError);
        expect(await store.exists('ml-artifacts/job-2/other.bin')).toBe(false);
        const mpu = await srv().client.send(
          new ListMultipartUploadsCommand({ Bucket: sharedBucket, Prefix: `${prefix}/` }),
        );
        expect(mpu.Uploads ?? []).toEqual([]);
      },
      { multipartThresholdBytes: 5 * MiB, partSizeBytes: 5 * MiB },
    );
  });

  it('lists across pages and skips "folder/" markers', async () => {
    await withStore(
      async (store, prefix) => {
        const keys = ['p/e', 'p/a', 'p/d', 'p/c', 'p/b'];
        for (const k of keys) await store.putBytes(k, k);
        await srv().client.send(
          new PutObjectCommand({ Bucket: sharedBucket, Key: `${prefix}/p/folder/`, Body: '' }),
        );
        expect(await store.list('p/')).toEqual([...keys].sort());
      },
      { listPageSize: 2 },
    );
  });

  it('concurrent writers of one key leave one complete value and no error', async () => {
    await withStore(
      async (store) => {
        const values = Array.from({ length: 8 }, (_, i) => String(i).repeat(5000));
        await Promise.all(values.map((v) => store.putBytes('race/key', v)));
        expect(values).toContain((await store.getBytes('race/key')).toString());
        expect(await store.list('race/')).toEqual(['race/key']);
        // moto's server itself sometimes answers 500 to same-key writes racing on a loaded machine:
        // the SDK's retries (4 attempts, as in production) ride that out, as they would on S3.
      },
      { maxAttempts: 4 },
    );
  });

  it('a download that does not hash to the recorded sha256 is a ChecksumError and writes no file', async () => {
    await withStore(async (store, prefix, scratch) => {
      await srv().client.send(
        new PutObjectCommand({
          Bucket: sharedBucket,
          Key: `${prefix}/bad/obj.bin`,
          Body: 'tampered',
          Metadata: { sha256: sha256Hex('original') },
        }),
      );
      const e1 = await caught(store.getBytes('bad/obj.bin'));
      expect(e1).toBeInstanceOf(ChecksumError);
      expect(e1.message).toContain(`s3://${sharedBucket}/${prefix}/bad/obj.bin`);
      const dest = join(scratch, 'obj.bin');
      expect(await caught(store.getFile('bad/obj.bin', dest))).toBeInstanceOf(ChecksumError);
      await expect(stat(dest)).rejects.toThrow();
    });
  });

  it('objects written by other tools (no sha256 metadata) still read, and verify against expectedSha256', async () => {
    await withStore(async (store, prefix, scratch) => {
      await srv().client.send(
        new PutObjectCommand({
          Bucket: sharedBucket,
          Key: `${prefix}/datasets/v1/BTC/20260101/features.csv`,
          Body: 'a,b\n',
        }),
      );
      expect((await store.getBytes('datasets/v1/BTC/20260101/features.csv')).toString()).toBe('a,b\n');
      await store.getFile(
        'datasets/v1/BTC/20260101/features.csv',
        join(scratch, 'f.csv'),
        sha256Hex('a,b\n'),
      );
      await store.copy('datasets/v1/BTC/20260101/features.csv', 'copy/features.csv');
      expect((await store.getBytes('copy/features.csv')).toString()).toBe('a,b\n');
      await store.copy('copy/features.csv', 'copy/features.csv'); // onto itself: a no-op
      expect((await store.getBytes('copy/features.csv')).toString()).toBe('a,b\n');
    });
  });

  it('a missing key is "not found" naming s3://bucket/key; a missing bucket says so', async () => {
    await withStore(async (store, prefix) => {
      const err = await caught(store.getBytes('models/production/BTC/manifest.json'));
      expect(err).toBeInstanceOf(StoreError);
      expect((err as StoreError).retryable).toBe(false);
      expect(err.message).toBe(
        `not found: models/production/BTC/manifest.json (s3://${sharedBucket}/${prefix}/models/production/BTC/manifest.json)`,
      );
    });

    const missing = storeOn('retrain-no-such-bucket', { prefix: 'x' });
    try {
      for (const op of [
        () => missing.getBytes('a/b.json'),
        () => missing.exists('a/b.json'),
        () => missing.putBytes('a/b.json', '{}'),
        () => missing.list('a/'),
      ]) {
        const err = await caught(op());
        expect(err).toBeInstanceOf(StoreError);
        expect((err as StoreError).retryable).toBe(false);
        expect(err.message).toMatch(
          /^bucket retrain-no-such-bucket does not exist at http:\/\/127\.0\.0\.1:\d+ /,
        );
        expect(err.message).toContain('s3://retrain-no-such-bucket/x/a/');
      }
    } finally {
      missing.destroy();
    }
  });

  it('403 answers are non-retryable errors naming bucket and key, never the secret', async () => {
    const secret = 'wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY';
    const codes = ['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch'];
    for (const code of codes) {
      const stub = await startStubS3(() => ({ status: 403, body: s3ErrorXml(code, 'denied') }));
      const store = new S3Store({
        bucket: 'artifacts',
        endpoint: stub.endpoint,
        forcePathStyle: true,
        prefix: 'prod',
        credentials: {
          accessKeyId: 'AKIAEXAMPLE',
          secretAccessKey: secret,
          sessionToken: 'session-token-xyz',
        },
        maxAttempts: 3,
      });
      try {
        const ops: [string, () => Promise<unknown>][] = [
          ['get', () => store.getBytes('models/production/BTC/model.bin')],
          ['put', () => store.putBytes('models/production/BTC/model.bin', 'x')],
          ['list', () => store.list('models/')],
          ['head', () => store.exists('models/production/BTC/model.bin')],
        ];
        for (const [op, fn] of ops) {
          const err = await caught(fn());
          expect(err, `${code} ${op}`).toBeInstanceOf(StoreError);
          expect((err as StoreError).retryable).toBe(false);
          expect(err.message).toContain('access denied');
          expect(err.message).toContain(
            op === 'list'
              ? 's3://artifacts/prod/models/'
              : 's3://artifacts/prod/models/production/BTC/model.bin',
          );
          // HEAD answers carry no error document, so only the other operations can name the cause.
          if (op !== 'head' && code === 'InvalidAccessKeyId')
            expect(err.message).toContain('access key id is unknown');
          if (op !== 'head' && code === 'SignatureDoesNotMatch')
            expect(err.message).toContain('secret access key does not match');
          const everything = [err.message, err.stack ?? '', JSON.stringify(err), inspect(err, { depth: 20 })];
          for (const text of everything) {
            expect(text).not.toContain(secret);
            expect(text).not.toContain('session-token-xyz');
          }
        }
        // Not retried: one request per operation.
        expect(stub.requests.length).toBe(ops.length);
        // The secret never travels either (SigV4 sends a signature, not the key).
        for (const r of stub.requests) expect(JSON.stringify(r.headers)).not.toContain(secret);
      } finally {
        store.destroy();
        await stub.stop();
      }
    }
  });

  it('5xx answers and unreachable endpoints are retryable errors, after the SDK retried', async () => {
    const stub = await startStubS3(() => ({ status: 503, body: s3ErrorXml('ServiceUnavailable', 'busy') }));
    const store = new S3Store({
      bucket: 'artifacts',
      endpoint: stub.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
      maxAttempts: 2,
    });
    try {
      const err = await caught(store.getBytes('runs/20260101Z/status.json'));
      expect(err).toBeInstanceOf(StoreError);
      expect((err as StoreError).retryable).toBe(true);
      expect(err.message).toContain('s3://artifacts/runs/20260101Z/status.json');
      expect(err.message).toContain('HTTP 503');
      expect(stub.requests.length).toBe(2);
    } finally {
      store.destroy();
      await stub.stop();
    }

    const closed = await startStubS3(() => ({ status: 200 }));
    const deadEndpoint = closed.endpoint;
    await closed.stop();
    const dead = new S3Store({
      bucket: 'artifacts',
      endpoint: deadEndpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
      maxAttempts: 2,
    });
    try {
      const err = await caught(dead.putBytes('summary/20260101Z/engine_summary.json', '{}'));
      expect(err).toBeInstanceOf(StoreError);
      expect((err as StoreError).retryable).toBe(true);
      expect(err.message).toContain('s3://artifacts/summary/20260101Z/engine_summary.json');
      expect(err.message).toContain('ECONNREFUSED');
    } finally {
      dead.destroy();
    }
  });

  it('an upload the server stores wrongly is deleted, retried, then a ChecksumError', async () => {
    const stub = await startStubS3((req): StubResponse => {
      if (req.method === 'PUT') return { status: 200, headers: { etag: '"e1"' } };
      if (req.method === 'HEAD') return { status: 200, headers: { etag: '"e1"', 'content-length': '3' } };
      if (req.method === 'GET') return { status: 200, headers: { etag: '"e1"' }, body: 'xyz' };
      if (req.method === 'DELETE') return { status: 204 };
      return { status: 400, body: s3ErrorXml('InvalidRequest', 'unexpected') };
    });
    const store = new S3Store({
      bucket: 'artifacts',
      endpoint: stub.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
      verifyAttempts: 2,
    });
    try {
      const err = await caught(store.putBytes('ml-artifacts/j/model.bin', 'abc'));
      expect(err).toBeInstanceOf(ChecksumError);
      expect(err.message).toContain('s3://artifacts/ml-artifacts/j/model.bin');
      expect(err.message).toContain(sha256Hex('abc'));
      const methods = stub.requests.map((r) => r.method);
      expect(methods).toEqual(['PUT', 'HEAD', 'GET', 'DELETE', 'PUT', 'HEAD', 'GET', 'DELETE']);
      // The upload carried its SHA-256 for servers that check it.
      const put = stub.requests[0]!;
      expect(put.headers['x-amz-checksum-sha256']).toBe(
        Buffer.from(sha256Hex('abc'), 'hex').toString('base64'),
      );
      expect(put.headers['x-amz-meta-sha256']).toBe(sha256Hex('abc'));
    } finally {
      store.destroy();
      await stub.stop();
    }
  });

  it('a put whose server-reported SHA-256 matches needs no read-back', async () => {
    const b64 = Buffer.from(sha256Hex('abc'), 'hex').toString('base64');
    const stub = await startStubS3((req) => {
      if (req.method === 'PUT')
        return { status: 200, headers: { etag: '"e1"', 'x-amz-checksum-sha256': b64 } };
      return { status: 400, body: s3ErrorXml('InvalidRequest', 'unexpected') };
    });
    const store = new S3Store({
      bucket: 'artifacts',
      endpoint: stub.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
    });
    try {
      expect((await store.putBytes('k/v', 'abc')).sha256).toBe(sha256Hex('abc'));
      expect(stub.requests.map((r) => r.method)).toEqual(['PUT']);
    } finally {
      store.destroy();
      await stub.stop();
    }
  });

  it('`aws s3 ls --recursive` lists what the store wrote, under the layout keys', async () => {
    await withStore(async (store, prefix) => {
      const written = [
        'ml-artifacts/job-7/model.bin',
        'models/candidates/BTC/2026-01-01/metrics.json',
        'models/production/BTC/manifest.json',
        'runs/20260101Z/status.json',
        'summary/20260101Z/engine_summary.json',
      ];
      for (const k of written) await store.putJson(k, { k });
      const { stdout } = await run(
        'aws',
        ['--endpoint-url', srv().endpoint, 's3', 'ls', '--recursive', `s3://${sharedBucket}/${prefix}/`],
        { env: { ...process.env, ...srv().awsEnv() }, timeout: 60_000 },
      ).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') throw new Error('the aws CLI is not installed (apt-get install awscli)');
        throw err;
      });
      const listed = stdout
        .trim()
        .split('\n')
        .map((line) => line.trim().split(/\s+/).slice(3).join(' '));
      expect(listed).toEqual(written.map((k) => `${prefix}/${k}`));
    });
  });

  it('createStore builds an S3Store from loadConfig + env, with credentials kept out of the config', async () => {
    const home = await mkdtemp(join(tmpdir(), 's3-config-'));
    const prefix = uniquePrefix();
    const env = {
      RETRAIN_HOME: home,
      RETRAIN_STORE: 's3',
      S3_ENDPOINT: srv().endpoint,
      S3_BUCKET: sharedBucket,
      S3_REGION: srv().region,
      S3_FORCE_PATH_STYLE: 'true',
      S3_PREFIX: prefix,
      S3_ACCESS_KEY_ID: srv().credentials.accessKeyId,
      S3_SECRET_ACCESS_KEY: srv().credentials.secretAccessKey,
    };
    try {
      const config = loadConfig({ env, cwd: home });
      expect(config.store).toEqual({
        kind: 's3',
        endpoint: srv().endpoint,
        bucket: sharedBucket,
        region: srv().region,
        forcePathStyle: true,
        prefix,
      });
      expect(JSON.stringify(config)).not.toContain(srv().credentials.secretAccessKey);
      const store = createStore(config.store, env);
      try {
        // The SDK is loaded on first use: a LazyS3Store that builds this S3Store.
        expect(store).toBeInstanceOf(LazyS3Store);
        expect(await (store as LazyS3Store).resolve()).toBeInstanceOf(S3Store);
        expect(store.kind).toBe('s3');
        await store.putJson('runs/20260102Z/status.json', { ok: true });
        const got = await srv().client.send(
          new GetObjectCommand({ Bucket: sharedBucket, Key: `${prefix}/runs/20260102Z/status.json` }),
        );
        expect(JSON.parse(await got.Body!.transformToString())).toEqual({ ok: true });
      } finally {
        await (store as LazyS3Store).destroy();
      }
    } finally {
      await srv().emptyPrefix(sharedBucket, `${prefix}/`);
      await rm(home, { recursive: true, force: true });
    }
  });
});
