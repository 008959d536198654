/**
 * The cost estimate in the start message of a `--driver vast` run (CLI and Telegram): the live
 * offers priced all-in, the run's symbols and cap, and per symbol the median training minutes of
 * its recent successes (or the time limit, as an upper bound, when there are none). Never blocks
 * a run: any failure leaves the message without an estimate.
 */
import type { Config } from '../config/schema.js';
import { VastClient } from '../vast/client.js';
import type { Ledger } from '../ledger/ledger.js';
import { estimateLine, estimateRun, liveOffers } from '../vast/estimate.js';

/** Billed minutes of a rental beyond its training (boot, staging, fetch): a typical Vast figure. */
export const DEFAULT_OVERHEAD_MIN = 2;

async function recentMinutes(ledger: Ledger, symbols: string[], dates = 7): Promise<number[]> {
  const want = new Set(symbols);
  const out: number[] = [];
  for (const d of (await ledger.dates()).slice(0, dates)) {
    for (const e of Object.values(await ledger.get(d))) {
      if (want.has(e.symbol) && e.status === 'success' && typeof e.trainMinutes === 'number')
        out.push(e.trainMinutes);
    }
  }
  return out;
}

export async function startEstimate(opts: {
  config: Config;
  ledger: Ledger;
  symbols: string[];
  cap: number;
  interruptible: boolean;
  timeoutMinutes: number;
}): Promise<string | undefined> {
  try {
    const seen = (await recentMinutes(opts.ledger, opts.symbols)).sort((a, b) => a - b);
    const median = seen.length ? seen[Math.floor(seen.length / 2)]! : undefined;
    const minutes = median ?? opts.timeoutMinutes;
    const apiKey = process.env.VAST_API_KEY;
    if (!apiKey) return undefined;
    // One quick search: a slow or failing API must not hold up the run's start.
    const client = new VastClient({ apiUrl: opts.config.vast.apiUrl, apiKey, retries: 0, timeoutMs: 10_000 });
    const { offers } = await liveOffers(client, opts.config, opts.interruptible);
    const pool = opts.config.vast.pool;
    const e = estimateRun({
      prices: offers.map((o) => o.hourly),
      symbols: opts.symbols.length,
      minutesPerSymbol: minutes,
      overheadMinutes: DEFAULT_OVERHEAD_MIN,
      cap: opts.cap,
      ...(pool.enabled ? { pool: { slotsPerHost: pool.slotsPerHost } } : {}),
    });
    return estimateLine(e, minutes, median === undefined);
  } catch {
    return undefined;
  }
}
