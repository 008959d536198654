/**
 * What `--dry-run` shows a user before anything is rented: for each symbol, the work dir and the
 * commands the run script would run on the host (the recipe's setup and train steps rendered with
 * the spec's values, shell-quoted as they will be), the environment it exports, and the secrets it
 * is given, by name only (their values never leave this machine's environment in a dry run).
 */
import { join, posix } from 'node:path';
import type { Config } from '../config/schema.js';
import type { JobSpec } from '../jobspec/types.js';
import type { LoadedRecipe } from '../recipes/loader.js';
import { renderCommand, shellQuote } from '../recipes/template.js';
import { builtinValues, standardRunContext } from '../remote/runScript.js';

/** The host's work root for the configured driver. */
export function hostWorkRoot(config: Config): string {
  switch (config.train.driver) {
    case 'local':
      return join(config.home, 'models');
    case 'ssh':
      return config.ssh.workRoot;
    case 'vast':
      return config.vast.workRoot;
  }
}

/** The lines printed for one spec. */
export function renderHostPlan(spec: JobSpec, recipe: LoadedRecipe, config: Config): string[] {
  // The real work dir is named at start time (<root>/<SYMBOL>/<YYYYMMDD_HHMMSSZ>).
  const workdir = posix.join(hostWorkRoot(config), spec.symbol, '<start-time>');
  const ctx = standardRunContext(workdir, {
    datasetName: 'features.csv',
    symbol: spec.symbol,
    date: spec.date,
    featureset: spec.featureset,
    jobId: spec.jobId,
  });
  const values = { ...recipe.vars, ...builtinValues(ctx) };
  const steps = [
    ...recipe.def.setup.map((s) => ({ kind: 'setup', s })),
    ...recipe.def.train.map((s) => ({ kind: 'train', s })),
  ];
  const lines = [
    `${spec.symbol} ${spec.date}: driver ${spec.driver}, recipe ${recipe.name}@${recipe.version}, work dir ${workdir}` +
      (spec.dataSource === 'synthetic' ? ' (SYNTHETIC data: never published to production)' : ''),
  ];
  const env = Object.entries(recipe.def.env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [name, value] of env) lines.push(`  env ${name}=${shellQuote(String(value))}`);
  if (recipe.def.secrets.length > 0)
    lines.push(`  secrets (from this machine's environment, by name): ${recipe.def.secrets.join(', ')}`);
  steps.forEach(({ kind, s }, i) => {
    const timeout = s.timeoutSec ? ` (timeout ${s.timeoutSec}s)` : '';
    lines.push(`  [${i + 1}/${steps.length} ${kind}]${timeout} ${renderCommand(s.run, values)}`);
  });
  return lines;
}
