/**
 * A failed attempt: what kind of failure it is (a hand-over on shutdown, the run cancelled, the
 * recipe's fault on a sound host), the training killed so that none is left behind, and the failed
 * attempt's log and partial outputs kept in the store so that it can be diagnosed from there.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Lease } from '../../compute/provider.js';
import {
  asRetrainError,
  CancelledError,
  DiskSpaceError,
  HostLostError,
  HungError,
  OutputContractError,
  PreemptedError,
  RecipeError,
  RunCancelledError,
  TrainingFailedError,
  UnhealthyHostError,
} from '../../errors.js';
import { artifactsId } from '../../jobspec/build.js';
import { regularFiles } from '../../remote/collect.js';
import { maskFile } from '../../remote/logMask.js';
import { killRun } from '../../remote/runner.js';
import { keys } from '../../storage/layout.js';
import { EVENTS } from '../../telemetry/events.js';
import { reached } from '../states.js';
import type { AttemptContext } from './context.js';

/**
 * Handles a failure of the attempt and returns the error to throw. Sets `ctx.cancelled` (a hand-over:
 * the remote training and the host are left alone) and `ctx.hostSound` (the host may serve another
 * symbol), which the release at the attempt's end goes by.
 */
export async function failAttempt(ctx: AttemptContext, err: unknown): Promise<unknown> {
  const { facts, lease, state, spec } = ctx;
  ctx.hostSound =
    err instanceof TrainingFailedError || err instanceof OutputContractError || err instanceof RecipeError;
  const runCancelled = ctx.deps.cancel?.aborted === true;
  // A host that failed the recipe's disk check or healthcheck is not handed to another symbol.
  if (lease && (err instanceof UnhealthyHostError || err instanceof DiskSpaceError))
    await ctx.provider.markUnsound?.(lease.info).catch(() => undefined);
  ctx.cancelled = !runCancelled && (err instanceof CancelledError || ctx.signal.aborted);
  if (!ctx.cancelled && ctx.ckpt && lease && state === 'EXECUTING' && err instanceof HungError) {
    // Alive but stuck, on a host that answers: one last look for a newer checkpoint before the
    // training is killed (a writer that died mid-write could leave a torn file, so only here).
    await ctx.ckpt.tick().catch(() => undefined);
  }
  if (!ctx.cancelled && lease && facts.pid && facts.workdir && state === 'EXECUTING') {
    // A failed attempt must leave no training behind (a timeout has already killed it).
    await killRun(lease.transport, facts.workdir, facts.pid).catch(() => undefined);
  }
  if (
    !ctx.cancelled &&
    lease &&
    facts.workdir &&
    reached(state, 'EXECUTING') &&
    !(err instanceof HostLostError || err instanceof PreemptedError)
  ) {
    // The recipe's last sync and cleanup, on a host that is still there.
    await ctx.hooks.afterTraining(lease.transport, facts.workdir, 'failed');
  }
  if (!ctx.cancelled && lease && facts.workdir && reached(state, 'EXECUTING')) {
    // A failure must be diagnosable from the store alone: keep the attempt's log and partials.
    await keepFailedAttempt(ctx, lease, facts.workdir).catch((e) =>
      ctx.log.warn(
        { event: EVENTS.attemptLogsNotKept, err: asRetrainError(e).message },
        `${spec.symbol} could not store the failed attempt's log`,
      ),
    );
  }
  if (runCancelled && !(err instanceof RunCancelledError)) {
    return new RunCancelledError(`${spec.symbol}: run ${ctx.runId} was cancelled; training stopped`, {
      cause: err,
    });
  }
  return ctx.cancelled && !(err instanceof CancelledError)
    ? new CancelledError('worker shutting down', { cause: err })
    : err;
}

/**
 * Copies a failed attempt's train.log and whatever partial outputs exist to
 * `ml-artifacts/<jobId>/attempts/<n>/` (best effort; bounded in time by the transport's own limits).
 */
async function keepFailedAttempt(ctx: AttemptContext, held: Lease, workdir: string): Promise<void> {
  const { spec, job } = ctx;
  const dir = join(ctx.stagingDir, 'failed');
  await mkdir(dir, { recursive: true });
  const names = ['train.log', ...(ctx.recipe.def.partial ?? []).map((n) => `out/${n}`)];
  const present = new Set(await regularFiles(held.transport, workdir, names));
  const kept: string[] = [];
  for (const rel of names.filter((n) => present.has(n))) {
    const remote = `${workdir}/${rel}`;
    const local = join(dir, rel.replace('/', '_'));
    await held.transport.getFile(remote, local);
    if (rel === 'train.log') await maskFile(local, ctx.recipeSecrets());
    await ctx.store.putFile(
      keys.artifact(artifactsId(spec), `attempts/${job.attempt}/${rel.split('/').pop()}`),
      local,
    );
    kept.push(rel);
  }
  if (kept.length) {
    ctx.log.info(
      {
        event: EVENTS.attemptLogsKept,
        files: kept,
        prefix: `${keys.artifactsPrefix(artifactsId(spec))}attempts/${job.attempt}/`,
      },
      `${spec.symbol} failed attempt ${job.attempt}: ${kept.join(', ')} kept in the store`,
    );
  }
}
