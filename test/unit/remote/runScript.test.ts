import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { loadRecipe } from '../../../src/recipes/loader.js';
import { buildRunScript, type RunContext } from '../../../src/remote/runScript.js';
import { cleanupTmp, recipeYaml, writeRecipeDir } from './fixtures.js';

afterAll(cleanupTmp);

const ctx: RunContext = {
  workdir: '/w',
  outdir: '/w/out',
  recipeDir: '/w/recipe',
  dataset: '/w/inputs/features.csv',
  costs: '/w/inputs/costs.json',
  symbol: 'BTCUSDT',
  date: '20240501',
  featureset: 'v1',
  jobId: 'train__BTCUSDT__20240501',
};

describe('buildRunScript', () => {
  it('is valid bash, quotes every value and holds no secret names or values', async () => {
    const dir = await writeRecipeDir(
      recipeYaml({
        train: ['echo {{symbol}} {{date}} {{epochs}}', 'python3 -c "print(1)" {{outdir}}'],
        timeoutSec: 60,
        vars: { epochs: '3' },
        env: { PYTHONUNBUFFERED: '1' },
        secrets: ['MY_TOKEN'],
      }),
    );
    const recipe = await loadRecipe(dir, { recipesDir: '/x' });
    const script = buildRunScript(recipe, { ...ctx, symbol: "$(touch /tmp/x)'`;" });
    execFileSync('bash', ['-n'], { input: script });
    // The step line hands bash exactly four words; the command word re-parses to the literal values.
    const line = script.split('\n').find((l) => l.startsWith('retrain_step 1 '))!;
    const words = execFileSync(
      'bash',
      ['-c', `set -- ${line.replace(/ \|\| retrain_finish.*$/, '').slice(13)}; printf '%s\\0' "$@"`],
      {
        encoding: 'utf8',
      },
    ).split('\0');
    expect(words.slice(0, 3)).toEqual(['1', '2', '60']);
    const argv = execFileSync('bash', ['-c', words[3]!.replace(/^echo/, "printf '%s\\0'")], {
      encoding: 'utf8',
    });
    expect(argv.split('\0').slice(0, -1)).toEqual(["$(touch /tmp/x)'`;", '20240501', '3']);
    expect(script).toContain("export PYTHONUNBUFFERED='1'");
    expect(script).not.toContain('MY_TOKEN');
  });

  it('refuses relative paths and an outdir outside the workdir', async () => {
    const recipe = await loadRecipe(await writeRecipeDir(recipeYaml({ train: 'true' })), {
      recipesDir: '/x',
    });
    expect(() => buildRunScript(recipe, { ...ctx, outdir: '/elsewhere' })).toThrow(
      /outdir must be inside workdir/,
    );
    expect(() => buildRunScript(recipe, { ...ctx, outdir: '/w' })).toThrow(/outdir must be inside workdir/);
    expect(() => buildRunScript(recipe, { ...ctx, dataset: 'rel/x.csv' })).toThrow(
      /dataset must be an absolute/,
    );
  });
});
