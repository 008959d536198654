import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type HeadObjectCommandOutput,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { ChecksumError, RetrainError, StoreError } from '../errors.js';
import {
  normalizeS3Prefix as normalizePrefix,
  parseStoredJson,
  TEMP_MARKER,
  validateKey,
  validatePrefix,
} from './keys.js';
import type { ArtifactStore, PutResult } from './store.js';
import { hashingTap } from '../util/hash.js';

const MiB = 1024 * 1024;
/** S3's smallest part (all but the last); lib-storage refuses less. */
export const MIN_PART_SIZE = 5 * MiB;
const MAX_PARTS = 10_000;

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface S3StoreOptions {
  bucket: string;
  /** S3-compatible endpoint (R2, MinIO, moto). Unset: AWS S3 for `region`. */
  endpoint?: string;
  /** Default 'us-east-1'. R2 takes 'auto'. */
  region?: string;
  /** Path-style URLs (`<endpoint>/<bucket>/<key>`), which MinIO and moto need. Default false. */
  forcePathStyle?: boolean;
  /** Key prefix inside the bucket ('team/retrain' or 'team/retrain/'); keys are stored below it. */
  prefix?: string;
  /** Static credentials. Unset: the AWS SDK default chain (AWS_* env, profile, instance role...). */
  credentials?: S3Credentials;
  /** Attempts per S3 request, retried by the SDK on network errors, 5xx and throttling. Default 4. */
  maxAttempts?: number;
  /** Attempts of a whole upload or download whose verification failed (ChecksumError). Default 3. */
  verifyAttempts?: number;
  /** Files larger than this go up as a multipart upload. Default 16 MiB. */
  multipartThresholdBytes?: number;
  /** Multipart part size, at least 5 MiB. Default 8 MiB. */
  partSizeBytes?: number;
  /** Parts uploaded at once. Default 4. */
  queueSize?: number;
  /** Keys per ListObjectsV2 page. Default: the server's (1000 on S3). */
  listPageSize?: number;
  /** TCP connect timeout. Default 10 s. */
  connectionTimeoutMs?: number;
  /** Socket idle timeout of a request. Default 120 s. */
  requestTimeoutMs?: number;
}

/** What the store knows about an object it wrote: its SHA-256 (hex) in the `sha256` user metadata. */
const SHA_META = 'sha256';
const HEX64 = /^[0-9a-f]{64}$/;

/**
 * An ArtifactStore on an S3-compatible bucket (AWS S3, Cloudflare R2, MinIO, moto): key `a/b` is the
 * object `<prefix>a/b`, so the layout of DESIGN.md is listable with `aws s3 ls`.
 *
 * Guarantees (the same contract as LocalStore):
 * - keys and prefixes are validated exactly like LocalStore's (storage/keys.ts);
 * - puts are atomic (S3 never shows a partial object) and verified: the source is hashed first
 *   (`expectedSha256` is checked before anything is sent), the upload carries `x-amz-checksum-sha256`
 *   (per part for multipart uploads) so that servers which check it refuse corrupted bytes, and the
 *   stored object is then checked: by the SHA-256 the server reports (whole, or composite for
 *   multipart) when it reports one, otherwise by reading the object back and hashing it. A mismatch
 *   deletes the object and throws ChecksumError; the upload is retried `verifyAttempts` times first.
 *   Objects carry their SHA-256 (hex) in the `sha256` user metadata;
 * - reads hash what they receive and compare with that metadata (when present) and `expectedSha256`;
 *   `getFile` writes a temp file next to the destination and renames it only once verified;
 * - `copy` is server-side (CopyObject, pinned to the source's ETag) and checked by size and checksum;
 * - errors are StoreError naming `s3://bucket/key` and never a credential: 404 → "not found: <key>"
 *   (not retryable), a missing bucket or 403 → not retryable with what to check, network errors,
 *   5xx and throttling → retryable (after the SDK's own `maxAttempts` retries).
 *
 * `list` skips objects whose names are not valid keys (e.g. the "folder/" markers some consoles
 * create). CopyObject is limited to 5 GiB sources, far above any artifact of this project.
 */
export class S3Store implements ArtifactStore {
  readonly kind = 's3' as const;
  readonly bucket: string;
  /** '' or a prefix ending in '/'. */
  readonly prefix: string;
  readonly client: S3Client;
  private readonly endpoint: string | undefined;
  private readonly verifyAttempts: number;
  private readonly multipartThreshold: number;
  private readonly partSize: number;
  private readonly queueSize: number;
  private readonly listPageSize: number | undefined;
  private readonly secrets: string[];
  private bucketChecked = false;

  constructor(opts: S3StoreOptions) {
    if (!opts.bucket) throw new StoreError('S3 store: bucket is required', { retryable: false });
    this.bucket = opts.bucket;
    this.prefix = normalizePrefix(opts.prefix);
    this.endpoint = opts.endpoint ? safeEndpoint(opts.endpoint) : undefined;
    this.verifyAttempts = Math.max(1, opts.verifyAttempts ?? 3);
    this.partSize = Math.max(MIN_PART_SIZE, opts.partSizeBytes ?? 8 * MiB);
    this.multipartThreshold = Math.max(0, opts.multipartThresholdBytes ?? 16 * MiB);
    this.queueSize = Math.max(1, opts.queueSize ?? 4);
    this.listPageSize = opts.listPageSize;
    this.secrets = [opts.credentials?.secretAccessKey, opts.credentials?.sessionToken].filter(
      (s): s is string => typeof s === 'string' && s.length >= 4,
    );
    this.client = new S3Client({
      region: opts.region || 'us-east-1',
      ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
      forcePathStyle: opts.forcePathStyle ?? false,
      ...(opts.credentials ? { credentials: { ...opts.credentials } } : {}),
      maxAttempts: Math.max(1, opts.maxAttempts ?? 4),
      // Checksums are sent explicitly (SHA-256) where they matter; the SDK's default CRC32 on every
      // request is refused by some S3-compatible servers.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: {
        connectionTimeout: opts.connectionTimeoutMs ?? 10_000,
        requestTimeout: opts.requestTimeoutMs ?? 120_000,
      },
    });
  }

  /** `s3://bucket/<prefix><key>`. */
  locate(key: string): string {
    return this.url(this.objectKey(key));
  }

  async putFile(key: string, localPath: string, expectedSha256?: string): Promise<PutResult> {
    const full = this.objectKey(key);
    let size: number;
    try {
      const st = await stat(localPath);
      if (!st.isFile()) throw Object.assign(new Error('not a file'), { code: 'EISDIR' });
      size = st.size;
    } catch (err) {
      throw new StoreError(`source file not found: ${localPath} (for ${this.url(full)})`, {
        retryable: false,
        cause: err,
      });
    }
    if (size <= this.multipartThreshold) {
      let buf: Buffer;
      try {
        buf = await readFile(localPath);
      } catch (err) {
        throw new StoreError(`cannot read ${localPath} (for ${this.url(full)}): ${(err as Error).message}`, {
          cause: err,
        });
      }
      return this.putBuffer(key, full, buf, 'application/octet-stream', expectedSha256);
    }
    return this.putLarge(key, full, localPath, size, expectedSha256);
  }

  async putBytes(key: string, data: Buffer | string, expectedSha256?: string): Promise<PutResult> {
    const full = this.objectKey(key);
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    return this.putBuffer(key, full, buf, 'application/octet-stream', expectedSha256);
  }

  /** Pretty-printed JSON (2 spaces, trailing newline), as LocalStore writes it. */
  async putJson(key: string, value: unknown): Promise<PutResult> {
    const full = this.objectKey(key);
    const text = JSON.stringify(value, null, 2);
    if (text === undefined) {
      throw new StoreError(`cannot store ${typeof value} as JSON at ${key}`, { retryable: false });
    }
    return this.putBuffer(key, full, Buffer.from(text + '\n', 'utf8'), 'application/json');
  }

  async getBytes(key: string): Promise<Buffer> {
    const full = this.objectKey(key);
    return this.withVerifyRetries(async () => {
      const res = await this.send('get', key, full, () =>
        this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: full })),
      );
      let buf: Buffer;
      try {
        buf = Buffer.from(await res.Body!.transformToByteArray());
      } catch (err) {
        throw this.mapError(err, 'get', key, full);
      }
      this.checkDownload(key, full, sha256Hex(buf), buf.length, res.ContentLength, res.Metadata);
      return buf;
    });
  }

  /** Throws StoreError (not retryable) naming the key when the object is not valid JSON. */
  async getJson<T = unknown>(key: string): Promise<T> {
    return parseStoredJson<T>(key, await this.getBytes(key));
  }

  /**
   * Streams the object into a temp file next to `localPath` (parents created), hashing it, and
   * renames it into place only when the hash matches the object's metadata and `expectedSha256`.
   */
  async getFile(key: string, localPath: string, expectedSha256?: string): Promise<void> {
    const full = this.objectKey(key);
    const dest = resolve(localPath);
    await this.withVerifyRetries(async () => {
      const res = await this.send('get', key, full, () =>
        this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: full })),
      );
      const tmp = join(dirname(dest), `${TEMP_MARKER}${randomBytes(6).toString('hex')}-${basename(dest)}`);
      try {
        const { tap, result } = hashingTap();
        try {
          await mkdir(dirname(dest), { recursive: true });
          await pipeline(res.Body as Readable, tap, createWriteStream(tmp, { flags: 'wx' }));
          const fh = await open(tmp, 'r+');
          try {
            await fh.sync();
          } finally {
            await fh.close();
          }
        } catch (err) {
          if (isFsError(err)) {
            throw new StoreError(`cannot download ${key} to ${dest}: ${(err as Error).message}`, {
              retryable: !['EACCES', 'EPERM', 'EISDIR', 'ENOTDIR', 'EEXIST'].includes(
                (err as NodeJS.ErrnoException).code ?? '',
              ),
              cause: err,
            });
          }
          throw this.mapError(err, 'get', key, full);
        }
        const { sha256, bytes } = result();
        this.checkDownload(key, full, sha256, bytes, res.ContentLength, res.Metadata);
        if (expectedSha256 !== undefined && sha256 !== expectedSha256.toLowerCase()) {
          throw new ExpectedMismatch(
            `checksum mismatch for ${key}: expected ${expectedSha256}, got ${sha256}`,
          );
        }
        try {
          await rename(tmp, dest);
        } catch (err) {
          throw new StoreError(`cannot download ${key} to ${dest}: ${(err as Error).message}`, {
            retryable: false,
            cause: err,
          });
        }
      } finally {
        await rm(tmp, { force: true }).catch(() => undefined);
      }
    });
  }

  async exists(key: string): Promise<boolean> {
    const full = this.objectKey(key);
    return (await this.head(key, full)) !== undefined;
  }

  /**
   * Keys starting with `prefix` (a plain string prefix, as LocalStore), sorted by code unit, all
   * pages of ListObjectsV2 read.
   */
  async list(prefix: string): Promise<string[]> {
    validatePrefix(prefix);
    const out: string[] = [];
    let token: string | undefined;
    do {
      const res = await this.send('list', prefix || '(all)', this.prefix + prefix, () =>
        this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.prefix + prefix,
            ...(this.listPageSize ? { MaxKeys: this.listPageSize } : {}),
            ...(token ? { ContinuationToken: token } : {}),
          }),
        ),
      );
      for (const o of res.Contents ?? []) {
        if (!o.Key?.startsWith(this.prefix)) continue;
        const key = o.Key.slice(this.prefix.length);
        if (isValidKey(key)) out.push(key);
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return out.sort(compareKeys);
  }

  /** Server-side copy of the version just inspected; the copy must match the source's size and sha256. */
  async copy(fromKey: string, toKey: string): Promise<void> {
    const from = this.objectKey(fromKey);
    const to = this.objectKey(toKey);
    await this.withVerifyRetries(async () => {
      const src = await this.head(fromKey, from);
      if (!src) throw notFound(fromKey, this.url(from));
      if (from === to) return; // S3 refuses a copy onto itself with the same metadata
      // A 404 here can only mean the source (or the bucket): name the source.
      await this.send('copy', fromKey, from, () =>
        this.client.send(
          new CopyObjectCommand({
            Bucket: this.bucket,
            Key: to,
            CopySource: `${encodeURIComponent(this.bucket)}/${from.split('/').map(encodeURIComponent).join('/')}`,
            MetadataDirective: 'COPY',
            ...(src.ETag ? { CopySourceIfMatch: src.ETag } : {}),
          }),
        ),
      );
      const dst = await this.head(toKey, to);
      const srcSha = metaSha(src.Metadata);
      const dstSha = metaSha(dst?.Metadata);
      if (!dst || dst.ContentLength !== src.ContentLength || srcSha !== dstSha) {
        await this.deleteQuietly(to);
        throw new ChecksumError(
          `copy of ${fromKey} to ${toKey} does not match its source (${src.ContentLength} B, sha256 ${srcSha ?? '?'} vs ${dst?.ContentLength ?? 'missing'} B, sha256 ${dstSha ?? '?'}); the copy was removed`,
        );
      }
    });
  }

  /** Idempotent: deleting a missing key is not an error. */
  async delete(key: string): Promise<void> {
    const full = this.objectKey(key);
    await this.send('delete', key, full, () =>
      this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: full })),
    );
  }

  /** Closes the client's sockets. */
  destroy(): void {
    this.client.destroy();
  }

  // ---------------------------------------------------------------------------------------------

  private objectKey(key: string): string {
    return this.prefix + validateKey(key);
  }

  private url(fullKey: string): string {
    return `s3://${this.bucket}/${fullKey}`;
  }

  /** Single PutObject of a buffer (retried by the SDK: the body is rewindable), then verified. */
  private async putBuffer(
    key: string,
    full: string,
    buf: Buffer,
    contentType: string,
    expectedSha256?: string,
  ): Promise<PutResult> {
    const digest = createHash('sha256').update(buf).digest();
    const sha256 = digest.toString('hex');
    checkExpected(key, sha256, expectedSha256);
    const b64 = digest.toString('base64');
    return this.withVerifyRetries(async () => {
      const put = await this.send('put', key, full, () =>
        this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: full,
            Body: buf,
            ContentLength: buf.length,
            ContentType: contentType,
            ChecksumSHA256: b64,
            Metadata: { [SHA_META]: sha256 },
          }),
        ),
      );
      await this.verifyStored(key, full, sha256, buf.length, b64, put);
      return { key, sha256, bytes: buf.length };
    });
  }

  /** Multipart upload (lib-storage) of a large file, streamed; verified against the composite checksum. */
  private async putLarge(
    key: string,
    full: string,
    localPath: string,
    size: number,
    expectedSha256?: string,
  ): Promise<PutResult> {
    const partSize = Math.max(this.partSize, Math.ceil(size / MAX_PARTS));
    let hashed: { sha256: string; bytes: number; checksum: string };
    try {
      hashed = await hashForUpload(localPath, partSize);
    } catch (err) {
      throw new StoreError(`cannot read ${localPath} (for ${this.url(full)}): ${(err as Error).message}`, {
        cause: err,
      });
    }
    checkExpected(key, hashed.sha256, expectedSha256);
    return this.withVerifyRetries(async () => {
      const upload = new Upload({
        client: this.client,
        partSize,
        queueSize: this.queueSize,
        leavePartsOnError: false,
        params: {
          Bucket: this.bucket,
          Key: full,
          Body: createReadStream(localPath),
          ContentLength: hashed.bytes,
          ContentType: 'application/octet-stream',
          ChecksumAlgorithm: 'SHA256',
          Metadata: { [SHA_META]: hashed.sha256 },
        },
      });
      const done = await this.send('put', key, full, () => upload.done());
      await this.verifyStored(key, full, hashed.sha256, hashed.bytes, hashed.checksum, done);
      return { key, sha256: hashed.sha256, bytes: hashed.bytes };
    });
  }

  /**
   * Confirms that the object now under `full` holds the bytes just sent. `checksum` is the base64
   * SHA-256 a server reports for it (whole object, or composite over the parts). A newer object by
   * another writer (different ETag) counts as success: last writer wins, as with LocalStore.
   */
  private async verifyStored(
    key: string,
    full: string,
    sha256: string,
    bytes: number,
    checksum: string,
    put: { ETag?: string | undefined; ChecksumSHA256?: string | undefined },
  ): Promise<void> {
    if (put.ChecksumSHA256 && stripParts(put.ChecksumSHA256) === checksum) return;
    const head = await this.send('head', key, full, () =>
      this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: full, ChecksumMode: 'ENABLED' })),
    ).catch((err: unknown) => {
      if (err instanceof StoreError && /^not found:/.test(err.message)) {
        throw new StoreError(`${key} vanished right after its upload (${this.url(full)})`, { cause: err });
      }
      throw err;
    });
    if (put.ETag && head.ETag && head.ETag !== put.ETag) return;
    const fail = async (stored: string, storedBytes: number | undefined) => {
      await this.deleteQuietly(full);
      return new ChecksumError(
        `checksum mismatch writing ${key} (${this.url(full)}): source ${sha256} (${bytes} B), stored ${stored} (${storedBytes ?? '?'} B); the object was removed`,
      );
    };
    if (head.ContentLength !== undefined && head.ContentLength !== bytes) {
      throw await fail('(size differs)', head.ContentLength);
    }
    if (head.ChecksumSHA256 && stripParts(head.ChecksumSHA256) === checksum) return;
    // No usable server checksum: read the object back (the version just inspected) and hash it.
    let res;
    try {
      res = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: full,
          ...(head.ETag ? { IfMatch: head.ETag } : {}),
        }),
      );
    } catch (err) {
      if (httpStatus(err) === 412) return; // replaced by another writer meanwhile
      throw this.mapError(err, 'get', key, full);
    }
    const hash = createHash('sha256');
    let read = 0;
    try {
      for await (const chunk of res.Body as Readable) {
        hash.update(chunk as Buffer);
        read += (chunk as Buffer).length;
      }
    } catch (err) {
      throw this.mapError(err, 'get', key, full);
    }
    const stored = hash.digest('hex');
    if (stored !== sha256 || read !== bytes) throw await fail(stored, read);
  }

  /** Compares what was read with the size and `sha256` metadata the object was stored with. */
  private checkDownload(
    key: string,
    full: string,
    sha256: string,
    bytes: number,
    contentLength: number | undefined,
    metadata: Record<string, string> | undefined,
  ): void {
    if (contentLength !== undefined && contentLength !== bytes) {
      throw new ChecksumError(
        `short read downloading ${key} (${this.url(full)}): ${bytes} of ${contentLength} bytes`,
      );
    }
    const recorded = metaSha(metadata);
    if (recorded !== undefined && recorded !== sha256) {
      throw new ChecksumError(
        `checksum mismatch downloading ${key} (${this.url(full)}): stored with sha256 ${recorded}, read ${sha256}`,
      );
    }
  }

  /** HeadObject; undefined when the key does not exist (after making sure the bucket does). */
  private async head(key: string, full: string): Promise<HeadObjectCommandOutput | undefined> {
    try {
      return await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: full }));
    } catch (err) {
      if (httpStatus(err) !== 404) throw this.mapError(err, 'head', key, full);
    }
    // HEAD answers have no body, so a missing bucket is also a bare 404: ask once.
    if (!this.bucketChecked) {
      await this.send('head-bucket', key, full, () =>
        this.client.send(new HeadBucketCommand({ Bucket: this.bucket })),
      );
      this.bucketChecked = true;
    }
    return undefined;
  }

  private async send<T>(op: string, key: string, full: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.mapError(err, op, key, full);
    }
  }

  /** Retries a whole operation when its verification failed (never for a wrong `expectedSha256`). */
  private async withVerifyRetries<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (err instanceof ExpectedMismatch) throw new ChecksumError(err.message);
        if (!(err instanceof ChecksumError) || attempt >= this.verifyAttempts) throw err;
      }
    }
  }

  private async deleteQuietly(full: string): Promise<void> {
    await this.client
      .send(new DeleteObjectCommand({ Bucket: this.bucket, Key: full }))
      .catch(() => undefined);
  }

  /**
   * Turns an SDK error into StoreError/ChecksumError naming the operation and `s3://bucket/key`.
   * Messages never contain the secret key or session token (they are scrubbed as a last guard).
   */
  private mapError(err: unknown, op: string, key: string, full: string): RetrainError {
    if (err instanceof RetrainError) return err;
    const where = this.url(full);
    const status = httpStatus(err);
    const code = errorCode(err);
    const at = this.endpoint ? ` at ${this.endpoint}` : '';
    const raw = this.scrub(errorMessage(err));
    // HEAD answers have no error document: the SDK then says only "UnknownError".
    const detail = /^Unknown(Error)?$/.test(raw) ? 'no error details' : raw;
    // Never the SDK error itself as `cause`: its $response links to the request, whose headers hold
    // the session token. A summary keeps what helps debugging.
    const cause = sdkErrorSummary(err, detail, status, code);
    const mk = (message: string, retryable: boolean) =>
      new StoreError(this.scrub(message), { retryable, cause });

    if (code === 'NoSuchBucket' || (op === 'head-bucket' && status === 404)) {
      return mk(`bucket ${this.bucket} does not exist${at} (${op} ${where})`, false);
    }
    if (code === 'NoSuchKey' || code === 'NotFound' || status === 404) {
      return mk(`not found: ${key} (${where})`, false);
    }
    if (
      status === 403 ||
      code === 'AccessDenied' ||
      code === 'InvalidAccessKeyId' ||
      code === 'SignatureDoesNotMatch'
    ) {
      const why =
        code === 'InvalidAccessKeyId'
          ? 'the access key id is unknown to the server'
          : code === 'SignatureDoesNotMatch'
            ? 'the secret access key does not match the access key id'
            : (code ?? `HTTP ${status ?? 403}`);
      return mk(
        `access denied: ${op} ${where}${at}: ${why}; check S3_ACCESS_KEY_ID/S3_SECRET_ACCESS_KEY (or the AWS credential chain) and the bucket's policy`,
        false,
      );
    }
    if (
      code === 'BadDigest' ||
      code === 'InvalidDigest' ||
      code === 'XAmzContentSHA256Mismatch' ||
      code === 'XAmzContentChecksumMismatch'
    ) {
      return new ChecksumError(
        `the server refused ${key} (${where}): checksum mismatch in transit (${code})`,
        {
          cause,
        },
      );
    }
    if (isCredentialsError(err)) {
      return mk(
        `no S3 credentials for ${where}: set S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY, or configure the AWS credential chain (${detail})`,
        false,
      );
    }
    if (status === 412) return mk(`${where} changed during ${op}; try again`, true);
    if (status === undefined) return mk(`${op} ${where} failed${at}: ${detail}`, true);
    if (status >= 500 || status === 429 || status === 408 || code === 'SlowDown') {
      return mk(`${op} ${where} failed: S3${at} answered HTTP ${status} (${code ?? detail})`, true);
    }
    return mk(`${op} ${where} failed${at}: HTTP ${status} ${code ? `${code}: ` : ''}${detail}`, false);
  }

  private scrub(s: string): string {
    let out = s;
    for (const secret of this.secrets) out = out.split(secret).join('***');
    return out;
  }
}

/** An `expectedSha256` that does not match the source: thrown as ChecksumError, never retried. */
class ExpectedMismatch extends Error {}

function checkExpected(key: string, sha256: string, expectedSha256: string | undefined): void {
  if (expectedSha256 !== undefined && sha256 !== expectedSha256.toLowerCase()) {
    throw new ChecksumError(`checksum mismatch for ${key}: expected ${expectedSha256}, got ${sha256}`);
  }
}

/**
 * Hashes a file once for the upload: its SHA-256 (hex) and the checksum S3 reports for the multipart
 * object lib-storage makes of it with `partSize` parts (base64 SHA-256 over the parts' binary
 * SHA-256s; the plain SHA-256 when it fits one part).
 */
async function hashForUpload(
  path: string,
  partSize: number,
): Promise<{ sha256: string; bytes: number; checksum: string }> {
  const whole = createHash('sha256');
  const parts: Buffer[] = [];
  let part = createHash('sha256');
  let inPart = 0;
  let bytes = 0;
  for await (const c of createReadStream(path)) {
    let chunk = c as Buffer;
    whole.update(chunk);
    bytes += chunk.length;
    while (chunk.length > 0) {
      const take = Math.min(partSize - inPart, chunk.length);
      part.update(chunk.subarray(0, take));
      inPart += take;
      chunk = chunk.subarray(take);
      if (inPart === partSize) {
        parts.push(part.digest());
        part = createHash('sha256');
        inPart = 0;
      }
    }
  }
  if (inPart > 0 || parts.length === 0) parts.push(part.digest());
  const wholeDigest = whole.digest();
  const checksum =
    parts.length === 1
      ? wholeDigest.toString('base64')
      : createHash('sha256').update(Buffer.concat(parts)).digest('base64');
  return { sha256: wholeDigest.toString('hex'), bytes, checksum };
}

function sha256Hex(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

/** 'abc==-3' → 'abc==' (S3 appends the part count to composite checksums; some servers do not). */
function stripParts(checksum: string): string {
  return checksum.replace(/-\d+$/, '');
}

function metaSha(metadata: Record<string, string> | undefined): string | undefined {
  const v = metadata?.[SHA_META]?.toLowerCase();
  return v && HEX64.test(v) ? v : undefined;
}

/** The endpoint for messages, without any user:password part. */
function safeEndpoint(endpoint: string): string {
  try {
    const u = new URL(endpoint);
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return '(invalid endpoint)';
  }
}

function isValidKey(key: string): boolean {
  try {
    validateKey(key);
    return true;
  } catch {
    return false;
  }
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function notFound(key: string, where: string): StoreError {
  return new StoreError(`not found: ${key} (${where})`, { retryable: false });
}

function httpStatus(err: unknown): number | undefined {
  const s = (err as { $metadata?: { httpStatusCode?: unknown } } | undefined)?.$metadata?.httpStatusCode;
  return typeof s === 'number' ? s : undefined;
}

function errorCode(err: unknown): string | undefined {
  const e = err as { Code?: unknown; name?: unknown } | undefined;
  if (typeof e?.Code === 'string') return e.Code;
  if (
    typeof e?.name === 'string' &&
    !['Error', 'S3ServiceException', 'Unknown', 'UnknownError'].includes(e.name)
  )
    return e.name;
  return undefined;
}

function errorMessage(err: unknown): string {
  const e = err as { message?: unknown; code?: unknown } | undefined;
  const msg = typeof e?.message === 'string' && e.message ? e.message : String(err);
  return typeof e?.code === 'string' && !msg.includes(e.code) ? `${e.code}: ${msg}` : msg;
}

/** A plain Error standing for an SDK error: name, code, HTTP status and request id, nothing linked. */
function sdkErrorSummary(
  err: unknown,
  detail: string,
  status: number | undefined,
  code: string | undefined,
): Error {
  const summary = new Error(detail);
  const name = (err as { name?: unknown } | undefined)?.name;
  if (typeof name === 'string') summary.name = name;
  const requestId = (err as { $metadata?: { requestId?: unknown } } | undefined)?.$metadata?.requestId;
  return Object.assign(summary, {
    ...(code ? { code } : {}),
    ...(status !== undefined ? { httpStatus: status } : {}),
    ...(typeof requestId === 'string' ? { requestId } : {}),
  });
}

function isCredentialsError(err: unknown): boolean {
  const name = (err as { name?: unknown } | undefined)?.name;
  return name === 'CredentialsProviderError' || name === 'ProviderError';
}

/** Errors of the local filesystem carry the path they concern; network errors do not. */
function isFsError(err: unknown): boolean {
  const e = err as NodeJS.ErrnoException | undefined;
  return typeof e?.code === 'string' && typeof e.path === 'string';
}
