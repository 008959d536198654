import { z } from 'zod';
import type { CandidateMetrics } from './metrics.js';
import { decide, EPSILON, type RuleDecision } from './rules.js';

/**
 * `promotion.rules` (docs/promotion-rules.md): absolute floors every candidate must pass (also the
 * first one), then an ordered comparison with production. Unset `compare`: rules v1 decides.
 */
const METRIC = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'must be a metrics.json field name');
const OP = z.enum(['>', '>=', '<', '<=']);

const FloorObject = z.object({ metric: METRIC, op: OP, value: z.number() }).strict();
/** `"net_bps_after_costs > 0"` is the same as `{ metric: net_bps_after_costs, op: '>', value: 0 }`. */
const FloorString = z.string().transform((s, ctx) => {
  const m = /^\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*(>=|<=|>|<)\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)\s*$/i.exec(s);
  if (!m) {
    ctx.addIssue({ code: 'custom', message: `must look like "metric > 0.5", got ${JSON.stringify(s)}` });
    return z.NEVER;
  }
  return { metric: m[1]!, op: m[2] as z.infer<typeof OP>, value: Number(m[3]) };
});
export const FloorSchema = z.union([FloorString, FloorObject], {
  error: (iss) => `must look like "metric > 0.5" or { metric, op, value }, got ${JSON.stringify(iss.input)}`,
});

export const CompareRuleSchema = z
  .object({
    metric: METRIC,
    direction: z.enum(['higher', 'lower']),
    /** Differences within this (absolute) count as equal: the next rule decides. */
    tolerance: z.number().min(0).default(0),
  })
  .strict();

export const PromotionRulesSchema = z
  .object({
    floors: z.array(FloorSchema).default([]),
    compare: z.array(CompareRuleSchema).min(1).optional(),
  })
  .strict();

export type PromotionRules = z.output<typeof PromotionRulesSchema>;

/** The guard's rules from config `promotion.floors` / `promotion.rules`; undefined: plain rules v1. */
export function promotionRulesOf(p: {
  floors?: z.output<typeof FloorSchema>[] | undefined;
  rules?: z.output<typeof CompareRuleSchema>[] | undefined;
}): PromotionRules | undefined {
  if (!p.floors?.length && !p.rules?.length) return undefined;
  return { floors: p.floors ?? [], ...(p.rules?.length ? { compare: p.rules } : {}) };
}
export type Floor = z.output<typeof FloorObject>;

export const CUSTOM_RULES_VERSION = 'custom';

function value(m: CandidateMetrics, metric: string): number | undefined {
  const v = (m as Record<string, unknown>)[metric];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function passes(v: number, f: Floor): boolean {
  switch (f.op) {
    case '>':
      return v > f.value;
    case '>=':
      return v >= f.value;
    case '<':
      return v < f.value;
    case '<=':
      return v <= f.value;
  }
}

export function floorName(f: Floor): string {
  return `floor:${f.metric}${f.op}${f.value}`;
}

/**
 * Decides with configured rules, pure. Floors in order (the first that fails rejects, naming it);
 * then no production → promote; then, without `compare`, rules v1; with it, each rule in order: the
 * candidate better by more than the tolerance promotes, worse by more rejects, otherwise the next
 * rule; all within tolerance → reject (`no_improvement`). The decision names the rule that decided.
 */
export function decideWithRules(
  candidate: CandidateMetrics,
  production: CandidateMetrics | null,
  rules: PromotionRules,
  maxDrawdownTolerance: number,
): RuleDecision | { decision: 'promote' | 'reject'; rule: string; reason: string } {
  for (const f of rules.floors) {
    const v = value(candidate, f.metric);
    if (v === undefined)
      return {
        decision: 'reject',
        rule: floorName(f),
        reason: `candidate has no numeric ${f.metric} (floor ${f.metric} ${f.op} ${f.value})`,
      };
    if (!passes(v, f))
      return {
        decision: 'reject',
        rule: floorName(f),
        reason: `candidate ${f.metric} ${fmt(v)} fails the floor ${f.metric} ${f.op} ${f.value}`,
      };
  }
  if (production === null || !rules.compare) return decide(candidate, production, { maxDrawdownTolerance });
  for (const r of rules.compare) {
    const c = value(candidate, r.metric);
    const p = value(production, r.metric);
    const rule = `compare:${r.metric}`;
    if (c === undefined) return { decision: 'reject', rule, reason: `candidate has no numeric ${r.metric}` };
    if (p === undefined)
      return { decision: 'reject', rule, reason: `production has no numeric ${r.metric}: cannot compare` };
    const gain = (c - p) * (r.direction === 'higher' ? 1 : -1);
    const what = `${r.metric} ${fmt(c)} vs production ${fmt(p)} (${r.direction} is better, tolerance ${r.tolerance})`;
    if (gain > r.tolerance + EPSILON) return { decision: 'promote', rule, reason: `${what}: better` };
    if (gain < -r.tolerance - EPSILON) return { decision: 'reject', rule, reason: `${what}: worse` };
  }
  return {
    decision: 'reject',
    rule: 'no_improvement',
    reason: `every compared metric (${rules.compare.map((r) => r.metric).join(', ')}) is within its tolerance of production`,
  };
}

function fmt(x: number): string {
  return String(Number(x.toPrecision(6)));
}
