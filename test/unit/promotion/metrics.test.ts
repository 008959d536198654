import { describe, expect, it } from 'vitest';
import { parseMetrics, parseMetricsText, parseTolerantJson } from '../../../src/promotion/metrics.js';

const good = {
  directionalHitRate: 0.55,
  maxDrawdown: 0.1,
  sharpe: -0.4,
  net_bps_after_costs: 3.5,
  n_train: 100,
  n_test: 20,
};

describe('parseMetrics', () => {
  it('accepts valid metrics and keeps extra keys', () => {
    const r = parseMetrics({ ...good, auc: 0.6, notes: 'x' });
    expect(r).toEqual({ ok: true, metrics: { ...good, auc: 0.6, notes: 'x' } });
  });

  it('accepts the boundaries 0 and 1', () => {
    expect(parseMetrics({ ...good, directionalHitRate: 0, maxDrawdown: 1 }).ok).toBe(true);
    expect(parseMetrics({ ...good, directionalHitRate: 1, maxDrawdown: 0, n_train: 1, n_test: 1 }).ok).toBe(
      true,
    );
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ['missing field', { ...good, sharpe: undefined }, /sharpe: missing/],
    ['NaN', { ...good, directionalHitRate: NaN }, /directionalHitRate: must be a finite number, got NaN/],
    ['Infinity', { ...good, net_bps_after_costs: Infinity }, /net_bps_after_costs: must be a finite number/],
    ['string number', { ...good, maxDrawdown: '0.1' }, /maxDrawdown: .*expected number/],
    ['hit rate above 1', { ...good, directionalHitRate: 1.01 }, /directionalHitRate: /],
    ['negative drawdown', { ...good, maxDrawdown: -0.1 }, /maxDrawdown: /],
    ['drawdown above 1', { ...good, maxDrawdown: 1.5 }, /maxDrawdown: /],
    ['fractional n_train', { ...good, n_train: 10.5 }, /n_train: /],
    ['n_test 0', { ...good, n_test: 0 }, /n_test: /],
  ])('rejects %s, naming the field', (_label, value, reason) => {
    const r = parseMetrics(value);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(reason);
  });

  it('rejects non-objects', () => {
    expect(parseMetrics(null).ok).toBe(false);
    expect(parseMetrics([good]).ok).toBe(false);
    expect(parseMetrics('x').ok).toBe(false);
  });
});

describe('parseMetricsText', () => {
  it('parses valid text', () => {
    expect(parseMetricsText(JSON.stringify(good))).toEqual({ ok: true, metrics: good });
  });

  it("rejects python's bare NaN / Infinity / -Infinity with the field named, not as a syntax error", () => {
    const text = `{"directionalHitRate": 0.5, "maxDrawdown": 0.1, "sharpe": NaN, "net_bps_after_costs": -Infinity, "n_train": 10, "n_test": 5, "x": Infinity}`;
    const r = parseMetricsText(text);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.reason).toMatch(/sharpe: must be a finite number, got NaN/);
      expect(r.reason).toMatch(/net_bps_after_costs: must be a finite number, got -Infinity/);
      expect(r.reason).not.toMatch(/not valid JSON/);
    }
  });

  it('reports malformed JSON', () => {
    const r = parseMetricsText('{"directionalHitRate": 0.5,');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/not valid JSON/);
    expect(parseMetricsText('{"a": NaNa}').ok).toBe(false);
  });
});

describe('parseTolerantJson', () => {
  it('leaves the tokens alone inside strings', () => {
    expect(
      parseTolerantJson('{"s": "NaN \\" Infinity -Infinity", "n": NaN, "a": [Infinity, -Infinity]}'),
    ).toEqual({
      s: 'NaN " Infinity -Infinity',
      n: NaN,
      a: [Infinity, -Infinity],
    });
  });
});
