import { CancelledError } from '../errors.js';

/** Waits `ms`, or less if `signal` aborts first (then it resolves, it never rejects). */
export function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * Waits `ms`; rejects with CancelledError if `signal` aborts first (or already has). `unref` lets the
 * process exit during the wait (a background loop that must not keep it alive).
 */
export function sleepOrCancel(
  ms: number,
  signal?: AbortSignal,
  opts: { unref?: boolean } = {},
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(new CancelledError());
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    if (opts.unref) t.unref?.();
    const onAbort = () => (clearTimeout(t), reject(new CancelledError()));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
