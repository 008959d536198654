import Table from 'cli-table3';
import { loadConfig } from '../config/load.js';
import { Ledger } from '../ledger/ledger.js';
import { createStore } from '../storage/index.js';
import { parseRunDate } from '../symbols/date.js';
import { connectRedis } from './redis.js';
import { statusLabel, waitedColumn } from './table.js';

/** `retrain status`: the ledger of a date, as a table or JSON. */
export async function statusCommand(opts: {
  config?: string;
  date?: string;
  json?: boolean;
}): Promise<number> {
  const config = loadConfig({ file: opts.config });
  const requested = opts.date !== undefined ? parseRunDate(opts.date) : undefined;
  const redis = await connectRedis(config.redisUrl);
  try {
    const ledger = new Ledger({
      redis,
      prefix: config.queuePrefix,
      store: createStore(config.store),
      retentionDays: config.ledger.retentionDays,
    });
    const date = requested ?? (await ledger.dates())[0];
    if (!date) {
      process.stdout.write(opts.json ? '{}\n' : 'the ledger is empty: no run has been planned yet\n');
      return 0;
    }
    const entries = await ledger.get(date);
    if (opts.json) {
      process.stdout.write(JSON.stringify({ date, symbols: entries }, null, 2) + '\n');
      return 0;
    }
    const sorted = Object.values(entries).sort((a, b) => a.symbol.localeCompare(b.symbol));
    const waited = waitedColumn(sorted);
    const t = new Table({
      head: [
        'symbol',
        'status',
        'state',
        'attempts',
        'reason',
        'minutes',
        ...(waited ? ['waited'] : []),
        'net_bps',
        'decision',
      ],
      style: { head: [], border: [], compact: true },
    });
    for (const e of sorted) {
      t.push([
        e.symbol,
        statusLabel(e),
        e.state ?? '',
        String(e.attempts),
        e.reason ?? '',
        typeof e.trainMinutes === 'number' ? e.trainMinutes.toFixed(2) : '',
        ...(waited ? [waited(e)] : []),
        typeof e.net_bps_after_costs === 'number' ? e.net_bps_after_costs.toFixed(2) : '',
        e.decision ?? '',
      ]);
    }
    process.stdout.write(`ledger for ${date}\n${t.toString()}\n`);
    return 0;
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}
