import { startWorkers } from '../../processors/workers.js';
import { loadConfig } from '../config/load.js';
import { DriverSchema } from '../config/schema.js';
import { InputError } from '../errors.js';
import { startHealthServer } from '../telemetry/healthServer.js';
import { LogHub } from '../telemetry/logger.js';
import { redisAnswers } from '../util/redisPing.js';
import { healthOverrides } from './healthFlags.js';
import { RedisUnreachableError } from './redis.js';
import { BoundedShutdown, untilSignal } from './shutdown.js';

/**
 * `retrain worker`: runs until SIGINT/SIGTERM, then hands running trainings back and exits 0; when
 * that cannot finish (Redis gone) it exits 1 at worker.shutdownGraceMs + 5 s, naming what hung.
 */
export async function workerCommand(opts: {
  config?: string;
  driver?: string;
  healthPort?: string;
}): Promise<number> {
  const overrides: Record<string, unknown> = { ...healthOverrides(opts.healthPort) };
  if (opts.driver !== undefined) {
    if (!DriverSchema.options.includes(opts.driver as never)) {
      throw new InputError(
        `--driver must be one of ${DriverSchema.options.join(', ')}, got ${JSON.stringify(opts.driver)}`,
      );
    }
    overrides.train = { driver: opts.driver };
  }
  const config = loadConfig({ file: opts.config, overrides });
  if (!(await redisAnswers(config.redisUrl))) throw new RedisUnreachableError(config.redisUrl);
  const logs = new LogHub({ home: config.home, level: config.log.level, stdout: true });
  const shutdown = new BoundedShutdown({ command: 'retrain worker', graceMs: config.worker.shutdownGraceMs });
  const signal = untilSignal(shutdown);
  const running = await startWorkers(config, logs);
  const health =
    config.health.port === undefined
      ? undefined
      : await startHealthServer({
          ...running.health,
          component: 'worker',
          host: config.health.host,
          port: config.health.port,
        }).catch(async (err: unknown) => {
          await running.close();
          logs.close();
          throw err;
        });
  logs.root.info(
    {
      event: 'worker_started',
      driver: config.train.driver,
      prefix: config.queuePrefix,
      ...(health ? { health: health.url } : {}),
    },
    `worker started${health ? `; health on ${health.url}/healthz` : ''}`,
  );
  const sig = await signal;
  logs.root.info({ event: 'worker_stopping', signal: sig }, `received ${sig}: handing running jobs back`);
  await shutdown.step('health server', async () => health?.close());
  await running.close(shutdown.step);
  shutdown.finish();
  logs.root.info({ event: 'worker_stopped' }, 'worker stopped');
  logs.close();
  return 0;
}
