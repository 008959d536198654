import { Queue } from 'bullmq';
import { reapDeployment } from '../../processors/reaper.js';
import { QUEUES } from '../../queues/names.js';
import { loadConfig } from '../config/load.js';
import { vastClientFrom } from '../compute/factory.js';
import { InstancePool } from '../compute/pool.js';
import { RunSpend } from '../train/spend.js';
import { LogHub } from '../telemetry/logger.js';
import { connectRedis } from './redis.js';

/** `retrain reap [--dry-run]`: lists and destroys this deployment's orphaned Vast instances. */
export async function reapCommand(opts: { config?: string; dryRun?: boolean }): Promise<number> {
  const config = loadConfig({ file: opts.config });
  vastClientFrom(config); // a missing key fails here, before anything is connected
  const redis = await connectRedis(config.redisUrl);
  const client = vastClientFrom(config, process.env, { redis });
  const trainQueue = new Queue(QUEUES.train, { connection: redis, prefix: config.queuePrefix });
  const logs = new LogHub({ home: config.home, level: config.log.level, stdout: false });
  try {
    const result = await reapDeployment({
      config,
      client,
      trainQueue,
      dryRun: opts.dryRun === true,
      ...(config.vast.pool.enabled
        ? {
            pool: new InstancePool(redis, config.queuePrefix),
            bookIdle: (runId: string, usd: number) =>
              new RunSpend(redis, config.queuePrefix).bookPoolIdle(runId, usd),
          }
        : {}),
      log: logs.forDate(new Date().toISOString().slice(0, 10).replace(/-/g, '')),
    });
    for (const d of result.destroyed) {
      process.stdout.write(
        `${opts.dryRun ? 'would destroy' : 'destroyed'} instance ${d.id} (${d.label ?? 'no label'}, ${d.ageMin} min old): ${d.reason}\n`,
      );
    }
    for (const f of result.failed) {
      process.stderr.write(`could not destroy instance ${f.id} (${f.label ?? 'no label'}): ${f.error}\n`);
    }
    process.stdout.write(
      `${result.destroyed.length} orphaned, ${result.kept.length} in use` +
        (result.failed.length ? `, ${result.failed.length} could not be destroyed` : '') +
        '\n',
    );
    return result.failed.length ? 1 : 0;
  } finally {
    await trainQueue.close();
    await redis.quit().catch(() => redis.disconnect());
    logs.close();
  }
}
