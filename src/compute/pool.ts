/**
 * The instance pool: a rented Vast instance whose symbol is done is handed to the next symbol of the
 * same run instead of being destroyed, and `slotsPerHost` lets several symbols of a run train on one
 * instance at once (each in its own work dir).
 *
 * The state lives in Redis, so every worker process shares it and a worker crash loses nothing:
 *
 *   <prefix>:pool:inst:<id>   hash: info (the instance's LeaseInfo, JSON), runId, slots, expiresAt
 *                             (ms: acquiredAt + maxRuntimeMin), bad ('1': never handed out again),
 *                             and per slot n: h:<n> holder jobId ('' = free), s:<n> since (ms: held
 *                             since, or free since), r:<n> the holder's work root on the host
 *   <prefix>:pool:run:<runId> set of the run's instance ids
 *
 * Every change is one Lua script (take, release, claim), so two workers never get the same slot and
 * an instance being destroyed is never handed out. Cost: a holder is billed from when it got its
 * slot to when it gave it back (LeaseInfo.heldSince, 1/slots of the price); the time a slot spends
 * free (spare slots while booting, idle between symbols, idle before the destroy) is booked to the
 * run by whoever ends that idle time (`bookIdle`), so everything billed is in the run's figures.
 */
import type { Redis } from 'ioredis';
import type { LeaseInfo } from './provider.js';

const TAKE = `
local best, bestFree, bestSlot
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local k = ARGV[1] .. ':inst:' .. id
  if redis.call('EXISTS', k) == 0 then
    redis.call('SREM', KEYS[1], id)
  elseif redis.call('HGET', k, 'bad') ~= '1'
    and tonumber(redis.call('HGET', k, 'expiresAt')) - tonumber(ARGV[2]) >= tonumber(ARGV[3]) then
    local slots = tonumber(redis.call('HGET', k, 'slots'))
    local free, first = 0, nil
    for n = 0, slots - 1 do
      local h = redis.call('HGET', k, 'h:' .. n)
      if h == false or h == '' then
        free = free + 1
        if first == nil then first = n end
      end
    end
    -- Fill the busiest instance first: fewer instances stay up.
    if free > 0 and (bestFree == nil or free < bestFree) then
      best, bestFree, bestSlot = id, free, first
    end
  end
end
if best == nil then return false end
local k = ARGV[1] .. ':inst:' .. best
local since = redis.call('HGET', k, 's:' .. bestSlot)
local prev = redis.call('HGET', k, 'r:' .. bestSlot) or ''
redis.call('HSET', k, 'h:' .. bestSlot, ARGV[4], 's:' .. bestSlot, ARGV[2], 'r:' .. bestSlot, ARGV[5])
return {best, tostring(bestSlot), since, redis.call('HGET', k, 'info'), redis.call('HGET', k, 'slots'), prev}
`;

/** KEYS[1] inst; ARGV slot, jobId, now, bad. → gone | not_holder | shared | bad | free */
const RELEASE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
if redis.call('HGET', KEYS[1], 'h:' .. ARGV[1]) ~= ARGV[2] then return 'not_holder' end
redis.call('HSET', KEYS[1], 'h:' .. ARGV[1], '', 's:' .. ARGV[1], ARGV[3])
if ARGV[4] == '1' then redis.call('HSET', KEYS[1], 'bad', '1') end
local slots = tonumber(redis.call('HGET', KEYS[1], 'slots'))
for n = 0, slots - 1 do
  local h = redis.call('HGET', KEYS[1], 'h:' .. n)
  if h and h ~= '' then return 'shared' end
end
if redis.call('HGET', KEYS[1], 'bad') == '1' then return 'bad' end
return 'free'
`;

/**
 * KEYS[1] inst; ARGV prefix, now, graceMs (-1: whatever its idle time). Removes the record when no
 * slot is held and every slot has been free for graceMs (a bad instance: at once), and returns it.
 */
const CLAIM = `
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local slots = tonumber(redis.call('HGET', KEYS[1], 'slots'))
local grace = tonumber(ARGV[3])
if redis.call('HGET', KEYS[1], 'bad') == '1' then grace = -1 end
for n = 0, slots - 1 do
  local h = redis.call('HGET', KEYS[1], 'h:' .. n)
  if h and h ~= '' then return false end
  if grace >= 0 and tonumber(ARGV[2]) - tonumber(redis.call('HGET', KEYS[1], 's:' .. n)) < grace then
    return false
  end
end
local rec = redis.call('HGETALL', KEYS[1])
local runId = redis.call('HGET', KEYS[1], 'runId')
redis.call('DEL', KEYS[1])
redis.call('SREM', ARGV[1] .. ':run:' .. runId, string.match(KEYS[1], '[^:]+$'))
return rec
`;

/**
 * KEYS[1] inst, KEYS[2] run set; ARGV record fields..., then slot, jobId, since, root. Creates the
 * record with this holder when missing; else makes sure the slot is this holder's (a reattach).
 * → created | held | taken
 */
const ENSURE = `
local n = #ARGV
local slot, job, since, root = ARGV[n - 3], ARGV[n - 2], ARGV[n - 1], ARGV[n]
if redis.call('EXISTS', KEYS[1]) == 1 then
  local h = redis.call('HGET', KEYS[1], 'h:' .. slot)
  if h == job then return 'held' end
  if h == false or h == '' then
    redis.call('HSET', KEYS[1], 'h:' .. slot, job, 's:' .. slot, since, 'r:' .. slot, root)
    return 'held'
  end
  return 'taken'
end
for i = 1, n - 4, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'h:' .. slot, job, 's:' .. slot, since, 'r:' .. slot, root)
redis.call('SADD', KEYS[2], string.match(KEYS[1], '[^:]+$'))
redis.call('EXPIRE', KEYS[2], 3 * 86400)
return 'created'
`;

/** A slot handed out by `take`. */
export interface TakenSlot {
  info: LeaseInfo;
  slot: number;
  slots: number;
  /** When the slot became free (ms): the idle time up to now is the run's. */
  freeSince: number;
  /** The previous holder's work root on the host ('' when none): the taker removes it. */
  previousRoot: string;
}

/** A pooled instance's record, as the reaper sees it. */
export interface PoolRecord {
  info: LeaseInfo;
  runId: string;
  slots: number;
  bad: boolean;
  /** Per slot: holder jobId ('' when free), since (ms). */
  holders: { jobId: string; since: number }[];
}

/** A record removed for destroying: what its free slots cost since they became free is the run's. */
export interface ClaimedInstance extends PoolRecord {
  /** Dollars of idle slot-time from each free slot's `since` until `until` (`except` left out). */
  idleUsd(until: number, except?: number): number;
}

export class InstancePool {
  constructor(
    private readonly redis: Redis,
    /** The deployment's Redis prefix (config.queuePrefix). */
    private readonly prefix: string,
  ) {}

  private get base(): string {
    return `${this.prefix}:pool`;
  }
  private instKey(id: string): string {
    return `${this.base}:inst:${id}`;
  }
  private runKey(runId: string): string {
    return `${this.base}:run:${runId}`;
  }

  /**
   * Atomically takes a free slot of one of the run's instances that is not bad and whose rental has
   * at least `needMs` left before maxRuntimeMin; null when there is none.
   */
  async take(opts: {
    runId: string;
    jobId: string;
    needMs: number;
    root: string;
    now?: number;
  }): Promise<TakenSlot | null> {
    const now = opts.now ?? Date.now();
    const r = (await this.redis.eval(
      TAKE,
      1,
      this.runKey(opts.runId),
      this.base,
      String(now),
      String(opts.needMs),
      opts.jobId,
      opts.root,
    )) as [string, string, string, string, string, string] | null;
    if (!r) return null;
    return {
      info: JSON.parse(r[3]) as LeaseInfo,
      slot: Number(r[1]),
      slots: Number(r[4]),
      freeSince: Number(r[2]),
      previousRoot: r[5],
    };
  }

  /**
   * Records `info` (a just-rented or reattached instance) as the run's, with `slot` held by `jobId`
   * since `since`; the other slots free since the rental began. On an existing record, makes sure the
   * slot is this job's: false when another job holds it.
   */
  async ensureHeld(opts: {
    info: LeaseInfo;
    runId: string;
    slots: number;
    expiresAt: number;
    slot: number;
    jobId: string;
    since: number;
    root: string;
  }): Promise<boolean> {
    const base = { ...opts.info };
    delete base.pool;
    delete base.heldSince;
    const acquired = Date.parse(opts.info.acquiredAt);
    const fields: string[] = [
      'info',
      JSON.stringify(base),
      'runId',
      opts.runId,
      'slots',
      String(opts.slots),
      'expiresAt',
      String(opts.expiresAt),
    ];
    for (let n = 0; n < opts.slots; n++) fields.push(`h:${n}`, '', `s:${n}`, String(acquired), `r:${n}`, '');
    const res = await this.redis.eval(
      ENSURE,
      2,
      this.instKey(opts.info.id),
      this.runKey(opts.runId),
      ...fields,
      String(opts.slot),
      opts.jobId,
      String(opts.since),
      opts.root,
    );
    if (res === 'created') {
      // The rental cannot outlive expiresAt (the watchdog destroys it): nor, by long, its record.
      await this.redis.pexpire(
        this.instKey(opts.info.id),
        Math.max(0, opts.expiresAt - Date.now()) + 86_400_000,
      );
    }
    return res !== 'taken';
  }

  /**
   * Frees `slot` if `jobId` holds it (`bad`: the instance is never handed out again). 'free': no slot
   * is held now; 'bad': none is held and it is marked bad (by this or an earlier holder); 'shared':
   * another symbol still holds one; 'not_holder': this job did not hold it (a repeated release);
   * 'gone': the instance is not in the pool (claimed, destroyed, never pooled).
   */
  async release(opts: {
    id: string;
    slot: number;
    jobId: string;
    bad: boolean;
    now?: number;
  }): Promise<'free' | 'bad' | 'shared' | 'not_holder' | 'gone'> {
    return (await this.redis.eval(
      RELEASE,
      1,
      this.instKey(opts.id),
      String(opts.slot),
      opts.jobId,
      String(opts.now ?? Date.now()),
      opts.bad ? '1' : '0',
    )) as 'free' | 'bad' | 'shared' | 'not_holder' | 'gone';
  }

  /**
   * Removes the instance from the pool, for destroying, when nobody holds a slot and every slot has
   * been free for `graceMs` (null: however long; a bad instance: at once). null when it cannot be
   * claimed (held, idle too briefly, or already claimed by someone else).
   */
  async claim(id: string, graceMs: number | null, now = Date.now()): Promise<ClaimedInstance | null> {
    const flat = (await this.redis.eval(
      CLAIM,
      1,
      this.instKey(id),
      this.base,
      String(now),
      String(graceMs ?? -1),
    )) as string[] | null;
    if (!flat) return null;
    const rec = parseRecord(flat);
    return {
      ...rec,
      idleUsd: (until: number, except?: number) =>
        rec.holders.reduce(
          (sum, h, n) =>
            n === except
              ? sum
              : sum + (rec.info.hourlyCostUsd * Math.max(0, until - h.since)) / 3_600_000 / rec.slots,
          0,
        ),
    };
  }

  /** The record of a pooled instance, or null when it is not in the pool. */
  async describe(id: string): Promise<PoolRecord | null> {
    const all = await this.redis.hgetall(this.instKey(id));
    if (!all.info) return null;
    return parseRecord(Object.entries(all).flat());
  }

  /** Drops an instance from the pool whoever holds it (it was destroyed outside the pool). */
  async remove(id: string): Promise<void> {
    const runId = await this.redis.hget(this.instKey(id), 'runId');
    const m = this.redis.multi().del(this.instKey(id));
    if (runId) m.srem(this.runKey(runId), id);
    await m.exec();
  }

  /** Free slots on the run's instances that can still be handed out (not bad). */
  async freeSlots(runId: string): Promise<number> {
    let n = 0;
    for (const id of await this.runInstances(runId)) {
      const rec = await this.describe(id);
      if (rec && !rec.bad) n += rec.holders.filter((h) => !h.jobId).length;
    }
    return n;
  }

  /** Ids of the run's pooled instances. */
  async runInstances(runId: string): Promise<string[]> {
    return this.redis.smembers(this.runKey(runId));
  }
}

function parseRecord(flat: string[]): PoolRecord {
  const m = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) m.set(flat[i]!, flat[i + 1]!);
  const slots = Number(m.get('slots') ?? 1);
  const holders = Array.from({ length: slots }, (_, n) => ({
    jobId: m.get(`h:${n}`) ?? '',
    since: Number(m.get(`s:${n}`) ?? 0),
  }));
  return {
    info: JSON.parse(m.get('info') ?? '{}') as LeaseInfo,
    runId: m.get('runId') ?? '',
    slots,
    bad: m.get('bad') === '1',
    holders,
  };
}
