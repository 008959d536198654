import Table from 'cli-table3';
import { loadConfig } from '../config/load.js';
import { DEFAULT_MIN_ROWS_PER_DAY } from '../data/contract.js';
import { marketCoverage } from '../data/coverage.js';
import { formatProblem, importFiles } from '../data/import.js';
import { InputError } from '../errors.js';
import { createStore } from '../storage/index.js';
import { parseRunDate } from '../symbols/date.js';
import { validateSymbol } from '../symbols/symbols.js';

export interface DataImportFlags {
  config?: string;
  symbol?: string;
  minRowsPerDay?: string;
}

/**
 * `retrain data import FILE...`: each file is validated whole; one line per problem on stderr
 * (file, row, column), nothing stored for that file, exit 2 when any file had a problem.
 */
export async function dataImportCommand(files: string[], opts: DataImportFlags): Promise<number> {
  if (files.length === 0) throw new InputError('data import: name at least one CSV or Parquet file');
  let minRowsPerDay = DEFAULT_MIN_ROWS_PER_DAY;
  if (opts.minRowsPerDay !== undefined) {
    if (!/^\d+$/.test(opts.minRowsPerDay) || Number(opts.minRowsPerDay) < 1)
      throw new InputError(
        `--min-rows-per-day must be a whole number >= 1, got ${JSON.stringify(opts.minRowsPerDay)}`,
      );
    minRowsPerDay = Number(opts.minRowsPerDay);
  }
  const symbol = opts.symbol !== undefined ? validateSymbol(opts.symbol) : undefined;
  const config = loadConfig({ file: opts.config });
  const store = createStore(config.store);
  const results = await importFiles(store, files, { ...(symbol ? { symbol } : {}), minRowsPerDay });
  let failed = 0;
  for (const r of results) {
    if (r.problems.length > 0) {
      failed++;
      for (const p of r.problems) process.stderr.write(`${formatProblem(r.file, p)}\n`);
      process.stderr.write(
        `${r.file}: not imported (${r.problems.length} problem${r.problems.length === 1 ? '' : 's'})\n`,
      );
      continue;
    }
    const bySymbol = new Map<string, typeof r.stored>();
    for (const m of r.stored) bySymbol.set(m.symbol, [...(bySymbol.get(m.symbol) ?? []), m]);
    for (const [sym, days] of bySymbol) {
      const rows = days.reduce((n, d) => n + d.rows, 0);
      process.stdout.write(
        `${r.file}: ${sym} ${days.length} day${days.length === 1 ? '' : 's'} (${days[0]!.date}..${days[days.length - 1]!.date}), ${rows} rows, stored as market/${sym}/<day>/ohlcv.csv (${store.kind})\n`,
      );
    }
  }
  return failed > 0 ? 2 : 0;
}

export interface DataLsFlags {
  config?: string;
  symbol?: string[];
  from?: string;
  to?: string;
  json?: boolean;
}

/** `retrain data ls`: the stored market days (source, rows, first/last bar), a table or JSON. */
export async function dataLsCommand(opts: DataLsFlags): Promise<number> {
  const symbols = (opts.symbol ?? [])
    .flatMap((s) => s.split(','))
    .filter(Boolean)
    .map(validateSymbol);
  const from = opts.from !== undefined ? parseRunDate(opts.from) : undefined;
  const to = opts.to !== undefined ? parseRunDate(opts.to) : undefined;
  const config = loadConfig({ file: opts.config });
  const rows = await marketCoverage(createStore(config.store), {
    symbols,
    ...(from ? { from } : {}),
    ...(to ? { to } : {}),
  });
  if (opts.json) {
    process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
    return 0;
  }
  if (rows.length === 0) {
    process.stdout.write('no market data stored (import some with `retrain data import`)\n');
    return 0;
  }
  const t = new Table({
    head: ['symbol', 'date', 'source', 'rows', 'first', 'last'],
    style: { head: [], border: [], compact: true },
  });
  for (const r of rows) t.push([r.symbol, r.date, r.source, r.rows ?? '-', r.first ?? '-', r.last ?? '-']);
  process.stdout.write(t.toString() + '\n');
  const days = new Map<string, number>();
  for (const r of rows) days.set(r.symbol, (days.get(r.symbol) ?? 0) + 1);
  process.stdout.write(`${[...days].map(([s, n]) => `${s}: ${n} day${n === 1 ? '' : 's'}`).join(', ')}\n`);
  return 0;
}
