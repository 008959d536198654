/**
 * Loads a recipe (shipped name, directory or file), validates it completely, merges variable
 * overrides and hashes it. Every failure is a RecipeError whose message is ONE line:
 * `recipe <file>: <what is wrong>`.
 */
import { createHash } from 'node:crypto';
import { readdirSync, realpathSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import { RecipeError } from '../errors.js';
import { readIfSmall, sha256File, sha256Hex } from '../util/hash.js';
import { readSmallInPlace, statInPlace } from '../util/inPlaceFs.js';
import { describeIssues, RECIPE_NAME_RE, RecipeSchema, type RecipeDef } from './schema.js';
import { isBuiltinPlaceholder, validateVarValue } from './template.js';

export interface LoadedFile {
  /** Plain name, as listed in the recipe's `files`. */
  name: string;
  /** Absolute local path. */
  path: string;
  sha256: string;
  /**
   * The bytes that were hashed, for a small file (HELD_FILE_BYTES, HELD_TOTAL_BYTES in all): staged
   * from memory, so what reaches the host is what was hashed, and the file is not read again.
   */
  data?: Buffer;
}

export interface LoadedRecipe {
  def: RecipeDef;
  name: string;
  version: number;
  /** Absolute path of the recipe file. */
  file: string;
  /** Absolute directory holding the recipe file and its shipped files. */
  dir: string;
  /** Recipe defaults merged with the overrides (all validated). */
  vars: Record<string, string>;
  /** Shipped files, sorted by name. */
  files: LoadedFile[];
  /** SHA-256 over the recipe file bytes and each shipped file's name + SHA-256 (deterministic). */
  sha256: string;
  /** SHA-256 of the recipe file's own bytes (as read and validated here). */
  fileSha256: string;
  /** Those bytes. */
  fileBytes: Buffer;
}

/** A shipped file of at most this many bytes is held in memory once hashed (LoadedFile.data). */
const HELD_FILE_BYTES = 1024 * 1024;
/** Most bytes of shipped files a loaded recipe holds in all. */
const HELD_TOTAL_BYTES = 4 * 1024 * 1024;

export interface LoadRecipeOptions {
  /** Root of the shipped recipes (`<repo>/recipes`): a bare name resolves to `<dir>/<name>/`. */
  recipesDir: string;
  /** Variable overrides given at enqueue time; each must name a declared variable. */
  overrides?: Record<string, string>;
}

const RECIPE_FILE_NAMES = ['recipe.yaml', 'recipe.yml', 'recipe.json'];

/** `<repo>/recipes`, found from this module's location. */
export function shippedRecipesDir(): string {
  return fileURLToPath(new URL('../../recipes/', import.meta.url)).replace(/[\\/]$/, '');
}

/**
 * Resolves and loads a recipe. `ref` is a shipped recipe name (matching the recipe name pattern),
 * a directory containing recipe.yaml|recipe.yml|recipe.json, or a recipe file path. Guarantees on
 * success: the definition is schema-valid, every shipped file exists as a regular file inside the
 * recipe directory, every override names a declared variable and holds only allowed characters.
 */
export async function loadRecipe(fullRef: string, opts: LoadRecipeOptions): Promise<LoadedRecipe> {
  const { ref, version: wanted } = splitVersion(fullRef);
  const shippedName = RECIPE_NAME_RE.test(ref) ? ref : undefined;
  const file = await resolveRecipeFile(ref, opts.recipesDir, shippedName);
  const fail = (what: string): never => {
    throw new RecipeError(`recipe ${file}: ${oneLine(what)}`);
  };

  let bytes: Buffer;
  try {
    // A worker loads its recipe for every symbol: a small one is read in place (inPlaceFs.ts).
    bytes = readSmallInPlace(file) ?? (await readFile(file));
  } catch (err) {
    return fail(`cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  const def = parseDefinition(bytes.toString('utf8'), fail);

  if (shippedName !== undefined && def.name !== shippedName) {
    fail(`name "${def.name}" does not match the shipped recipe directory "${shippedName}"`);
  }
  if (wanted !== undefined && def.version !== wanted) {
    throw new RecipeError(
      `recipe ${fullRef}: version ${wanted} is not available (${file} is version ${def.version}; use ${ref}@${def.version} or ${ref})`,
    );
  }
  const dir = dirname(file);
  if (def.files.includes(basename(file))) fail(`files: "${basename(file)}" is the recipe file itself`);

  const vars = mergeOverrides(def, opts.overrides ?? {}, fail);
  const held = { bytes: 0 };
  const files = await hashShippedFiles(def.files, dir, fail, held);
  if (shippedName !== undefined) files.push(...(await sharedFiles(opts.recipesDir, files, fail, held)));
  return {
    def,
    name: def.name,
    version: def.version,
    file,
    dir,
    vars,
    files,
    sha256: recipeHash(bytes, files),
    fileSha256: sha256Hex(bytes),
    fileBytes: bytes,
  };
}

/**
 * `name@3` → `{ref: 'name', version: 3}`; a ref without `@<digits>` at its end is taken whole
 * (a path may hold an `@` elsewhere).
 */
export function splitVersion(ref: string): { ref: string; version?: number } {
  const m = /^(.+)@(\d{1,6})$/.exec(ref);
  if (!m) return { ref };
  return { ref: m[1]!, version: Number(m[2]) };
}

async function resolveRecipeFile(ref: string, recipesDir: string, shippedName?: string): Promise<string> {
  const target = shippedName !== undefined ? join(resolve(recipesDir), shippedName) : resolve(ref);
  const st = statInPlace(target);
  if (!st) {
    const what = shippedName !== undefined ? `no shipped recipe named "${shippedName}"` : 'not found';
    throw new RecipeError(`recipe ${target}: ${what}`);
  }
  if (!st.isDirectory()) return target;
  for (const name of RECIPE_FILE_NAMES) {
    const candidate = join(target, name);
    const cst = statInPlace(candidate);
    if (cst?.isFile()) return candidate;
  }
  throw new RecipeError(`recipe ${target}: directory holds no ${RECIPE_FILE_NAMES.join(', ')}`);
}

/**
 * The validated definition of a recipe's text. A worker loads its recipe once per symbol, and the
 * YAML parse and schema check were ~0.6 ms of each: the same text gives the same definition, so a
 * few recent ones are kept (frozen, as every caller shares them). The file is still read and hashed
 * each time, so an edited recipe is parsed afresh.
 */
function parseDefinition(text: string, fail: (what: string) => never): RecipeDef {
  const known = parsedDefs.get(text);
  if (known) return known;
  const parsed = RecipeSchema.safeParse(parseRecipeText(text, fail));
  if (!parsed.success) return fail(describeIssues(parsed.error.issues));
  const def = deepFreeze(parsed.data);
  if (parsedDefs.size >= PARSED_DEFS_KEPT) parsedDefs.delete(parsedDefs.keys().next().value!);
  parsedDefs.set(text, def);
  return def;
}

const PARSED_DEFS_KEPT = 16;
const parsedDefs = new Map<string, RecipeDef>();

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** YAML (a superset of JSON) with unique keys; syntax errors carry line and column. */
function parseRecipeText(text: string, fail: (what: string) => never): unknown {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  const first = doc.errors[0];
  if (first) {
    const pos = first.linePos?.[0];
    const msg = (first.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
    const where = pos ? ` at line ${pos.line}, column ${pos.col}` : '';
    return fail(`syntax error${where}: ${msg}`);
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    return fail(`invalid YAML: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (value === null || value === undefined) return fail('is empty');
  if (typeof value !== 'object' || Array.isArray(value)) return fail('top level must be a mapping of fields');
  return value;
}

function mergeOverrides(
  def: RecipeDef,
  overrides: Record<string, string>,
  fail: (what: string) => never,
): Record<string, string> {
  const vars: Record<string, string> = { ...def.vars };
  for (const [name, value] of Object.entries(overrides)) {
    if (isBuiltinPlaceholder(name)) fail(`override "${name}" is a built-in placeholder and cannot be set`);
    if (!Object.hasOwn(def.vars, name)) {
      const declared = Object.keys(def.vars).sort().join(', ') || 'none';
      fail(`override names unknown variable "${name}" (declared: ${declared})`);
    }
    if (typeof value !== 'string') fail(`override "${name}" must be a string`);
    try {
      validateVarValue(name, value);
    } catch (err) {
      fail(`override: ${(err as Error).message}`);
    }
    vars[name] = value;
  }
  return vars;
}

async function hashShippedFiles(
  names: string[],
  dir: string,
  fail: (what: string) => never,
  held: { bytes: number },
): Promise<LoadedFile[]> {
  const realDir = realpathSync.native(dir);
  const out: LoadedFile[] = [];
  for (const name of [...names].sort()) {
    const path = join(dir, name);
    const st = statInPlace(path);
    if (!st) fail(`files: "${name}" does not exist beside the recipe`);
    if (!st!.isFile()) fail(`files: "${name}" is not a regular file`);
    const real = realpathSync.native(path);
    const rel = relative(realDir, real);
    if (rel.startsWith('..') || isAbsolute(rel) || rel.includes(sep)) {
      fail(`files: "${name}" points outside the recipe directory`);
    }
    out.push(await loadFile(name, path, held));
  }
  return out;
}

/** A shipped file hashed, its bytes kept when small and within the recipe's budget. */
async function loadFile(name: string, path: string, held: { bytes: number }): Promise<LoadedFile> {
  const whole = await readIfSmall(path);
  if (!whole) return { name, path, sha256: (await sha256File(path)).sha256 };
  const sha256 = sha256Hex(whole);
  if (whole.length > HELD_FILE_BYTES || held.bytes + whole.length > HELD_TOTAL_BYTES) {
    return { name, path, sha256 };
  }
  held.bytes += whole.length;
  return { name, path, sha256, data: whole };
}

/** Helpers the shipped recipes share (recipes/_shared/), shipped beside each one's own files. */
export const SHARED_RECIPE_DIR = '_shared';

/**
 * The files of `<recipesDir>/_shared/`, which travel with every shipped recipe (staged under
 * recipe/ like its own files, and part of its hash). None when the directory does not exist.
 */
async function sharedFiles(
  recipesDir: string,
  own: LoadedFile[],
  fail: (what: string) => never,
  held: { bytes: number },
): Promise<LoadedFile[]> {
  const dir = join(resolve(recipesDir), SHARED_RECIPE_DIR);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    names = [];
  }
  const out: LoadedFile[] = [];
  for (const name of names.sort()) {
    const path = join(dir, name);
    if (!statSync(path).isFile()) continue;
    if (own.some((f) => f.name === name)) fail(`files: "${name}" is also a shared recipe helper`);
    out.push(await loadFile(name, path, held));
  }
  return out;
}

/** sha256(recipe bytes, then for each file sorted by name: NUL name NUL sha256). */
export function recipeHash(recipeBytes: Buffer, files: readonly { name: string; sha256: string }[]): string {
  const h = createHash('sha256').update(recipeBytes);
  for (const f of [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    h.update(`\0${f.name}\0${f.sha256}`);
  }
  return h.digest('hex');
}

function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, ' ').trim();
}
