import { loadConfig } from '../config/load.js';
import { redisProductionLock } from '../promotion/lock.js';
import { rollbackProduction, type RollbackResult } from '../promotion/rollback.js';
import { connectRedis } from './redis.js';
import { createStore } from '../storage/index.js';
import { validateSymbol } from '../symbols/symbols.js';

export interface RollbackFlags {
  config?: string;
  symbol: string;
  to?: string;
  dryRun?: boolean;
  json?: boolean;
}

/**
 * `retrain rollback --symbol S [--to <stamp>] [--dry-run] [--json]`: restores a production model from
 * history (default: the most recent entry, the model the current production replaced).
 */
export async function rollbackCommand(opts: RollbackFlags): Promise<number> {
  const symbol = validateSymbol(opts.symbol);
  const config = loadConfig({ file: opts.config });
  // A rollback takes the symbol's production lock in Redis, so it never interleaves with a
  // promotion publishing the same symbol; a dry run writes nothing and needs no lock.
  const redis = opts.dryRun ? undefined : await connectRedis(config.redisUrl);
  try {
    const result = await rollbackProduction({
      store: createStore(config.store),
      symbol,
      ...(opts.to !== undefined ? { to: opts.to.trim() } : {}),
      dryRun: opts.dryRun === true,
      ...(redis ? { lock: redisProductionLock(redis, config.queuePrefix) } : {}),
    });
    process.stdout.write(opts.json ? JSON.stringify(result, null, 2) + '\n' : describe(result) + '\n');
    return 0;
  } finally {
    await redis?.quit().catch(() => redis.disconnect());
  }
}

function describe(r: RollbackResult): string {
  const model = (ref: { jobId: string; date: string }) => `${ref.jobId} (${ref.date})`;
  const restored = `${model(r.restored)} from history ${r.restored.stamp}`;
  const replaced = r.replaced ? model(r.replaced) : 'no production model';
  if (r.dryRun)
    return `${r.symbol}: would restore ${restored}, replacing ${replaced} (dry run: nothing written)`;
  return (
    `${r.symbol}: production is now ${restored}; replaced ${replaced}` +
    (r.historyStamp ? `, archived to history ${r.historyStamp}` : '')
  );
}
