import { formatRunDate } from '../src/symbols/date.js';

/** The one daily schedule of a deployment (a job scheduler is an upsert keyed by this id). */
export const DAILY_SCHEDULER_ID = 'daily-retrain';

const DAY_MS = 86_400_000;

/**
 * The trading date a slot trains: the UTC day before the slot's UTC day — "yesterday" seen from the
 * slot, as `retrain run` without `--date` sees it from the clock. A slot at 2026-01-16T00:15Z trains
 * 20260115, however late a worker gets to it.
 */
export function runDateForSlot(slotMs: number): string {
  return formatRunDate(new Date(slotMs - DAY_MS));
}

/** What of a BullMQ job tells its slot. */
export interface SlotSource {
  id?: string | undefined;
  opts: { prevMillis?: number | undefined };
}

/**
 * The slot (epoch ms) a job scheduler's job was produced for. BullMQ stores it as `opts.prevMillis`
 * and in the job id (`repeat:<schedulerId>:<slot>`); the job's `timestamp` is when it was created
 * (one slot earlier), not the slot. Returns undefined for a job that carries neither.
 */
export function slotOf(job: SlotSource): number | undefined {
  const prev = job.opts.prevMillis;
  if (typeof prev === 'number' && Number.isSafeInteger(prev) && prev > 0) return prev;
  const m = /^repeat:.+:(\d{10,})$/.exec(job.id ?? '');
  return m ? Number(m[1]) : undefined;
}
