/**
 * Waits for every promise, then resolves with their values or throws the first failure in list
 * order: unlike Promise.all, nothing is still running (writing files, holding a channel) when the
 * caller goes on to clean up.
 */
export async function settleAll<T>(ps: Promise<T>[]): Promise<T[]> {
  const results = await Promise.allSettled(ps);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}
