import { InputError } from '../errors.js';
import type { CandidateMetrics } from './metrics.js';

export const RULES_VERSION = 'v1';

/** Two metric values closer than this are equal. */
export const EPSILON = 1e-12;

export const DEFAULT_MAX_DRAWDOWN_TOLERANCE = 1.1;

/** The rule that decided, one per branch of rules v1. */
export type RuleName =
  | 'no_production'
  | 'higher_hit_rate'
  | 'drawdown_guard'
  | 'lower_hit_rate'
  | 'equal_hit_rate_lower_drawdown'
  | 'no_improvement';

export interface RuleDecision {
  decision: 'promote' | 'reject';
  rule: RuleName;
  reason: string;
}

export interface RuleOptions {
  /** The candidate's maxDrawdown may be at most production's × this (default 1.1). */
  maxDrawdownTolerance: number;
}

/**
 * Promotion rules v1 (DESIGN.md "Promotion"), pure. Both metric sets must already be validated.
 * 1. no production → promote;
 * 2. higher directionalHitRate → promote, unless candidate.maxDrawdown > production.maxDrawdown ×
 *    tolerance (reject: drawdown guard; exactly at the limit passes);
 * 3. lower directionalHitRate → reject;
 * 4. equal hit rate and lower maxDrawdown → promote;
 * 5. otherwise (equal hit rate, equal or higher drawdown) → reject.
 * "Equal" means within EPSILON (1e-12), also at the drawdown limit.
 */
export function decide(
  candidate: CandidateMetrics,
  production: CandidateMetrics | null,
  opts: RuleOptions = { maxDrawdownTolerance: DEFAULT_MAX_DRAWDOWN_TOLERANCE },
): RuleDecision {
  const tol = opts.maxDrawdownTolerance;
  if (!Number.isFinite(tol) || tol <= 0) {
    throw new InputError(`maxDrawdownTolerance must be a positive finite number, got ${tol}`);
  }
  if (production === null) {
    return { decision: 'promote', rule: 'no_production', reason: 'no production model yet' };
  }
  const ch = candidate.directionalHitRate;
  const ph = production.directionalHitRate;
  const cd = candidate.maxDrawdown;
  const pd = production.maxDrawdown;
  const hit = `directionalHitRate ${fmt(ch)} vs production ${fmt(ph)}`;

  if (ch > ph + EPSILON) {
    const limit = pd * tol;
    if (cd > limit + EPSILON) {
      return {
        decision: 'reject',
        rule: 'drawdown_guard',
        reason: `${hit} is higher, but maxDrawdown ${fmt(cd)} exceeds production ${fmt(pd)} × ${tol} = ${fmt(limit)}`,
      };
    }
    return {
      decision: 'promote',
      rule: 'higher_hit_rate',
      reason: `${hit} is higher and maxDrawdown ${fmt(cd)} is within production ${fmt(pd)} × ${tol} = ${fmt(limit)}`,
    };
  }
  if (ch < ph - EPSILON) {
    return { decision: 'reject', rule: 'lower_hit_rate', reason: `${hit} is lower` };
  }
  if (cd < pd - EPSILON) {
    return {
      decision: 'promote',
      rule: 'equal_hit_rate_lower_drawdown',
      reason: `${hit} is equal and maxDrawdown ${fmt(cd)} is lower than production ${fmt(pd)}`,
    };
  }
  return {
    decision: 'reject',
    rule: 'no_improvement',
    reason: `${hit} is equal and maxDrawdown ${fmt(cd)} is not lower than production ${fmt(pd)}`,
  };
}

function fmt(x: number): string {
  return String(Number(x.toPrecision(6)));
}
