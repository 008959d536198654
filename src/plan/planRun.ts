import type { Config } from '../config/schema.js';
import { costsFor, loadCostTable } from '../data/costs.js';
import { prepareFeatures } from '../data/prepare.js';
import { InputError } from '../errors.js';
import { buildJobSpec } from '../jobspec/build.js';
import type { Driver, JobSpec, PromoteMode } from '../jobspec/types.js';
import type { Ledger } from '../ledger/ledger.js';
import { loadRecipe, shippedRecipesDir, type LoadedRecipe } from '../recipes/loader.js';
import type { ArtifactStore } from '../storage/store.js';
import { forcedArtifactsId, storedSuccess } from './done.js';

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
  /** `--synthetic`: generate missing market data (never published to production). */
  synthetic?: boolean;
  /** Driver vast: rent interruptible (bid) instances. */
  interruptible?: boolean;
}

export interface PlannedSkip {
  symbol: string;
  reason: 'no_data' | 'bad_data' | 'already_succeeded';
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
 * when asked) before anything is rented, and leaving out symbols already done for the date (the
 * ledger says success, or, once the ledger has expired, the stored artifacts say so) unless
 * `force`. Enqueues nothing and writes nothing but features (and with `dryRun`, nothing at all).
 */
export async function planRun(
  req: PlanRequest,
  deps: { config: Config; store: ArtifactStore; ledger?: Ledger; dryRun?: boolean },
): Promise<Plan> {
  if (req.symbols.length === 0) throw new InputError('no symbols to train');
  const recipe = await loadRecipe(req.recipe, { recipesDir: shippedRecipesDir(), overrides: req.vars });
  const costs = await loadCostTable(deps.config.costsFile);
  const existing = deps.ledger && !req.force ? await deps.ledger.get(req.date) : {};
  const specs: JobSpec[] = [];
  const skipped: PlannedSkip[] = [];
  for (const symbol of req.symbols) {
    const done =
      existing[symbol]?.status === 'success'
        ? 'the ledger'
        : !req.force && !existing[symbol] && (await storedSuccess(deps.store, symbol, req.date))
          ? 'its stored artifacts'
          : undefined;
    if (done) {
      skipped.push({
        symbol,
        reason: 'already_succeeded',
        message: `${symbol} already succeeded for ${req.date} (${done}; use --force to retrain)`,
      });
      continue;
    }
    const ready = await prepareFeatures(deps.store, req.featureset, symbol, req.date, {
      build: req.ensureFeatures,
      synthetic: req.synthetic === true,
      write: deps.dryRun !== true,
    });
    if (!ready.ready) {
      skipped.push({ symbol, reason: ready.reason, message: `${symbol}: ${ready.detail}` });
      continue;
    }
    const dataset = { key: ready.key, sha256: ready.sha256, bytes: ready.bytes };
    const artifacts = req.force ? await forcedArtifactsId(deps.store, symbol, req.date) : undefined;
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
        ...(ready.source === 'synthetic' ? { dataSource: 'synthetic' as const } : {}),
        ...(artifacts ? { artifactsId: artifacts } : {}),
      }),
    );
  }
  return { date: req.date, recipe, specs, skipped };
}
