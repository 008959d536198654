/**
 * Calls on one instance (vast-api.md §4-§6, §8): show, destroy, label and stop/start
 * (`PUT /instances/{id}/`), keys attached to it, and `request_logs`.
 */
import { randomBytes } from 'node:crypto';
import type { SimContext } from './context.js';
import { phase, setIntent } from './lifecycle.js';
import { closeSshGates } from './sshgate.js';
import type { SimInstance } from './types.js';
import { fail, isObj, json, text, type HttpReply } from './util.js';
import { view } from './view.js';

export const live = (ctx: SimContext, id: number): SimInstance | undefined => {
  const i = Number.isNaN(id) ? undefined : ctx.instances.get(id);
  return i && i.destroyedAt === undefined ? i : undefined;
};

export const show = (ctx: SimContext, id: number): HttpReply => {
  const i = live(ctx, id);
  return json(200, { instances: i ? view(ctx, i, Date.now()) : null });
};

export async function destroy(ctx: SimContext, id: number): Promise<HttpReply> {
  const i = live(ctx, id);
  if (!i) return fail(404, 'not_found', `Instance ${id} not found.`);
  i.destroyedAt = Date.now();
  ctx.destroyedOrder.push(i.id);
  const offer = ctx.offers.get(i.offerId);
  if (offer && offer.takenBy === i.id) offer.takenBy = undefined;
  await closeSshGates(ctx, i.id);
  return json(200, { success: true });
}

/** `PUT /api/v0/instances/{id}/`: `{label}` and/or `{state: "stopped"|"running"}`. */
export function manage(ctx: SimContext, id: number, body: unknown): HttpReply {
  const i = live(ctx, id);
  if (!i) return fail(404, 'no_such_instance', `Instance ${id} not found.`);
  if (!isObj(body)) return fail(400, 'invalid_args', 'body must be an object');
  const hasLabel = typeof body.label === 'string';
  if (hasLabel && (body.label as string).length > 1024) return fail(400, 'invalid_args', 'label too long');
  if (body.state !== undefined && body.state !== 'stopped' && body.state !== 'running')
    return fail(400, 'invalid_args', 'state must be "stopped" or "running"');
  if (!hasLabel && body.state === undefined)
    return fail(400, 'invalid_args', 'the simulator supports {label} and {state} here');
  if (body.state !== undefined && !setIntent(ctx, i, body.state, Date.now()))
    return fail(400, 'invalid_args', `instance ${id} cannot change state while ${phase(ctx, i, Date.now())}`);
  if (hasLabel) i.label = body.label as string;
  return json(200, { success: true });
}

const isPublicKey = (k: unknown): k is string =>
  typeof k === 'string' && k.trim().startsWith('ssh') && !k.includes('PRIVATE KEY');

/** `/api/v0/instances/{id}/ssh/[key_id/]`: attach (a key attached before the instance runs may be lost), list, remove. */
export function instanceSsh(
  ctx: SimContext,
  id: number,
  method: string,
  keyRef: string | undefined,
  body: unknown,
): HttpReply {
  const i = live(ctx, id);
  if (!i) return fail(404, 'no_such_instance', `Instance ${id} not found.`);
  if (method === 'POST' && keyRef === undefined) {
    const k = isObj(body) ? body.ssh_key : undefined;
    if (!isPublicKey(k)) return fail(400, 'invalid_args', 'ssh_key must be a public key text');
    const key = k.trim();
    const p = ctx.faults.attachKeyLossRate ?? 0;
    if (phase(ctx, i, Date.now()) !== 'running' && p > 0 && ctx.rand() < p) {
      // Vast answers success; the container's start rewrites authorized_keys without it.
      ctx.injected.keyLost++;
      if (!i.sshKeysLost.includes(key)) i.sshKeysLost.push(key);
    } else if (!i.sshKeys.includes(key)) i.sshKeys.push(key);
    return json(200, { success: true, msg: 'SSH key added to instance.' });
  }
  if (method === 'GET' && keyRef === undefined) {
    const keys = i.sshKeys.map((public_key, n) => ({ id: n + 1, public_key }));
    return json(200, { success: true, ssh_keys: JSON.stringify(keys) });
  }
  if (method === 'DELETE' && keyRef !== undefined) {
    const n = Number(keyRef);
    if (!Number.isInteger(n) || n < 1 || n > i.sshKeys.length)
      return fail(404, 'no_such_ssh_key', 'no such ssh key');
    i.sshKeys.splice(n - 1, 1);
    return json(200, { success: true });
  }
  return fail(405, 'method_not_allowed', `${method} not supported here by the simulator`);
}

/** `PUT /api/v0/instances/request_logs/{id}/`: the log is uploaded asynchronously to result_url (no auth). */
export function requestLogs(ctx: SimContext, id: number, body: unknown): HttpReply {
  const i = live(ctx, id);
  if (!i) return fail(404, 'invalid_id', `Instance ${id} not found.`);
  if (body !== undefined && !isObj(body)) return fail(400, 'invalid_args', 'body must be an object');
  const token = randomBytes(12).toString('hex');
  ctx.logs.set(token, { id: i.id, at: Date.now() + ctx.logsDelayMs });
  return json(200, {
    success: true,
    result_url: `${ctx.url}/_sim/logs/${token}.log`,
    msg: 'Logs requested; they will be available at result_url shortly.',
  });
}

/** The `docker logs` text of an instance as of now. */
function logText(ctx: SimContext, i: SimInstance): string {
  const p = phase(ctx, i, Date.now());
  const lines = [`Pulling image ${i.image}`];
  if (i.badImage) lines.push(i.badImage.msg);
  else if (p === 'running' || p === 'stopped' || p === 'unknown' || p === 'rebooting') {
    lines.push('Status: Downloaded newer image', `${i.onstart ? 'running onstart' : 'no onstart'}`);
  }
  if (p === 'exited') lines.push('container exited unexpectedly (code 137)');
  return `${lines.join('\n')}\n`;
}

/** `GET <result_url>`: 404 until the upload is done, then the text. */
export function fetchLogs(ctx: SimContext, token: string): HttpReply {
  const rec = ctx.logs.get(token);
  if (!rec || Date.now() < rec.at)
    return text(404, '<?xml version="1.0"?><Error><Code>NoSuchKey</Code></Error>', 'application/xml');
  const i = ctx.instances.get(rec.id);
  return text(200, i ? logText(ctx, i) : '');
}
