/**
 * `GET /api/v1/instances/` (vast-api.md §4): 25 rows a page behind an opaque cursor, filters on
 * stored columns only, `order_by` with `id` as the tie-break, `select_cols`; and
 * `GET /api/v0/instances/filters/`.
 */
import type { VastInstance } from '../types.js';
import { alive, type SimContext } from './context.js';
import { matchOps } from './query.js';
import { fail, isObj, json, type HttpReply } from './util.js';
import { view } from './view.js';

/** Columns the v1 list can filter on (stored); computed ones get 400. */
const STORED_COLUMNS = new Set([
  'id',
  'label',
  'actual_status',
  'intended_status',
  'cur_state',
  'gpu_name',
  'machine_id',
  'host_id',
  'image_uuid',
  'verification',
]);

/**
 * The cursor is opaque to clients: the sort key of the last row returned, so a page boundary
 * survives rows that are destroyed between calls. It only fits the order_by it was made for.
 */
const encodeToken = (key: unknown[]) => Buffer.from(JSON.stringify({ k: key })).toString('base64url');
const decodeToken = (t: string, width: number): unknown[] | null => {
  try {
    const v = JSON.parse(Buffer.from(t, 'base64url').toString('utf8')) as unknown;
    return isObj(v) && Array.isArray(v.k) && v.k.length === width ? v.k : null;
  } catch {
    return null;
  }
};
/** Nulls sort last ascending, first descending (PostgreSQL's default). */
const cmpValue = (a: unknown, b: unknown): number => {
  const an = a === null || a === undefined;
  const bn = b === null || b === undefined;
  if (an || bn) return an && bn ? 0 : an ? 1 : -1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  const as = String(a);
  const bs = String(b);
  return as < bs ? -1 : as > bs ? 1 : 0;
};

const project = (rows: Record<string, unknown>[], cols: string[] | null) =>
  cols === null ? rows : rows.map((r) => Object.fromEntries(cols.map((c) => [c, r[c] ?? null])));

interface ListQuery {
  limit: number;
  filters: Record<string, unknown>;
  order: { col: string; desc: boolean }[];
  cols: string[] | null;
}

/** A JSON query argument; undefined when absent, an Error when not JSON. */
function jsonArg(q: URLSearchParams, name: string): unknown {
  const s = q.get(name);
  if (!s) return undefined;
  try {
    return JSON.parse(s) as unknown;
  } catch {
    return new Error('not JSON');
  }
}

function parseListQuery(q: URLSearchParams): ListQuery | HttpReply {
  let limit = Number(q.get('limit') ?? 25);
  if (!Number.isFinite(limit)) limit = 25;
  limit = limit <= 0 ? 5 : Math.min(25, Math.floor(limit));
  const sf = jsonArg(q, 'select_filters');
  if (sf instanceof Error || (sf !== undefined && !isObj(sf)))
    return fail(400, 'invalid_request', 'select_filters must be a JSON object');
  const filters: Record<string, unknown> = (sf as Record<string, unknown> | undefined) ?? {};
  for (const k of Object.keys(filters)) {
    if (!STORED_COLUMNS.has(k)) return fail(400, 'invalid_request', `cannot filter on column ${k}`);
  }
  // order_by: JSON [{"col":"id","dir":"asc"}, ...]; `id` is always appended as the tie-break.
  const order: { col: string; desc: boolean }[] = [];
  const ob = jsonArg(q, 'order_by');
  if (ob !== undefined && !Array.isArray(ob))
    return fail(400, 'invalid_request', 'order_by must be a JSON array');
  for (const e of (ob as unknown[] | undefined) ?? []) {
    if (!isObj(e) || typeof e.col !== 'string') {
      return fail(400, 'invalid_request', 'order_by entries are {"col":..., "dir":"asc"|"desc"}');
    }
    if (!STORED_COLUMNS.has(e.col)) return fail(400, 'invalid_request', `cannot order by column ${e.col}`);
    const dir = e.dir === undefined ? 'asc' : String(e.dir).toLowerCase();
    if (dir !== 'asc' && dir !== 'desc') return fail(400, 'invalid_request', `invalid order dir ${dir}`);
    order.push({ col: e.col, desc: dir === 'desc' });
  }
  if (!order.some((o) => o.col === 'id')) order.push({ col: 'id', desc: false });
  // select_cols: JSON array of column names; absent or ["*"] = full rows.
  const sc = jsonArg(q, 'select_cols');
  if (sc instanceof Error) return fail(400, 'invalid_request', 'select_cols must be a JSON array');
  if (sc !== undefined && (!Array.isArray(sc) || !sc.every((c) => typeof c === 'string'))) {
    return fail(400, 'invalid_request', 'select_cols must be a JSON array of column names');
  }
  const cols = sc === undefined || (sc as string[]).includes('*') ? null : (sc as string[]);
  return { limit, filters, order, cols };
}

export function list(ctx: SimContext, q: URLSearchParams): HttpReply {
  const now = Date.now();
  const parsed = parseListQuery(q);
  if (!('limit' in parsed)) return parsed;
  const { limit, filters, order, cols } = parsed;
  const keyOf = (v: VastInstance) => order.map((o) => (v as Record<string, unknown>)[o.col] ?? null);
  const cmpKeys = (a: unknown[], b: unknown[]) => {
    for (let n = 0; n < order.length; n++) {
      const c = cmpValue(a[n], b[n]);
      if (c !== 0) return order[n]!.desc ? -c : c;
    }
    return 0;
  };
  let after: unknown[] | null = null;
  const tok = q.get('after_token');
  if (tok) {
    after = decodeToken(tok, order.length);
    if (after === null) return fail(400, 'invalid_token', 'Invalid pagination token');
  }
  const all = alive(ctx).map((i) => view(ctx, i, now));
  let matched: VastInstance[];
  try {
    matched = all.filter((v) =>
      Object.entries(filters).every(([k, ops]) => matchOps((v as Record<string, unknown>)[k], ops)),
    );
  } catch (e) {
    return fail(400, 'invalid_request', (e as Error).message);
  }
  matched.sort((a, b) => cmpKeys(keyOf(a), keyOf(b)));
  const rest = after === null ? matched : matched.filter((v) => cmpKeys(keyOf(v), after) > 0);
  const page = rest.slice(0, limit);
  const more = rest.length > page.length;
  const labelCounts: Record<string, number> = {};
  for (const v of matched) {
    const l = v.label ?? '';
    labelCounts[l] = (labelCounts[l] ?? 0) + 1;
  }
  // Only the list carries volume_info (vast-api.md §4); the simulator has no volumes.
  const rows = page.map((v) => ({ ...v, volume_info: [] }) as Record<string, unknown>);
  return json(200, {
    success: true,
    instances_found: matched.length,
    total_instances: all.length,
    label_counts: labelCounts,
    next_token: more && page.length > 0 ? encodeToken(keyOf(page[page.length - 1]!)) : null,
    instances: project(rows, cols),
  });
}

/** `GET /api/v0/instances/filters/`: the distinct (status, verification, GPU) values the CLI offers as filters. */
export function listFilters(ctx: SimContext): HttpReply {
  const now = Date.now();
  const seen = new Map<string, Record<string, unknown>>();
  for (const i of alive(ctx)) {
    const v = view(ctx, i, now) as Record<string, unknown>;
    const row = { actual_status: v.actual_status, verification: v.verification, gpu_name: v.gpu_name };
    seen.set(JSON.stringify(row), row);
  }
  return json(200, { success: true, filters: [...seen.values()] });
}
