/**
 * A signal aborted as soon as any of `sources` is (with that one's reason), and `dispose()`, which
 * takes its listeners off the sources again.
 *
 * Why not AbortSignal.any: on Node 20 each combined signal is registered with its sources through
 * weak references and a finalization registry, which are only cleared by a full GC. A worker
 * combined its long-lived shutdown signal with each symbol's, so every symbol left such records on
 * it, outliving the young generation: ~10 % of what a local symbol's work promoted to the old one
 * (bench/RESULTS.md §1j). Here a symbol's signal is let go of when its work ends.
 */
export interface LinkedSignal {
  readonly signal: AbortSignal;
  /** Removes the listeners from the sources (idempotent); the signal no longer follows them. */
  dispose(): void;
}

export function linkSignals(sources: readonly (AbortSignal | undefined)[]): LinkedSignal {
  const ac = new AbortController();
  const live = sources.filter((s): s is AbortSignal => s !== undefined);
  const already = live.find((s) => s.aborted);
  if (already) {
    ac.abort(already.reason);
    return { signal: ac.signal, dispose: () => undefined };
  }
  const listeners = live.map((s) => {
    const onAbort = () => {
      dispose();
      ac.abort(s.reason);
    };
    s.addEventListener('abort', onAbort, { once: true });
    return { s, onAbort };
  });
  function dispose(): void {
    for (const { s, onAbort } of listeners.splice(0)) s.removeEventListener('abort', onAbort);
  }
  return { signal: ac.signal, dispose };
}
