/**
 * Query matching shared by the offer search and the v1 instance list: `{op: value}` filters with
 * the server-side conversions the CLI relies on, and the CLI's `--env` string form.
 */
import { coerceLike, isObj } from './util.js';

export function matchOps(actual: unknown, ops: unknown): boolean {
  const o: Record<string, unknown> = isObj(ops) ? ops : { eq: ops };
  for (const [op, raw] of Object.entries(o)) {
    if (actual === undefined || actual === null) {
      const isNull = (x: unknown) => x === null || x === 'null';
      const l = Array.isArray(raw) ? raw : [raw];
      if (op === 'neq' && !isNull(raw)) continue;
      if ((op === 'notin' || op === 'nin') && !l.some(isNull)) continue;
      if (op === 'eq' && isNull(raw)) continue;
      // `show instances --label ''` sends {"label":{"in":[null]}} for unlabeled instances.
      if (op === 'in' && l.some(isNull)) continue;
      return false;
    }
    const list = (): unknown[] => (Array.isArray(raw) ? raw : [raw]).map((x) => coerceLike(actual, x));
    const v = coerceLike(actual, raw);
    let ok: boolean;
    switch (op) {
      case 'eq':
        ok = actual === v;
        break;
      case 'neq':
        ok = actual !== v;
        break;
      case 'gt':
        ok = (actual as number) > (v as number);
        break;
      case 'gte':
        ok = (actual as number) >= (v as number);
        break;
      case 'lt':
        ok = (actual as number) < (v as number);
        break;
      case 'lte':
        ok = (actual as number) <= (v as number);
        break;
      case 'in':
        ok = list().includes(actual);
        break;
      case 'notin':
      case 'nin':
        ok = !list().includes(actual);
        break;
      default:
        throw new Error(`unknown operator ${op}`);
    }
    if (!ok) return false;
  }
  return true;
}

/** `535.86.05` → 535086005, the integer form the CLI sends for driver_version (vastai/api/query.py). */
function numericDriverVersion(v: unknown): unknown {
  if (typeof v !== 'string') return v;
  const m = /^\s*(\d+)\.(\d+)\.(\d+)\s*$/.exec(v);
  if (m) return Number(m[1]) * 1_000_000 + Number(m[2]) * 1000 + Number(m[3]);
  return /^\s*\d+\s*$/.test(v) ? Number(v) : v;
}

/**
 * One search filter on one offer field. Like matchOps, plus the server-side conversions the CLI
 * relies on: driver_version compares as the integer 535086005 (the CLI converts `535.86.05`), and
 * geolocation matches the whole string (`"California, US"`) or its two-letter country code
 * (`geolocation in [US,CA]`).
 */
export function matchOfferField(field: string, actual: unknown, ops: unknown): boolean {
  if (field === 'driver_version') {
    const o: Record<string, unknown> = isObj(ops) ? ops : { eq: ops };
    const conv = Object.fromEntries(
      Object.entries(o).map(([op, v]) => [
        op,
        Array.isArray(v) ? v.map(numericDriverVersion) : numericDriverVersion(v),
      ]),
    );
    return matchOps(numericDriverVersion(actual), conv);
  }
  if (field === 'geolocation' && typeof actual === 'string') {
    const code = /,\s*([A-Za-z]{2})\s*$/.exec(actual)?.[1]?.toUpperCase();
    const hits = (v: unknown) =>
      (Array.isArray(v) ? v : [v]).some(
        (x) => typeof x === 'string' && (x === actual || (code !== undefined && x.toUpperCase() === code)),
      );
    const o: Record<string, unknown> = isObj(ops) ? ops : { eq: ops };
    for (const [op, v] of Object.entries(o)) {
      if (op === 'eq' || op === 'in') {
        if (!hits(v)) return false;
      } else if (op === 'neq' || op === 'notin' || op === 'nin') {
        if (hits(v)) return false;
      } else if (!matchOps(actual, { [op]: v })) return false;
    }
    return true;
  }
  return matchOps(actual, ops);
}

/** CLI `--env` string form: `-e K=V -p 8000:8000`. */
export function parseEnvString(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  const toks = s.match(/"[^"]*"|'[^']*'|\S+/g) ?? [];
  for (let i = 0; i < toks.length; i++) {
    const t = toks[i]!;
    const next = toks[i + 1]?.replace(/^["']|["']$/g, '');
    if (t === '-e' && next !== undefined) {
      const eq = next.indexOf('=');
      if (eq > 0) out[next.slice(0, eq)] = next.slice(eq + 1);
      i++;
    } else if ((t === '-p' || t === '-v') && next !== undefined) {
      out[`${t} ${next}`] = '1';
      i++;
    } else if (t === '-h' && next !== undefined) {
      out['-h'] = next;
      i++;
    }
  }
  return out;
}
