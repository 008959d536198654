/**
 * What Vast bills (docs guides/instances/pricing.mdx): per second, the GPU (`dph_total` less
 * storage) only while running; storage (storage_cost × disk / 720 per hour) while running, while
 * stopped or outbid, and, with `billing.storageAlways` (the vast-like profile), from creation to
 * destroy as Vast does; the image pull's download at the offer's `inet_down_cost` once it has
 * been pulled. Billed seconds are real seconds × timeScale. `GET /api/v0/charges/` reads it back
 * per instance; `/api/v1/invoices/` lists the (simulated) prepaid deposit.
 */
import type { SimContext } from './context.js';
import { neverRuns, outbidMs, runningMs, runStart, stoppedMs } from './lifecycle.js';
import { matchOps } from './query.js';
import type { InstanceCharges, SimInstance } from './types.js';
import { fail, isObj, json, num, type HttpReply } from './util.js';

export const billedSeconds = (ctx: SimContext, i: SimInstance, now: number) =>
  (runningMs(ctx, i, now) / 1000) * ctx.timeScale;

export function chargesOf(ctx: SimContext, i: SimInstance, now: number): InstanceCharges {
  const runS = billedSeconds(ctx, i, now);
  const lifeMs = Math.max(0, Math.min(now, i.destroyedAt ?? Infinity) - i.createdAt);
  const storageOnlyMs = ctx.billing.storageAlways
    ? Math.max(0, lifeMs - runningMs(ctx, i, now))
    : outbidMs(i, now) + stoppedMs(i, now);
  const storageS = runS + (storageOnlyMs / 1000) * ctx.timeScale;
  const gpu = (runS * (i.dphTotal - i.storageHour)) / 3600;
  const disk = (storageS * i.storageHour) / 3600;
  const end = Math.min(now, i.destroyedAt ?? Infinity, i.killed?.at ?? Infinity);
  const pulled = !neverRuns(i) && end >= runStart(ctx, i, 0);
  const bwd = pulled ? (ctx.billing.imagePullGb ?? 0) * i.inetDownCost : 0;
  const bwu = 0;
  const surcharge = i.surchargeUsd;
  return { gpu, disk, bwd, bwu, surcharge, total: gpu + disk + bwd + bwu + surcharge };
}

export const billedUsd = (ctx: SimContext, i: SimInstance, now: number) => chargesOf(ctx, i, now).total;

export const totalBilled = (ctx: SimContext, now: number) =>
  [...ctx.instances.values()].reduce((s, i) => s + billedUsd(ctx, i, now), 0);

const round = (x: number) => Math.round(x * 1e6) / 1e6;

/** The `select_filters` of a billing query, with its required date range on `col`. */
function rangeOf(
  q: URLSearchParams,
  col: string,
): { filters: Record<string, unknown>; from: number; to: number } | string {
  const sf = q.get('select_filters');
  if (!sf) return `select_filters with a ${col} range is required`;
  let filters: unknown;
  try {
    filters = JSON.parse(sf);
  } catch {
    return 'select_filters must be a JSON object';
  }
  if (!isObj(filters) || !isObj(filters[col])) return `select_filters.${col} {gte, lte} is required`;
  const r = filters[col] as Record<string, unknown>;
  const from = num(r.gte) ?? num(r.gt);
  const to = num(r.lte) ?? num(r.lt);
  if (from === undefined || to === undefined) return `select_filters.${col} needs gte and lte (Unix seconds)`;
  return { filters, from, to };
}

/** One charge row as the CLI formats it at every level (start, end, amount, source, items, description). */
function chargeRow(type: string, amount: number, start: number, end: number, description: string) {
  return {
    type,
    amount: round(amount),
    start,
    end,
    source: null as string | null,
    description,
    items: [] as unknown[],
  };
}

/**
 * `GET /api/v0/charges/` (vast-cli `show invoices-v1 --charges`): one row per instance that
 * billed within the `day` range (its whole life, not split by day), newest first with `latest_first`.
 */
export function charges(ctx: SimContext, q: URLSearchParams): HttpReply {
  const r = rangeOf(q, 'day');
  if (typeof r === 'string') return fail(400, 'invalid_request', r);
  const now = Date.now();
  const types = r.filters.type;
  const wanted = types === undefined || matchOpsSafe('instance', types);
  const rows = [...ctx.instances.values()]
    .filter(
      (i) =>
        wanted && Math.min(now, i.destroyedAt ?? Infinity) / 1000 >= r.from && i.createdAt / 1000 <= r.to,
    )
    .map((i) => {
      const c = chargesOf(ctx, i, now);
      const start = i.createdAt / 1000;
      const end = Math.min(now, i.destroyedAt ?? Infinity) / 1000;
      const row = chargeRow(
        'instance',
        c.total,
        start,
        end,
        `Instance ${i.id}${i.label ? ` (${i.label})` : ''}`,
      );
      return {
        ...row,
        source: `instance-${i.id}`,
        metadata: { label: i.label, instance_id: i.id, machine_id: i.machineId, gpu_name: i.offer.gpu_name },
        // Vast reports the total; a difference (the test hook's surcharge) is not itemized.
        items: [
          chargeRow('gpu', c.gpu + c.surcharge, start, end, 'GPU'),
          chargeRow('disk', c.disk, start, end, 'Storage'),
          chargeRow('bwd', c.bwd, start, end, 'Download'),
          chargeRow('bwu', c.bwu, start, end, 'Upload'),
        ],
      };
    });
  rows.sort((a, b) => a.start - b.start);
  if (['true', 'True', '1'].includes(q.get('latest_first') ?? '')) rows.reverse();
  const limit = Math.min(Math.max(1, Math.floor(num(q.get('limit')) ?? 20)), 500);
  const after = num(q.get('after_token')) ?? 0;
  const page = rows.slice(after, after + limit);
  const more = after + page.length < rows.length;
  // `total` counts results: the CLI prints "Showing <count> of <total> results".
  return json(200, {
    success: true,
    count: page.length,
    total: rows.length,
    next_token: more ? String(after + page.length) : null,
    results: page,
  });
}

function matchOpsSafe(v: unknown, ops: unknown): boolean {
  try {
    return matchOps(v, ops);
  } catch {
    return false;
  }
}

/** `GET /api/v1/invoices/`: the prepaid credit as one invoice; a missing range is 200 success:false (vast-api.md §7). */
export function invoices(ctx: SimContext, q: URLSearchParams): HttpReply {
  const r = rangeOf(q, 'when');
  if (typeof r === 'string') return json(200, { success: false, error: 'invalid_request', msg: r });
  const first = Math.min(Date.now(), ...[...ctx.instances.values()].map((i) => i.createdAt));
  const when = first / 1000 - 60;
  // The CLI negates the amount of a credit for display.
  const credit = {
    ...chargeRow('credit', -ctx.initialCredit, when, when, 'Credit purchase'),
    source: 'stripe',
    metadata: { invoice_id: 1 },
  };
  const results = when >= r.from && when <= r.to ? [credit] : [];
  return json(200, {
    success: true,
    count: results.length,
    total: results.length,
    next_token: null,
    results,
  });
}

/** What the account still has, as `users/current` reports it. */
export const creditLeft = (ctx: SimContext, now: number) =>
  Math.max(0, round(ctx.initialCredit - totalBilled(ctx, now)));
