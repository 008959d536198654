/**
 * The shipped xgboost-gpu recipe trained for real on CPU (driver local): xgboost comes from the
 * first Python on the host that imports it (CI installs Debian's python3-xgboost); the stored
 * model.bin must load as a booster of 100 rounds at depth 6 and metrics.json meet the contract.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { parseMetricsText } from '../../src/promotion/metrics.js';
import { runCli, sandbox, syntheticRun, type Sandbox } from '../helpers/harness.js';

const DATE = '20260110';
const JOB = `train__BTCUSDT__${DATE}`;

/** The first interpreter that imports xgboost (as the recipe's train.py --ensure-xgboost looks). */
function pythonWithXgboost(): string | undefined {
  for (const py of ['python3', '/usr/bin/python3', 'python']) {
    try {
      execFileSync(py, ['-c', 'import xgboost'], { stdio: 'ignore' });
      return py;
    } catch {
      /* next */
    }
  }
  return undefined;
}

describe('xgboost-gpu recipe, trained for real on CPU', () => {
  let sb: Sandbox;
  beforeEach(async () => {
    sb = await sandbox(inject('redisUrl'));
  });
  afterEach(async () => sb.cleanup());

  it('trains with device=cpu; model.bin loads as a 100-round booster, metrics.json meets the contract', async () => {
    const py = pythonWithXgboost();
    expect(py, 'no Python here imports xgboost: install python3-xgboost (.ci/run does)').toBeDefined();
    const r = await runCli(
      ['run', ...syntheticRun('BTCUSDT', DATE, 'xgboost-gpu@1'), '--var', 'device=cpu', '--promote', 'dry'],
      sb.env,
      300_000,
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const dir = join(sb.home, 'store/ml-artifacts', JOB);
    const metrics = parseMetricsText(readFileSync(join(dir, 'metrics.json'), 'utf8'));
    expect(metrics.ok, JSON.stringify(metrics)).toBe(true);
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ num_rounds: 100, params: { max_depth: 6 } });
    const job = JSON.parse(readFileSync(join(dir, 'job.json'), 'utf8'));
    expect(job.recipe).toMatchObject({ name: 'xgboost-gpu', version: 1, ref: 'xgboost-gpu@1' });

    const loaded = execFileSync(
      py!,
      [
        '-c',
        [
          'import sys, xgboost',
          'b = xgboost.Booster()',
          'b.load_model(bytearray(open(sys.argv[1], "rb").read()))',
          'print(len(b.get_dump()), b.num_features())',
        ].join('\n'),
        join(dir, 'model.bin'),
      ],
      { encoding: 'utf8' },
    ).trim();
    expect(loaded).toBe(`100 ${config.features.length}`);
    // The xgboost already on the host was used: no private venv was made, nothing pip-installed.
    const log = readFileSync(join(dir, 'train.log'), 'utf8');
    expect(log).toMatch(/xgboost: using \S+ \(xgboost \d+\.\d+/);
    expect(existsSync(join(sb.home, 'models/.venvs'))).toBe(false);
  });
});
