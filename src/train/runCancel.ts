/**
 * Cancelling a run (Ctrl-C on `retrain run`, `retrain cancel` from any machine): a flag in Redis that
 * every worker's train processor watches for the jobs of that run, or of one symbol of it. Trainings
 * cancelled are stopped and their hosts given back; their jobs not yet started fail at once. Other
 * runs and symbols are not touched.
 */
import type { Redis } from 'ioredis';

const TTL_SEC = 7 * 24 * 3600;

export function runCancelKey(prefix: string, runId: string): string {
  return `${prefix}:run:${runId}:cancelled`;
}

export function symbolCancelKey(prefix: string, runId: string, symbol: string): string {
  return `${prefix}:run:${runId}:cancelled:${symbol}`;
}

/** Flags the run as cancelled; false when it already was (a second cancel changes nothing). */
export async function cancelRun(redis: Redis, prefix: string, runId: string): Promise<boolean> {
  const set = await redis.set(runCancelKey(prefix, runId), new Date().toISOString(), 'EX', TTL_SEC, 'NX');
  return set === 'OK';
}

/** Flags one symbol of the run as cancelled; false when it already was. */
export async function cancelSymbol(
  redis: Redis,
  prefix: string,
  runId: string,
  symbol: string,
): Promise<boolean> {
  const key = symbolCancelKey(prefix, runId, symbol);
  return (await redis.set(key, new Date().toISOString(), 'EX', TTL_SEC, 'NX')) === 'OK';
}

export async function isRunCancelled(redis: Redis, prefix: string, runId: string): Promise<boolean> {
  return (await redis.exists(runCancelKey(prefix, runId))) === 1;
}

/** What an attempt checks: its run, or its symbol within the run, was cancelled. */
export async function isAttemptCancelled(
  redis: Redis,
  prefix: string,
  runId: string,
  symbol: string,
): Promise<boolean> {
  return (await redis.exists(runCancelKey(prefix, runId), symbolCancelKey(prefix, runId, symbol))) > 0;
}

/**
 * An AbortSignal that fires once the run is cancelled (checked every `pollMs`); `stop()` ends the
 * watching. Redis errors are ignored (the next poll tries again).
 */
export function watchRunCancel(
  check: () => Promise<boolean>,
  pollMs = 1000,
): { signal: AbortSignal; stop(): void; checked: Promise<void> } {
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const tick = async () => {
    try {
      if (await check()) ac.abort(new Error('run cancelled'));
    } catch {
      /* try again next time */
    }
  };
  const checked = tick().then(() => {
    if (stopped || ac.signal.aborted) return;
    timer = setInterval(() => {
      void tick().then(() => {
        if (ac.signal.aborted && timer) clearInterval(timer);
      });
    }, pollMs);
    timer.unref();
  });
  return {
    signal: ac.signal,
    checked,
    stop() {
      stopped = true;
      if (timer) clearInterval(timer);
    },
  };
}
