/**
 * One writer of a symbol's production at a time, across every worker process and CLI: a promotion
 * (which reads production, decides, and publishes) and a rollback must not interleave, or two
 * publishes replace the same model (one of them lost from history) and one prunes the version
 * folder the other's manifest points at.
 */
import { ExecutionError, Redlock } from '@sesamecare-oss/redlock';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { ProductionBusyError } from '../errors.js';

export interface ProductionLock {
  /**
   * Runs `fn` holding `symbol`'s production lock, waiting for it when another holder has it.
   * `signal` aborts when the lock could not be kept (Redis gone for longer than the lock's
   * duration): `fn` must not commit anything after that. Throws ProductionBusyError (retryable)
   * when the lock cannot be had in time.
   */
  hold<T>(symbol: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T>;
}

export interface RedisProductionLockOptions {
  /** Longest wait for the lock. Default 120 s (a publish copies the model three times). */
  waitMs?: number;
  /** How long a holder keeps the lock without renewing it; renewed while held. Default 30 s. */
  durationMs?: number;
}

/** Between two tries for a held lock. Each try (and each renewal) retries a failed Redis call twice. */
const RETRY_DELAY_MS = 200;

/** The production lock in Redis, under `<prefix>:lock:production:<SYMBOL>`. */
export function redisProductionLock(
  redis: Redis,
  prefix: string,
  opts: RedisProductionLockOptions = {},
): ProductionLock {
  const waitMs = opts.waitMs ?? 120_000;
  const durationMs = opts.durationMs ?? 30_000;
  // Few retries per operation: a renewal that fails must be seen before the lock expires, and the
  // wait for a held lock is the loop below.
  const redlock = new Redlock([redis], {
    retryCount: 2,
    retryDelay: 100,
    retryJitter: 50,
    automaticExtensionThreshold: Math.min(5_000, Math.floor(durationMs / 3)),
  });
  return {
    async hold(symbol, fn) {
      const key = `${prefix}:lock:production:${symbol}`;
      const giveUpAt = Date.now() + waitMs;
      // What fn did, kept here: a failed release at the end must not replace fn's result or error.
      let outcome:
        { ok: true; value: Awaited<ReturnType<typeof fn>> } | { ok: false; err: unknown } | undefined;
      for (;;) {
        try {
          await redlock.using([key], durationMs, async (signal) => {
            try {
              outcome = { ok: true, value: await fn(signal) };
            } catch (err) {
              outcome = { ok: false, err };
            }
          });
          break;
        } catch (err) {
          if (outcome) break; // fn ran; only the release failed: the lock expires within durationMs
          if (!(err instanceof ExecutionError)) throw err;
          if (Date.now() >= giveUpAt) {
            throw new ProductionBusyError(
              `production of ${symbol} is locked by another promotion or rollback (waited ${Math.round(waitMs / 1000)} s); try again`,
              { cause: err },
            );
          }
          await sleep(RETRY_DELAY_MS + Math.random() * RETRY_DELAY_MS);
        }
      }
      if (!outcome!.ok) throw outcome!.err;
      return outcome!.value;
    },
  };
}
