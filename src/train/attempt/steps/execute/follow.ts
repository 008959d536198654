/**
 * EXECUTING, the follow: the training's log, progress and partial outputs until it exits. The
 * connection may drop while the training runs on: reconnect and follow on from the last byte of
 * log kept (no gap, no repeat). Several drops in a row with no progress end the attempt
 * (retryable), so a host that is really gone is replaced.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { hostGoneError } from '../../../../compute/lost.js';
import { ConnectionLostError, HungError } from '../../../../errors.js';
import { artifactsId } from '../../../../jobspec/build.js';
import { followRun, type FollowResult } from '../../../../remote/runner.js';
import { keys } from '../../../../storage/layout.js';
import { EVENTS } from '../../../../telemetry/events.js';
import { sleepUnlessAborted } from '../../../../util/sleep.js';
import type { AttemptContext } from '../../context.js';
import type { LogSink } from './logSink.js';
import type { Monitors } from './monitors.js';

/** Consecutive connection losses, with no log progress between them, before an attempt gives up. */
const MAX_FOLLOW_DROPS = 5;

export async function followTraining(
  ctx: AttemptContext,
  pid: number,
  sink: LogSink,
  mon: Monitors,
): Promise<FollowResult> {
  const { spec, config } = ctx;
  const lease = ctx.lease!;
  const partialSaved = new Set(ctx.facts.partialSaved ?? []);
  let drops = 0;
  for (;;) {
    const offsetBefore = sink.offset;
    sink.reset(); // a follow after a drop reads again from sink.offset
    try {
      return await followRun(lease.transport, ctx.workdir, {
        pid,
        // A rental never outlives maxRuntimeMin, whatever the symbol's own time limit.
        ...ctx.runLimit(lease.info),
        signal: mon.signal,
        pollMs: config.train.pollMs,
        logOffset: sink.offset,
        onLog: async (text, readTo, raw) => {
          await sink.write(text, readTo, raw);
          mon.activity();
        },
        onProgress: (p) => {
          mon.activity();
          void ctx.job.progress({ state: 'EXECUTING', ...p }).catch(() => undefined);
        },
        partial: (ctx.recipe.def.partial ?? []).filter((n) => !partialSaved.has(n)),
        onPartial: async (name) => {
          const local = join(ctx.stagingDir, 'partial', name);
          await mkdir(join(ctx.stagingDir, 'partial'), { recursive: true });
          await lease.transport.getFile(`${ctx.workdir}/out/${name}`, local);
          await ctx.store.putFile(keys.artifact(artifactsId(spec), name), local);
          partialSaved.add(name);
          await ctx.save({ partialSaved: [...partialSaved] });
          ctx.log.info(
            { event: EVENTS.coinPartialSaved, file: name },
            `${spec.symbol} partial output saved: ${name}`,
          );
        },
      });
    } catch (err) {
      if (mon.hung.aborted && !ctx.signal.aborted) {
        ctx.log.warn(
          { event: EVENTS.trainingHung, staleMin: config.train.heartbeatStaleMin },
          `${spec.symbol}: no log, progress or heartbeat for ${config.train.heartbeatStaleMin} min; killing it`,
        );
        throw new HungError(
          `${spec.symbol}: training gave no sign of work for ${config.train.heartbeatStaleMin} min (hung); killed`,
          { cause: err },
        );
      }
      if (mon.hostLost.aborted && !ctx.signal.aborted) {
        throw hostGoneError(ctx.provider, spec.symbol, lease.info, err);
      }
      if (!(err instanceof ConnectionLostError) || ctx.signal.aborted) throw err;
      drops = sink.offset > offsetBefore ? 1 : drops + 1;
      if (drops > MAX_FOLLOW_DROPS || Date.now() > ctx.deadline) throw err;
      ctx.log.warn(
        { event: EVENTS.sshConnectionLost, err: err.message, drops },
        `${spec.symbol} lost the connection while following the training; reconnecting`,
      );
      await sleepUnlessAborted(Math.min(1000 * 2 ** (drops - 1), 15_000), mon.signal);
    }
  }
}
