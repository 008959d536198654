import { readFileSync, existsSync } from 'node:fs';
import { InputError } from '../errors.js';

/** A symbol is 2–24 characters of A–Z and 0–9 (USDT perpetual tickers and the like). */
const SYMBOL_RE = /^[A-Z0-9]{2,24}$/;
// Any number of digits: `top100000` is a (too large) topN, never a symbol named TOP100000.
const TOP_RE = /^top(\d+)$/i;

let universeCache: string[] | undefined;

/** The shipped ranked universe, most liquid first. */
export function universe(): string[] {
  if (!universeCache) {
    const url = new URL('../data/universe.json', import.meta.url);
    universeCache = JSON.parse(readFileSync(url, 'utf8')) as string[];
  }
  return universeCache;
}

/** Validates and normalises (upper-cases) one symbol; throws InputError naming it. */
export function validateSymbol(raw: string): string {
  const s = raw.trim().toUpperCase();
  if (!SYMBOL_RE.test(s)) {
    throw new InputError(
      `invalid symbol ${JSON.stringify(raw.trim())}: symbols are 2-24 letters A-Z and digits 0-9`,
    );
  }
  return s;
}

function fromList(items: string[], origin: string): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const item of items) {
    if (item.trim() === '') continue;
    const s = validateSymbol(item);
    if (!seen.has(s)) {
      seen.add(s);
      out.push(s);
    }
  }
  if (out.length === 0) throw new InputError(`no symbols in ${origin}`);
  return out;
}

/**
 * Resolves `--symbols`: `topN` from the shipped universe, a CSV file path (first column, optional
 * header `symbol`), or a comma-separated list. Order is kept, duplicates dropped.
 */
export function resolveSymbols(arg: string, opts: { cwd?: string } = {}): string[] {
  const spec = arg.trim();
  const top = TOP_RE.exec(spec);
  if (top) {
    const n = Number(top[1]);
    const all = universe();
    if (n < 1 || n > all.length) {
      throw new InputError(
        `--symbols ${spec}: the shipped universe has ${all.length} symbols (top1..top${all.length})`,
      );
    }
    return all.slice(0, n);
  }
  const looksLikeFile = /\.(csv|txt)$/i.test(spec) || spec.includes('/');
  if (looksLikeFile && !spec.includes(',')) {
    const path = opts.cwd && !spec.startsWith('/') ? `${opts.cwd}/${spec}` : spec;
    if (existsSync(path)) {
      const lines = readFileSync(path, 'utf8').split(/\r?\n/);
      const first = lines.map((l) => l.split(',')[0] ?? '');
      if (first[0] && /^symbols?$/i.test(first[0].trim())) first.shift();
      return fromList(first, `file ${spec}`);
    }
    if (/\.(csv|txt)$/i.test(spec)) throw new InputError(`--symbols file not found: ${spec}`);
  }
  return fromList(spec.split(','), '--symbols');
}
