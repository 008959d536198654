/**
 * `retrain data import`: files (CSV or Parquet) → validated bars → one stored object per (symbol, UTC
 * day) with its meta. A file is all or nothing: every problem is reported (file, row, column) and
 * nothing of a file with a problem is stored.
 */
import { basename } from 'node:path';
import { validateSymbol } from '../symbols/symbols.js';
import type { ArtifactStore } from '../storage/store.js';
import {
  DEFAULT_MIN_ROWS_PER_DAY,
  missingColumns,
  splitDays,
  validateRows,
  type DataProblem,
  type ParsedBar,
} from './contract.js';
import { storeMarketDay, type MarketDayMeta } from './market.js';
import { readTable } from './readers.js';

export interface ImportOptions {
  /** `--symbol`: every row is this symbol (a `symbol` column, if any, must agree). */
  symbol?: string;
  minRowsPerDay?: number;
  now?: Date;
}

export interface FileImport {
  file: string;
  format?: 'csv' | 'parquet';
  problems: DataProblem[];
  /** The days stored (empty when the file had a problem). */
  stored: MarketDayMeta[];
}

/** One line per problem: `<file>: row <n>, column <c>: <message>`. */
export function formatProblem(file: string, p: DataProblem): string {
  return p.row === 0
    ? `${file}: column ${p.column}: ${p.message}`
    : `${file}: row ${p.row}, column ${p.column}: ${p.message}`;
}

/** Reads and validates one file: the bars by symbol and UTC day, or its problems. */
export async function checkFile(
  path: string,
  opts: ImportOptions,
): Promise<{
  format?: 'csv' | 'parquet';
  problems: DataProblem[];
  bySymbol: Map<string, Map<string, ParsedBar[]>>;
}> {
  const bySymbol = new Map<string, Map<string, ParsedBar[]>>();
  let table;
  try {
    table = await readTable(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code
      ? `cannot be read (${code})`
      : `is not readable as CSV or Parquet: ${(err as Error).message}`;
    return { problems: [{ row: 0, column: '-', message: `file ${why}` }], bySymbol };
  }
  const problems: DataProblem[] = missingColumns(table.columns).map((c) => ({
    row: 0,
    column: c,
    message: `missing column ${c} (header: ${table.columns.join(',') || '(none)'})`,
  }));
  const hasSymbolColumn = table.columns.some((c) => c.trim().toLowerCase() === 'symbol');
  if (!opts.symbol && !hasSymbolColumn)
    problems.push({ row: 0, column: 'symbol', message: 'no symbol: pass --symbol or add a symbol column' });
  if (table.rows.length === 0) problems.push({ row: 0, column: '-', message: 'no data rows' });
  if (problems.length > 0) return { format: table.format, problems, bySymbol };

  const want = opts.symbol ? validateSymbol(opts.symbol) : undefined;
  // Rows are validated per symbol: timestamps increase within one symbol's series.
  const groups = new Map<string, typeof table.rows>();
  for (const r of table.rows) {
    let sym = want;
    const cell = Object.entries(r.cells).find(([k]) => k.trim().toLowerCase() === 'symbol')?.[1];
    if (cell !== undefined && cell !== null && String(cell).trim() !== '') {
      const s = String(cell).trim().toUpperCase();
      if (!/^[A-Z0-9]{2,24}$/.test(s)) {
        problems.push({
          row: r.row,
          column: 'symbol',
          message: `invalid symbol ${JSON.stringify(String(cell))}`,
        });
        continue;
      }
      if (want && s !== want) {
        problems.push({ row: r.row, column: 'symbol', message: `symbol ${s} is not --symbol ${want}` });
        continue;
      }
      sym = s;
    }
    if (!sym) {
      problems.push({ row: r.row, column: 'symbol', message: 'symbol is empty' });
      continue;
    }
    const g = groups.get(sym);
    if (g) g.push(r);
    else groups.set(sym, [r]);
  }
  const minRows = opts.minRowsPerDay ?? DEFAULT_MIN_ROWS_PER_DAY;
  for (const [sym, rows] of groups) {
    const v = validateRows(rows);
    problems.push(...v.problems);
    const split = splitDays(v.bars, minRows);
    // Day sizes only mean something once every row is valid.
    if (v.problems.length === 0) problems.push(...split.problems);
    bySymbol.set(sym, split.days);
  }
  problems.sort((a, b) => a.row - b.row);
  return { format: table.format, problems, bySymbol };
}

/**
 * Imports files one by one: each is checked whole, then (only when it has no problem) its days are
 * stored. A later day of the same symbol replaces an earlier import of that day.
 */
export async function importFiles(
  store: ArtifactStore,
  files: readonly string[],
  opts: ImportOptions = {},
): Promise<FileImport[]> {
  const out: FileImport[] = [];
  for (const file of files) {
    const checked = await checkFile(file, opts);
    const result: FileImport = {
      file,
      ...(checked.format ? { format: checked.format } : {}),
      problems: checked.problems,
      stored: [],
    };
    if (checked.problems.length === 0) {
      for (const [symbol, days] of checked.bySymbol) {
        for (const [date, bars] of days) {
          result.stored.push(
            await storeMarketDay(store, symbol, date, bars, {
              source: 'import',
              file: basename(file),
              ...(opts.now ? { now: opts.now } : {}),
            }),
          );
        }
      }
    }
    out.push(result);
  }
  return out;
}
