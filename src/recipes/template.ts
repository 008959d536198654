/**
 * Templating for recipe commands. Data (symbol, date, paths, recipe variables) enters a shell
 * command only through `renderCommand`, which single-quotes every value, so no value can ever
 * become shell syntax. Placeholders written inside quotes are refused, because a value quoted
 * twice (`"{{x}}"`) would not stay literal.
 */
import { RecipeError } from '../errors.js';

/** Placeholders the orchestrator fills in at run time; a recipe var may not use these names. */
export const BUILTIN_PLACEHOLDERS = [
  'symbol',
  'date',
  'featureset',
  'job_id',
  'workdir',
  'outdir',
  'dataset',
  'costs',
  'recipe_dir',
  'checkpoint_dir',
  'resume_from',
] as const;
export type BuiltinPlaceholder = (typeof BUILTIN_PLACEHOLDERS)[number];

const BUILTINS: ReadonlySet<string> = new Set(BUILTIN_PLACEHOLDERS);

export const VAR_NAME_RE = /^[a-z_][a-z0-9_]{0,63}$/;
export const VAR_VALUE_RE = /^[A-Za-z0-9 _.,:=+@%/-]{0,256}$/;
const VAR_VALUE_CHAR_RE = /[A-Za-z0-9 _.,:=+@%/-]/;
const PLACEHOLDER_RE = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g;
const PLACEHOLDER_AT_RE = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/y;

export function isBuiltinPlaceholder(name: string): name is BuiltinPlaceholder {
  return BUILTINS.has(name);
}

/**
 * POSIX single-quote quoting: the result is always one quoted shell word whose value is exactly
 * `value` (`'` becomes `'\''`). Throws for NUL bytes, which no shell word can hold.
 */
export function shellQuote(value: string): string {
  if (value.includes('\0')) throw new RecipeError('a value for a shell command contains a NUL byte');
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** Names of the `{{name}}` placeholders in `template`, in order of first appearance, no duplicates. */
export function listPlaceholders(template: string): string[] {
  const seen = new Set<string>();
  for (const m of template.matchAll(PLACEHOLDER_RE)) seen.add(m[1]!);
  return [...seen];
}

/**
 * Throws RecipeError when a placeholder sits inside single quotes, double quotes or backticks in
 * `template` (the value would then not be a separate, literal word). Conservative: a placeholder
 * inside `"$(...)"` is refused too.
 */
export function checkPlaceholderContext(template: string): void {
  type State = 'plain' | 'single' | 'double' | 'backtick' | 'ansi';
  let state: State = 'plain';
  let i = 0;
  while (i < template.length) {
    if (template.startsWith('{{', i)) {
      PLACEHOLDER_AT_RE.lastIndex = i;
      const m = PLACEHOLDER_AT_RE.exec(template);
      if (m) {
        if (state !== 'plain') {
          throw new RecipeError(
            `placeholder {{${m[1]}}} is inside quotes; write it bare (values are quoted automatically)`,
          );
        }
        i += m[0].length;
        continue;
      }
    }
    const c = template[i]!;
    switch (state) {
      case 'plain':
        if (c === '\\') i++;
        else if (c === "'") state = 'single';
        else if (c === '"') state = 'double';
        else if (c === '`') state = 'backtick';
        else if (c === '$' && template[i + 1] === "'") {
          state = 'ansi';
          i++;
        }
        break;
      case 'single':
        if (c === "'") state = 'plain';
        break;
      case 'ansi':
        if (c === '\\') i++;
        else if (c === "'") state = 'plain';
        break;
      case 'double':
        if (c === '\\') i++;
        else if (c === '"') state = 'plain';
        break;
      case 'backtick':
        if (c === '\\') i++;
        else if (c === '`') state = 'plain';
        break;
    }
    i++;
  }
}

/**
 * Replaces each `{{name}}` (spaces inside the braces allowed) with `shellQuote(vars[name])`.
 * Throws RecipeError naming an unknown placeholder, or one written inside quotes.
 */
export function renderCommand(template: string, vars: Record<string, string>): string {
  checkPlaceholderContext(template);
  return template.replace(PLACEHOLDER_RE, (_all, name: string) => {
    const value = Object.hasOwn(vars, name) ? vars[name] : undefined;
    if (value === undefined) throw new RecipeError(`unknown placeholder {{${name}}}`);
    return shellQuote(value);
  });
}

/** Throws RecipeError unless `name` is a valid recipe variable name (and not a built-in). */
export function validateVarName(name: string): void {
  if (!VAR_NAME_RE.test(name)) {
    throw new RecipeError(
      `recipe variable name ${JSON.stringify(name)} is not allowed (use ${VAR_NAME_RE.source})`,
    );
  }
  if (isBuiltinPlaceholder(name)) {
    throw new RecipeError(`recipe variable "${name}" uses a built-in placeholder name`);
  }
}

/**
 * Throws RecipeError unless `value` holds only letters, digits and ` _.,:=+@%/-` (at most 256).
 * The message shows the offending characters, never more of the value.
 */
export function validateVarValue(name: string, value: string): void {
  if (VAR_VALUE_RE.test(value)) return;
  const bad = [...new Set([...value].filter((c) => !VAR_VALUE_CHAR_RE.test(c)))];
  if (bad.length === 0) {
    throw new RecipeError(`recipe variable "${name}" is longer than 256 characters`);
  }
  const shown = bad
    .slice(0, 10)
    .map((c) => JSON.stringify(c))
    .join(' ');
  throw new RecipeError(`recipe variable "${name}" holds characters that are not allowed: ${shown}`);
}
