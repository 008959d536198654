/**
 * Account-level calls (vast-api.md §6, §7): SSH keys on the account (they reach every instance
 * created afterwards), the current user with its credit, and the public GPU name list.
 */
import { creditLeft } from './billing.js';
import type { SimContext } from './context.js';
import { fail, isObj, json, type HttpReply } from './util.js';

const USER_ID = 424242;

const keyRow = (k: { id: number; public_key: string; created_at: number }) => ({
  id: k.id,
  user_id: USER_ID,
  public_key: k.public_key,
  key: k.public_key,
  created_at: k.created_at,
  deleted_at: null,
});

function keyText(body: unknown): string | HttpReply {
  const k = isObj(body) ? body.ssh_key : undefined;
  if (typeof k !== 'string' || k.trim() === '') return fail(400, 'no_ssh_key', 'No ssh key given');
  if (!k.trim().startsWith('ssh') || k.includes('PRIVATE KEY'))
    return fail(400, 'invalid_args', 'not a public key');
  return k.trim();
}

/** `/api/v0/ssh/[id/]`: list, add, update, remove account keys. */
export function accountSsh(
  ctx: SimContext,
  method: string,
  ref: string | undefined,
  body: unknown,
): HttpReply {
  if (ref === undefined && method === 'GET') return json(200, ctx.accountKeys.map(keyRow));
  if (ref === undefined && method === 'POST') {
    const k = keyText(body);
    if (typeof k !== 'string') return k;
    const rec = { id: ctx.nextKeyId++, public_key: k, created_at: Date.now() / 1000 };
    ctx.accountKeys.push(rec);
    const { key: _key, ...row } = keyRow(rec);
    return json(200, { success: true, key: row });
  }
  const n = ctx.accountKeys.findIndex((k) => String(k.id) === ref);
  if (ref !== undefined && (method === 'DELETE' || method === 'PUT')) {
    if (n < 0) return fail(404, 'no_such_ssh_key', `ssh key ${ref} not found`);
    if (method === 'DELETE') {
      // Instances keep the keys they were created with.
      ctx.accountKeys.splice(n, 1);
      return json(200, { success: true });
    }
    const k = keyText(body);
    if (typeof k !== 'string') return k;
    ctx.accountKeys[n]!.public_key = k;
    return json(200, { success: true, key: keyRow(ctx.accountKeys[n]!) });
  }
  return fail(405, 'method_not_allowed', `${method} not supported here by the simulator`);
}

export function currentUser(ctx: SimContext, token: string): HttpReply {
  return json(200, {
    id: USER_ID,
    username: 'sim',
    email: 'sim@example.invalid',
    credit: creditLeft(ctx, Date.now()),
    balance: 0,
    balance_threshold: 0,
    can_pay: true,
    has_billing: true,
    ssh_key: ctx.accountKeys[ctx.accountKeys.length - 1]?.public_key ?? null,
    // The real API returns the caller's key here; clients must drop it.
    api_key: token,
  });
}

export function gpuNames(ctx: SimContext): HttpReply {
  const names = [...new Set([...ctx.offers.values()].map((o) => o.raw.gpu_name))].filter(
    (n): n is string => typeof n === 'string',
  );
  return json(200, { gpu_names: names.sort() });
}
