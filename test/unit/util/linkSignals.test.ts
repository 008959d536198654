/**
 * A linked signal follows each of its sources (first reason wins), starts aborted when one is, and
 * once disposed leaves nothing on a long-lived source: the worker's shutdown signal outlives
 * thousands of symbols.
 */
import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { linkSignals } from '../../../src/util/linkSignals.js';

describe('linkSignals', () => {
  it('aborts with the reason of the first source that aborts', () => {
    const a = new AbortController();
    const b = new AbortController();
    const link = linkSignals([a.signal, undefined, b.signal]);
    expect(link.signal.aborted).toBe(false);
    b.abort(new Error('cancelled'));
    a.abort(new Error('shutdown'));
    expect(link.signal.aborted).toBe(true);
    expect((link.signal.reason as Error).message).toBe('cancelled');
    // Fired once: nothing is left listening on either source.
    expect(getEventListeners(a.signal, 'abort')).toHaveLength(0);
    expect(getEventListeners(b.signal, 'abort')).toHaveLength(0);
  });

  it('starts aborted when a source already is', () => {
    const a = new AbortController();
    a.abort('gone');
    const link = linkSignals([new AbortController().signal, a.signal]);
    expect(link.signal.aborted).toBe(true);
    expect(link.signal.reason).toBe('gone');
  });

  it('once disposed, no longer follows its sources and leaves no listener on them', () => {
    const shutdown = new AbortController();
    for (let i = 0; i < 1000; i++) {
      const per = new AbortController();
      const link = linkSignals([shutdown.signal, per.signal]);
      expect(getEventListeners(shutdown.signal, 'abort')).toHaveLength(1);
      link.dispose();
      link.dispose(); // idempotent
    }
    expect(getEventListeners(shutdown.signal, 'abort')).toHaveLength(0);
    const last = linkSignals([shutdown.signal]);
    last.dispose();
    shutdown.abort();
    expect(last.signal.aborted).toBe(false);
  });
});
