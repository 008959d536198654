import { existsSync, readFileSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { ConfigSchema, type Config } from './schema.js';
import { storeEnvGroup, storeFromEnvGroup } from './storeEnv.js';

/**
 * The defaults that depend on RETRAIN_HOME: the home itself and the local store below it. Every other
 * setting declares its default beside its validation, in schema.ts.
 */
export function defaultConfig(home: string): z.input<typeof ConfigSchema> {
  return { home, store: { kind: 'local', root: join(home, 'store') } };
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

/** Environment overrides: every setting whose schema names its variable (`meta({ env })` in schema.ts). */
function fromEnv(env: Env): Loose {
  const o: Loose = {};
  const set = (path: string[], v: unknown) => {
    if (v === undefined || v === '') return;
    let cur = o;
    for (const p of path.slice(0, -1)) cur = (cur[p] as Loose) ??= {};
    cur[path[path.length - 1]!] = v;
  };
  for (const { path, name, kind } of envSettings(ConfigSchema)) {
    set(path, kind === 'number' ? num(env, name) : kind === 'boolean' ? bool(env, name) : env[name]);
  }
  // `vastai` (the name of Vast's CLI) is taken for `vast`.
  if (env.RETRAIN_DRIVER?.trim().toLowerCase() === 'vastai') set(['train', 'driver'], 'vast');
  if (env.RUN_MODE === 'canary') set(['promotion', 'canary'], true);
  return o;
}

type ZodDef = { type: string; innerType?: z.ZodType; in?: z.ZodType; shape?: Record<string, z.ZodType> };
const defOf = (schema: z.ZodType) => (schema as unknown as { _zod: { def: ZodDef } })._zod.def;

/** The settings that name an environment variable, with their path and the kind of value they take. */
function envSettings(
  schema: z.ZodType,
  path: string[] = [],
): { path: string[]; name: string; kind: 'number' | 'boolean' | 'string' }[] {
  const env = (z.globalRegistry.get(schema) as { env?: string } | undefined)?.env;
  if (env) return [{ path, name: env, kind: valueKind(schema) }];
  const def = defOf(schema);
  if (def.innerType) return envSettings(def.innerType, path);
  if (def.type !== 'object' || !def.shape) return [];
  return Object.entries(def.shape).flatMap(([k, v]) => envSettings(v, [...path, k]));
}

function valueKind(schema: z.ZodType): 'number' | 'boolean' | 'string' {
  const def = defOf(schema);
  const inner = def.innerType ?? def.in;
  if (inner) return valueKind(inner);
  return def.type === 'number' ? 'number' : def.type === 'boolean' ? 'boolean' : 'string';
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
  // S3_COMPACT_* / R2_*: checked whatever the store kind, so a half-set group is never ignored.
  const group = storeEnvGroup(env);
  if (group && env.RETRAIN_STORE !== 'local')
    store = deepMerge(
      isObject(merged.store) && merged.store.kind === 's3' ? store : {},
      storeFromEnvGroup(env, group),
    );
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
