import { InputError } from '../errors.js';
import type { Config } from '../config/schema.js';
import { loadConfig } from '../config/load.js';
import { DriverSchema, ModeSchema, PromoteModeSchema } from '../config/schema.js';
import { resolveSymbols } from '../symbols/symbols.js';
import { parseRunDate, yesterdayUtc } from '../symbols/date.js';
import type { PlanRequest } from '../plan/planRun.js';
import { driverAlias } from './aliases.js';

/** Raw commander options of `enqueue` / `run`. */
export interface RawRunOptions {
  config?: string;
  symbols?: string;
  /** `--symbol` (repeatable). */
  symbol?: string[];
  synthetic?: boolean;
  date?: string;
  mode?: string;
  maxConcurrent?: string;
  timeoutMinutes?: string;
  retries?: string;
  force?: boolean;
  dryRun?: boolean;
  driver?: string;
  recipe?: string;
  promote?: string;
  canary?: string | boolean;
  live?: boolean;
  ensureFeatures?: boolean;
  featureset?: string;
  wait?: boolean;
  var?: string[];
  budgetUsd?: string;
  /** `--interruptible` (true) / `--no-interruptible` (false); unset: config `vast.interruptible`. */
  interruptible?: boolean;
}

export interface RunRequest {
  config: Config;
  plan: PlanRequest;
  mode: 'sequential' | 'parallel' | 'hybrid';
  dryRun: boolean;
  wait: boolean;
  /** `--budget-usd`: the run's spending cap on rentals. */
  budgetUsd?: number;
}

function intFlag(name: string, raw: string, min: number): number {
  if (!/^\d+$/.test(raw.trim()) || Number(raw) < min) {
    throw new InputError(`${name} must be a whole number >= ${min}, got ${JSON.stringify(raw)}`);
  }
  return Number(raw);
}

function choice<T extends string>(name: string, raw: string, schema: { options: readonly T[] }): T {
  if (!(schema.options as readonly string[]).includes(raw)) {
    throw new InputError(`${name} must be one of ${schema.options.join(', ')}, got ${JSON.stringify(raw)}`);
  }
  return raw as T;
}

function boolFlag(name: string, raw: string | boolean | undefined): boolean {
  if (raw === undefined) return false;
  if (typeof raw === 'boolean') return raw;
  if (/^(true|1|yes)$/i.test(raw)) return true;
  if (/^(false|0|no)$/i.test(raw)) return false;
  throw new InputError(`${name} must be true or false, got ${JSON.stringify(raw)}`);
}

function parseVars(list: string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new InputError(`--var must look like name=value, got ${JSON.stringify(item)}`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

/**
 * Validates every flag once, at the edge. Throws InputError/ConfigError with one line naming the
 * bad flag; nothing has been touched when it throws.
 */
export function parseRunOptions(
  raw: RawRunOptions,
  defaults: { promote?: 'off' | 'dry' | 'auto'; ensureFeatures?: boolean; synthetic?: boolean } = {},
): RunRequest {
  const overrides: Record<string, unknown> = {
    train: {} as Record<string, unknown>,
    promotion: {} as Record<string, unknown>,
  };
  const train = overrides.train as Record<string, unknown>;
  const promotion = overrides.promotion as Record<string, unknown>;
  const mode = raw.mode !== undefined ? choice('--mode', raw.mode, ModeSchema) : undefined;
  if (mode) train.mode = mode;
  if (raw.maxConcurrent !== undefined)
    train.maxConcurrent = intFlag('--max-concurrent', raw.maxConcurrent, 1);
  if (raw.timeoutMinutes !== undefined) {
    const n = Number(raw.timeoutMinutes);
    if (!Number.isFinite(n) || n <= 0 || n > 1440) {
      throw new InputError(
        `--timeout-minutes must be a number in (0, 1440], got ${JSON.stringify(raw.timeoutMinutes)}`,
      );
    }
    train.timeoutMinutes = n;
  }
  if (raw.retries !== undefined) {
    const n = intFlag('--retries', raw.retries, 0);
    if (n > 20) throw new InputError(`--retries must be at most 20, got ${n}`);
    train.retries = n;
  }
  if (raw.driver !== undefined) train.driver = choice('--driver', driverAlias(raw.driver), DriverSchema);
  const promote = raw.promote ?? defaults.promote;
  if (promote !== undefined) promotion.mode = choice('--promote', promote, PromoteModeSchema);
  const canary = boolFlag('--canary', raw.canary) || raw.live === true;
  if (canary) promotion.canary = true;
  if (raw.recipe !== undefined) overrides.recipe = raw.recipe;
  if (raw.featureset !== undefined) overrides.featureset = raw.featureset;

  let budgetUsd: number | undefined;
  if (raw.budgetUsd !== undefined) {
    const n = Number(raw.budgetUsd);
    if (raw.budgetUsd.trim() === '' || !Number.isFinite(n) || n < 0) {
      throw new InputError(
        `--budget-usd must be a number of dollars >= 0, got ${JSON.stringify(raw.budgetUsd)}`,
      );
    }
    budgetUsd = n;
  }
  const config = loadConfig({ file: raw.config, overrides });
  if (raw.interruptible === true && config.train.driver !== 'vast') {
    throw new InputError(`--interruptible needs --driver vast (the driver is ${config.train.driver})`);
  }
  const interruptible = config.train.driver === 'vast' && (raw.interruptible ?? config.vast.interruptible);
  if (raw.symbol?.length && raw.symbols !== undefined)
    throw new InputError('use --symbols or --symbol (repeatable), not both');
  const symbols = resolveSymbols(
    raw.symbol?.length ? raw.symbol.join(',') : (raw.symbols ?? config.symbols),
    {
      cwd: process.cwd(),
    },
  );
  const date = raw.date !== undefined ? parseRunDate(raw.date) : yesterdayUtc();
  return {
    config,
    mode: config.train.mode,
    dryRun: raw.dryRun === true,
    wait: raw.wait === true,
    ...(budgetUsd !== undefined ? { budgetUsd } : {}),
    plan: {
      symbols,
      date,
      featureset: config.featureset,
      driver: config.train.driver,
      recipe: config.recipe,
      vars: { ...config.recipeVars, ...parseVars(raw.var) },
      timeoutMinutes: config.train.timeoutMinutes,
      retries: config.train.retries,
      promote: config.promotion.mode,
      canary: config.promotion.canary,
      force: raw.force === true,
      ensureFeatures: raw.ensureFeatures === true || defaults.ensureFeatures === true,
      synthetic: raw.synthetic === true || defaults.synthetic === true,
      ...(interruptible ? { interruptible: true } : {}),
    },
  };
}
