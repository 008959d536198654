/**
 * What watches a training while it is followed, each ending the follow its own way: the host's
 * health (a provider that says it is gone), the training's signs of work (none for
 * `heartbeatStaleMin`: hung), and the checkpoint sync (copies back while it runs, never ends it),
 * and the recipe's sync folders (pushed to the store while it runs).
 */
import { asRetrainError } from '../../../../errors.js';
import { RECIPE_HEARTBEAT } from '../../../../remote/runScript.js';
import { EVENTS } from '../../../../telemetry/events.js';
import { linkSignals } from '../../../../util/linkSignals.js';
import { sleepUnlessAborted } from '../../../../util/sleep.js';
import { CheckpointSync, readResumePoint } from '../../../checkpoints.js';
import type { AttemptContext } from '../../context.js';

export interface Monitors {
  /** Aborted on shutdown, when the host is gone or when the training is hung: stop following. */
  readonly signal: AbortSignal;
  readonly hostLost: AbortSignal;
  readonly hung: AbortSignal;
  /** The training showed a sign of work (log or progress). */
  activity(): void;
  /** Stops every watcher (waits for a checkpoint sync under way, unless the follow was aborted). */
  stop(): Promise<void>;
}

export async function startMonitors(ctx: AttemptContext): Promise<Monitors> {
  const hostLost = watchHost(ctx);
  const hung = watchHeartbeat(ctx);
  const link = linkSignals([ctx.signal, hostLost.ac.signal, hung.ac.signal]);
  const signal = link.signal;
  const ckpt = await syncCheckpoints(ctx, signal);
  // The recipe's sync folders, pushed to the store while the training runs.
  const stopSync = ctx.hooks.startSync(ctx.lease!.transport, ctx.workdir);
  return {
    signal,
    hostLost: hostLost.ac.signal,
    hung: hung.ac.signal,
    activity: hung.activity,
    async stop() {
      hostLost.stop();
      hung.stop();
      link.dispose();
      ckpt.stop.abort();
      // A sync under way on a host that is gone would only fail late: let it, in the background.
      if (!signal.aborted) await Promise.all([ckpt.loop, stopSync()]);
      else void stopSync();
    },
  };
}

/** A host can die under the training (a Vast instance that exits): ask the provider now and then. */
function watchHost(ctx: AttemptContext): { ac: AbortController; stop(): void } {
  const ac = new AbortController();
  const { provider } = ctx;
  const timer = provider.isAlive
    ? setInterval(() => {
        provider.isAlive!(ctx.lease!.info).then(
          (alive) => {
            if (!alive) ac.abort();
          },
          () => undefined,
        );
      }, ctx.config.vast.healthCheckSec * 1000)
    : undefined;
  timer?.unref();
  return { ac, stop: () => timer && clearInterval(timer) };
}

/**
 * A training that is alive but shows no sign of work (no log, no progress, no touch of its
 * heartbeat file) for heartbeatStaleMin is hung: the follow stops, and the failure kills it.
 */
function watchHeartbeat(ctx: AttemptContext): { ac: AbortController; activity(): void; stop(): void } {
  const ac = new AbortController();
  let lastActivity = Date.now();
  let lastBeat: number | undefined;
  const staleMs = ctx.config.train.heartbeatStaleMin * 60_000;
  const beatPath = `${ctx.workdir}/${RECIPE_HEARTBEAT}`;
  const t = ctx.lease!.transport;
  const timer = setInterval(
    () => {
      t.stat(beatPath).then(
        (st) => {
          if (st && st.mtimeMs !== lastBeat) {
            if (lastBeat !== undefined) lastActivity = Date.now();
            lastBeat = st.mtimeMs;
          }
          if (Date.now() - lastActivity > staleMs) ac.abort();
        },
        () => undefined,
      );
    },
    Math.min(30_000, Math.max(250, staleMs / 4)),
  );
  timer.unref();
  return {
    ac,
    activity: () => {
      lastActivity = Date.now();
    },
    stop: () => clearInterval(timer),
  };
}

/** Checkpoints are copied back while the training runs, on the same connection, one at a time. */
async function syncCheckpoints(
  ctx: AttemptContext,
  followSignal: AbortSignal,
): Promise<{ stop: AbortController; loop: Promise<void> | undefined }> {
  const stop = new AbortController();
  const def = ctx.recipe.def.checkpoints;
  if (!def) return { stop, loop: undefined };
  const { spec, log } = ctx;
  const sync = new CheckpointSync({
    transport: ctx.lease!.transport,
    workdir: ctx.workdir,
    path: def.path,
    store: ctx.store,
    jobId: spec.jobId,
    runId: ctx.runId,
    attempt: ctx.job.attempt,
    stagingDir: ctx.stagingDir,
    baseTrainedSec: ctx.facts.resumedFrom?.trainedSec ?? 0,
    startedAtMs: Date.parse(ctx.facts.executingSince ?? ctx.now().toISOString()),
    // The store unreachable now must not fail a training that has started: sync from scratch.
    previous: await readResumePoint(ctx.store, spec.jobId, ctx.runId, log).catch(() => null),
    log,
  });
  ctx.ckpt = sync;
  const stopOrGone = AbortSignal.any([stop.signal, followSignal]);
  const loop = (async () => {
    for (;;) {
      await sleepUnlessAborted(def.every * 1000, stopOrGone);
      if (stopOrGone.aborted) return;
      await sync
        .tick()
        .catch((e: unknown) =>
          log.warn(
            { event: EVENTS.checkpointSyncFailed, err: asRetrainError(e).message },
            `${spec.symbol} could not sync a checkpoint; the training goes on`,
          ),
        );
    }
  })();
  return { stop, loop };
}
