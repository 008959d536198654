/**
 * A train job stuck in PROVISIONING: the decision, from the job's data alone (its state and
 * `facts.stateSince`), and the Redis claim that makes every worker and every pass report one
 * attempt once. The pass over the running jobs is processors/stuck.ts.
 */
import type { Redis } from 'ioredis';
import type { Config } from '../config/schema.js';
import type { TrainJobData } from './types.js';

/** local and ssh hosts answer at once; this long in PROVISIONING means something is wrong. */
export const HOST_PROVISION_LIMIT_SEC = 5 * 60;
/** Beyond Vast's own boot deadlines: the API calls between tries (search, create, destroy). */
export const VAST_PROVISION_SLACK_SEC = 60;
/** How long a claim (one alert per attempt) is remembered; well past any attempt's life. */
export const STUCK_CLAIM_TTL_SEC = 7 * 24 * 3600;

/**
 * How long a job may be in PROVISIONING before it is reported, not counting the symbol's own time
 * limit (see `provisioningStuck`): `alerts.provisioningStuckMin` when set; otherwise for vast what
 * provisioning itself allows (`bootDeadlineSec` per try, `maxProvisionTries` tries, plus a minute
 * for the API calls between them), and 5 min for local and ssh, which provision at once.
 */
export function provisioningLimitSec(config: Config, driver: string): number {
  const set = config.alerts.provisioningStuckMin;
  if (set !== undefined) return set * 60;
  if (driver === 'vast') {
    return config.vast.bootDeadlineSec * config.vast.maxProvisionTries + VAST_PROVISION_SLACK_SEC;
  }
  return HOST_PROVISION_LIMIT_SEC;
}

/** What an alert about one stuck job says. */
export interface StuckProvisioning {
  runId: string;
  /** YYYYMMDD */
  date: string;
  symbol: string;
  jobId: string;
  /** The attempt in PROVISIONING (1-based). */
  attempt: number;
  driver: string;
  /** When PROVISIONING was entered (ISO). */
  since: string;
  /** Seconds in PROVISIONING so far. */
  stuckSec: number;
  /** The limit it passed, seconds (the smaller of the provisioning limit and the time left to the attempt). */
  limitSec: number;
  /** The rented instance it waits on, if one was created. */
  instance?: string;
}

/**
 * Whether a job is stuck in PROVISIONING at `now`: in that state longer than the provisioning limit
 * or past its attempt's own deadline (the symbol's timeout), whichever comes first. A job whose data
 * predates `stateSince` is measured from its attempt's start. null: not stuck (or not provisioning).
 */
export function provisioningStuck(
  data: TrainJobData | undefined,
  config: Config,
  now: Date,
): StuckProvisioning | null {
  if (!data || data.state !== 'PROVISIONING') return null;
  const facts = data.facts ?? {};
  // Waiting for capacity is not stuck: the run's no-capacity alert covers it.
  if (facts.capacityWaitSince && !facts.lease) return null;
  const since = facts.stateSince ?? facts.attemptStartedAt;
  const sinceMs = since ? Date.parse(since) : NaN;
  if (!since || !Number.isFinite(sinceMs)) return null;
  const spec = data.spec;
  const attemptDeadline = facts.deadline ?? sinceMs + spec.timeoutMinutes * 60_000;
  const limitAt = Math.min(sinceMs + provisioningLimitSec(config, spec.driver) * 1000, attemptDeadline);
  const nowMs = now.getTime();
  if (nowMs < limitAt) return null;
  return {
    runId: data.runId,
    date: spec.date,
    symbol: spec.symbol,
    jobId: spec.jobId,
    attempt: data.attempt ?? 1,
    driver: spec.driver,
    since,
    stuckSec: Math.round((nowMs - sinceMs) / 1000),
    limitSec: Math.max(0, Math.round((limitAt - sinceMs) / 1000)),
    ...(facts.lease ? { instance: facts.lease.id } : {}),
  };
}

export function stuckClaimKey(
  prefix: string,
  s: Pick<StuckProvisioning, 'runId' | 'jobId' | 'attempt'>,
): string {
  return `${prefix}:alert:provisioning-stuck:${s.runId}:${s.jobId}:${s.attempt}`;
}

/**
 * Claims the right to report this attempt (SET NX with a TTL): true for exactly one caller across
 * every worker process and every pass; the others (and later passes) get false.
 */
export async function claimStuckAlert(
  redis: Redis,
  prefix: string,
  s: StuckProvisioning,
  ttlSec = STUCK_CLAIM_TTL_SEC,
): Promise<boolean> {
  const ok = await redis.set(stuckClaimKey(prefix, s), new Date().toISOString(), 'EX', ttlSec, 'NX');
  return ok === 'OK';
}
