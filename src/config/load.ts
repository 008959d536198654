import { existsSync, readFileSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { ConfigSchema, type Config } from './schema.js';

/** Embedded defaults: the local driver, the local store, the reference recipe, promotion off. */
export function defaultConfig(home: string): z.input<typeof ConfigSchema> {
  return {
    home,
    redisUrl: 'redis://127.0.0.1:6379',
    queuePrefix: 'retrain',
    deployment: 'default',
    store: { kind: 'local', root: join(home, 'store') },
    symbols: 'top20',
    featureset: 'v1',
    recipe: 'reference',
    recipeVars: {},
    train: {
      driver: 'local',
      mode: 'hybrid',
      maxInstances: 32,
      timeoutMinutes: 45,
      retries: 2,
      backoffMs: 30_000,
      workerConcurrency: 32,
      heartbeatStaleMin: 5,
      pollMs: 1000,
    },
    promotion: { mode: 'off', canary: false, maxDrawdownTolerance: 1.1 },
    worker: {
      lockDurationMs: 30_000,
      stalledIntervalMs: 30_000,
      maxStalledCount: 5,
      shutdownGraceMs: 20_000,
    },
    health: { host: '127.0.0.1' },
    retention: { completedAgeSec: 7 * 86400, completedCount: 5000, failedAgeSec: 30 * 86400, keepLogs: 500 },
    ledger: { retentionDays: 30 },
    alerts: { checkEverySec: 60 },
    vast: {
      apiUrl: 'https://console.vast.ai',
      apiRetries: 6,
      apiRetryBaseMs: 500,
      gpuNames: ['RTX_3090', 'RTX_4090', 'A100'],
      maxHourlyCost: 1.0,
      minGpuMemoryGb: 16,
      minReliability: 0.95,
      verifiedOnly: true,
      minDiskGb: 30,
      minInetDownMbps: 100,
      numGpus: 1,
      image: 'pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime',
      diskGb: 30,
      runtype: 'ssh_direct',
      bootDeadlineSec: 600,
      maxProvisionTries: 5,
      maxRuntimeMin: 60,
      reapEveryMin: 10,
      healthCheckSec: 30,
      interruptible: false,
      bidMultiplier: 1.2,
      workRoot: '/root/retrain',
      sshUser: 'root',
      pool: { enabled: true, idleGraceSec: 60, slotsPerHost: 1 },
    },
    ssh: { port: 22, user: 'root', workRoot: '/root/retrain' },
    schedule: {
      enabled: true,
      cron: '15 0 * * *',
      tz: 'UTC',
      ensureFeatures: false,
      recheckSec: 60,
    },
    notify: {
      telegram: {
        apiUrl: 'https://api.telegram.org',
        groupWindowMs: 3000,
        timeoutMs: 5000,
        maxAttempts: 4,
        maxRetryAfterSec: 60,
        flushTimeoutMs: 1000,
      },
    },
    log: { level: 'info' },
    dashboard: { host: '127.0.0.1', port: 3000, readOnly: false },
  };
}

type Env = Record<string, string | undefined>;
type Loose = Record<string, unknown>;

function isObject(v: unknown): v is Loose {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Objects merge key by key, except that one naming another `kind` (e.g. store) replaces the base. */
function deepMerge(base: Loose, over: Loose): Loose {
  const out: Loose = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    const prev = out[k];
    const sameKind = isObject(v) && isObject(prev) && (v.kind === undefined || v.kind === prev.kind);
    out[k] = sameKind ? deepMerge(prev as Loose, v as Loose) : v;
  }
  return out;
}

function num(env: Env, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n))
    throw new ConfigError(`environment ${name}=${JSON.stringify(raw)} is not a number`);
  return n;
}

/** Environment overrides (names documented in docs/configuration.md). */
function fromEnv(env: Env): Loose {
  const o: Loose = {};
  const set = (path: string[], v: unknown) => {
    if (v === undefined || v === '') return;
    let cur = o;
    for (const p of path.slice(0, -1)) cur = (cur[p] as Loose) ??= {};
    cur[path[path.length - 1]!] = v;
  };
  set(['redisUrl'], env.REDIS_URL);
  set(['queuePrefix'], env.RETRAIN_QUEUE_PREFIX);
  set(['deployment'], env.RETRAIN_DEPLOYMENT);
  set(['recipe'], env.RETRAIN_RECIPE);
  set(['costsFile'], env.RETRAIN_COSTS_FILE);
  set(['train', 'driver'], env.RETRAIN_DRIVER);
  set(['train', 'backoffMs'], num(env, 'RETRAIN_BACKOFF_MS'));
  set(['train', 'pollMs'], num(env, 'RETRAIN_POLL_MS'));
  set(['train', 'workerConcurrency'], num(env, 'RETRAIN_WORKER_CONCURRENCY'));
  set(['train', 'heartbeatStaleMin'], num(env, 'RETRAIN_HEARTBEAT_STALE_MIN'));
  set(['promotion', 'mode'], env.RETRAIN_PROMOTE);
  if (env.RUN_MODE === 'canary') set(['promotion', 'canary'], true);
  set(['worker', 'lockDurationMs'], num(env, 'RETRAIN_LOCK_DURATION_MS'));
  set(['worker', 'stalledIntervalMs'], num(env, 'RETRAIN_STALLED_INTERVAL_MS'));
  set(['worker', 'shutdownGraceMs'], num(env, 'RETRAIN_SHUTDOWN_GRACE_MS'));
  set(['health', 'port'], num(env, 'RETRAIN_HEALTH_PORT'));
  set(['health', 'host'], env.RETRAIN_HEALTH_HOST);
  set(['log', 'level'], env.LOG_LEVEL);
  set(['notify', 'telegram', 'chatId'], env.TELEGRAM_CHAT_ID);
  set(['notify', 'telegram', 'apiUrl'], env.TELEGRAM_API_URL);
  set(['notify', 'telegram', 'groupWindowMs'], num(env, 'RETRAIN_TELEGRAM_GROUP_MS'));
  set(['schedule', 'enabled'], bool(env, 'RETRAIN_SCHEDULE_ENABLED'));
  set(['schedule', 'cron'], env.RETRAIN_SCHEDULE_CRON);
  set(['schedule', 'symbols'], env.RETRAIN_SCHEDULE_SYMBOLS);
  set(['dashboard', 'host'], env.DASHBOARD_HOST);
  set(['dashboard', 'port'], num(env, 'DASHBOARD_PORT'));
  set(['dashboard', 'readOnly'], bool(env, 'DASHBOARD_READ_ONLY'));
  set(['ledger', 'retentionDays'], num(env, 'RETRAIN_LEDGER_RETENTION_DAYS'));
  set(['alerts', 'provisioningStuckMin'], num(env, 'RETRAIN_PROVISIONING_STUCK_MIN'));
  set(['alerts', 'checkEverySec'], num(env, 'RETRAIN_ALERT_CHECK_SEC'));
  set(['vast', 'apiUrl'], env.VAST_API_URL);
  set(['vast', 'bootDeadlineSec'], num(env, 'RETRAIN_BOOT_DEADLINE_SEC'));
  set(['vast', 'apiRetryBaseMs'], num(env, 'RETRAIN_VAST_RETRY_MS'));
  set(['vast', 'reapEveryMin'], num(env, 'RETRAIN_REAP_EVERY_MIN'));
  set(['vast', 'healthCheckSec'], num(env, 'RETRAIN_HOST_CHECK_SEC'));
  set(['vast', 'interruptible'], bool(env, 'RETRAIN_INTERRUPTIBLE'));
  set(['vast', 'bidPrice'], num(env, 'RETRAIN_BID_PRICE'));
  set(['vast', 'workRoot'], env.RETRAIN_REMOTE_ROOT);
  set(['vast', 'sshUser'], env.RETRAIN_SSH_USER);
  set(['vast', 'pool', 'enabled'], bool(env, 'RETRAIN_VAST_POOL'));
  set(['vast', 'pool', 'idleGraceSec'], num(env, 'RETRAIN_POOL_IDLE_SEC'));
  set(['vast', 'pool', 'slotsPerHost'], num(env, 'RETRAIN_POOL_SLOTS'));
  set(['ssh', 'host'], env.RETRAIN_SSH_HOST);
  set(['ssh', 'port'], num(env, 'RETRAIN_SSH_PORT'));
  set(['ssh', 'user'], env.RETRAIN_SSH_USER);
  set(['ssh', 'keyPath'], env.RETRAIN_SSH_KEY);
  set(['ssh', 'workRoot'], env.RETRAIN_REMOTE_ROOT);
  return o;
}

function bool(env: Env, name: string): boolean | undefined {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === '') return undefined;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new ConfigError(`environment ${name}=${JSON.stringify(env[name])} is not true or false`);
}

/**
 * Store overrides from the environment. RETRAIN_STORE=local|s3 picks the kind (a kind other than the
 * file's starts from that kind's defaults); then only the variables of the effective kind apply, so
 * S3_* variables left in the environment do not break a local store, nor RETRAIN_STORE_ROOT an S3
 * one. S3 credentials are not config: the store reads them when it is built (storage/index.ts).
 */
function applyStoreEnv(merged: Loose, env: Env, home: string): Loose {
  let store: Loose = isObject(merged.store) ? merged.store : {};
  const kind = env.RETRAIN_STORE || store.kind || 'local';
  if (kind !== 'local' && kind !== 's3') {
    throw new ConfigError(`environment RETRAIN_STORE=${JSON.stringify(kind)} must be local or s3`);
  }
  if (kind !== store.kind) store = kind === 'local' ? { kind, root: join(home, 'store') } : { kind };
  const over: Loose =
    kind === 'local'
      ? { root: env.RETRAIN_STORE_ROOT }
      : {
          endpoint: env.S3_ENDPOINT,
          bucket: env.S3_BUCKET,
          region: env.S3_REGION,
          forcePathStyle: bool(env, 'S3_FORCE_PATH_STYLE'),
          prefix: env.S3_PREFIX,
        };
  for (const [k, v] of Object.entries(over)) if (v === '') delete over[k];
  return { ...merged, store: deepMerge(store, over) };
}

function readConfigFile(path: string): Loose {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `config file ${path}: cannot be read (${(err as NodeJS.ErrnoException).code ?? err})`,
    );
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0];
    throw new ConfigError(`config file ${path}: ${msg}`);
  }
  if (parsed == null) return {};
  if (!isObject(parsed)) throw new ConfigError(`config file ${path}: must be a mapping`);
  return parsed;
}

export function formatZodIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p))).join('.');
  if (issue.code === 'unrecognized_keys') {
    const where = path ? ` at ${path}` : '';
    return `unknown field ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}${where}`;
  }
  return `${path || '(root)'}: ${issue.message}`;
}

export interface LoadConfigOptions {
  env?: Env;
  cwd?: string;
  /** Explicit config file (--config); otherwise RETRAIN_CONFIG, then ./retrain.config.yaml if present. */
  file?: string;
  /** Highest precedence (CLI flags), already in Config's shape. */
  overrides?: Loose;
}

/** file < env < flags, validated once. Throws ConfigError with one line naming the bad field. */
export function loadConfig(opts: LoadConfigOptions = {}): Config {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const home = resolve(cwd, env.RETRAIN_HOME || './var');
  let merged = defaultConfig(home) as Loose;
  const file =
    opts.file ??
    env.RETRAIN_CONFIG ??
    (existsSync(join(cwd, 'retrain.config.yaml')) ? join(cwd, 'retrain.config.yaml') : undefined);
  let fileLabel = '';
  if (file) {
    const path = resolve(cwd, file);
    merged = deepMerge(merged, readConfigFile(path));
    fileLabel = ` (config file ${path})`;
  }
  merged = deepMerge(merged, fromEnv(env));
  merged = applyStoreEnv(merged, env, home);
  if (opts.overrides) merged = deepMerge(merged, opts.overrides);
  const result = ConfigSchema.safeParse(merged);
  if (!result.success) {
    throw new ConfigError(`invalid configuration${fileLabel}: ${formatZodIssue(result.error.issues[0]!)}`);
  }
  return Object.freeze(result.data);
}
