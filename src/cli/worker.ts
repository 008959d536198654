import { startWorkers } from '../../processors/workers.js';
import { loadConfig } from '../config/load.js';
import { DriverSchema } from '../config/schema.js';
import { InputError } from '../errors.js';
import { LogHub } from '../telemetry/logger.js';
import { redisAnswers } from '../../queues/connection.js';
import { RedisUnreachableError } from './redis.js';
import { driverAlias } from './aliases.js';

/** `retrain worker`: runs until SIGINT/SIGTERM, then hands running trainings back and exits 0. */
export async function workerCommand(opts: { config?: string; driver?: string }): Promise<number> {
  const overrides: Record<string, unknown> = {};
  const driver = opts.driver !== undefined ? driverAlias(opts.driver) : undefined;
  if (driver !== undefined) {
    if (!DriverSchema.options.includes(driver as never)) {
      throw new InputError(
        `--driver must be one of ${DriverSchema.options.join(', ')}, got ${JSON.stringify(opts.driver)}`,
      );
    }
    overrides.train = { driver };
  }
  const config = loadConfig({ file: opts.config, overrides });
  if (!(await redisAnswers(config.redisUrl))) throw new RedisUnreachableError(config.redisUrl);
  const logs = new LogHub({ home: config.home, level: config.log.level, stdout: true });
  const running = await startWorkers(config, logs);
  logs.root.info(
    { event: 'worker_started', driver: config.train.driver, prefix: config.queuePrefix },
    'worker started',
  );
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      logs.root.info({ event: 'worker_stopping', signal: sig }, `received ${sig}: handing running jobs back`);
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  await running.close();
  logs.root.info({ event: 'worker_stopped' }, 'worker stopped');
  logs.close();
  return 0;
}
