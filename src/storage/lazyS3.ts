/**
 * An S3Store built on first use. Loading the AWS SDK costs ~0.7 s of CPU, which every process would
 * pay at start even when it never touches the bucket (`retrain --help`, `status`, a local store); with
 * this the SDK is loaded by the first call that needs it. Same contract as S3Store.
 */
import { StoreError } from '../errors.js';
import { normalizeS3Prefix, validateKey } from './keys.js';
import type { S3Store, S3StoreOptions } from './s3.js';
import type { ArtifactStore, PutResult } from './store.js';

export class LazyS3Store implements ArtifactStore {
  readonly kind = 's3' as const;
  private loading: Promise<S3Store> | undefined;
  private readonly prefix: string;

  constructor(private readonly opts: S3StoreOptions) {
    if (!opts.bucket) throw new StoreError('S3 store: bucket is required', { retryable: false });
    this.prefix = normalizeS3Prefix(opts.prefix);
  }

  /** The S3Store itself (built once). */
  resolve(): Promise<S3Store> {
    this.loading ??= import('./s3.js').then((m) => new m.S3Store(this.opts));
    return this.loading;
  }

  /** `s3://bucket/<prefix><key>`. */
  locate(key: string): string {
    return `s3://${this.opts.bucket}/${this.prefix}${validateKey(key)}`;
  }

  async putFile(key: string, localPath: string, expectedSha256?: string): Promise<PutResult> {
    return (await this.resolve()).putFile(key, localPath, expectedSha256);
  }
  async putBytes(key: string, data: Buffer | string, expectedSha256?: string): Promise<PutResult> {
    return (await this.resolve()).putBytes(key, data, expectedSha256);
  }
  async putJson(key: string, value: unknown): Promise<PutResult> {
    return (await this.resolve()).putJson(key, value);
  }
  async getBytes(key: string): Promise<Buffer> {
    return (await this.resolve()).getBytes(key);
  }
  async getJson<T = unknown>(key: string): Promise<T> {
    return (await this.resolve()).getJson<T>(key);
  }
  async getFile(key: string, localPath: string, expectedSha256?: string): Promise<void> {
    return (await this.resolve()).getFile(key, localPath, expectedSha256);
  }
  async exists(key: string): Promise<boolean> {
    return (await this.resolve()).exists(key);
  }
  async list(prefix: string): Promise<string[]> {
    return (await this.resolve()).list(prefix);
  }
  async copy(fromKey: string, toKey: string): Promise<void> {
    return (await this.resolve()).copy(fromKey, toKey);
  }
  async delete(key: string): Promise<void> {
    return (await this.resolve()).delete(key);
  }

  /** Closes the SDK client's sockets, if it was ever built. */
  async destroy(): Promise<void> {
    if (this.loading) (await this.loading).destroy();
  }
}
