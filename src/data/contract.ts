/**
 * The market data contract: OHLCV bars with the columns `timestamp,open,high,low,close,volume`
 * (`ts` accepted for `timestamp`), timestamps ISO-8601 or epoch seconds/milliseconds (UTC), an
 * optional `symbol` column. Validation collects every problem (row and column named) instead of
 * stopping at the first, so a user fixes a file in one pass.
 */
import type { OhlcvBar } from './synthetic.js';

export const REQUIRED_COLUMNS = ['timestamp', 'open', 'high', 'low', 'close', 'volume'] as const;

/** Fewer bars than this in a UTC day is a problem (a day with gaps trains on holes). */
export const DEFAULT_MIN_ROWS_PER_DAY = 24;

/** One row as read from a file: cells untouched (strings from CSV, numbers/bigints/dates from Parquet). */
export interface RawRow {
  /** 1-based data row number (CSV: the line number, header = line 1; Parquet: row index + 1). */
  row: number;
  cells: Record<string, unknown>;
}

export interface DataProblem {
  /** 0 for a problem of the whole file (header, schema). */
  row: number;
  column: string;
  message: string;
}

export interface ParsedBar extends OhlcvBar {
  row: number;
  symbol?: string;
}

/** Epoch seconds (< 1e11) or milliseconds, or an ISO-8601 string with a zone (UTC assumed without). */
export function parseTimestamp(v: unknown): number | string {
  if (v instanceof Date) {
    const ms = v.getTime();
    return Number.isFinite(ms) ? Math.floor(ms / 1000) : 'is not a valid date';
  }
  if (typeof v === 'bigint') v = Number(v);
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return `is not finite (${v})`;
    const sec = Math.abs(v) < 1e11 ? v : v / 1000;
    if (!Number.isInteger(sec)) return `is not whole epoch seconds or milliseconds (${v})`;
    return sec;
  }
  if (typeof v !== 'string' || v.trim() === '') return 'is empty';
  const s = v.trim();
  if (/^-?\d+(\.\d+)?$/.test(s)) return parseTimestamp(Number(s));
  const iso = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$/i.exec(s);
  if (!iso) return `is neither ISO-8601 nor epoch seconds/milliseconds (${JSON.stringify(s)})`;
  const ms = Date.parse(iso[3] ? s.replace(' ', 'T') : `${s.replace(' ', 'T')}Z`);
  if (!Number.isFinite(ms)) return `is not a valid date (${JSON.stringify(s)})`;
  return Math.floor(ms / 1000);
}

function toNumber(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'string' && v.trim() !== '') {
    const t = v.trim();
    if (/^(nan|[+-]?inf(inity)?)$/i.test(t))
      return /nan/i.test(t) ? NaN : t.startsWith('-') ? -Infinity : Infinity;
    const n = Number(t);
    return Number.isNaN(n) ? undefined : n;
  }
  return undefined;
}

/** Which columns are missing (`timestamp` satisfied by `ts`). */
export function missingColumns(columns: readonly string[]): string[] {
  const have = new Set(columns.map((c) => c.trim().toLowerCase()));
  return REQUIRED_COLUMNS.filter((c) => !have.has(c) && !(c === 'timestamp' && have.has('ts')));
}

/**
 * Rows → bars, with every problem: types (numbers, finite), prices > 0, high >= max(open, close),
 * low <= min(open, close), volume >= 0, timestamps strictly increasing (a repeat is a duplicate).
 */
export function validateRows(rows: readonly RawRow[]): { bars: ParsedBar[]; problems: DataProblem[] } {
  const problems: DataProblem[] = [];
  const bars: ParsedBar[] = [];
  // The previous row with a readable timestamp, valid or not: a row is compared with the row above it.
  let prev: { ts: number; row: number } | undefined;
  for (const { row, cells } of rows) {
    const lower: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(cells)) lower[k.trim().toLowerCase()] = v;
    const before = problems.length;
    const ts = parseTimestamp(lower.timestamp ?? lower.ts);
    if (typeof ts === 'string') problems.push({ row, column: 'timestamp', message: `timestamp ${ts}` });
    const num: Record<string, number> = {};
    for (const col of ['open', 'high', 'low', 'close', 'volume'] as const) {
      const n = toNumber(lower[col]);
      if (n === undefined) {
        problems.push({
          row,
          column: col,
          message: `${col} is not a number (${JSON.stringify(String(lower[col] ?? ''))})`,
        });
      } else if (!Number.isFinite(n)) {
        problems.push({ row, column: col, message: `${col} is ${n} (must be finite)` });
      } else num[col] = n;
    }
    for (const col of ['open', 'high', 'low', 'close'] as const) {
      if (num[col] !== undefined && !(num[col] > 0)) {
        problems.push({ row, column: col, message: `${col} must be > 0, got ${num[col]}` });
        delete num[col]; // no second, derived problem from the same cell
      }
    }
    const { open, high, low, close, volume } = num;
    if (high !== undefined && open !== undefined && close !== undefined && high < Math.max(open, close))
      problems.push({
        row,
        column: 'high',
        message: `high ${high} is below max(open, close) ${Math.max(open, close)}`,
      });
    if (low !== undefined && open !== undefined && close !== undefined && low > Math.min(open, close))
      problems.push({
        row,
        column: 'low',
        message: `low ${low} is above min(open, close) ${Math.min(open, close)}`,
      });
    if (volume !== undefined && volume < 0)
      problems.push({ row, column: 'volume', message: `volume must be >= 0, got ${volume}` });
    if (typeof ts === 'number' && prev) {
      if (ts === prev.ts)
        problems.push({
          row,
          column: 'timestamp',
          message: `duplicate timestamp ${iso(ts)} (row ${prev.row})`,
        });
      else if (ts < prev.ts)
        problems.push({
          row,
          column: 'timestamp',
          message: `timestamp ${iso(ts)} is before the previous row's ${iso(prev.ts)} (must strictly increase)`,
        });
    }
    if (typeof ts === 'number') prev = { ts, row };
    if (problems.length > before || typeof ts !== 'number') continue;
    const sym = lower.symbol;
    const bar: ParsedBar = { row, ts, open: open!, high: high!, low: low!, close: close!, volume: volume! };
    if (typeof sym === 'string' && sym.trim() !== '') bar.symbol = sym.trim().toUpperCase();
    bars.push(bar);
  }
  return { bars, problems };
}

/** UTC day (YYYYMMDD) of an epoch-seconds timestamp. */
export function utcDay(ts: number): string {
  return new Date(ts * 1000).toISOString().slice(0, 10).replace(/-/g, '');
}

export function iso(ts: number): string {
  return new Date(ts * 1000).toISOString().replace('.000Z', 'Z');
}

/** Groups bars by UTC day, in order; days with fewer than `minRows` bars are problems. */
export function splitDays(
  bars: readonly ParsedBar[],
  minRows: number,
): { days: Map<string, ParsedBar[]>; problems: DataProblem[] } {
  const days = new Map<string, ParsedBar[]>();
  for (const b of bars) {
    const d = utcDay(b.ts);
    const list = days.get(d);
    if (list) list.push(b);
    else days.set(d, [b]);
  }
  const problems: DataProblem[] = [];
  for (const [day, list] of days) {
    if (list.length < minRows)
      problems.push({
        row: list[0]!.row,
        column: 'timestamp',
        message: `day ${day} has ${list.length} row${list.length === 1 ? '' : 's'}, fewer than the minimum ${minRows}`,
      });
  }
  return { days, problems };
}
