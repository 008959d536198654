import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateOhlcv } from '../../src/data/synthetic.js';
import { runCli, type CliResult } from './harness.js';

/**
 * OHLCV CSV in the import contract (`timestamp,open,high,low,close,volume`, ISO-8601 UTC): `days`
 * days of hourly bars ending with `date`. The bars come from the deterministic generator, but they
 * enter retrain as a user's file does: through `retrain data import`, so they are `source: import`.
 */
export function ohlcvCsv(symbol: string, date: string, days = 10): string {
  const bars = generateOhlcv(symbol, date, { lookbackDays: days });
  const lines = ['timestamp,open,high,low,close,volume'];
  for (const b of bars) {
    lines.push(`${new Date(b.ts * 1000).toISOString()},${b.open},${b.high},${b.low},${b.close},${b.volume}`);
  }
  return lines.join('\n') + '\n';
}

/** Writes the CSV into `dir` and imports it with the CLI; throws when the import fails. */
export async function importMarketData(
  dir: string,
  env: NodeJS.ProcessEnv,
  symbol: string,
  date: string,
  days = 10,
): Promise<CliResult> {
  const file = join(dir, `${symbol}-${date}.csv`);
  writeFileSync(file, ohlcvCsv(symbol, date, days));
  const r = await runCli(['data', 'import', file, '--symbol', symbol], env);
  if (r.code !== 0) throw new Error(`data import ${symbol} ${date} failed (${r.code}): ${r.stderr}`);
  return r;
}
