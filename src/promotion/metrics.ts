import { z } from 'zod';

/**
 * The training contract's metrics.json (DESIGN.md "Recipes"), validated. Extra keys are kept.
 * z.number() rejects NaN and ±Infinity, so a non-finite value fails with its field named.
 */
export const CandidateMetricsSchema = z.looseObject({
  directionalHitRate: z.number().min(0).max(1),
  /** A positive fraction: 0.12 means a 12 % peak-to-trough loss. */
  maxDrawdown: z.number().min(0).max(1),
  sharpe: z.number(),
  net_bps_after_costs: z.number(),
  n_train: z.number().int().min(1),
  n_test: z.number().int().min(1),
});

export type CandidateMetrics = z.infer<typeof CandidateMetricsSchema>;

export type ParsedMetrics = { ok: true; metrics: CandidateMetrics } | { ok: false; reason: string };

/** Validates an already-parsed metrics value; the reason names every offending field. */
export function parseMetrics(json: unknown): ParsedMetrics {
  const res = CandidateMetricsSchema.safeParse(json);
  if (res.success) return { ok: true, metrics: res.data };
  const problems = res.error.issues.map((issue) => {
    const field = issue.path.length ? issue.path.map(String).join('.') : '(root)';
    return `${field}: ${describeIssue(issue, json)}`;
  });
  return { ok: false, reason: `invalid metrics: ${problems.join('; ')}` };
}

/**
 * Parses metrics.json text and validates it. Python's json module writes bare `NaN`, `Infinity` and
 * `-Infinity`; those tokens are read as the non-finite numbers they stand for, so validation rejects
 * them naming the field, instead of the whole file failing as a JSON syntax error.
 */
export function parseMetricsText(text: string): ParsedMetrics {
  let value: unknown;
  try {
    value = parseTolerantJson(text);
  } catch (err) {
    return { ok: false, reason: `metrics.json is not valid JSON: ${(err as Error).message}` };
  }
  return parseMetrics(value);
}

/**
 * JSON.parse, plus the bare tokens NaN, Infinity and -Infinity (outside strings) as numbers. Each
 * token is swapped for a string sentinel carrying a per-call nonce, then the reviver maps the
 * sentinels back, so no real string value can be mistaken for one.
 */
export function parseTolerantJson(text: string): unknown {
  const nonce = Math.random().toString(36).slice(2);
  const sentinel = (name: string) => `\u0000nonfinite:${nonce}:${name}`;
  const values: Record<string, number> = {
    [sentinel('NaN')]: NaN,
    [sentinel('Infinity')]: Infinity,
    [sentinel('-Infinity')]: -Infinity,
  };
  let out = '';
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === '"') {
      // Copy a string literal verbatim, honouring escapes.
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
      continue;
    }
    const token = ['-Infinity', 'Infinity', 'NaN'].find((t) => text.startsWith(t, i));
    if (
      token &&
      !/[A-Za-z0-9_$]/.test(text[i - 1] ?? '') &&
      !/[A-Za-z0-9_$]/.test(text[i + token.length] ?? '')
    ) {
      out += JSON.stringify(sentinel(token));
      i += token.length;
      continue;
    }
    out += ch;
    i++;
  }
  return JSON.parse(out, (_key, v: unknown) => (typeof v === 'string' && v in values ? values[v] : v));
}

function describeIssue(issue: z.core.$ZodIssue, root: unknown): string {
  const actual = valueAt(root, issue.path);
  if (issue.code === 'invalid_type' && actual === undefined) return 'missing';
  if (typeof actual === 'number' && !Number.isFinite(actual)) return `must be a finite number, got ${actual}`;
  const shown = JSON.stringify(actual);
  return `${issue.message}${shown !== undefined ? ` (got ${shown.length > 40 ? shown.slice(0, 40) + '…' : shown})` : ''}`;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = root;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[p];
  }
  return cur;
}
