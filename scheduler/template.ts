import { resolve } from 'node:path';
import type { JobsOptions } from 'bullmq';
import type { Config, Mode } from '../src/config/schema.js';
import type { PromoteMode } from '../src/jobspec/types.js';
import { loadRecipe, shippedRecipesDir } from '../src/recipes/loader.js';
import { RECIPE_NAME_RE } from '../src/recipes/schema.js';
import { resolveSymbols } from '../src/symbols/symbols.js';
import { JITTERED } from '../queues/backoff.js';

/**
 * What a scheduled run trains: fixed when `retrain scheduler` registers the schedule (from its
 * config), carried as the job scheduler's template data, so every slot plans the same run whichever
 * worker takes it. Only the date comes from the slot; where and how it trains (driver, store,
 * limits) is the taking worker's config, as for `retrain enqueue`.
 */
export interface ScheduledRunData {
  v: 1;
  /** `schedule.symbols` (else `symbols`) as configured: topN, a CSV file or a comma list. */
  symbolsSpec: string;
  /** Resolved and validated at registration. */
  symbols: string[];
  mode: Mode;
  maxConcurrent?: number;
  promote: PromoteMode;
  canary: boolean;
  /** A shipped recipe name, or the absolute path of the recipe file. */
  recipe: string;
  vars: Record<string, string>;
  featureset: string;
  timeoutMinutes: number;
  retries: number;
  ensureFeatures: boolean;
  /** Absent in templates written before `schedule.synthetic` existed: false. */
  synthetic?: boolean;
  budgetUsd?: number;
}

/**
 * Builds the template from the config, validating what a slot would otherwise only find out at
 * 00:15: the symbols and the recipe with its variables. Throws InputError/RecipeError (one line).
 */
export async function scheduledRunData(config: Config, cwd = process.cwd()): Promise<ScheduledRunData> {
  const s = config.schedule;
  const symbolsSpec = s.symbols ?? config.symbols;
  const symbols = resolveSymbols(symbolsSpec, { cwd });
  const recipe = await loadRecipe(
    RECIPE_NAME_RE.test(config.recipe) ? config.recipe : resolve(cwd, config.recipe),
    {
      recipesDir: shippedRecipesDir(),
      overrides: config.recipeVars,
    },
  );
  return {
    v: 1,
    symbolsSpec,
    symbols,
    mode: s.mode ?? config.train.mode,
    ...(config.train.maxConcurrent !== undefined ? { maxConcurrent: config.train.maxConcurrent } : {}),
    promote: s.promote ?? config.promotion.mode,
    canary: config.promotion.canary,
    recipe: RECIPE_NAME_RE.test(config.recipe) ? config.recipe : recipe.file,
    vars: { ...config.recipeVars },
    featureset: config.featureset,
    timeoutMinutes: config.train.timeoutMinutes,
    retries: config.train.retries,
    ensureFeatures: s.ensureFeatures,
    ...(s.synthetic ? { synthetic: true } : {}),
    ...(s.budgetUsd !== undefined ? { budgetUsd: s.budgetUsd } : {}),
  };
}

/** How many times a slot's job is tried (planning can meet a Redis or store hiccup). */
export const SCHEDULED_JOB_ATTEMPTS = 10;

/** Options of every job the scheduler produces. */
export function scheduledJobOptions(config: Config): JobsOptions {
  return {
    attempts: SCHEDULED_JOB_ATTEMPTS,
    backoff: { type: JITTERED, delay: 5000 },
    removeOnComplete: { age: config.retention.completedAgeSec, count: config.retention.completedCount },
    removeOnFail: { age: config.retention.failedAgeSec },
  };
}
