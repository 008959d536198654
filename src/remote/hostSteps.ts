/**
 * The recipe's own lifecycle steps on the host, around the training: `minDiskGb` and
 * `healthcheck` before anything is staged, `cleanup` after the training whatever its outcome.
 * They run on the host itself (not in the recipe's container): they judge and tidy the host.
 */
import { DiskSpaceError, UnhealthyHostError } from '../errors.js';
import type { LoadedRecipe } from '../recipes/loader.js';
import type { RecipeStep } from '../recipes/schema.js';
import { renderCommand, shellQuote as q } from '../recipes/template.js';
import { mustExec } from './execUtil.js';
import type { Transport } from './transport.js';

/** Seconds a healthcheck may take when the recipe gives no timeoutSec. */
export const HEALTHCHECK_DEFAULT_SEC = 120;
/** Seconds a cleanup may take when the recipe gives no timeoutSec. */
export const CLEANUP_DEFAULT_SEC = 300;

export interface HostStepContext {
  /** Placeholder values (the recipe's vars and the built-ins of the work dir to be used). */
  values: Record<string, string>;
  /** The recipe's env and secrets, delivered through the exec's environment only. */
  env: Record<string, string>;
}

/** Free space, in GB, of the file system holding `dir` (its nearest existing ancestor). */
export async function freeDiskGb(t: Transport, dir: string): Promise<number> {
  const cmd = [
    `d=${q(dir)}`,
    'while [ ! -e "$d" ] && [ "$d" != / ]; do d=$(dirname -- "$d"); done',
    `df -Pk -- "$d" | awk 'NR==2 {print $4}'`,
  ].join('\n');
  const r = await mustExec(t, cmd, `read the free disk space of ${dir}`);
  const kb = Number(r.stdout.trim());
  if (!Number.isFinite(kb)) throw new DiskSpaceError(`df gave no free space for ${dir}`);
  return kb / (1024 * 1024);
}

/** DiskSpaceError when `workRoot`'s file system has less than `minDiskGb` free. */
export async function checkDisk(
  t: Transport,
  workRoot: string,
  minDiskGb: number,
  host: string,
): Promise<number> {
  const free = await freeDiskGb(t, workRoot);
  if (free < minDiskGb) {
    throw new DiskSpaceError(
      `host ${host} has ${free.toFixed(1)} GB free under ${workRoot}; the recipe needs minDiskGb ${minDiskGb}`,
    );
  }
  return free;
}

/**
 * Runs `step` in `dir` on the host with its time limit (`timeout`, then SIGKILL 5 s later),
 * output kept in `<dir>/<logName>` (tail returned). `{code, tail, timedOut}`; never throws for a
 * non-zero exit.
 */
export async function runHostStep(
  t: Transport,
  dir: string,
  step: RecipeStep,
  defaultSec: number,
  logName: string,
  ctx: HostStepContext,
): Promise<{ code: number; tail: string; timedOut: boolean }> {
  const limit = step.timeoutSec ?? defaultSec;
  const rendered = renderCommand(step.run, ctx.values);
  const cmd = [
    `mkdir -p -- ${q(dir)} && cd -- ${q(dir)} || exit 97`,
    `timeout --kill-after=5 ${limit} bash -eo pipefail -c ${q(rendered)} >${q(logName)} 2>&1 </dev/null`,
    'rc=$?',
    `tail -c 2000 -- ${q(logName)} 2>/dev/null | tail -n 5`,
    'exit "$rc"',
  ].join('\n');
  const r = await t.exec(cmd, { env: ctx.env, timeoutMs: (limit + 30) * 1000 });
  return { code: r.code, tail: r.stdout.trim(), timedOut: r.code === 124 || r.code === 137 };
}

/**
 * Before staging: the disk check then the healthcheck. DiskSpaceError or UnhealthyHostError
 * (both retryable; the caller releases the host as unsound).
 */
export async function checkHostBeforeStaging(
  t: Transport,
  recipe: LoadedRecipe,
  opts: { workRoot: string; workdir: string; host: string } & HostStepContext,
): Promise<{ freeGb?: number }> {
  const out: { freeGb?: number } = {};
  if (recipe.def.minDiskGb !== undefined) {
    out.freeGb = await checkDisk(t, opts.workRoot, recipe.def.minDiskGb, opts.host);
  }
  const hc = recipe.def.healthcheck;
  if (hc) {
    // Its log sits beside the work dirs (the work dir itself does not exist yet).
    const r = await runHostStep(
      t,
      opts.workRoot,
      hc,
      HEALTHCHECK_DEFAULT_SEC,
      '.retrain-healthcheck.log',
      opts,
    );
    if (r.code !== 0) {
      const why = r.timedOut ? 'timed out' : `exited with code ${r.code}`;
      throw new UnhealthyHostError(
        `host ${opts.host} failed the recipe's healthcheck (${why})${r.tail ? `: ${r.tail.replace(/\s*\n\s*/g, ' | ').slice(0, 300)}` : ''}`,
      );
    }
  }
  return out;
}

/** After the training: the recipe's cleanup in the work dir (cleanup.log). Never throws. */
export async function runCleanup(
  t: Transport,
  recipe: LoadedRecipe,
  workdir: string,
  ctx: HostStepContext,
): Promise<{ ran: boolean; code?: number; timedOut?: boolean; error?: string; tail?: string }> {
  const step = recipe.def.cleanup;
  if (!step) return { ran: false };
  try {
    const r = await runHostStep(t, workdir, step, CLEANUP_DEFAULT_SEC, 'cleanup.log', ctx);
    return { ran: true, code: r.code, timedOut: r.timedOut, tail: r.tail };
  } catch (err) {
    return { ran: true, error: err instanceof Error ? err.message : String(err) };
  }
}
