import { credentialsFromEnvGroup } from '../config/storeEnv.js';
import { ConfigError } from '../errors.js';
import { LocalStore } from './local.js';
import { LazyS3Store } from './lazyS3.js';
import type { S3Credentials } from './s3.js';
import type { ArtifactStore } from './store.js';

export type { ArtifactStore, PutResult } from './store.js';
export { LocalStore } from './local.js';
// The S3 SDK is loaded on first use (lazyS3.ts); import S3Store from './s3.js' to build one directly.
export type { S3StoreOptions } from './s3.js';
export { LazyS3Store } from './lazyS3.js';
export { keys, dashed } from './layout.js';
export { validateKey, validatePrefix } from './keys.js';

/** A folder on this machine. */
export interface LocalStoreConfig {
  kind: 'local';
  root: string;
}

/**
 * A bucket on AWS S3, Cloudflare R2, MinIO or any S3-compatible server. Credentials are not part of
 * the configuration (which is logged and copied into job data): `createStore` reads them from
 * S3_ACCESS_KEY_ID / S3_SECRET_ACCESS_KEY (+ S3_SESSION_TOKEN), else the AWS SDK default chain.
 */
export interface S3StoreConfig {
  kind: 's3';
  bucket: string;
  /** Unset for AWS S3; e.g. https://<account>.r2.cloudflarestorage.com or http://minio:9000. */
  endpoint?: string | undefined;
  region: string;
  forcePathStyle: boolean;
  /** Key prefix inside the bucket. */
  prefix?: string | undefined;
}

/**
 * Store configuration, discriminated on `kind`. Add a backend by adding its config to this union and
 * a case to `createStore`; the exhaustive switch makes the compiler point at every place to extend.
 */
export type StoreConfig = LocalStoreConfig | S3StoreConfig;

/** Builds the ArtifactStore a configuration names; `env` supplies S3 credentials (never the config). */
export function createStore(
  cfg: StoreConfig,
  env: Record<string, string | undefined> = process.env,
): ArtifactStore {
  switch (cfg.kind) {
    case 'local':
      return new LocalStore(cfg.root);
    case 's3':
      return new LazyS3Store({
        bucket: cfg.bucket,
        region: cfg.region,
        forcePathStyle: cfg.forcePathStyle,
        ...(cfg.endpoint ? { endpoint: cfg.endpoint } : {}),
        ...(cfg.prefix ? { prefix: cfg.prefix } : {}),
        ...s3CredentialsFromEnv(env),
      });
    default: {
      const unknownCfg: never = cfg;
      throw new Error(`unknown store kind: ${String((unknownCfg as { kind?: unknown }).kind)}`);
    }
  }
}

/**
 * Static credentials from S3_ACCESS_KEY_ID + S3_SECRET_ACCESS_KEY (+ S3_SESSION_TOKEN), else from the
 * S3_COMPACT_* / R2_* group (config/storeEnv.ts). None set: nothing, so the SDK's default chain
 * (AWS_ACCESS_KEY_ID..., profiles, instance roles) applies.
 */
export function s3CredentialsFromEnv(env: Record<string, string | undefined>): {
  credentials?: S3Credentials;
} {
  const accessKeyId = env.S3_ACCESS_KEY_ID || undefined;
  const secretAccessKey = env.S3_SECRET_ACCESS_KEY || undefined;
  if (!accessKeyId && !secretAccessKey) {
    // The users' existing variables (S3_COMPACT_ACCESS_KEY..., R2_ACCESS_KEY_ID...).
    const group = credentialsFromEnvGroup(env);
    return group ? { credentials: group } : {};
  }
  if (!accessKeyId || !secretAccessKey) {
    throw new ConfigError(
      `S3 credentials: ${accessKeyId ? 'S3_SECRET_ACCESS_KEY' : 'S3_ACCESS_KEY_ID'} is missing (set both, or neither to use the AWS credential chain)`,
    );
  }
  const sessionToken = env.S3_SESSION_TOKEN || undefined;
  return { credentials: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) } };
}
