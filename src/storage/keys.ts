import { StoreError } from '../errors.js';

/**
 * Key validation shared by every store, so that LocalStore and S3Store accept exactly the same key
 * space. A key is relative and '/'-separated, with no empty, '.' or '..' segment, no backslash and no
 * NUL; segments may not start with the temp-file marker LocalStore uses for in-flight writes.
 */

/** Prefix of LocalStore's in-flight temp files; such names are never valid key segments. */
export const TEMP_MARKER = '.retrain-tmp-';

/** Returns the key unchanged or throws StoreError (not retryable) naming it. */
export function validateKey(key: string): string {
  const problem = keyProblem(key);
  if (problem) throw new StoreError(`invalid key ${JSON.stringify(key)}: ${problem}`, { retryable: false });
  return key;
}

/**
 * Validates a list prefix: like a key, but it may be empty (everything) and may end with '/'.
 * Throws StoreError (not retryable) naming it.
 */
export function validatePrefix(prefix: string): string {
  if (prefix === '') return prefix;
  const problem = keyProblem(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix);
  if (problem)
    throw new StoreError(`invalid prefix ${JSON.stringify(prefix)}: ${problem}`, { retryable: false });
  return prefix;
}

function keyProblem(key: string): string | undefined {
  if (typeof key !== 'string' || key === '') return 'empty';
  if (key.includes('\0')) return 'contains NUL';
  if (key.includes('\\')) return 'contains a backslash';
  if (key.startsWith('/')) return 'must be relative (no leading /)';
  const segments = key.split('/');
  for (const seg of segments) {
    if (seg === '') return 'has an empty segment';
    if (seg === '..') return "contains '..'";
    if (seg === '.') return "contains '.'";
    if (seg.startsWith(TEMP_MARKER)) return `segment starts with the reserved ${TEMP_MARKER}`;
  }
  return undefined;
}

/** An object's bytes as JSON; StoreError (not retryable) naming the key when they are not JSON. */
export function parseStoredJson<T = unknown>(key: string, buf: Buffer): T {
  try {
    return JSON.parse(buf.toString('utf8')) as T;
  } catch (err) {
    throw new StoreError(`invalid JSON at ${key}: ${(err as Error).message}`, {
      retryable: false,
      cause: err,
    });
  }
}

/** An S3 key prefix as stored: '' or ending in '/', validated like a list prefix. */
export function normalizeS3Prefix(prefix: string | undefined): string {
  if (!prefix) return '';
  const p = prefix.endsWith('/') ? prefix : `${prefix}/`;
  try {
    validatePrefix(p);
  } catch (err) {
    throw new StoreError(`S3 store: invalid key prefix ${JSON.stringify(prefix)}`, {
      retryable: false,
      cause: err,
    });
  }
  return p;
}
