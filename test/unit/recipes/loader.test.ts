import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RecipeError } from '../../../src/errors.js';
import { loadRecipe, shippedRecipesDir } from '../../../src/recipes/loader.js';
import { LocalTransport } from '../../../src/remote/localTransport.js';
import { recipeStageFiles, stageRun } from '../../../src/remote/stage.js';
import { secretEnv } from '../../../src/recipes/secrets.js';
import { sha256Hex } from '../../../src/util/hash.js';
import { cleanupTmp, makeTmp, writeRecipeDir } from '../remote/fixtures.js';

afterAll(cleanupTmp);

const VALID = `name: reference
version: 2
description: "test recipe"
image: python:3.11-slim
files: [train.py, util.py]
vars:
  epochs: 30
  lr: "0.01"
env:
  PYTHONUNBUFFERED: "1"
secrets: [HF_TOKEN]
setup:
  - python3 --version
train:
  - run: python3 {{recipe_dir}}/train.py --dataset {{dataset}} --out {{outdir}} --epochs {{ epochs }} --lr {{lr}}
    timeoutSec: 3600
outputs:
  required: [model.bin, metrics.json]
  optional: [features.json]
partial: [features.json]
`;
const FILES = { 'train.py': 'print("train")\n', 'util.py': 'X = 1\n' };

/** Loads and returns the RecipeError message (fails the test when loading succeeds). */
async function loadError(dir: string, overrides?: Record<string, string>): Promise<string> {
  try {
    await loadRecipe(dir, { recipesDir: '/nonexistent', ...(overrides ? { overrides } : {}) });
  } catch (err) {
    expect(err).toBeInstanceOf(RecipeError);
    const msg = (err as Error).message;
    expect(msg).not.toContain('\n');
    return msg;
  }
  throw new Error('expected loadRecipe to fail');
}

describe('loadRecipe', () => {
  it('loads a valid recipe, normalises steps and coerces numbers to strings', async () => {
    const dir = await writeRecipeDir(VALID, FILES);
    const r = await loadRecipe(dir, { recipesDir: '/nonexistent', overrides: { epochs: '5' } });
    expect(r.name).toBe('reference');
    expect(r.version).toBe(2);
    expect(r.file).toBe(join(dir, 'recipe.yaml'));
    expect(r.dir).toBe(dir);
    expect(r.vars).toEqual({ epochs: '5', lr: '0.01' });
    expect(r.def.vars).toEqual({ epochs: '30', lr: '0.01' });
    expect(r.def.setup).toEqual([{ run: 'python3 --version' }]);
    expect(r.def.train[0]!.timeoutSec).toBe(3600);
    expect(r.def.gpu).toBe(false);
    expect(r.files.map((f) => f.name)).toEqual(['train.py', 'util.py']);
    expect(r.files[0]!.sha256).toMatch(/^[0-9a-f]{64}$/);
    // The recipe file's own hash, which staging sends with it for the host's check.
    expect(r.fileSha256).toBe(sha256Hex(await readFile(join(dir, 'recipe.yaml'))));
  });

  it('loads a recipe read from a pipe (a process substitution) as it loads the file', async () => {
    const text = VALID.replace('files: [train.py, util.py]\n', '');
    const dir = await makeTmp();
    const fifo = join(dir, 'recipe.pipe');
    execFileSync('mkfifo', [fifo]);
    const writer = spawn('sh', ['-c', 'printf %s "$T" > "$F"'], {
      env: { ...process.env, T: text, F: fifo },
    });
    const written = new Promise((resolve) => writer.once('exit', resolve));
    const r = await loadRecipe(fifo, { recipesDir: '/nonexistent' });
    expect(await written).toBe(0);
    expect(r.name).toBe('reference');
    expect(r.fileSha256).toBe(sha256Hex(text));
  });

  it('resolves a file path, a directory, a JSON recipe and a shipped name', async () => {
    const dir = await writeRecipeDir(VALID, FILES);
    expect((await loadRecipe(join(dir, 'recipe.yaml'), { recipesDir: '/x' })).name).toBe('reference');

    const root = await makeTmp();
    await mkdir(join(root, 'reference'));
    await writeFile(
      join(root, 'reference', 'recipe.json'),
      JSON.stringify({
        name: 'reference',
        version: 1,
        train: ['echo {{symbol}}'],
        outputs: { required: ['model.bin'] },
      }),
    );
    const shipped = await loadRecipe('reference', { recipesDir: root });
    expect(shipped.file).toBe(join(root, 'reference', 'recipe.json'));
    expect(shipped.def.train).toEqual([{ run: 'echo {{symbol}}' }]);
    await expect(loadRecipe('nope', { recipesDir: root })).rejects.toThrow(/no shipped recipe named "nope"/);
  });

  it('ships the shared helpers (recipes/_shared/) with a shipped recipe, and counts them in its hash', async () => {
    const root = await makeTmp();
    await mkdir(join(root, 'reference'));
    await writeFile(join(root, 'reference', 'recipe.yaml'), VALID);
    for (const [name, body] of Object.entries(FILES)) await writeFile(join(root, 'reference', name), body);
    const before = await loadRecipe('reference', { recipesDir: root });
    expect(before.files.map((f) => f.name)).toEqual(['train.py', 'util.py']);

    await mkdir(join(root, '_shared'));
    await writeFile(join(root, '_shared', 'retrain_recipe.py'), 'SHARED = 1\n');
    const shipped = await loadRecipe('reference', { recipesDir: root });
    expect(shipped.files.map((f) => [f.name, f.path])).toEqual([
      ['train.py', join(root, 'reference', 'train.py')],
      ['util.py', join(root, 'reference', 'util.py')],
      ['retrain_recipe.py', join(root, '_shared', 'retrain_recipe.py')],
    ]);
    expect(shipped.sha256).not.toBe(before.sha256);
    // A recipe given by path is not a shipped one: it carries only what it lists.
    const byPath = await loadRecipe(join(root, 'reference'), { recipesDir: root });
    expect(byPath.files.map((f) => f.name)).toEqual(['train.py', 'util.py']);
    // A recipe file of the same name as a helper is refused, not silently replaced.
    await writeFile(join(root, '_shared', 'util.py'), 'Y = 2\n');
    await expect(loadRecipe('reference', { recipesDir: root })).rejects.toThrow(
      /"util.py" is also a shared recipe helper/,
    );
  });

  it('the shipped recipes carry recipes/_shared/retrain_recipe.py', async () => {
    for (const name of ['reference', 'xgboost-gpu']) {
      const r = await loadRecipe(name, { recipesDir: shippedRecipesDir() });
      expect(r.files.map((f) => f.name)).toEqual(['train.py', 'retrain_recipe.py']);
    }
  });

  it('hashes deterministically over the recipe bytes and shipped files', async () => {
    const a = await writeRecipeDir(VALID, FILES);
    const b = await writeRecipeDir(VALID, FILES);
    const ra = await loadRecipe(a, { recipesDir: '/x' });
    expect((await loadRecipe(a, { recipesDir: '/x', overrides: { epochs: '1' } })).sha256).toBe(ra.sha256);
    expect((await loadRecipe(b, { recipesDir: '/x' })).sha256).toBe(ra.sha256);
    await writeFile(join(b, 'util.py'), 'X = 2\n');
    expect((await loadRecipe(b, { recipesDir: '/x' })).sha256).not.toBe(ra.sha256);
  });

  it('loads an edited recipe afresh, and a recipe shared by loads cannot be changed by one of them', async () => {
    const dir = await writeRecipeDir(VALID, FILES);
    const first = await loadRecipe(dir, { recipesDir: '/x' });
    const again = await loadRecipe(dir, { recipesDir: '/x' });
    expect(again.def).toEqual(first.def);
    expect(() => (again.def.train as unknown[]).push('rm -rf /')).toThrow(TypeError);
    expect(() => Object.assign(again.def, { name: 'other' })).toThrow(TypeError);
    const file = join(dir, 'recipe.yaml');
    await writeFile(file, (await readFile(file, 'utf8')).replace(/^version: \d+$/m, 'version: 7'));
    const edited = await loadRecipe(dir, { recipesDir: '/x' });
    expect(edited.version).toBe(7);
    expect(edited.def.version).toBe(7);
    expect(edited.fileSha256).not.toBe(first.fileSha256);
    // Broken after a good load: the error, never the definition it had.
    await writeFile(file, 'name: x\nversion: 1\ntrain:\n  - run: a\n   bad: [\n');
    await expect(loadRecipe(dir, { recipesDir: '/x' })).rejects.toThrow(/syntax error at line 5/);
  });

  it('stages the bytes it validated: an edit after loading does not reach the host, a large file travels from disk', async () => {
    const big = 'x'.repeat(1024 * 1024 + 1);
    const dir = await writeRecipeDir(
      VALID.replace('files: [train.py, util.py]', 'files: [train.py, util.py, big.bin]'),
      {
        ...FILES,
        'big.bin': big,
      },
    );
    const r = await loadRecipe(dir, { recipesDir: '/x' });
    expect(r.files.find((f) => f.name === 'train.py')?.data?.toString()).toBe(FILES['train.py']);
    expect(r.files.find((f) => f.name === 'big.bin')?.data).toBeUndefined();
    const original = await readFile(join(dir, 'recipe.yaml'), 'utf8');
    await writeFile(join(dir, 'recipe.yaml'), original + '# edited after loading\n');
    await writeFile(join(dir, 'train.py'), 'print("edited")\n');

    const workdir = join(await makeTmp(), 'w');
    await stageRun(new LocalTransport(), {
      workdir,
      files: await recipeStageFiles(r),
      script: '#!/usr/bin/env bash\n',
    });
    expect(await readFile(join(workdir, 'recipe', 'recipe.yaml'), 'utf8')).toBe(original);
    expect(await readFile(join(workdir, 'recipe', 'train.py'), 'utf8')).toBe(FILES['train.py']);
    expect(await readFile(join(workdir, 'recipe', 'big.bin'), 'utf8')).toBe(big);
    // The large one is read at staging: changed since loading, it fails the check on the host.
    await writeFile(join(dir, 'big.bin'), big.replace(/x$/, 'y'));
    await expect(
      stageRun(new LocalTransport(), {
        workdir: join(await makeTmp(), 'w2'),
        files: await recipeStageFiles(r),
        script: '#!/usr/bin/env bash\n',
      }),
    ).rejects.toThrow(/staged file recipe\/big\.bin has sha256 [0-9a-f]{64} on the host, expected/);
  });

  it('reports a YAML syntax error with its line', async () => {
    const dir = await writeRecipeDir('name: x\nversion: 1\ntrain:\n  - run: a\n   bad: [\n');
    const msg = await loadError(dir);
    expect(msg).toMatch(new RegExp(`^recipe ${join(dir, 'recipe.yaml')}: syntax error at line \\d+`));
  });

  it('reports duplicate keys with their line', async () => {
    const dir = await writeRecipeDir('name: x\nname: y\n');
    expect(await loadError(dir)).toMatch(/syntax error at line 2, column 1: Map keys must be unique/);
  });

  it('names unknown fields and where they are', async () => {
    const nested = await writeRecipeDir(
      VALID.replace('    timeoutSec: 3600', '    timeoutSec: 3600\n    foo: 1'),
      FILES,
    );
    expect(await loadError(nested)).toMatch(/: unknown field "foo" at train\[0\]$/);
    const top = await writeRecipeDir(`${VALID}colour: blue\n`, FILES);
    expect(await loadError(top)).toMatch(/unknown field "colour" at top level/);
  });

  it('reports schema errors with their path', async () => {
    const dir = await writeRecipeDir(VALID.replace('timeoutSec: 3600', 'timeoutSec: -1'), FILES);
    expect(await loadError(dir)).toMatch(/train\[0\]\.timeoutSec: /);
    const noTrain = await writeRecipeDir('name: x\nversion: 1\ntrain: []\noutputs: {required: [m]}\n');
    expect(await loadError(noTrain)).toMatch(/train: needs at least one step/);
  });

  it('names an unknown placeholder at load time', async () => {
    const dir = await writeRecipeDir(VALID.replace('{{lr}}', '{{learning_rate}}'), FILES);
    expect(await loadError(dir)).toMatch(/train\[0\]\.run: unknown placeholder \{\{learning_rate\}\}/);
  });

  it('refuses a placeholder inside quotes', async () => {
    const dir = await writeRecipeDir(VALID.replace('--lr {{lr}}', '--lr "{{lr}}"'), FILES);
    expect(await loadError(dir)).toMatch(/train\[0\]\.run: placeholder \{\{lr\}\} is inside quotes/);
  });

  it('refuses bad overrides', async () => {
    const dir = await writeRecipeDir(VALID, FILES);
    expect(await loadError(dir, { epoch: '3' })).toMatch(/unknown variable "epoch" \(declared: epochs, lr\)/);
    expect(await loadError(dir, { epochs: '$(touch /tmp/pwned)' })).toMatch(
      /recipe variable "epochs" holds characters that are not allowed/,
    );
    expect(await loadError(dir, { symbol: 'X' })).toMatch(/built-in/);
  });

  it('refuses vars with built-in names or unsafe defaults, and bad env/secrets', async () => {
    expect(
      await loadError(await writeRecipeDir(VALID.replace('  lr: "0.01"', '  symbol: BTC'), FILES)),
    ).toMatch(/vars\.symbol: "symbol" is a built-in/);
    expect(await loadError(await writeRecipeDir(VALID.replace('"0.01"', '"a;b"'), FILES))).toMatch(
      /vars\.lr: .*not allowed: ";"/,
    );
    expect(await loadError(await writeRecipeDir(VALID.replace('[HF_TOKEN]', '[hf-token]'), FILES))).toMatch(
      /secrets\[0\]/,
    );
  });

  it('names a missing shipped file', async () => {
    const dir = await writeRecipeDir(VALID, { 'train.py': 'x' });
    expect(await loadError(dir)).toMatch(/files: "util.py" does not exist beside the recipe/);
    const traversal = await writeRecipeDir(VALID.replace('util.py]', '../util.py]'), FILES);
    expect(await loadError(traversal)).toMatch(/files\[1\]: must be a plain file name/);
  });

  it('refuses outputs the orchestrator writes and partials that are not outputs', async () => {
    expect(
      await loadError(await writeRecipeDir(VALID.replace('metrics.json]', 'train.log]'), FILES)),
    ).toMatch(/"train.log" is written by the orchestrator/);
    expect(
      await loadError(
        await writeRecipeDir(VALID.replace('partial: [features.json]', 'partial: [x.json]'), FILES),
      ),
    ).toMatch(/partial: "x.json" is not listed in outputs/);
  });

  it('reports a missing recipe and an empty one', async () => {
    await expect(loadRecipe('/nonexistent/recipe.yaml', { recipesDir: '/x' })).rejects.toThrow(
      /^recipe \/nonexistent\/recipe.yaml: not found$/,
    );
    expect(await loadError(await writeRecipeDir(''))).toMatch(/is empty$/);
  });
});

describe('shippedRecipesDir', () => {
  it('is <repo>/recipes', () => {
    const dir = shippedRecipesDir();
    expect(dir.endsWith('/recipes')).toBe(true);
    expect(existsSync(join(dir, '..', 'package.json'))).toBe(true);
  });
});

describe('secretEnv', () => {
  it('takes declared secrets from the source env and never prints values', () => {
    const recipe = { def: { secrets: ['A_TOKEN'] }, file: '/r/recipe.yaml' };
    expect(secretEnv(recipe, { A_TOKEN: 's3cret', OTHER: 'x' })).toEqual({ A_TOKEN: 's3cret' });
    expect(() => secretEnv(recipe, {})).toThrow(/secret "A_TOKEN" is not set/);
  });
});
