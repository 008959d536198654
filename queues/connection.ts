import { Redis, type RedisOptions } from 'ioredis';

/**
 * Connections. Workers need `maxRetriesPerRequest: null` (they block and must ride out a Redis
 * restart); producers and CLI reads fail fast instead of queueing commands while Redis is away.
 */
export function workerConnection(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true });
}

export function producerConnection(url: string, opts: RedisOptions = {}): Redis {
  return new Redis(url, { maxRetriesPerRequest: 2, enableOfflineQueue: true, ...opts });
}

export { redisAnswers } from '../src/util/redisPing.js';
