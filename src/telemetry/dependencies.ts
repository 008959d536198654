import type { Config } from '../config/schema.js';
import { displayUrl } from '../util/displayUrl.js';
import { OutageReporter, type OutageLog } from './outage.js';
import { RedisWatch } from './redisWatch.js';

/** The outage reporters of one process: Redis always, the S3 store and the Vast API when used. */
export interface DependencyWatch {
  redis: RedisWatch;
  s3?: OutageReporter;
  vast?: OutageReporter;
  all: OutageReporter[];
  close(): void;
}

export function watchDependencies(
  config: Config,
  log: OutageLog,
  opts: { probeEveryMs?: number } = {},
): DependencyWatch {
  const redis = new RedisWatch({ url: config.redisUrl, log, ...opts });
  const s3 =
    config.store.kind === 's3'
      ? new OutageReporter({
          name: 'S3 store',
          target: `s3://${config.store.bucket}${config.store.endpoint ? ` at ${displayUrl(config.store.endpoint)}` : ''}`,
          log,
        })
      : undefined;
  const vast =
    config.train.driver === 'vast'
      ? new OutageReporter({ name: 'Vast API', target: displayUrl(config.vast.apiUrl), log })
      : undefined;
  return {
    redis,
    ...(s3 ? { s3 } : {}),
    ...(vast ? { vast } : {}),
    all: [redis.outage, ...(s3 ? [s3] : []), ...(vast ? [vast] : [])],
    close: () => redis.close(),
  };
}
