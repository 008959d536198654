/**
 * The recipe file format (YAML or JSON), as a strict zod schema: unknown fields anywhere are an
 * error, variable values are checked for shell-safe characters, and every placeholder used in a
 * step must be a built-in or a declared variable.
 */
import { z } from 'zod';
import { RecipeError } from '../errors.js';
import {
  BUILTIN_PLACEHOLDERS,
  checkPlaceholderContext,
  isBuiltinPlaceholder,
  listPlaceholders,
  validateVarValue,
  VAR_NAME_RE,
} from './template.js';

export const RECIPE_NAME_RE = /^[a-z0-9][a-z0-9-]{0,63}$/;
export const ENV_NAME_RE = /^[A-Z_][A-Z0-9_]*$/;
/** Shipped files and outputs are plain names: no directories, no `..`, no leading dot. */
export const PLAIN_NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const IMAGE_RE = /^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,255}$/;
/** Names the orchestrator itself writes next to the outputs; a recipe may not claim them. */
export const RESERVED_OUTPUT_NAMES = ['sha256.txt', 'job.json', 'runtime.json', 'costs.json', 'train.log'];

const plainName = z.string().regex(PLAIN_NAME_RE, 'must be a plain file name (letters, digits, . _ -)');

const scalarValue = z
  .union([z.string(), z.number().refine(Number.isFinite, 'must be a finite number')], {
    error: 'must be a string or a number',
  })
  .transform((v) => String(v));

const StepObject = z.strictObject(
  {
    run: z.string().min(1, 'must not be empty'),
    timeoutSec: z.number().int().positive().optional(),
  },
  { error: 'must be a command string or {run, timeoutSec}' },
);

/**
 * `checkpoints.path`: `<dir>/<pattern>` relative to the work dir, e.g. `ckpt/*.pt` or
 * `out/ckpt/step-*`. The dir is plain segments; the pattern a file name where `*` and `?` match
 * within the name. Nothing in it ever reaches a shell: matching is done by retrain.
 */
export const CHECKPOINT_PATH_RE =
  /^(?:[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\/){1,8}[A-Za-z0-9_.*?-][A-Za-z0-9._*?-]{0,127}$/;

/** `30s`, `5m`, `1h`, `1.5m` or a number of seconds → seconds. */
export function parseDurationSec(v: string | number): number | null {
  if (typeof v === 'number') return Number.isFinite(v) && v > 0 ? v : null;
  const m = /^(\d+(?:\.\d+)?)\s*(s|sec|m|min|h)?$/.exec(v.trim());
  if (!m) return null;
  const n = Number(m[1]) * ({ s: 1, sec: 1, m: 60, min: 60, h: 3600 }[m[2] ?? 's'] ?? 1);
  return n > 0 ? n : null;
}

const Checkpoints = z.strictObject({
  path: z
    .string()
    .regex(CHECKPOINT_PATH_RE, 'must be <dir>/<file pattern> inside the work dir, e.g. ckpt/*.pt')
    .refine((p) => !p.split('/').some((seg) => seg === '..' || seg === '.'), 'must not contain . or ..')
    .refine(
      (p) => !['inputs', 'recipe'].includes(p.split('/')[0]!),
      'must not be under inputs/ or recipe/ (retrain stages those)',
    ),
  every: z
    .union([z.string(), z.number()])
    .transform((v, ctx) => {
      const sec = parseDurationSec(v);
      if (sec === null || sec < 1 || sec > 86_400) {
        ctx.addIssue({ code: 'custom', message: 'must be a duration from 1s to 24h, like 30s, 5m or 1h' });
        return z.NEVER;
      }
      return sec;
    })
    .default(300),
});
export type RecipeCheckpoints = z.output<typeof Checkpoints>;

/** A step is a command string or `{run, timeoutSec?}`; both normalise to the object form. */
const Step = z.preprocess((v) => (typeof v === 'string' ? { run: v } : v), StepObject);
export type RecipeStep = z.output<typeof StepObject>;

const secretName = z.string().regex(ENV_NAME_RE, `must name a secret (${ENV_NAME_RE.source})`);
/** Registry credentials for a private `image`: NAMES of orchestrator secrets, never the values. */
const ImageLogin = z.strictObject({ user: secretName, token: secretName });
export type RecipeImageLogin = z.output<typeof ImageLogin>;

/** Store prefix of extra inputs: plain segments ending in `/`; `{{symbol}}`/`{{date}}` allowed. */
export const STORE_PREFIX_RE = /^(?:(?:[A-Za-z0-9_][A-Za-z0-9._=-]{0,127}|\{\{(?:symbol|date)\}\})\/){1,8}$/;
/** A folder of the work dir: plain segments, not one retrain stages or owns. */
export const WORK_FOLDER_RE = /^(?:[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\/?){1,8}$/;
const RESERVED_FOLDERS = ['inputs', 'recipe', 'out'];
const workFolder = z
  .string()
  .regex(WORK_FOLDER_RE, 'must be a folder inside the work dir, e.g. logs or extra/hyperparams')
  .transform((v) => v.replace(/\/$/, ''))
  .refine((v) => !v.split('/').some((seg) => seg === '..' || seg === '.'), 'must not contain . or ..')
  .refine((v) => !RESERVED_FOLDERS.includes(v.split('/')[0]!), 'must not be under inputs/, recipe/ or out/');

const ExtraInput = z.preprocess(
  (v) => (typeof v === 'string' ? { from: v } : v),
  z
    .strictObject({
      from: z.string().regex(STORE_PREFIX_RE, 'must be a store prefix ending in /, e.g. hyperparams/'),
      to: workFolder.optional(),
    })
    .transform((v) => ({
      from: v.from,
      to: v.to ?? `extra/${v.from.replace(/\{\{(symbol|date)\}\}/g, '$1').replace(/\/$/, '')}`,
    })),
);
export type RecipeInput = z.output<typeof ExtraInput>;

const SyncFolder = z.preprocess(
  (v) => (typeof v === 'string' ? { path: v } : v),
  z.strictObject({ path: workFolder, every: durationSec(1, 86_400).default(60) }),
);
export type RecipeSync = z.output<typeof SyncFolder>;

const CONTAINER_FLAG_RE = /^--?[A-Za-z0-9][A-Za-z0-9-]*(?:=[A-Za-z0-9_.,:=/@+-]*)?$/;
const MOUNT_RE = /^\/[A-Za-z0-9_./-]*:\/[A-Za-z0-9_./-]*(?::(?:ro|rw))?$/;
const Container = z.strictObject({
  image: z.string().regex(IMAGE_RE, 'must be a container image reference'),
  /** docker or podman; unset: docker where the host has it, else podman. */
  engine: z.enum(['docker', 'podman']).optional(),
  gpus: z.enum(['all', 'none']).default('none'),
  /** `host:container[:ro|rw]`, both absolute; the work dir is always mounted at its own path. */
  mounts: z
    .array(z.string().regex(MOUNT_RE, 'must be /host/path:/container/path[:ro|rw]'))
    .default([])
    .refine(
      (ms) =>
        !ms.some((m) =>
          m
            .split(':')
            .slice(0, 2)
            .some((p) => p.split('/').includes('..')),
        ),
      {
        message: 'must not contain ..',
      },
    ),
  /** Extra `run` flags, e.g. --shm-size=8g or --ipc=host (one flag per item, no spaces). */
  args: z.array(z.string().regex(CONTAINER_FLAG_RE, 'must be one flag like --shm-size=8g')).default([]),
});
export type RecipeContainer = z.output<typeof Container>;

function durationSec(min: number, max: number) {
  return z.union([z.string(), z.number()]).transform((v, ctx) => {
    const sec = parseDurationSec(v);
    if (sec === null || sec < min || sec > max) {
      ctx.addIssue({ code: 'custom', message: `must be a duration from ${min}s to ${max}s, like 30s or 5m` });
      return z.NEVER;
    }
    return sec;
  });
}

export const RecipeSchema = z
  .strictObject({
    name: z.string().regex(RECIPE_NAME_RE, `must match ${RECIPE_NAME_RE.source}`),
    version: z.number().int().min(1),
    description: z.string().max(2000).optional(),
    /** The instance image on Vast (falls back to vast.image). */
    image: z.string().regex(IMAGE_RE, 'must be a container image reference').optional(),
    imageLogin: ImageLogin.optional(),
    /** Vast offers whose CUDA is at least this (overrides vast.minCudaVersion). */
    minCudaVersion: z.number().positive().max(100).optional(),
    /** Free space the host's work root needs before anything is staged (reason `disk` when short). */
    minDiskGb: z.number().positive().max(100_000).optional(),
    /** Run on the host before staging; failing it releases the host as unsound (retried elsewhere). */
    healthcheck: Step.optional(),
    /** Run after the training, success or not, in the work dir; its failure is only logged. */
    cleanup: Step.optional(),
    /** Store prefixes copied into the work dir before the training (hash-verified). */
    inputs: z.array(ExtraInput).default([]),
    /** Work dir folders pushed to the store while the training runs and after it ends. */
    sync: z.array(SyncFolder).default([]),
    /** Run each step in this container (drivers local and ssh). */
    container: Container.optional(),
    gpu: z.boolean().default(false),
    files: z.array(plainName).default([]),
    vars: z.record(z.string(), scalarValue).default({}),
    env: z.record(z.string(), scalarValue).default({}),
    secrets: z.array(z.string().regex(ENV_NAME_RE, `must match ${ENV_NAME_RE.source}`)).default([]),
    setup: z.array(Step).default([]),
    train: z.array(Step).min(1, 'needs at least one step'),
    outputs: z.strictObject({
      required: z.array(plainName).min(1, 'needs at least one file'),
      optional: z.array(plainName).default([]),
    }),
    partial: z.array(plainName).default([]),
    /** Files the training writes now and then; retrain syncs the newest to the store and resumes from it. */
    checkpoints: Checkpoints.optional(),
  })
  .superRefine((r, ctx) => {
    const issue = (path: (string | number)[], message: string) =>
      ctx.addIssue({ code: 'custom', path, message });

    for (const [name, value] of Object.entries(r.vars)) {
      if (!VAR_NAME_RE.test(name)) issue(['vars', name], `variable name must match ${VAR_NAME_RE.source}`);
      else if (isBuiltinPlaceholder(name)) {
        issue(['vars', name], `"${name}" is a built-in placeholder (${BUILTIN_PLACEHOLDERS.join(', ')})`);
      } else tryCheck(['vars', name], () => validateVarValue(name, value), issue);
    }
    for (const [name, value] of Object.entries(r.env)) {
      if (!ENV_NAME_RE.test(name)) issue(['env', name], `env name must match ${ENV_NAME_RE.source}`);
      else if (r.secrets.includes(name)) issue(['env', name], `"${name}" is also listed in secrets`);
      else tryCheck(['env', name], () => validateVarValue(name, value), issue);
    }
    dupes(r.secrets).forEach((n) => issue(['secrets'], `"${n}" is listed twice`));
    dupes(r.files).forEach((n) => issue(['files'], `"${n}" is listed twice`));
    if (r.imageLogin && !r.image) issue(['imageLogin'], 'needs image (the private image it logs in for)');
    dupes(r.inputs.map((i) => i.to)).forEach((n) => issue(['inputs'], `two inputs land in "${n}"`));
    dupes(r.sync.map((s) => s.path)).forEach((n) => issue(['sync'], `"${n}" is listed twice`));

    const outputs = [...r.outputs.required, ...r.outputs.optional];
    dupes(outputs).forEach((n) => issue(['outputs'], `"${n}" is listed twice`));
    outputs
      .filter((n) => RESERVED_OUTPUT_NAMES.includes(n))
      .forEach((n) => issue(['outputs'], `"${n}" is written by the orchestrator and cannot be an output`));
    r.partial
      .filter((n) => !outputs.includes(n))
      .forEach((n) => issue(['partial'], `"${n}" is not listed in outputs`));

    const known = new Set<string>([...BUILTIN_PLACEHOLDERS, ...Object.keys(r.vars)]);
    const hooks = { healthcheck: r.healthcheck, cleanup: r.cleanup };
    for (const [name, step] of Object.entries(hooks)) {
      if (!step) continue;
      tryCheck([name, 'run'], () => checkPlaceholderContext(step.run), issue);
      for (const p of listPlaceholders(step.run)) {
        if (!known.has(p))
          issue([name, 'run'], `unknown placeholder {{${p}}} (not a built-in and not in vars)`);
      }
    }
    for (const section of ['setup', 'train'] as const) {
      r[section].forEach((step, i) => {
        const path = [section, i, 'run'];
        tryCheck(path, () => checkPlaceholderContext(step.run), issue);
        for (const name of listPlaceholders(step.run)) {
          if (!known.has(name)) {
            issue(path, `unknown placeholder {{${name}}} (not a built-in and not in vars)`);
          }
        }
      });
    }
  });

export type RecipeDef = z.output<typeof RecipeSchema>;

function tryCheck(
  path: (string | number)[],
  check: () => void,
  issue: (path: (string | number)[], message: string) => void,
): void {
  try {
    check();
  } catch (err) {
    if (!(err instanceof RecipeError)) throw err;
    issue(path, err.message);
  }
}

function dupes(list: string[]): string[] {
  return [...new Set(list.filter((v, i) => list.indexOf(v) !== i))];
}

/** `['train', 0, 'run']` → `train[0].run`. */
export function formatIssuePath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else {
      const s = String(seg);
      out += /^[A-Za-z_][A-Za-z0-9_]*$/.test(s) ? (out ? `.${s}` : s) : `[${JSON.stringify(s)}]`;
    }
  }
  return out;
}

/** One line describing the first few schema problems, e.g. `unknown field "foo" at train[0]`. */
export function describeIssues(issues: readonly z.core.$ZodIssue[], max = 3): string {
  const parts = issues.slice(0, max).map((issue) => {
    const where = formatIssuePath(issue.path);
    if (issue.code === 'unrecognized_keys') {
      const keys = issue.keys.map((k) => JSON.stringify(k)).join(', ');
      const noun = issue.keys.length === 1 ? 'field' : 'fields';
      return `unknown ${noun} ${keys} at ${where || 'top level'}`;
    }
    return `${where || 'recipe'}: ${issue.message}`;
  });
  if (issues.length > max) parts.push(`(${issues.length - max} more)`);
  return parts.join('; ').replace(/[\r\n]+/g, ' ');
}
