/**
 * Cancelling a run (Ctrl-C on `retrain run`): a flag in Redis that every worker's train processor
 * watches for the jobs of that run. Trainings of a cancelled run are stopped and their hosts given
 * back; its jobs not yet started fail at once. Other runs are not touched.
 */
import type { Redis } from 'ioredis';

const TTL_SEC = 7 * 24 * 3600;

export function runCancelKey(prefix: string, runId: string): string {
  return `${prefix}:run:${runId}:cancelled`;
}

export async function cancelRun(redis: Redis, prefix: string, runId: string): Promise<void> {
  await redis.set(runCancelKey(prefix, runId), new Date().toISOString(), 'EX', TTL_SEC);
}

export async function isRunCancelled(redis: Redis, prefix: string, runId: string): Promise<boolean> {
  return (await redis.exists(runCancelKey(prefix, runId))) === 1;
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
