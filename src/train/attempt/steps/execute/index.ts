/**
 * EXECUTING: the training started (or found running) on the host and followed to its exit, under
 * the watch of the monitors; its exit code decides the step.
 */
import { TimeoutError, TrainingFailedError } from '../../../../errors.js';
import type { FollowResult } from '../../../../remote/runner.js';
import { EVENTS } from '../../../../telemetry/events.js';
import { reached } from '../../../states.js';
import type { Step } from '../step.js';
import { followTraining } from './follow.js';
import { LogSink } from './logSink.js';
import { startMonitors } from './monitors.js';
import { startTraining } from './start.js';

export const execute: Step = {
  name: 'EXECUTING',
  holds: (ctx) => reached(ctx.state, 'FETCHING'),
  async ensure(ctx) {
    const { spec } = ctx;
    const t = ctx.lease!.transport;
    const pid = await startTraining(ctx);
    // What retrain keeps of the log never holds the recipe's secrets, should it print them.
    const sink = await LogSink.open(ctx);
    const mon = await startMonitors(ctx);
    let followed: FollowResult;
    try {
      followed = await followTraining(ctx, pid, sink, mon);
    } finally {
      await mon.stop();
    }
    const { exitCode, logOffset } = followed;
    await sink.close(logOffset);
    if (t.reconnects) {
      ctx.log.warn(
        { event: EVENTS.sshReconnected, reconnects: t.reconnects, host: ctx.lease!.info.host },
        `${spec.symbol} lost its SSH connection ${t.reconnects} time(s) and reconnected; the training ran on`,
      );
    }
    if (exitCode === 124) throw new TimeoutError(`${spec.symbol}: a recipe step exceeded its timeoutSec`);
    if (exitCode !== 0)
      throw new TrainingFailedError(
        exitCode,
        `${spec.symbol}: recipe exited with code ${exitCode} (see training.log)`,
      );
  },
};
