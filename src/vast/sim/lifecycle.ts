/**
 * An instance's status over time (vast-api.md §4, §9): null → created → loading → running, user
 * stops and starts, deaths, outbids, image errors that keep it loading/created, and transient
 * `unknown`/`rebooting` windows while it runs. Everything is derived from the instance's timeline.
 */
import type { SimContext } from './context.js';
import type { SimInstance } from './types.js';

export type Phase =
  null | 'created' | 'loading' | 'running' | 'stopped' | 'exited' | 'offline' | 'unknown' | 'rebooting';

/** A start after a stop boots faster than the first (the image is already there). */
export const restartDelay = (ctx: SimContext) => ctx.bootDelayMs * 0.3;

/** When run k of the instance starts running (GPU billed from then). */
export const runStart = (ctx: SimContext, i: SimInstance, k: number) =>
  i.starts[k]! + (k === 0 ? ctx.bootDelayMs : restartDelay(ctx));

/** Instances that never get past loading/created. */
export const neverRuns = (i: SimInstance) => i.stuck || i.badImage !== undefined;

/** The higher bidder takes the GPU: the instance halts and its offer is rented by someone else. */
export function markOutbid(ctx: SimContext, i: SimInstance, at: number, status: 'stopped' | 'exited'): void {
  i.outbid = { at, status };
  ctx.outbidOrder.push(i.id);
  const entry = ctx.offers.get(i.offerId);
  if (entry) entry.gone = true;
}

/** Applies the scheduled faults (death, outbid) that are due. */
function settle(ctx: SimContext, i: SimInstance, now: number): void {
  if (i.destroyedAt !== undefined) return;
  if (!i.killed && i.diesAt !== undefined && now >= i.diesAt) i.killed = { at: i.diesAt, status: 'exited' };
  if (!i.killed && !i.outbid && i.outbidAt !== undefined && now >= i.outbidAt)
    markOutbid(ctx, i, i.outbidAt, 'stopped');
}

export function phase(ctx: SimContext, i: SimInstance, now: number): Phase {
  settle(ctx, i, now);
  if (i.killed) return i.killed.status;
  if (i.outbid) return i.outbid.status;
  const k = i.starts.length - 1;
  if (i.stops.length > k) return 'stopped';
  const t = now - i.starts[k]!;
  const boot = k === 0 ? ctx.bootDelayMs : restartDelay(ctx);
  if (k === 0) {
    if (t < boot * 0.15) return null;
    if (t < boot * 0.35 || i.badImage?.kind === 'oci') return 'created';
  }
  if (neverRuns(i) || t < boot) return 'loading';
  const tr = i.transients.find((w) => now >= w.from && now < w.to);
  return tr ? tr.status : 'running';
}

/** Real ms the instance has been running (GPU billed), over all its runs. */
export function runningMs(ctx: SimContext, i: SimInstance, now: number): number {
  if (neverRuns(i)) return 0;
  const end = Math.min(now, i.killed?.at ?? Infinity, i.outbid?.at ?? Infinity, i.destroyedAt ?? Infinity);
  let ms = 0;
  for (let k = 0; k < i.starts.length; k++) {
    ms += Math.max(0, Math.min(end, i.stops[k] ?? Infinity) - runStart(ctx, i, k));
  }
  return ms;
}

/** Real ms the instance sat stopped by its owner. */
export function stoppedMs(i: SimInstance, now: number): number {
  const end = Math.min(now, i.destroyedAt ?? Infinity);
  let ms = 0;
  for (let k = 0; k < i.stops.length; k++) {
    ms += Math.max(0, Math.min(end, i.starts[k + 1] ?? Infinity) - i.stops[k]!);
  }
  return ms;
}

/** Real ms an outbid instance has sat halted, paying for its storage only. */
export const outbidMs = (i: SimInstance, now: number): number =>
  i.outbid ? Math.max(0, Math.min(now, i.destroyedAt ?? Infinity) - i.outbid.at) : 0;

/** Stop (`stopped`) or start (`running`) at the owner's request; false when the state does not allow it. */
export function setIntent(
  ctx: SimContext,
  i: SimInstance,
  state: 'stopped' | 'running',
  now: number,
): boolean {
  const p = phase(ctx, i, now);
  if (p === 'exited' || p === 'offline' || i.outbid) return false;
  const stopped = i.stops.length === i.starts.length;
  if (state === 'stopped' && !stopped) i.stops.push(now);
  if (state === 'running' && stopped) i.starts.push(now);
  return true;
}
