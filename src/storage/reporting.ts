import { StoreError } from '../errors.js';
import type { OutageReporter } from '../telemetry/outage.js';
import type { ArtifactStore } from './store.js';

/**
 * Whether a store error means the server could not be reached (network error, 5xx, throttling), as
 * opposed to an answer (not found, access denied) or a local file problem.
 */
export function isStoreOutage(err: unknown): boolean {
  if (!(err instanceof StoreError) || !err.retryable) return false;
  return !/^cannot (read|download)|changed during/.test(err.message);
}

const METHODS = [
  'putFile',
  'putBytes',
  'putJson',
  'getBytes',
  'getJson',
  'getFile',
  'exists',
  'list',
  'copy',
  'delete',
] as const;

/**
 * The same store, with every call's outcome told to the S3 store's outage reporter: an outage is
 * logged once, with reminders, instead of once per failed upload, read or ledger mirror write.
 * Errors are still thrown to the caller, unchanged.
 */
export function reportingStore(store: ArtifactStore, outage: OutageReporter): ArtifactStore {
  const wrapped: Record<string, unknown> = {
    kind: store.kind,
    locate: (key: string) => store.locate(key),
  };
  for (const m of METHODS) {
    const fn = store[m] as (...args: unknown[]) => Promise<unknown>;
    wrapped[m] = async (...args: unknown[]) => {
      try {
        const r = await fn.apply(store, args);
        outage.success();
        return r;
      } catch (err) {
        if (isStoreOutage(err)) outage.failure(err);
        throw err;
      }
    };
  }
  return wrapped as unknown as ArtifactStore;
}
