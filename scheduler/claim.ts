import type { Redis } from 'ioredis';

/**
 * One run per slot, whatever happens to the slot's job: a retry, a stalled job run again, a second
 * job for the same slot. The first to claim `<prefix>:schedule:slot:<slotMs>` (SET NX) plans and
 * enqueues, then records the run there; anyone after it finds the record and enqueues nothing. A
 * claim whose holder died expires after `claimTtlMs`, so the slot is planned by the next attempt
 * instead of being lost.
 */
export interface SlotRecord {
  state: 'claimed' | 'enqueued';
  /** The BullMQ job that claimed (and, when enqueued, planned) the slot. */
  jobId: string;
  token?: string;
  slot: number;
  date: string;
  runId?: string;
  at: string;
}

export type ClaimResult =
  | { kind: 'claimed'; key: string; token: string }
  | { kind: 'done'; record: SlotRecord }
  | { kind: 'busy'; record: SlotRecord | undefined };

/** Kept long after the slot: a job for it that shows up late still finds it planned. */
export const SLOT_RECORD_TTL_MS = 30 * 86_400_000;
export const CLAIM_TTL_MS = 10 * 60_000;

export function slotKey(prefix: string, slotMs: number): string {
  return `${prefix}:schedule:slot:${slotMs}`;
}

export async function claimSlot(
  redis: Redis,
  prefix: string,
  claim: { slot: number; date: string; jobId: string; token: string; claimTtlMs?: number },
): Promise<ClaimResult> {
  const key = slotKey(prefix, claim.slot);
  const record: SlotRecord = {
    state: 'claimed',
    jobId: claim.jobId,
    token: claim.token,
    slot: claim.slot,
    date: claim.date,
    at: new Date().toISOString(),
  };
  const ok = await redis.set(key, JSON.stringify(record), 'PX', claim.claimTtlMs ?? CLAIM_TTL_MS, 'NX');
  if (ok === 'OK') return { kind: 'claimed', key, token: claim.token };
  const raw = await redis.get(key);
  const held = raw ? (JSON.parse(raw) as SlotRecord) : undefined;
  return held?.state === 'enqueued' ? { kind: 'done', record: held } : { kind: 'busy', record: held };
}

// Compare-and-set / compare-and-delete on the claim token: only the holder finishes or gives it up.
const FINISH = `local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if cjson.decode(v).token ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1`;
const RELEASE = `local v = redis.call('GET', KEYS[1])
if v and cjson.decode(v).token == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** Records the run the slot made. False when the claim was lost (expired and taken by another). */
export async function finishSlot(
  redis: Redis,
  claim: { key: string; token: string },
  record: Omit<SlotRecord, 'state' | 'token' | 'at'>,
): Promise<boolean> {
  const done: SlotRecord = { state: 'enqueued', ...record, at: new Date().toISOString() };
  const n = await redis.eval(FINISH, 1, claim.key, claim.token, JSON.stringify(done), SLOT_RECORD_TTL_MS);
  return n === 1;
}

/** Gives the slot back after a failed attempt, so the retry can plan it. */
export async function releaseSlot(redis: Redis, claim: { key: string; token: string }): Promise<void> {
  await redis.eval(RELEASE, 1, claim.key, claim.token);
}

export async function readSlot(
  redis: Redis,
  prefix: string,
  slotMs: number,
): Promise<SlotRecord | undefined> {
  const raw = await redis.get(slotKey(prefix, slotMs));
  return raw ? (JSON.parse(raw) as SlotRecord) : undefined;
}
