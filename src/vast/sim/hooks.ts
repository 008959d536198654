/**
 * Test hooks (`/_sim/...`, and the same on the VastSim handle): kill, outbid, a transient status,
 * a billing surcharge, the state, and the log uploads' result_url.
 */
import type { SimContext } from './context.js';
import { fetchLogs, live } from './instances.js';
import { markOutbid, phase } from './lifecycle.js';
import { snapshot } from './state.js';
import { fail, isObj, json, num, parseBody, type HttpReply } from './util.js';

export function outbid(ctx: SimContext, id: number, status: 'stopped' | 'exited'): HttpReply {
  const i = live(ctx, id);
  if (!i) return fail(404, 'no_such_instance', 'no such instance');
  if (!i.isBid) return fail(409, 'not_a_bid', 'only an interruptible (bid) instance can be outbid');
  phase(ctx, i, Date.now());
  if (i.killed || i.outbid) return fail(409, 'not_running', 'the instance is already halted');
  markOutbid(ctx, i, Date.now(), status);
  return json(200, { success: true });
}

export function transient(
  ctx: SimContext,
  id: number,
  status: 'unknown' | 'rebooting',
  ms: number,
): HttpReply {
  const i = live(ctx, id);
  if (!i) return fail(404, 'no_such_instance', 'no such instance');
  const now = Date.now();
  if (phase(ctx, i, now) !== 'running')
    return fail(409, 'not_running', 'only a running instance can go transient');
  i.transients.push({ from: now, to: now + ms, status });
  ctx.injected.transient++;
  return json(200, { success: true });
}

export function surcharge(ctx: SimContext, id: number, usd: number): HttpReply {
  const i = ctx.instances.get(id);
  if (!i) return fail(404, 'no_such_instance', 'no such instance');
  i.surchargeUsd += usd;
  return json(200, { success: true, surcharge: i.surchargeUsd });
}

function hook(ctx: SimContext, id: number, action: string, b: Record<string, unknown>): HttpReply {
  switch (action) {
    case 'kill': {
      const i = live(ctx, id);
      if (!i) return fail(404, 'no_such_instance', 'no such instance');
      i.killed ??= { at: Date.now(), status: 'exited' };
      return json(200, { success: true });
    }
    case 'outbid':
      if (b.status !== undefined && b.status !== 'stopped' && b.status !== 'exited')
        return fail(400, 'invalid_args', 'status must be stopped or exited');
      return outbid(ctx, id, b.status === 'exited' ? 'exited' : 'stopped');
    case 'transient': {
      const ms = num(b.ms);
      if ((b.status !== 'unknown' && b.status !== 'rebooting') || ms === undefined || ms <= 0)
        return fail(400, 'invalid_args', 'body is {"status":"unknown"|"rebooting","ms":<positive>}');
      return transient(ctx, id, b.status, ms);
    }
    case 'surcharge': {
      const usd = num(b.usd);
      if (usd === undefined) return fail(400, 'invalid_args', 'body is {"usd":<number>}');
      return surcharge(ctx, id, usd);
    }
    default:
      return fail(404, 'not_found', `no hook ${action}`);
  }
}

export function simRoute(ctx: SimContext, path: string, method: string, raw: string): HttpReply {
  if (path === '/_sim/state' && method === 'GET') return json(200, snapshot(ctx));
  const logs = /^\/_sim\/logs\/([0-9a-f]+)\.log$/.exec(path);
  if (logs && method === 'GET') return fetchLogs(ctx, logs[1]!);
  const m = /^\/_sim\/instances\/(\d+)\/(\w+)$/.exec(path);
  if (m && method === 'POST') {
    const b = parseBody(raw);
    if (!isObj(b)) return fail(400, 'invalid_request', 'Invalid json body');
    return hook(ctx, Number(m[1]), m[2]!, b);
  }
  return fail(404, 'not_found', `no route ${method} ${path}`);
}
