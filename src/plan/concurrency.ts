import type { Mode } from '../config/schema.js';

/**
 * The cap on symbols training at once, across every worker (DESIGN.md "Modes and concurrency"):
 * sequential 1; parallel every symbol of the run, bounded by maxInstances; hybrid maxConcurrent
 * (default 12 with GPUs, 2 CPU-only), where 1 is simply sequential.
 */
export function concurrencyCap(opts: {
  mode: Mode;
  symbols: number;
  maxInstances: number;
  maxConcurrent?: number;
  gpu: boolean;
}): number {
  const n = Math.max(1, opts.symbols);
  switch (opts.mode) {
    case 'sequential':
      return 1;
    case 'parallel':
      return Math.max(1, Math.min(n, opts.maxInstances));
    case 'hybrid':
      return Math.max(1, Math.min(opts.maxConcurrent ?? (opts.gpu ? 12 : 2), opts.maxInstances));
  }
}
