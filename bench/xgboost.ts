/**
 * `npm run bench -- xgboost`: the shipped xgboost-gpu recipe's trainer (as the recipe
 * runs it: under the first Python that has xgboost) on one symbol's FeatureBuilderV1 features
 * (BENCH_XGB_DAYS days of hourly bars, default 365), 100 rounds at depth 6, timed with device
 * cpu and, where nvidia-smi lists a GPU, device cuda. Prints each time and a JSON line.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { costsFor, loadCostTable } from '../src/data/costs.js';
import { buildFeaturesV1, featuresToCsv } from '../src/data/features.js';
import { generateOhlcv } from '../src/data/synthetic.js';
import { shippedRecipesDir } from '../src/recipes/loader.js';

function hasGpu(): boolean {
  try {
    return /^GPU \d+:/m.test(execFileSync('nvidia-smi', ['-L'], { encoding: 'utf8' }));
  } catch {
    return false;
  }
}

export async function xgboost(): Promise<void> {
  const days = Number(process.env.BENCH_XGB_DAYS ?? 365);
  // train.py looks for its venv three levels up: lay the dir out as a work dir is.
  const root = mkdtempSync(join(tmpdir(), 'bench-xgb-'));
  const work = join(root, 'BTCUSDT', 'run');
  mkdirSync(join(work, 'inputs'), { recursive: true });
  try {
    const recipe = join(shippedRecipesDir(), 'xgboost-gpu');
    execFileSync('cp', ['-r', recipe, join(work, 'recipe')]);
    const table = buildFeaturesV1(generateOhlcv('BTCUSDT', '20260110', { lookbackDays: days }));
    writeFileSync(join(work, 'inputs/features.csv'), featuresToCsv(table));
    writeFileSync(
      join(work, 'inputs/costs.json'),
      JSON.stringify(costsFor(await loadCostTable(), 'BTCUSDT')),
    );
    const figures: Record<string, number | string> = { days, rows: table.rows.length };
    for (const device of hasGpu() ? ['cpu', 'cuda'] : ['cpu']) {
      const started = process.hrtime.bigint();
      const r = spawnSync(
        'python3',
        [
          join(work, 'recipe/train.py'),
          ...['--dataset', join(work, 'inputs/features.csv'), '--costs', join(work, 'inputs/costs.json')],
          ...['--out', join(work, `out-${device}`), '--symbol', 'BTCUSDT', '--device', device],
        ],
        { encoding: 'utf8' },
      );
      const sec = Number(process.hrtime.bigint() - started) / 1e9;
      if (r.status !== 0)
        throw new Error(`device ${device}: exit ${r.status}: ${r.stderr.trim().split('\n').pop()}`);
      const version = /xgboost (\d+\.\d+\.\d+)/.exec(r.stdout)?.[1] ?? '?';
      process.stdout.write(
        `device ${device}: ${sec.toFixed(2)} s (xgboost ${version}, 100 rounds, depth 6)\n`,
      );
      figures[`${device}_s`] = Math.round(sec * 100) / 100;
      figures.xgboost = version;
    }
    if (!figures.cuda_s) process.stdout.write('device cuda: not measured (no GPU on this machine)\n');
    process.stdout.write(JSON.stringify(figures) + '\n');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
