import { Queue } from 'bullmq';
import { QUEUES } from '../../queues/names.js';
import { loadConfig } from '../config/load.js';
import { vastClientFrom } from '../compute/factory.js';
import { reapOrphans } from '../compute/reap.js';
import { jobIdFromLabel } from '../compute/vast.js';
import type { LeaseInfo } from '../compute/provider.js';
import { connectRedis } from './executeRun.js';

const LIVE = new Set(['active', 'waiting', 'delayed', 'prioritized', 'waiting-children']);

/** `retrain reap [--dry-run]`: lists and destroys this deployment's orphaned Vast instances. */
export async function reapCommand(opts: { config?: string; dryRun?: boolean }): Promise<number> {
  const config = loadConfig({ file: opts.config });
  const client = vastClientFrom(config);
  const redis = await connectRedis(config.redisUrl);
  const train = new Queue(QUEUES.train, { connection: redis, prefix: config.queuePrefix });
  try {
    const result = await reapOrphans({
      provider: {
        list: async () =>
          (await client.listInstances())
            .filter((i) => jobIdFromLabel(config.deployment, i.label) !== null)
            .map((i): LeaseInfo => ({
              driver: 'vast',
              id: String(i.id),
              host: i.ssh_host ?? '',
              workRoot: config.vast.workRoot,
              acquiredAt: i.start_date ? new Date(i.start_date * 1000).toISOString() : '',
              hourlyCostUsd: i.dph_total ?? 0,
              label: i.label ?? undefined,
            })),
        release: async (lease) => client.destroyInstance(Number(lease.id)),
      },
      jobIdOf: (lease) => jobIdFromLabel(config.deployment, lease.label),
      isJobActive: async (jobId) => {
        const job = await train.getJob(jobId);
        return job ? LIVE.has(await job.getState()) : false;
      },
      maxRuntimeMin: config.vast.maxRuntimeMin,
      dryRun: opts.dryRun === true,
    });
    for (const d of result.destroyed) {
      process.stdout.write(
        `${opts.dryRun ? 'would destroy' : 'destroyed'} instance ${d.id} (${d.label ?? 'no label'}): ${d.reason}\n`,
      );
    }
    process.stdout.write(`${result.destroyed.length} orphaned, ${result.kept.length} in use\n`);
    return 0;
  } finally {
    await train.close();
    await redis.quit().catch(() => redis.disconnect());
  }
}
