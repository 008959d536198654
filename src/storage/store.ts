/**
 * The artifact store: one key space (see DESIGN.md "Storage layout"), two backends (LocalStore now,
 * S3Store later). Keys are '/'-separated, relative, and never contain '..' or a leading '/'.
 */
export interface PutResult {
  key: string;
  sha256: string;
  bytes: number;
}

export interface ArtifactStore {
  readonly kind: 'local' | 's3';
  /** Human-readable location of a key (a filesystem path or s3://bucket/key), for messages. */
  locate(key: string): string;
  /**
   * Uploads a local file and verifies it: the stored object's SHA-256 must equal the source's
   * (and `expectedSha256` when given), otherwise ChecksumError and the object is removed.
   */
  putFile(key: string, localPath: string, expectedSha256?: string): Promise<PutResult>;
  /**
   * Writes bytes atomically (readers never see a half-written object) and verifies the stored
   * object, against `expectedSha256` when given (bytes whose hash is known: not hashed again).
   */
  putBytes(key: string, data: Buffer | string, expectedSha256?: string): Promise<PutResult>;
  putJson(key: string, value: unknown): Promise<PutResult>;
  /** Throws StoreError (not retryable) naming the key when it does not exist. */
  getBytes(key: string): Promise<Buffer>;
  getJson<T = unknown>(key: string): Promise<T>;
  /** Downloads to a local file and verifies `expectedSha256` when given. */
  getFile(key: string, localPath: string, expectedSha256?: string): Promise<void>;
  exists(key: string): Promise<boolean>;
  /** Keys under a prefix, sorted. */
  list(prefix: string): Promise<string[]>;
  /** Server-side copy where the backend has one. */
  copy(fromKey: string, toKey: string): Promise<void>;
  delete(key: string): Promise<void>;
}
