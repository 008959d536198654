/**
 * Request routing: the test hooks, then for /api: outage, rate limits, random faults, the public
 * GPU names, bearer auth (account key or an instance's own key), and the endpoints.
 */
import type { IncomingMessage } from 'node:http';
import { accountSsh, currentUser, gpuNames } from './account.js';
import { charges, invoices } from './billing.js';
import type { SimContext } from './context.js';
import { create } from './create.js';
import { randomFault } from './faults.js';
import { simRoute } from './hooks.js';
import { destroy, instanceSsh, manage, requestLogs, show } from './instances.js';
import { list, listFilters } from './list.js';
import { search } from './offers.js';
import { endpointOf, resolveLimits } from './ratelimit.js';
import { fail, parseBody, readBody, text, type HttpReply } from './util.js';

type Who = { kind: 'account'; token: string } | { kind: 'instance'; id: number; token: string };

function identify(ctx: SimContext, req: IncomingMessage, q: URLSearchParams): Who | null {
  const h = req.headers.authorization;
  const m = typeof h === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(h) : null;
  let token = m?.[1];
  if (q.has('api_key')) {
    ctx.counters.apiKeyInUrl++;
    token ??= q.get('api_key') ?? undefined; // the server accepts it; the client must never send it
  }
  if (!token) return null;
  const inst = ctx.instanceKeys.get(token);
  if (inst !== undefined) return { kind: 'instance', id: inst, token };
  if (ctx.opts.apiKey === undefined || token === ctx.opts.apiKey) return { kind: 'account', token };
  return null;
}

/** The identity Vast limits on: the bearer token (valid or not), else the client address. */
function limitIdentity(req: IncomingMessage, q: URLSearchParams): string {
  const h = req.headers.authorization;
  const m = typeof h === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(h) : null;
  return m?.[1] ?? q.get('api_key') ?? `ip:${req.socket.remoteAddress ?? ''}`;
}

const idOf = (s: string | undefined) => (s !== undefined && /^\d+$/.test(s) ? Number(s) : NaN);

/** The instance key may show, stop/start/relabel, destroy and request the logs of its own instance only. */
function instanceMayCall(who: Who, method: string, ver: string | undefined, rest: string[]): boolean {
  if (who.kind !== 'instance' || ver !== 'v0' || rest[0] !== 'instances') return who.kind === 'account';
  if (rest.length === 2) return idOf(rest[1]) === who.id && ['GET', 'PUT', 'DELETE'].includes(method);
  return rest.length === 3 && rest[1] === 'request_logs' && method === 'PUT' && idOf(rest[2]) === who.id;
}

async function endpoints(
  ctx: SimContext,
  method: string,
  seg: string[],
  q: URLSearchParams,
  body: unknown,
): Promise<HttpReply | null> {
  const [ver, ...rest] = seg;
  const [a, b, c, d] = rest;
  const v0 = ver === 'v0';
  if (v0 && a === 'bundles' && rest.length === 1 && method === 'POST') return search(ctx, body);
  if (v0 && a === 'asks' && rest.length === 2 && method === 'PUT') {
    const id = idOf(b);
    return Number.isNaN(id) ? fail(400, 'invalid_args', 'bad offer id') : create(ctx, id, body);
  }
  if (v0 && a === 'instances' && rest.length === 1) {
    if (method === 'GET')
      return fail(
        410,
        'deprecated_endpoint',
        'This endpoint has been retired. Use /api/v1/instances/ instead.',
      );
    return fail(405, 'method_not_allowed', `${method} not supported here by the simulator`);
  }
  if (ver === 'v1' && a === 'instances' && rest.length === 1 && method === 'GET') return list(ctx, q);
  if (ver === 'v1' && a === 'invoices' && rest.length === 1 && method === 'GET') return invoices(ctx, q);
  if (v0 && a === 'charges' && rest.length === 1 && method === 'GET') return charges(ctx, q);
  if (v0 && a === 'instances' && b === 'filters' && rest.length === 2) {
    if (method === 'GET') return listFilters(ctx);
    return fail(405, 'method_not_allowed', `${method} not supported here by the simulator`);
  }
  if (v0 && a === 'instances' && b === 'request_logs' && rest.length === 3 && method === 'PUT')
    return requestLogs(ctx, idOf(c), body);
  if (v0 && a === 'instances' && rest.length === 2) {
    const id = idOf(b);
    if (method === 'GET') return show(ctx, id);
    if (method === 'DELETE') return destroy(ctx, id);
    if (method === 'PUT') return manage(ctx, id, body);
  }
  if (v0 && a === 'instances' && c === 'ssh' && rest.length <= 4)
    return instanceSsh(ctx, idOf(b), method, d, body);
  if (v0 && a === 'ssh' && rest.length <= 2) return accountSsh(ctx, method, b, body);
  return null;
}

async function api(
  ctx: SimContext,
  req: IncomingMessage,
  url: URL,
  path: string,
  method: string,
  raw: string,
): Promise<HttpReply> {
  const limits = resolveLimits(ctx.faults.rateLimits);
  if (limits) {
    const refused = ctx.limiter.check(
      limits,
      limitIdentity(req, url.searchParams),
      endpointOf(method, path),
      Date.now(),
    );
    if (refused) return refused;
  }
  const injected = randomFault(ctx);
  if (injected) return injected;
  // Public: the CLI fetches it without a key on every start (vastai/cli/util.py _get_gpu_names).
  if (path === '/api/v0/gpu_names/unique' && method === 'GET') return gpuNames(ctx);
  const who = identify(ctx, req, url.searchParams);
  if (!who) {
    ctx.counters.authFailures++;
    return fail(401, 'auth_error', 'Invalid user key');
  }
  const body = method === 'GET' ? {} : parseBody(raw);
  if (body === undefined) return fail(400, 'invalid_request', 'Invalid json body');
  const seg = path.split('/').filter(Boolean).slice(1); // ['v0', ...]
  if (!instanceMayCall(who, method, seg[0], seg.slice(1))) {
    ctx.counters.authFailures++;
    return fail(403, 'not_authorized', 'This key can only manage its own instance');
  }
  if (seg[0] === 'v0' && seg[1] === 'users' && seg[2] === 'current' && seg.length === 3 && method === 'GET')
    return currentUser(ctx, who.token);
  return (
    (await endpoints(ctx, method, seg, url.searchParams, body)) ??
    fail(404, 'not_found', `no route ${method} ${path}`)
  );
}

export async function route(ctx: SimContext, req: IncomingMessage): Promise<HttpReply> {
  const url = new URL(req.url ?? '/', 'http://sim.invalid');
  const path = url.pathname.replace(/\/+$/, '') || '/';
  const method = (req.method ?? 'GET').toUpperCase();
  const raw = await readBody(req);
  if (path.startsWith('/_sim/')) return simRoute(ctx, path, method, raw);
  if (!path.startsWith('/api/')) return fail(404, 'not_found', `no route ${method} ${path}`);
  ctx.counters.requests++;
  if (ctx.down === '503') return text(503, 'Service Temporarily Unavailable');
  const reply = await api(ctx, req, url, path, method, raw);
  const ep = endpointOf(method, path);
  const n = (ctx.calls[ep] ??= { ok: 0, r429: 0 });
  if (reply.status === 429) n.r429++;
  else n.ok++;
  return reply;
}
