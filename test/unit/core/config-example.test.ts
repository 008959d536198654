import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { loadConfig } from '../../../src/config/load.js';
import { ConfigSchema } from '../../../src/config/schema.js';
import { REPO } from '../../helpers/harness.js';

const EXAMPLE = join(REPO, 'retrain.config.example.yaml');
const text = readFileSync(EXAMPLE, 'utf8');
const env = { RETRAIN_HOME: '/srv/retrain-test' };

/** Every key path of the schema: objects are walked, both variants of a union (store) too. */
function schemaPaths(schema: z.ZodType, prefix = ''): string[] {
  const def = (schema as unknown as { _zod: { def: Record<string, unknown> } })._zod.def;
  switch (def.type) {
    case 'optional':
    case 'default':
    case 'nullable':
      return schemaPaths(def.innerType as z.ZodType, prefix);
    case 'pipe':
      return schemaPaths(def.in as z.ZodType, prefix);
    case 'union':
      return [...new Set((def.options as z.ZodType[]).flatMap((o) => schemaPaths(o, prefix)))];
    case 'object': {
      const shape = def.shape as Record<string, z.ZodType>;
      return Object.entries(shape).flatMap(([k, v]) => {
        const p = prefix ? `${prefix}.${k}` : k;
        const inner = schemaPaths(v, p);
        return [p, ...inner.filter((x) => x !== p)];
      });
    }
    default:
      return prefix ? [prefix] : [];
  }
}

interface KeyLine {
  path: string;
  line: number;
  documented: boolean;
}

/**
 * Key paths written in the example, set ("key: v") or shown commented out ("# key: v"), by
 * indentation. Documented: a trailing comment, or a comment line right above that is prose.
 */
function exampleKeys(src: string): Map<string, KeyLine> {
  const lines = src.split('\n');
  const stack: { indent: number; key: string }[] = [];
  const out = new Map<string, KeyLine>();
  const keyRe = /^(\s*)(#\s)?([A-Za-z][A-Za-z0-9_]*):(\s|$)(.*)$/;
  lines.forEach((raw, i) => {
    const m = keyRe.exec(raw);
    if (!m) return;
    const indent = m[1]!.length;
    const commented = m[2] !== undefined;
    const rest = m[5]!;
    while (stack.length && stack[stack.length - 1]!.indent >= indent) stack.pop();
    const path = [...stack.map((s) => s.key), m[3]!].join('.');
    const trailing = commented ? / #\s/.test(rest) || /^#\s/.test(rest.trim()) : /(^|\s)#\s/.test(rest);
    const prev = lines[i - 1]?.trim() ?? '';
    const aboveIsProse = prev.startsWith('#') && !keyRe.test(lines[i - 1]!);
    if (!out.has(path)) out.set(path, { path, line: i + 1, documented: trailing || aboveIsProse });
    const value = rest.replace(/\s#.*$/, '').trim();
    if (value === '' || value.startsWith('#')) stack.push({ indent, key: m[3]! });
  });
  return out;
}

describe('retrain.config.example.yaml', () => {
  it('loads through loadConfig and equals the embedded defaults (it sets the reference recipe vars explicitly)', () => {
    const fromExample = loadConfig({ env, cwd: REPO, file: EXAMPLE });
    const defaults = loadConfig({ env, cwd: '/tmp/nowhere' });
    expect({ ...fromExample, recipeVars: {} }).toEqual(defaults);
  });

  it("carries the original system's defaults", () => {
    const c = loadConfig({ env, cwd: REPO, file: EXAMPLE });
    expect(c.symbols).toBe('top20');
    expect(c.vast.gpuNames).toEqual(['RTX_3090', 'RTX_4090', 'A100']);
    expect(c.vast.maxHourlyCost).toBe(1.0);
    expect(c.vast.minGpuMemoryGb).toBe(16);
    expect(c.vast.maxRuntimeMin).toBe(60);
    expect(c.promotion.mode).toBe('off');
    expect(c.schedule).toMatchObject({ enabled: true, cron: '15 0 * * *', tz: 'UTC' });
  });

  it("sets the model parameters to the reference recipe's own defaults", () => {
    const recipe = parseYaml(readFileSync(join(REPO, 'recipes/reference/recipe.yaml'), 'utf8')) as {
      vars: Record<string, string>;
    };
    const c = loadConfig({ env, cwd: REPO, file: EXAMPLE });
    expect(c.recipe).toBe('reference');
    expect(c.recipeVars).toEqual(recipe.vars);
  });

  it('documents every field of the schema, each with a comment', () => {
    const written = exampleKeys(text);
    const missing = schemaPaths(ConfigSchema).filter((p) => !written.has(p));
    expect(missing, `fields of src/config/schema.ts missing from the example`).toEqual([]);
    const undocumented = [...written.values()]
      .filter((k) => schemaPaths(ConfigSchema).includes(k.path) && !k.documented)
      .map((k) => `${k.path} (line ${k.line})`);
    expect(undocumented, 'fields without a comment').toEqual([]);
  });

  it('every field it shows commented out is a real one: uncommented, the file still loads', () => {
    // Optional fields shown as "# name: value" must be valid when set (the s3 store block aside:
    // it replaces the local one).
    const s3Start = text.indexOf('  # kind: s3');
    const s3End = text.indexOf('\n\n', s3Start);
    const local = text.slice(0, s3Start) + text.slice(s3End);
    const uncommented = local.replace(/^(\s*)# ([A-Za-z][A-Za-z0-9_]*: .*)$/gm, '$1$2');
    expect(uncommented).not.toBe(local);
    const parsed = parseYaml(uncommented) as Record<string, unknown>;
    expect(() => loadConfig({ env, cwd: REPO, overrides: parsed })).not.toThrow();
    const s3 = text
      .slice(s3Start, s3End)
      .replace(/^(\s*)# /gm, '$1')
      .replace(/<account>/, 'acct');
    const store = parseYaml(`store:\n${s3}`) as { store: Record<string, unknown> };
    expect(loadConfig({ env, cwd: REPO, overrides: store }).store).toMatchObject({ kind: 's3' });
  });
});
