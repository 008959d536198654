import { describe, expect, it } from 'vitest';
import { InputError } from '../../../src/errors.js';
import type { CandidateMetrics } from '../../../src/promotion/metrics.js';
import { decide, EPSILON, type RuleName } from '../../../src/promotion/rules.js';

const m = (directionalHitRate: number, maxDrawdown: number): CandidateMetrics => ({
  directionalHitRate,
  maxDrawdown,
  sharpe: 1,
  net_bps_after_costs: 2,
  n_train: 100,
  n_test: 20,
});

type Row = [
  label: string,
  cand: [number, number],
  prod: [number, number] | null,
  tol: number,
  decision: 'promote' | 'reject',
  rule: RuleName,
];

const rows: Row[] = [
  ['1 no production → promote', [0.4, 0.9], null, 1.1, 'promote', 'no_production'],
  ['2 higher hit rate, same drawdown', [0.56, 0.1], [0.55, 0.1], 1.1, 'promote', 'higher_hit_rate'],
  ['2 higher hit rate, lower drawdown', [0.56, 0.05], [0.55, 0.1], 1.1, 'promote', 'higher_hit_rate'],
  [
    '2 higher hit rate, drawdown exactly at production × tolerance',
    [0.56, 0.11],
    [0.55, 0.1],
    1.1,
    'promote',
    'higher_hit_rate',
  ],
  [
    '2 higher hit rate, drawdown just above the limit',
    [0.56, 0.1100001],
    [0.55, 0.1],
    1.1,
    'reject',
    'drawdown_guard',
  ],
  [
    '2 higher hit rate, drawdown far above the limit',
    [0.9, 0.5],
    [0.55, 0.1],
    1.1,
    'reject',
    'drawdown_guard',
  ],
  [
    '2 tolerance 1.0: any higher drawdown is guarded',
    [0.56, 0.1000001],
    [0.55, 0.1],
    1.0,
    'reject',
    'drawdown_guard',
  ],
  ['2 tolerance 2.0 allows double', [0.56, 0.2], [0.55, 0.1], 2.0, 'promote', 'higher_hit_rate'],
  [
    '2 production drawdown 0: any candidate drawdown is guarded',
    [0.56, 0.01],
    [0.55, 0],
    1.1,
    'reject',
    'drawdown_guard',
  ],
  [
    '2 hit rate higher by just more than epsilon',
    [0.55 + 1e-9, 0.1],
    [0.55, 0.1],
    1.1,
    'promote',
    'higher_hit_rate',
  ],
  ['3 lower hit rate, even with lower drawdown', [0.54, 0.01], [0.55, 0.1], 1.1, 'reject', 'lower_hit_rate'],
  [
    '3 hit rate lower by just more than epsilon',
    [0.55 - 1e-9, 0.01],
    [0.55, 0.1],
    1.1,
    'reject',
    'lower_hit_rate',
  ],
  [
    '4 equal hit rate, lower drawdown',
    [0.55, 0.09],
    [0.55, 0.1],
    1.1,
    'promote',
    'equal_hit_rate_lower_drawdown',
  ],
  [
    '4 equal within epsilon, lower drawdown',
    [0.55 + EPSILON / 2, 0.09],
    [0.55, 0.1],
    1.1,
    'promote',
    'equal_hit_rate_lower_drawdown',
  ],
  [
    '4 float noise counts as equal (0.1+0.2 vs 0.3)',
    [0.1 + 0.2, 0.09],
    [0.3, 0.1],
    1.1,
    'promote',
    'equal_hit_rate_lower_drawdown',
  ],
  ['5 equal hit rate, equal drawdown', [0.55, 0.1], [0.55, 0.1], 1.1, 'reject', 'no_improvement'],
  [
    '5 equal hit rate, drawdown lower only within epsilon',
    [0.55, 0.1 - EPSILON / 2],
    [0.55, 0.1],
    1.1,
    'reject',
    'no_improvement',
  ],
  ['5 equal hit rate, higher drawdown', [0.55, 0.2], [0.55, 0.1], 1.1, 'reject', 'no_improvement'],
];

describe('promotion rules v1', () => {
  it.each(rows)('%s', (_label, cand, prod, tol, decision, rule) => {
    const d = decide(m(...cand), prod ? m(...prod) : null, { maxDrawdownTolerance: tol });
    expect(d.decision).toBe(decision);
    expect(d.rule).toBe(rule);
    expect(d.reason.length).toBeGreaterThan(0);
  });

  it('uses tolerance 1.1 by default', () => {
    expect(decide(m(0.56, 0.11), m(0.55, 0.1)).rule).toBe('higher_hit_rate');
    expect(decide(m(0.56, 0.12), m(0.55, 0.1)).rule).toBe('drawdown_guard');
  });

  it('names the numbers in the reason', () => {
    const d = decide(m(0.6, 0.3), m(0.55, 0.1), { maxDrawdownTolerance: 1.1 });
    expect(d.reason).toContain('0.6');
    expect(d.reason).toContain('0.3');
    expect(d.reason).toContain('0.11');
  });

  it.each([0, -1, NaN, Infinity])('rejects tolerance %s', (tol) => {
    expect(() => decide(m(0.5, 0.1), m(0.4, 0.1), { maxDrawdownTolerance: tol })).toThrow(InputError);
  });
});
