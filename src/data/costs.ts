/**
 * Per-symbol trading costs. A table ships with the package (`costs-table.json`: the universe plus a
 * `"*"` default); an override file (symbol → partial entry) can be merged over it.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ConfigError } from '../errors.js';

/** Trading costs for one symbol, handed to the training as costs.json. */
export interface CostEntry {
  symbol: string;
  taker_fee_bps: number;
  maker_fee_bps: number;
  median_spread_bps: number;
  slippage_bps_per_sigma: number;
}

export type CostFields = Omit<CostEntry, 'symbol'>;

/** symbol (or `"*"`, the default) → costs. Always holds `"*"`. */
export type CostTable = Readonly<Record<string, CostFields>>;

const bps = z.number().min(0).max(10_000);
const entrySchema = z.strictObject({
  taker_fee_bps: bps,
  maker_fee_bps: bps,
  median_spread_bps: bps,
  slippage_bps_per_sigma: bps,
});
const keySchema = z
  .string()
  .regex(/^(\*|[A-Z0-9]{2,24})$/, 'expected "*" or an upper-case symbol (A-Z, 0-9)');
const tableSchema = z.record(keySchema, entrySchema).refine((t) => '*' in t, 'missing the "*" default entry');
const overrideSchema = z.record(keySchema, entrySchema.partial());

const SHIPPED = new URL('./costs-table.json', import.meta.url);

function firstIssue(err: z.ZodError): string {
  const issue = err.issues[0]!;
  const path = issue.path.map(String).join('.');
  return `${path || '(root)'}: ${issue.message}`;
}

async function readJson(path: string | URL, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `${what} ${String(path)}: cannot read (${(err as NodeJS.ErrnoException).code ?? err})`,
      {
        cause: err,
      },
    );
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${what} ${String(path)}: invalid JSON (${(err as Error).message})`, {
      cause: err,
    });
  }
}

/**
 * The shipped cost table, with `overridePath` (a JSON object symbol → partial entry) merged over it.
 * A symbol absent from the shipped table is completed from `"*"`. Throws ConfigError naming the file
 * and the field.
 */
export async function loadCostTable(overridePath?: string): Promise<CostTable> {
  const shipped = tableSchema.safeParse(await readJson(SHIPPED, 'shipped cost table'));
  if (!shipped.success)
    throw new ConfigError(`shipped cost table ${SHIPPED.pathname}: ${firstIssue(shipped.error)}`);
  const table: Record<string, CostFields> = { ...shipped.data };
  if (overridePath !== undefined) {
    const parsed = overrideSchema.safeParse(await readJson(overridePath, 'costs override'));
    if (!parsed.success) throw new ConfigError(`costs override ${overridePath}: ${firstIssue(parsed.error)}`);
    for (const [symbol, partial] of Object.entries(parsed.data)) {
      table[symbol] = { ...(table[symbol] ?? table['*']!), ...partial };
    }
  }
  return Object.freeze(table);
}

/** The costs of `symbol`, falling back to the `"*"` default. Fields in a fixed order. */
export function costsFor(table: CostTable, symbol: string): CostEntry {
  const e = table[symbol] ?? table['*'];
  if (!e) throw new ConfigError(`cost table has no entry for ${symbol} and no "*" default`);
  return {
    symbol,
    taker_fee_bps: e.taker_fee_bps,
    maker_fee_bps: e.maker_fee_bps,
    median_spread_bps: e.median_spread_bps,
    slippage_bps_per_sigma: e.slippage_bps_per_sigma,
  };
}
