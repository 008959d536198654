/**
 * Retry delays: exponential with jitter. Attempt n (1-based, the one that just failed) waits
 * base·2^(n-1)·U(0.75, 1.25), so consecutive delays always grow (the ranges never overlap) and two
 * runs never wait the same.
 */
export const JITTERED = 'jittered';

export function jitteredDelay(
  attemptsMade: number,
  baseMs: number,
  random: () => number = Math.random,
): number {
  const exp = baseMs * 2 ** Math.max(0, attemptsMade - 1);
  return Math.round(exp * (0.75 + 0.5 * random()));
}
