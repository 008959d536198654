import { ConfigError } from '../errors.js';

type Env = Record<string, string | undefined>;

/**
 * The storage variables of our users' existing setups: `S3_COMPACT_*` (any S3-compatible server)
 * and `R2_*` (Cloudflare R2, region `auto`). Either set selects the S3 store; one set only in part
 * is an error naming what is missing, never a silent fall-back to the local store.
 */
export const STORE_ENV_GROUPS = {
  S3_COMPACT: {
    endpoint: 'S3_COMPACT_ENDPOINT',
    bucket: 'S3_COMPACT_BUCKET',
    accessKeyId: 'S3_COMPACT_ACCESS_KEY',
    secretAccessKey: 'S3_COMPACT_SECRET_KEY',
  },
  R2: {
    endpoint: 'R2_ENDPOINT',
    bucket: 'R2_BUCKET',
    accessKeyId: 'R2_ACCESS_KEY_ID',
    secretAccessKey: 'R2_SECRET_ACCESS_KEY',
  },
} as const;

export type StoreEnvGroup = keyof typeof STORE_ENV_GROUPS;

const set = (env: Env, name: string) => (env[name] ?? '').trim() !== '';

/** The group the environment configures completely, or null when none is set at all. */
export function storeEnvGroup(env: Env): StoreEnvGroup | null {
  const present = (Object.keys(STORE_ENV_GROUPS) as StoreEnvGroup[]).filter((g) =>
    Object.values(STORE_ENV_GROUPS[g]).some((n) => set(env, n)),
  );
  if (present.length === 0) return null;
  if (present.length > 1) {
    throw new ConfigError(
      'environment: both S3_COMPACT_* and R2_* storage variables are set; keep one set (which bucket to use is not guessed)',
    );
  }
  const group = present[0]!;
  const missing = Object.values(STORE_ENV_GROUPS[group]).filter((n) => !set(env, n));
  if (missing.length > 0) {
    throw new ConfigError(
      `environment: the ${group}_* store is half-configured: ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} missing`,
    );
  }
  return group;
}

/** The S3 store config the group describes (credentials are read by createStore, never config). */
export function storeFromEnvGroup(env: Env, group: StoreEnvGroup): Record<string, unknown> {
  const names = STORE_ENV_GROUPS[group];
  const region = group === 'R2' ? 'auto' : env.S3_COMPACT_REGION || env.S3_REGION || 'us-east-1';
  return {
    kind: 's3',
    endpoint: env[names.endpoint]!.trim(),
    bucket: env[names.bucket]!.trim(),
    region,
    // Self-hosted servers need path-style URLs; R2 accepts them too.
    forcePathStyle: true,
  };
}

/** Static credentials of the group, if one is fully set. */
export function credentialsFromEnvGroup(env: Env): { accessKeyId: string; secretAccessKey: string } | null {
  const group = storeEnvGroup(env);
  if (!group) return null;
  const names = STORE_ENV_GROUPS[group];
  return { accessKeyId: env[names.accessKeyId]!.trim(), secretAccessKey: env[names.secretAccessKey]!.trim() };
}
