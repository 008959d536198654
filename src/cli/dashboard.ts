import { isIP } from 'node:net';
import { credentialsFromEnv, describeAuth } from '../../dashboards/auth.js';
import { createDashboard, listenDashboard } from '../../dashboards/server.js';
import { loadConfig } from '../config/load.js';
import { InputError } from '../errors.js';
import { createStore } from '../storage/index.js';
import { LogHub } from '../telemetry/logger.js';
import { RedisWatch } from '../telemetry/redisWatch.js';
import { closeRedis } from '../util/close.js';
import { connectRedis } from './redis.js';
import { BoundedShutdown, untilSignal } from './shutdown.js';

export interface DashboardFlags {
  config?: string;
  host?: string;
  port?: string;
  readOnly?: boolean;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

/**
 * `retrain dashboard`: serves Bull Board, the runs pages, /healthz and /metrics until SIGINT or
 * SIGTERM. Refuses to start without credentials in the environment. Prints its URL on stdout.
 */
export async function dashboardCommand(flags: DashboardFlags): Promise<number> {
  const overrides: Record<string, unknown> = {};
  if (flags.port !== undefined) {
    const port = Number(flags.port);
    if (!/^\d+$/.test(flags.port) || port > 65535)
      throw new InputError(`--port must be an integer from 0 to 65535, got ${JSON.stringify(flags.port)}`);
    overrides.dashboard = { port };
  }
  if (flags.host !== undefined)
    overrides.dashboard = { ...(overrides.dashboard as object), host: flags.host };
  if (flags.readOnly) overrides.dashboard = { ...(overrides.dashboard as object), readOnly: true };
  const config = loadConfig({ file: flags.config, overrides });
  // Before anything is opened: no credentials, no dashboard.
  const credentials = credentialsFromEnv(process.env);
  const { host, port, readOnly } = config.dashboard;

  const redis = await connectRedis(config.redisUrl);
  const logs = new LogHub({ home: config.home, level: config.log.level, stdout: true });
  // A Redis outage is logged once (with reminders), and never keeps the dashboard from stopping.
  const watch = new RedisWatch({ url: config.redisUrl, log: logs.root });
  const dash = createDashboard({
    onQueueError: watch.errorHandler('dashboard queue'),
    prefix: config.queuePrefix,
    redis,
    store: createStore(config.store),
    credentials,
    readOnly,
    logger: logs.root,
  });
  let running;
  try {
    running = await listenDashboard(dash, host, port);
  } catch (err) {
    await dash.close();
    await closeRedis(redis);
    watch.close();
    logs.close();
    throw err;
  }
  process.stdout.write(
    `retrain dashboard: ${running.url} (auth: ${describeAuth(credentials)}${readOnly ? '; read-only' : ''})\n`,
  );
  if (!isLoopback(host)) {
    process.stderr.write(
      `warning: the dashboard listens on ${host} over plain HTTP: credentials cross the network in clear unless a TLS proxy fronts it\n`,
    );
  }
  logs.root.info({ event: 'dashboard_started', url: running.url, readOnly }, 'dashboard started');
  const bounded = new BoundedShutdown({
    command: 'retrain dashboard',
    graceMs: config.worker.shutdownGraceMs,
  });
  await untilSignal(bounded);
  const open = running;
  await bounded.step('web server', () => open.close());
  await bounded.step('redis connection', () => closeRedis(redis));
  watch.close();
  bounded.finish();
  logs.root.info({ event: 'dashboard_stopped' }, 'dashboard stopped');
  logs.close();
  return 0;
}
