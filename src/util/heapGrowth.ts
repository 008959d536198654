/**
 * How far a worker's heap may grow past what it holds alive before V8 collects it in full.
 *
 * After each full collection V8 sets the next trigger at the live size times a factor it picks
 * from how fast its main thread collects against how fast the program allocates. A worker's heap
 * is small (~35-40 MB alive) and most of its marking runs on V8's helper threads, so the main
 * thread looks cheap to collect: in the bench, from its first idle spell on, V8 picked a factor
 * near 1.1, a full collection every ~0.5 s. Measured over the overhead bench's 3,000 symbols
 * (bench/RESULTS.md, 1k): 190-360 Mark-Compacts and 12-26 s of concurrent marking, up to a third
 * of a symbol's CPU over ssh; with the factor fixed at 3, 9 and 0.3 s (the heap peaked at ~110 MB,
 * 37 MB alive).
 */
import { setFlagsFromString } from 'node:v8';

/** The factor is 1 + this / 100: a full collection once the heap holds 3x what it kept alive. */
export const HEAP_GROWING_PERCENT = 200;

const FLAG = '--heap-growing-percent';

/**
 * Fixes V8's heap growing factor for this process (HEAP_GROWING_PERCENT), unless node was started
 * with its own `--heap-growing-percent`. V8 reads the flag at each full collection, so setting it
 * at run time takes effect from the next one.
 */
export function fixHeapGrowth(execArgv: readonly string[] = process.execArgv): boolean {
  // V8 takes its flags with dashes or underscores.
  const given = execArgv.map((a) => a.replaceAll('_', '-'));
  if (given.some((a) => a === FLAG || a.startsWith(`${FLAG}=`))) return false;
  setFlagsFromString(`${FLAG}=${HEAP_GROWING_PERCENT}`);
  return true;
}
