/**
 * A symbol's work dir on the host: `<workRoot>/<SYMBOL>/<YYYYMMDD_HHMMSSZ>`, claimed by creating it.
 */
import { mkdir } from 'node:fs/promises';
import { posix } from 'node:path';
import { InputError, TransportError } from '../errors.js';
import { shellQuote as q } from '../recipes/template.js';
import { ensureDir } from '../util/inPlaceFs.js';
import type { Transport } from './transport.js';

/** The dirs every work dir has: inputs, the recipe, the run's outputs. */
export const WORKDIR_SUBDIRS = ['inputs', 'recipe', 'out'] as const;

const SYMBOL_DIR_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Suffixes tried after the plain name (`_2` ... `_99`): runs of one symbol within one second. */
const MAX_SUFFIX = 99;

/** `YYYYMMDD_HHMMSSZ` in UTC. */
export function workdirName(now: Date): string {
  const iso = now.toISOString(); // 2024-05-01T12:34:56.789Z
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}_${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
}

/**
 * Creates `<workRoot>/<symbol>/<YYYYMMDD_HHMMSSZ>` (or the first of `_2`, `_3`, ... not taken)
 * with WORKDIR_SUBDIRS inside, in one exec: the dir is new and empty, so staging has nothing to
 * compare with on the host. An exclusive mkdir claims it, so two attempts never share one.
 * InputError for a symbol that is not a safe path segment.
 */
export async function claimWorkdir(
  t: Transport,
  workRoot: string,
  symbol: string,
  now: Date,
): Promise<string> {
  if (!SYMBOL_DIR_RE.test(symbol) || symbol.includes('..')) {
    throw new InputError(`symbol ${JSON.stringify(symbol)} cannot be used as a directory name`);
  }
  const parent = posix.join(workRoot, symbol);
  const base = posix.join(parent, workdirName(now));
  // The same machine: the same claim with node:fs, without starting a shell for it.
  if (t.kind === 'local') return claimHere(parent, base);
  const cmd = [
    `mkdir -p -- ${q(parent)} || exit 1`,
    `b=${q(base)}`,
    `for n in '' {2..${MAX_SUFFIX}}; do`,
    '  d=$b${n:+_$n}',
    `  if mkdir -- "$d" 2>/dev/null; then cd -- "$d" && mkdir -- ${WORKDIR_SUBDIRS.join(' ')} && printf '%s\\n' "$d"; exit; fi`,
    'done',
    'exit 3',
  ].join('\n');
  const r = await t.exec(cmd, { timeoutMs: 60_000 });
  const dir = r.stdout.trim();
  if (r.code !== 0 || (dir !== base && !dir.startsWith(`${base}_`))) {
    const why =
      r.code === 3 ? `${base} and ${MAX_SUFFIX - 1} more are taken` : r.stderr.trim().split('\n').pop();
    throw new TransportError(`cannot create a work dir under ${parent}: ${why || `exit ${r.code}`}`);
  }
  return dir;
}

async function claimHere(parent: string, base: string): Promise<string> {
  const fail = (why: string) => new TransportError(`cannot create a work dir under ${parent}: ${why}`);
  try {
    await ensureDir(parent);
  } catch (err) {
    throw fail((err as NodeJS.ErrnoException).code ?? String(err));
  }
  for (let n = 1; n <= MAX_SUFFIX; n++) {
    const dir = n === 1 ? base : `${base}_${n}`;
    try {
      await mkdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw fail((err as NodeJS.ErrnoException).code ?? String(err));
    }
    await Promise.all(WORKDIR_SUBDIRS.map((d) => mkdir(posix.join(dir, d))));
    return dir;
  }
  throw fail(`${base} and ${MAX_SUFFIX - 1} more are taken`);
}
