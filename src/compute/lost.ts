import { HostLostError, PreemptedError, type RetrainError } from '../errors.js';
import type { ComputeProvider, LeaseInfo } from './provider.js';

/**
 * The error that ends an attempt whose host the provider reported gone: PreemptedError (reason
 * `preempted`) for an interruptible instance that was outbid or stopped, HostLostError (`host_lost`)
 * otherwise. Both are retryable: the host is destroyed and the attempt runs again on another.
 */
export function hostGoneError(
  provider: Pick<ComputeProvider, 'lostReason'>,
  symbol: string,
  info: LeaseInfo,
  cause: unknown,
): RetrainError {
  if (provider.lostReason?.(info) === 'preempted') {
    const bid = info.bidUsd !== undefined ? ` (bid $${info.bidUsd}/h)` : '';
    return new PreemptedError(
      `${symbol}: interruptible ${info.driver} instance ${info.id}${bid} was outbid or stopped during training`,
      { cause },
    );
  }
  return new HostLostError(`${symbol}: ${info.driver} host ${info.id} died during training`, { cause });
}
