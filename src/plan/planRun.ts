import type { Config } from '../config/schema.js';
import { costsFor, loadCostTable } from '../data/costs.js';
import { checkReadiness, ensureFeatures } from '../data/readiness.js';
import { InputError } from '../errors.js';
import { buildJobSpec } from '../jobspec/build.js';
import type { Driver, JobSpec, PromoteMode } from '../jobspec/types.js';
import type { Ledger } from '../ledger/ledger.js';
import { loadRecipe, shippedRecipesDir, type LoadedRecipe } from '../recipes/loader.js';
import type { ArtifactStore } from '../storage/store.js';

export interface PlanRequest {
  symbols: string[];
  date: string;
  featureset: string;
  driver: Driver;
  recipe: string;
  vars: Record<string, string>;
  timeoutMinutes: number;
  retries: number;
  promote: PromoteMode;
  canary: boolean;
  force: boolean;
  ensureFeatures: boolean;
  /** Driver vast: rent interruptible (bid) instances. */
  interruptible?: boolean;
}

export interface PlannedSkip {
  symbol: string;
  reason: 'no_data' | 'already_succeeded';
  message: string;
}

export interface Plan {
  date: string;
  recipe: LoadedRecipe;
  /** Symbols to train, in the requested order. */
  specs: JobSpec[];
  skipped: PlannedSkip[];
}

/**
 * Step 1 of a run: turns a request into JobSpecs, checking data readiness (and building features
 * when asked) before anything is rented, and leaving out symbols the ledger already has as success
 * (unless `force`). Enqueues nothing and writes nothing but features.
 */
export async function planRun(
  req: PlanRequest,
  deps: { config: Config; store: ArtifactStore; ledger?: Ledger },
): Promise<Plan> {
  if (req.symbols.length === 0) throw new InputError('no symbols to train');
  const recipe = await loadRecipe(req.recipe, { recipesDir: shippedRecipesDir(), overrides: req.vars });
  const costs = await loadCostTable(deps.config.costsFile);
  const existing = deps.ledger && !req.force ? await deps.ledger.get(req.date) : {};
  const specs: JobSpec[] = [];
  const skipped: PlannedSkip[] = [];
  for (const symbol of req.symbols) {
    if (existing[symbol]?.status === 'success') {
      skipped.push({
        symbol,
        reason: 'already_succeeded',
        message: `${symbol} already succeeded for ${req.date} (use --force to retrain)`,
      });
      continue;
    }
    let dataset: { key: string; sha256: string; bytes: number };
    if (req.ensureFeatures) {
      const built = await ensureFeatures(deps.store, req.featureset, symbol, req.date);
      dataset = { key: built.key, sha256: built.sha256, bytes: built.bytes };
    } else {
      const ready = await checkReadiness(deps.store, req.featureset, symbol, req.date);
      if (!ready.ready) {
        skipped.push({
          symbol,
          reason: 'no_data',
          message: `${symbol}: no features for ${req.date} (${ready.reason})`,
        });
        continue;
      }
      dataset = { key: ready.key, sha256: ready.sha256, bytes: ready.bytes };
    }
    specs.push(
      buildJobSpec({
        symbol,
        date: req.date,
        featureset: req.featureset,
        driver: req.driver,
        recipe: {
          name: recipe.name,
          version: recipe.version,
          ref: req.recipe,
          sha256: recipe.sha256,
          vars: recipe.vars,
        },
        dataset,
        costs: costsFor(costs, symbol),
        timeoutMinutes: req.timeoutMinutes,
        retries: req.retries,
        promote: req.promote,
        canary: req.canary,
        interruptible: req.interruptible === true && req.driver === 'vast',
      }),
    );
  }
  return { date: req.date, recipe, specs, skipped };
}
