import { InputError, ProductionReadError } from '../errors.js';
import type { PromoteMode } from '../jobspec/types.js';
import { keys } from '../storage/layout.js';
import type { ArtifactStore } from '../storage/store.js';
import { parseMetricsText, type CandidateMetrics } from './metrics.js';
import type { ProductionLock } from './lock.js';
import { CUSTOM_RULES_VERSION, decideWithRules, type PromotionRules } from './custom.js';
import { readLegacyProduction } from './legacy.js';
import { publishProduction } from './publish.js';
import { readProduction, type ProductionSnapshot } from './read.js';
import { RULES_VERSION } from './rules.js';
import { isSyntheticCandidate } from './synthetic.js';

export type { PromoteMode } from '../jobspec/types.js';

export interface PromoteOptions {
  store: ArtifactStore;
  symbol: string;
  /** YYYYMMDD */
  date: string;
  jobId: string;
  mode: PromoteMode;
  /** Canary/live runs never write production: `auto` becomes `dry`. */
  canary: boolean;
  maxDrawdownTolerance: number;
  /** `promotion.rules` (floors, ordered comparison); unset: rules v1. */
  rules?: PromotionRules | undefined;
  /** The candidate was trained on synthetic market data (the spec says so): auto becomes dry. */
  syntheticData?: boolean;
  now?: () => Date;
  /**
   * Held around reading production, deciding and publishing in `auto` mode, so two promotions (or a
   * promotion and a rollback) of one symbol never interleave. Without it the caller serialises them.
   */
  lock?: ProductionLock;
}

/**
 * What the guard decided; also the content of the candidate's decision.json. `rule` is a rules-v1
 * rule (see rules.ts) or one of the guard's own: promotion_off, missing_candidate,
 * invalid_candidate_metrics, invalid_production_metrics, already_production.
 */
export interface PromotionResult {
  symbol: string;
  date: string;
  jobId: string;
  /** The effective mode (canary applied). */
  mode: PromoteMode;
  requestedMode: PromoteMode;
  canary: boolean;
  decision: 'promote' | 'reject' | 'skipped';
  rule: string;
  reason: string;
  /** true only when this call (or, for a retry, an earlier call for the same job) published it. */
  promoted: boolean;
  candidate?: CandidateMetrics;
  production?: CandidateMetrics | null;
  /** Where the replaced production went (auto + promote, when there was one). */
  historyStamp?: string;
  rulesVersion: string;
  maxDrawdownTolerance: number;
  decidedAt: string;
  /** Set in decision.json when publishing failed (the error is also thrown). */
  error?: string;
  /** What turned a requested `auto` into `dry`: a canary/live run, or synthetic training data. */
  downgradedBy?: 'canary' | 'synthetic_data';
  /** `synthetic` when the candidate was trained on invented market data. */
  dataSource?: 'synthetic';
  /** The configured rules, when not rules v1. */
  rules?: PromotionRules;
  /** Production was a model in the seeds' layout (no manifest): the folder it was read from. */
  legacyProduction?: string;
}

/** `auto` under canary is `dry`; everything else is what was asked. */
export function effectiveMode(mode: PromoteMode, canary: boolean): PromoteMode {
  return canary && mode === 'auto' ? 'dry' : mode;
}

/**
 * The promotion guard: decides whether a symbol's candidate replaces production, records the
 * decision, and in effective `auto` publishes it.
 *
 * Guarantees:
 * - `off` evaluates nothing and writes nothing;
 * - otherwise `models/candidates/<SYM>/<date>/decision.json` is always written (the result);
 * - a candidate without model.bin, or with missing/invalid metrics, is rejected, never promoted;
 * - production is read through readProduction (never a mixed model/metrics pair); no manifest.json
 *   means no production (stray top-level files are archived to history by the publish);
 * - a production model that cannot be read consistently (unreadable manifest, files unlike its
 *   SHA-256s) or whose metrics fail validation is never replaced automatically: the candidate is
 *   rejected with rule `invalid_production_metrics`, and an operator must fix it (or roll back);
 * - production is written only in effective `auto` with decision `promote` (see publishProduction
 *   for the write order and history);
 * - idempotent on retry: when production's manifest already names this jobId and date, the result is
 *   `promote` / `already_production` without writing production again.
 */
export async function promoteCandidate(opts: PromoteOptions): Promise<PromotionResult> {
  const { store, symbol, date, jobId } = opts;
  checkInputs(symbol, date, jobId, opts.mode);
  const decidedAt = (opts.now ?? (() => new Date()))();
  const synthetic =
    opts.mode !== 'off' && (opts.syntheticData === true || (await isSyntheticCandidate(store, symbol, date)));
  const canaryMode = effectiveMode(opts.mode, opts.canary);
  // Like the canary rule: a model trained on invented prices is decided and recorded, never published.
  const mode = synthetic && canaryMode === 'auto' ? 'dry' : canaryMode;
  const downgradedBy: PromotionResult['downgradedBy'] =
    opts.mode === 'auto' && mode === 'dry' ? (canaryMode === 'dry' ? 'canary' : 'synthetic_data') : undefined;
  const base = {
    symbol,
    date,
    jobId,
    mode,
    requestedMode: opts.mode,
    canary: opts.canary,
    rulesVersion: opts.rules?.compare || opts.rules?.floors.length ? CUSTOM_RULES_VERSION : RULES_VERSION,
    maxDrawdownTolerance: opts.maxDrawdownTolerance,
    decidedAt: decidedAt.toISOString(),
    ...(downgradedBy ? { downgradedBy } : {}),
    ...(synthetic ? { dataSource: 'synthetic' as const } : {}),
    ...(opts.rules && (opts.rules.compare || opts.rules.floors.length) ? { rules: opts.rules } : {}),
  };
  if (mode === 'off') {
    return { ...base, decision: 'skipped', rule: 'promotion_off', reason: 'promotion off', promoted: false };
  }

  const decideAndPublish = async (signal?: AbortSignal): Promise<PromotionResult> => {
    const ev = await evaluate(store, symbol, date, jobId, opts.maxDrawdownTolerance, opts.rules);
    let result: PromotionResult = {
      ...base,
      decision: ev.decision,
      rule: ev.rule,
      reason:
        downgradedBy === 'synthetic_data'
          ? `${ev.reason}; not published: trained on synthetic data`
          : ev.reason,
      ...(ev.legacyPrefix ? { legacyProduction: ev.legacyPrefix } : {}),
      promoted: ev.rule === 'already_production' && mode === 'auto',
      ...(ev.candidate ? { candidate: ev.candidate } : {}),
      ...(ev.production !== undefined ? { production: ev.production } : {}),
    };

    if (mode === 'auto' && ev.decision === 'promote' && ev.rule !== 'already_production') {
      try {
        const out = await publishProduction({
          store,
          symbol,
          date,
          jobId,
          rule: ev.rule,
          decidedAt,
          metrics: ev.candidate!,
          metricsBytes: ev.candidateBytes!,
          ...(ev.legacyPrefix ? { legacyPrefix: ev.legacyPrefix } : {}),
          ...(signal ? { signal } : {}),
        });
        result = {
          ...result,
          promoted: true,
          ...(out.historyStamp ? { historyStamp: out.historyStamp } : {}),
        };
      } catch (err) {
        const failed = {
          ...result,
          error: `publishing to production failed: ${(err as Error)?.message ?? err}`,
        };
        await store.putJson(keys.candidate(symbol, date, 'decision.json'), failed).catch(() => undefined);
        throw err;
      }
    }
    await store.putJson(keys.candidate(symbol, date, 'decision.json'), result);
    return result;
  };
  // In auto mode production is read, compared and replaced under the symbol's lock.
  return mode === 'auto' && opts.lock ? opts.lock.hold(symbol, decideAndPublish) : decideAndPublish();
}

interface Evaluation {
  decision: 'promote' | 'reject';
  rule: string;
  reason: string;
  candidate?: CandidateMetrics;
  candidateBytes?: Buffer;
  production?: CandidateMetrics | null;
  /** Production is a legacy (no manifest) model in this folder. */
  legacyPrefix?: string;
}

/** Reads the candidate and production, and applies the rules (v1 or configured). Writes nothing. */
async function evaluate(
  store: ArtifactStore,
  symbol: string,
  date: string,
  jobId: string,
  maxDrawdownTolerance: number,
  rules: PromotionRules | undefined,
): Promise<Evaluation> {
  const decideFor = (c: CandidateMetrics, p: CandidateMetrics | null) =>
    decideWithRules(c, p, rules ?? { floors: [] }, maxDrawdownTolerance);
  const modelKey = keys.candidate(symbol, date, 'model.bin');
  const metricsKey = keys.candidate(symbol, date, 'metrics.json');
  if (!(await store.exists(modelKey))) {
    return {
      decision: 'reject',
      rule: 'missing_candidate',
      reason: `candidate model.bin is missing: ${modelKey}`,
    };
  }
  if (!(await store.exists(metricsKey))) {
    return {
      decision: 'reject',
      rule: 'invalid_candidate_metrics',
      reason: `candidate metrics.json is missing: ${metricsKey}`,
    };
  }
  const candidateBytes = await store.getBytes(metricsKey);
  const cand = parseMetricsText(candidateBytes.toString('utf8'));
  if (!cand.ok) {
    return { decision: 'reject', rule: 'invalid_candidate_metrics', reason: `candidate ${cand.reason}` };
  }
  const candidate = cand.metrics;

  let prod: ProductionSnapshot | null;
  try {
    prod = await readProduction(store, symbol, { model: 'skip' });
  } catch (err) {
    if (!(err instanceof ProductionReadError)) throw err;
    return {
      decision: 'reject',
      rule: 'invalid_production_metrics',
      reason: `${err.message}; refusing to replace a production model that cannot be compared`,
      candidate,
    };
  }
  if (prod === null) {
    const legacy = await readLegacyProduction(store, symbol);
    if (legacy && !legacy.metrics.ok) {
      return {
        decision: 'reject',
        rule: 'invalid_production_metrics',
        reason: `production (no manifest) ${legacy.metrics.reason} (${legacy.metricsKey}); refusing to replace a production model that cannot be compared`,
        candidate,
        legacyPrefix: legacy.prefix,
      };
    }
    const production = legacy?.metrics.ok ? legacy.metrics.metrics : null;
    return {
      ...decideFor(candidate, production),
      candidate,
      candidateBytes,
      production,
      ...(legacy ? { legacyPrefix: legacy.prefix } : {}),
    };
  }
  if (prod.manifest.jobId === jobId && prod.manifest.date === date) {
    return {
      decision: 'promote',
      rule: 'already_production',
      reason: `production already holds this candidate (manifest names ${jobId})`,
      candidate,
      production: candidate,
    };
  }
  if (!prod.metrics.ok) {
    return {
      decision: 'reject',
      rule: 'invalid_production_metrics',
      reason: `production ${prod.metrics.reason} (${prod.keys['metrics.json']}); refusing to replace a production model that cannot be compared`,
      candidate,
    };
  }
  return {
    ...decideFor(candidate, prod.metrics.metrics),
    candidate,
    candidateBytes,
    production: prod.metrics.metrics,
  };
}

function checkInputs(symbol: string, date: string, jobId: string, mode: PromoteMode): void {
  if (typeof symbol !== 'string' || !/^[A-Za-z0-9._-]+$/.test(symbol)) {
    throw new InputError(`invalid symbol ${JSON.stringify(symbol)} for promotion`);
  }
  if (typeof date !== 'string' || !/^\d{8}$/.test(date)) {
    throw new InputError(`invalid date ${JSON.stringify(date)} for promotion: expected YYYYMMDD`);
  }
  if (typeof jobId !== 'string' || jobId === '') throw new InputError('promotion needs a jobId');
  if (!['off', 'dry', 'auto'].includes(mode)) {
    throw new InputError(`invalid promotion mode ${JSON.stringify(mode)}: expected off|dry|auto`);
  }
}
