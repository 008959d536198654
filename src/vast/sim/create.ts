/**
 * `PUT /api/v0/asks/{id}/` (vast-api.md §3): validation as Vast does it, the race with other
 * renters (competitorRate: 404 no_such_ask or 410, the offer taken for a while), and the faults
 * decided at creation: stuck, bad image, death, outbid, a transient status, a slow reply.
 */
import { randomBytes } from 'node:crypto';
import type { SimContext } from './context.js';
import { available, pricedOffer } from './offers.js';
import { parseEnvString } from './query.js';
import { openSshGate } from './sshgate.js';
import type { SimInstance } from './types.js';
import { fail, isObj, json, num, sleep, type HttpReply } from './util.js';

const RUNTYPE_TOKENS = new Set([
  'ssh',
  'ssh_proxy',
  'ssh_direct',
  'ssh_direc',
  'jupyter',
  'jupyter_proxy',
  'jupyter_direct',
  'jupyter_direc',
  'args',
]);

interface CreateArgs {
  image: string;
  disk: number;
  label: string | null;
  userEnv: Record<string, string>;
  onstart: string | null;
  runtype: string;
  price: number | null;
}

const gone404 = (offerId: number) =>
  json(404, {
    success: false,
    error: 'invalid_args',
    msg: `error 404/3603: no_such_ask Instance type by id ${offerId} is not available.`,
    ask_id: offerId,
  });
const gone410 = (offerId: number) =>
  fail(410, 'no_such_ask', `Instance type by id ${offerId} is no longer available.`);

/** The create body checked as Vast checks it; an error reply when it is refused. */
function parseCreate(body: Record<string, unknown>, diskSpace: number | undefined): CreateArgs | HttpReply {
  if (body.client_id !== 'me') return fail(400, 'invalid_args', 'client_id must be "me"');
  if (typeof body.image !== 'string' || body.image.length === 0 || body.image.length > 1024) {
    return fail(400, 'invalid_args', 'image is required (at most 1024 characters)');
  }
  const disk = num(body.disk) ?? 10;
  if (disk <= 0) return fail(400, 'invalid_args', 'disk must be positive');
  if (disk > (diskSpace ?? Infinity))
    return fail(400, 'invalid_args', `disk ${disk} exceeds the machine's free space`);
  if (
    body.label !== undefined &&
    body.label !== null &&
    (typeof body.label !== 'string' || body.label.length > 256)
  ) {
    return fail(400, 'invalid_args', 'label must be a string of at most 256 characters');
  }
  let userEnv: Record<string, string> = {};
  if (typeof body.env === 'string') userEnv = parseEnvString(body.env);
  else if (isObj(body.env)) {
    let total = 0;
    for (const [k, v] of Object.entries(body.env)) {
      const s = typeof v === 'string' ? v : String(v);
      if (s.length > 256) return fail(400, 'invalid_args', `env value of ${k} longer than 256 characters`);
      total += k.length + s.length;
      userEnv[k] = s;
    }
    if (total > 32768) return fail(400, 'invalid_args', 'env too large');
  } else if (body.env !== undefined && body.env !== null)
    return fail(400, 'invalid_args', 'env must be an object');
  const onstart = typeof body.onstart === 'string' ? body.onstart : null;
  const argsLen = (onstart?.length ?? 0) + (typeof body.args_str === 'string' ? body.args_str.length : 0);
  if (argsLen > 4096) return fail(400, 'invalid_args', 'onstart and args must fit in 4096 characters');
  const runtype = typeof body.runtype === 'string' && body.runtype.trim() ? body.runtype.trim() : 'ssh';
  if (!runtype.split(/\s+/).every((t) => RUNTYPE_TOKENS.has(t))) {
    return fail(400, 'invalid_args', `invalid runtype ${runtype}`);
  }
  let price: number | null = null;
  if (body.price !== undefined && body.price !== null) {
    const p = num(body.price);
    if (p === undefined || p < 0.001 || p > 128)
      return fail(400, 'invalid_price', 'price must be 0.001 to 128');
    price = p;
  }
  const label = typeof body.label === 'string' ? body.label : null;
  return { image: body.image, disk, label, userEnv, onstart, runtype, price };
}

const chance = (ctx: SimContext, p: number | undefined) => (p ?? 0) > 0 && ctx.rand() < (p ?? 0);

/** The image error of an instance that never boots: a pull failure (loading) or an OCI error (created). */
function badImageOf(ctx: SimContext, machineId: number, image: string): SimInstance['badImage'] {
  const f = ctx.faults;
  if (!(f.badImageMachineIds ?? []).includes(machineId) && !chance(ctx, f.badImageRate)) return undefined;
  ctx.injected.badImage++;
  if (ctx.rand() < 0.5) {
    return {
      kind: 'pull',
      msg: `Error response from daemon: pull access denied for ${image}, repository does not exist or may require 'docker login': denied: requested access to the resource is denied`,
    };
  }
  return {
    kind: 'oci',
    msg: 'Error: OCI runtime create failed: runc create failed: unable to start container process: error during container init: error running hook #0: nvidia-container-cli: initialization error: nvml error: driver not loaded: unknown',
  };
}

/** The faults decided when the instance is created (timeline events in real ms). */
function scheduleFaults(ctx: SimContext, i: SimInstance, now: number): void {
  const f = ctx.faults;
  const minBid = num(i.offer.min_bid);
  i.stuck =
    (f.stuckLoadingMachineIds ?? []).includes(i.machineId) ||
    chance(ctx, f.stuckLoadingRate) ||
    (i.price !== null && minBid !== undefined && i.price < minBid); // a bid below market never starts
  if (!i.stuck) i.badImage = badImageOf(ctx, i.machineId, i.image);
  if (i.stuck || i.badImage) return;
  const running = now + ctx.bootDelayMs;
  if (chance(ctx, f.dieRate)) i.diesAt = running + (f.dieAfterMs ?? 5000);
  if (i.price !== null && chance(ctx, f.outbidRate)) i.outbidAt = running + (f.outbidAfterMs ?? 5000);
  if (chance(ctx, f.transientStatusRate)) {
    const from = running + (f.transientAfterMs ?? 1000);
    i.transients.push({
      from,
      to: from + (f.transientStatusMs ?? 5000),
      status: ctx.rand() < 0.5 ? 'unknown' : 'rebooting',
    });
    ctx.injected.transient++;
  }
}

function newInstance(
  ctx: SimContext,
  offerId: number,
  raw: Record<string, unknown>,
  a: CreateArgs,
  now: number,
): SimInstance {
  const id = ctx.nextInstanceId++;
  const key = randomBytes(32).toString('hex');
  const priced = pricedOffer(raw, a.disk, a.price !== null ? 'bid' : 'on-demand');
  const storageHour = ((num(raw.storage_cost) ?? 0) * a.disk) / 720;
  const dphBase = a.price ?? num(raw.dph_base) ?? num(priced.dph_total) ?? 0;
  const dphTotal = a.price !== null ? a.price + storageHour : (num(priced.dph_total) ?? dphBase);
  return {
    id,
    offer: raw,
    offerId,
    machineId: num(raw.machine_id) ?? 0,
    label: a.label,
    image: a.image,
    disk: a.disk,
    runtype: a.runtype,
    onstart: a.onstart,
    userEnv: a.userEnv,
    containerEnv: {
      ...Object.fromEntries(Object.entries(a.userEnv).filter(([k]) => !k.startsWith('-'))),
      CONTAINER_ID: String(id),
      CONTAINER_API_KEY: key,
      VAST_CONTAINERLABEL: `C.${id}`,
    },
    key,
    createdAt: now,
    stuck: false,
    transients: [],
    starts: [now],
    stops: [],
    // Keys on the account reach every instance created after they were added (vast-api.md §6).
    sshKeys: ctx.accountKeys.map((k) => k.public_key),
    sshKeysLost: [],
    sshRefused: 0,
    isBid: a.price !== null,
    price: a.price,
    dphTotal,
    dphBase,
    storageHour,
    inetDownCost: num(raw.inet_down_cost) ?? 0,
    surchargeUsd: 0,
    jupyterToken: randomBytes(16).toString('hex'),
  };
}

export async function create(ctx: SimContext, offerId: number, body: unknown): Promise<HttpReply> {
  if (!isObj(body)) return fail(400, 'invalid_request', 'Invalid json body');
  const entry = ctx.offers.get(offerId);
  if (!entry) return gone404(offerId);
  const now = Date.now();
  if (!available(ctx, offerId, entry, now)) return gone410(offerId);
  if (chance(ctx, ctx.faults.offerGoneOnCreate)) {
    ctx.injected.offerGone++;
    entry.gone = true; // someone else rented it
    return gone410(offerId);
  }
  if (chance(ctx, ctx.faults.competitorRate)) {
    // Another renter got there first; the machine comes back when their rental ends (30 s to 5 min).
    ctx.injected.competitorWon++;
    entry.takenUntil = now + ((30 + ctx.rand() * 270) * 1000) / ctx.timeScale;
    return ctx.rand() < 0.5 ? gone404(offerId) : gone410(offerId);
  }
  const args = parseCreate(body, num(entry.raw.disk_space));
  if (!('image' in args)) return args;
  const inst = newInstance(ctx, offerId, entry.raw, args, now);
  scheduleFaults(ctx, inst, now);
  ctx.instances.set(inst.id, inst);
  ctx.instanceKeys.set(inst.key, inst.id);
  entry.takenBy = inst.id;
  ctx.rentedOrder.push(inst.id);
  if (ctx.opts.sshAuthorizedKeys) inst.sshPort = await openSshGate(ctx, inst);
  if (chance(ctx, ctx.faults.slowCreateRate)) {
    // The instance exists and bills already; only the reply is late (longer than a client's timeout).
    ctx.injected.slowCreate++;
    await sleep(ctx.faults.slowCreateMs ?? 35_000);
  }
  return json(200, { success: true, new_contract: inst.id, instance_api_key: inst.key });
}
