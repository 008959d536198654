/** Small pieces of closing things, shared by the commands and the workers' runtime. */

/** Runs one named close step; a bounded shutdown names the steps still running when time is up. */
export type CloseStep = <T>(name: string, fn: () => Promise<T>) => Promise<T>;

/** A CloseStep that only runs the step (callers without a deadline). */
export const untracked: CloseStep = (_name, fn) => fn();

/** QUIT when Redis answers quickly, else drop the socket: QUIT would wait in the offline queue. */
export async function closeRedis(
  redis: { quit(): Promise<unknown>; disconnect(): void },
  timeoutMs = 1000,
): Promise<void> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((r) => {
    t = setTimeout(() => r('timeout'), timeoutMs);
    t.unref();
  });
  const r = await Promise.race([
    redis.quit().then(
      () => 'ok' as const,
      () => 'error' as const,
    ),
    timeout,
  ]);
  if (t) clearTimeout(t);
  if (r !== 'ok') redis.disconnect();
}
