/**
 * Several independent Redis commands sent in one write on one connection: a state change's job
 * data, ledger state, progress and log line (four scripts) reach Redis together, so Redis reads
 * them at once and answers them in one write (22 fewer write calls per local symbol,
 * bench/RESULTS.md §1h).
 *
 * Not a MULTI: each command still succeeds or fails on its own, as when sent one by one, and a
 * crash between them leaves the same mixes it did. What is batched is the write to the socket: the
 * connection's socket is corked while `issue` runs and uncorked once the promise continuations
 * it set off have run (a command issued after an `await` of an already settled promise, as
 * BullMQ's job methods do, is still in the write). A command issued later, after real I/O, goes
 * out on its own as before.
 */
import type { Redis } from 'ioredis';

export function sendTogether<T>(redis: Redis, issue: () => T): T {
  const socket = redis.status === 'ready' ? redis.stream : undefined;
  // Not connected: commands wait in ioredis' offline queue and are sent on connect anyway.
  if (!socket || socket.destroyed) return issue();
  socket.cork();
  try {
    return issue();
  } finally {
    // After this turn's microtasks (BullMQ awaits its client before writing): the corked writes
    // leave as one. The socket may have closed meanwhile; uncorking it then is harmless.
    setImmediate(() => socket.uncork());
  }
}
