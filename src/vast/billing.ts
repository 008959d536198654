/**
 * What Vast billed: `GET /api/v0/charges/` (vast-api.md §7), one charge per instance and period with
 * `source: "instance-<id>"`, `amount` in $ and `metadata.label`, the label retrain gave the rental
 * (`retrain-<deployment>-<jobId>`), which ties every billed dollar to a symbol and a date.
 */
import { z } from 'zod';
import type { VastClient } from './client.js';
import { VastApiError } from './errors.js';

const ChargeSchema = z.looseObject({
  source: z.string().nullish(),
  type: z.string().nullish(),
  amount: z.coerce.number(),
  start: z.number().nullish(),
  end: z.number().nullish(),
  metadata: z.looseObject({ label: z.string().nullish() }).nullish(),
  label: z.string().nullish(),
  instance_id: z.number().nullish(),
});

const ChargesReplySchema = z.looseObject({
  results: z.array(z.unknown()),
  next_token: z.string().nullish(),
});

export interface InstanceCharge {
  instanceId: number | null;
  label: string | null;
  usd: number;
}

/** The charge's instance id: `source` "instance-<id>", or an `instance_id` field. */
function instanceOf(c: z.infer<typeof ChargeSchema>): number | null {
  const m = /^instance-(\d+)$/.exec(c.source ?? '');
  if (m) return Number(m[1]);
  return typeof c.instance_id === 'number' ? c.instance_id : null;
}

/**
 * Instance charges between two instants (epoch seconds), summed per instance, all pages. Charges of
 * other types (volumes, serverless) are left out.
 */
export async function instanceCharges(
  client: VastClient,
  fromSec: number,
  toSec: number,
): Promise<InstanceCharge[]> {
  const path = '/api/v0/charges/';
  const byInstance = new Map<string, InstanceCharge>();
  let token: string | null = null;
  const seen = new Set<string>();
  for (let page = 0; page < 1000; page++) {
    const params: Record<string, string | number> = {
      select_filters: JSON.stringify({ day: { gte: Math.floor(fromSec), lte: Math.ceil(toSec) } }),
      limit: 500,
    };
    if (token) params.after_token = token;
    const parsed = ChargesReplySchema.safeParse(await client.getJson(path, params));
    if (!parsed.success) throw new VastApiError(`GET ${path}: unexpected reply shape (no "results" array)`);
    for (const raw of parsed.data.results) {
      const c = ChargeSchema.safeParse(raw);
      if (!c.success || !Number.isFinite(c.data.amount)) {
        throw new VastApiError(`GET ${path}: a charge without a numeric amount`);
      }
      if (c.data.type && c.data.type !== 'instance') continue;
      const id = instanceOf(c.data);
      const label = c.data.metadata?.label ?? c.data.label ?? null;
      const key = id !== null ? `i${id}` : `l${label ?? ''}`;
      const cur = byInstance.get(key) ?? { instanceId: id, label, usd: 0 };
      cur.usd += c.data.amount;
      if (!cur.label && label) cur.label = label;
      byInstance.set(key, cur);
    }
    const next = parsed.data.next_token;
    if (!next || parsed.data.results.length === 0) break;
    if (seen.has(next)) throw new VastApiError(`GET ${path}: pagination loops (repeated next_token)`);
    seen.add(next);
    token = next;
  }
  return [...byInstance.values()];
}
