import { loadConfig } from '../config/load.js';
import { InputError } from '../errors.js';
import { promotionRulesOf } from '../promotion/custom.js';
import { promoteCandidate } from '../promotion/guard.js';
import { redisProductionLock } from '../promotion/lock.js';
import { connectRedis } from './redis.js';
import { createStore } from '../storage/index.js';
import { parseRunDate } from '../symbols/date.js';
import { validateSymbol } from '../symbols/symbols.js';
import { trainJobId } from '../jobspec/build.js';

/** `retrain promote`: runs the guard for one candidate, by hand. */
export async function promoteCommand(opts: {
  config?: string;
  symbol: string;
  date: string;
  mode: string;
  canary?: string | boolean;
}): Promise<number> {
  const symbol = validateSymbol(opts.symbol);
  const date = parseRunDate(opts.date);
  if (opts.mode !== 'dry' && opts.mode !== 'auto') {
    throw new InputError(`--mode must be dry or auto, got ${JSON.stringify(opts.mode)}`);
  }
  const canary =
    opts.canary === true || (typeof opts.canary === 'string' && /^(true|1|yes)$/i.test(opts.canary));
  const config = loadConfig({ file: opts.config });
  // Writing production (auto) takes the symbol's lock in Redis, like the workers' promotions.
  const redis = opts.mode === 'auto' ? await connectRedis(config.redisUrl) : undefined;
  try {
    const result = await promoteCandidate({
      store: createStore(config.store),
      symbol,
      date,
      jobId: trainJobId(symbol, date),
      mode: opts.mode,
      canary: canary || config.promotion.canary,
      maxDrawdownTolerance: config.promotion.maxDrawdownTolerance,
      rules: promotionRulesOf(config.promotion),
      ...(redis ? { lock: redisProductionLock(redis, config.queuePrefix) } : {}),
    });
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    return 0;
  } finally {
    await redis?.quit().catch(() => redis.disconnect());
  }
}
