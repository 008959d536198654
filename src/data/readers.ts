/**
 * Reading a market data file into rows: CSV (header line, comma-separated) or Parquet (hyparquet,
 * snappy and uncompressed pages). Values are left as read; contract.ts validates them.
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { parquetMetadata, parquetReadObjects, parquetSchema } from 'hyparquet';
import type { RawRow } from './contract.js';

export interface ReadTable {
  columns: string[];
  rows: RawRow[];
}

export type TableFormat = 'csv' | 'parquet';

/** By extension; Parquet files also by their `PAR1` magic, so a renamed file is still read right. */
export function formatOf(path: string, head: Buffer): TableFormat {
  if (head.subarray(0, 4).toString('latin1') === 'PAR1') return 'parquet';
  return extname(path).toLowerCase() === '.parquet' ? 'parquet' : 'csv';
}

/** Reads a file; throws Error with a short message when it is not readable as its format. */
export async function readTable(path: string): Promise<ReadTable & { format: TableFormat }> {
  const bytes = await readFile(path);
  const format = formatOf(path, bytes);
  return { format, ...(format === 'parquet' ? await readParquet(bytes) : readCsv(bytes.toString('utf8'))) };
}

/** Splits one CSV line; double-quoted cells may hold commas ("" is a quote). */
function splitCsvLine(line: string): string[] {
  if (!line.includes('"')) return line.split(',');
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

/** Row numbers are file line numbers (the header is line 1); blank lines are skipped. */
export function readCsv(text: string): ReadTable {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const columns = splitCsvLine(lines[0] ?? '').map((c) => c.trim());
  const rows: RawRow[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    const values = splitCsvLine(line);
    const cells: Record<string, unknown> = {};
    columns.forEach((c, j) => (cells[c] = values[j]));
    rows.push({ row: i + 1, cells });
  }
  return { columns, rows };
}

/** Row numbers are 1-based row indexes. */
export async function readParquet(bytes: Buffer): Promise<ReadTable> {
  const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const metadata = parquetMetadata(file);
  const columns = parquetSchema(metadata).children.map((c) => c.element.name);
  const objects = await parquetReadObjects({ file, metadata });
  return { columns, rows: objects.map((cells, i) => ({ row: i + 1, cells })) };
}
