/** Connecting the CLI's commands to Redis: one clear line when it does not answer. */
import type { Redis } from 'ioredis';
import { producerConnection } from '../../queues/connection.js';
import { redisAnswers } from '../util/redisPing.js';
import { RetrainError } from '../errors.js';
import { displayUrl } from '../util/displayUrl.js';

export class RedisUnreachableError extends RetrainError {
  constructor(url: string) {
    super(
      'bad_config',
      `Redis is not reachable at ${displayUrl(url)}: start one (e.g. \`redis-server --daemonize yes\`) or set REDIS_URL`,
    );
  }
}

export async function connectRedis(url: string): Promise<Redis> {
  if (!(await redisAnswers(url))) throw new RedisUnreachableError(url);
  const redis = producerConnection(url);
  redis.on('error', () => undefined);
  return redis;
}
