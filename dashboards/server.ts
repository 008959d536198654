import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { Queue } from 'bullmq';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { Ledger } from '../src/ledger/ledger.js';
import type { ArtifactStore } from '../src/storage/index.js';
import { RunSpend } from '../src/train/spend.js';
import { QUEUES } from '../queues/names.js';
import { requireAuth, type DashboardCredentials } from './auth.js';
import { rejectWrites, sameOriginWrites } from './guards.js';
import { DashboardMetrics } from './metrics.js';
import { LEDGER_STATUSES } from '../src/ledger/types.js';
import { DATE_PARAM, RunsReader, SYMBOL_PARAM } from './runs.js';
import { notFoundPage, runPage, runsPage, symbolPage } from './views.js';

export interface DashboardOptions {
  /** BullMQ and ledger key prefix (Config.queuePrefix). */
  prefix: string;
  /** A connection that fails fast (queues/connection.ts producerConnection); closed by the caller. */
  redis: Redis;
  store: ArtifactStore;
  credentials: DashboardCredentials;
  /** Refuse every write on the server side, and hide Bull Board's write buttons. */
  readOnly: boolean;
  logger: Logger;
  /** Run dates on the runs page and in the ledger series of /metrics (newest first). */
  recentDates?: number;
  /** The queues' 'error' events (a Redis outage: src/telemetry/redisWatch.ts funnels them). */
  onQueueError?: (err: Error) => void;
}

export interface Dashboard {
  app: express.Express;
  /** Closes the queues it opened (not the Redis connection it was given). */
  close(): Promise<void>;
}

export const BOARD_PATH = '/queues';
const DEFAULT_RECENT_DATES = 14;

/**
 * The dashboard: Bull Board over every queue at /queues, the runs pages (/runs, /runs/<date>,
 * /runs/<date>/<symbol>, stored files under /files/<key>), /healthz and /metrics. Every route sits
 * behind the credentials; in read-only mode every request that is not GET/HEAD/OPTIONS gets 405.
 */
export function createDashboard(opts: DashboardOptions): Dashboard {
  const recent = opts.recentDates ?? DEFAULT_RECENT_DATES;
  const queues = new Map<string, Queue>(
    Object.values(QUEUES).map((name) => [
      name,
      new Queue(name, { connection: opts.redis, prefix: opts.prefix }),
    ]),
  );
  // Without a listener BullMQ prints every connection error with its stack, many a second.
  for (const q of queues.values()) q.on('error', opts.onQueueError ?? (() => undefined));
  const ledger = new Ledger({ redis: opts.redis, prefix: opts.prefix, store: opts.store });
  const runs = new RunsReader(ledger, opts.store);
  const metrics = new DashboardMetrics({
    queues,
    ledger,
    spend: new RunSpend(opts.redis, opts.prefix),
    recentDates: recent,
  });

  const board = new ExpressAdapter();
  board.setBasePath(BOARD_PATH);
  createBullBoard({
    queues: [...queues.values()].map(
      (q) => new BullMQAdapter(q, { readOnlyMode: opts.readOnly, allowRetries: !opts.readOnly }),
    ),
    serverAdapter: board,
    options: {
      uiConfig: {
        boardTitle: 'retrain',
        miscLinks: [
          { text: 'Runs', url: '/runs' },
          { text: 'Metrics', url: '/metrics' },
        ],
        ...(opts.readOnly ? { environment: { label: 'read-only', color: '#9a6700' } } : {}),
      },
    },
  });

  const app = express();
  app.disable('x-powered-by');
  app.use((_req, res, next) => {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Cache-Control', 'no-store');
    next();
  });
  // Nothing answers without credentials, not even /healthz and /metrics.
  app.use(requireAuth(opts.credentials));
  app.use(opts.readOnly ? rejectWrites() : sameOriginWrites());

  app.get('/', (_req, res) => res.redirect(BOARD_PATH));

  app.get('/healthz', async (_req, res) => {
    const redisUp = await opts.redis.ping().then(
      (r) => r === 'PONG',
      () => false,
    );
    res
      .status(redisUp ? 200 : 503)
      .json({ status: redisUp ? 'ok' : 'redis unreachable', readOnly: opts.readOnly });
  });

  app.get('/metrics', async (_req, res) => {
    const text = await metrics.render();
    res.type(metrics.contentType).send(text);
  });

  app.get('/runs', async (req, res) => {
    const n = Number(req.query.days ?? recent);
    const days = Number.isInteger(n) && n > 0 ? Math.min(n, 366) : recent;
    const dates = await runs.recentDates(days);
    res.type('html').send(runsPage(await Promise.all(dates.map((d) => runs.run(d))), opts.readOnly));
  });

  app.get('/runs/:date', async (req, res) => {
    const date = req.params.date;
    if (!DATE_PARAM.test(date))
      return void res.status(404).type('html').send(notFoundPage('no such date', opts.readOnly));
    const status = LEDGER_STATUSES.find((st) => st === req.query.status);
    const n = Number(req.query.page ?? 1);
    const page = Number.isInteger(n) && n > 0 ? n : 1;
    res
      .type('html')
      .send(runPage(await runs.run(date), opts.readOnly, { page, ...(status ? { status } : {}) }));
  });

  app.get('/runs/:date/:symbol', async (req, res) => {
    const { date, symbol } = req.params;
    const view = DATE_PARAM.test(date) && SYMBOL_PARAM.test(symbol) ? await runs.symbol(date, symbol) : null;
    if (!view)
      return void res
        .status(404)
        .type('html')
        .send(notFoundPage(`no ledger entry for that symbol and date`, opts.readOnly));
    res.type('html').send(symbolPage(view, opts.readOnly));
  });

  app.get('/files/*key', async (req, res) => {
    const raw = (req.params as { key?: string | string[] }).key;
    const key = Array.isArray(raw) ? raw.join('/') : (raw ?? '');
    const bytes = await runs.file(key);
    if (!bytes) return void res.status(404).type('text/plain').send('no such file\n');
    const name = key.slice(key.lastIndexOf('/') + 1);
    if (/\.(json|log|txt|csv)$/.test(name)) res.type('text/plain; charset=utf-8');
    else res.type('application/octet-stream').attachment(name);
    res.send(bytes);
  });

  app.use(BOARD_PATH, board.getRouter() as express.Router);

  app.use((_req, res) => {
    res.status(404).type('text/plain').send('not found\n');
  });
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    opts.logger.error(
      { event: 'dashboard_error', path: req.path, err: err instanceof Error ? err.message : String(err) },
      'dashboard request failed',
    );
    if (!res.headersSent) res.status(500).type('text/plain').send('internal error\n');
  });

  return {
    app,
    close: async () => {
      await Promise.all([...queues.values()].map((q) => q.close().catch(() => undefined)));
    },
  };
}

export interface RunningDashboard {
  url: string;
  host: string;
  port: number;
  close(): Promise<void>;
}

/** Serves the dashboard on host:port (port 0 picks a free one). */
export async function listenDashboard(
  dash: Dashboard,
  host: string,
  port: number,
): Promise<RunningDashboard> {
  const server: Server = dash.app.listen(port, host);
  await once(server, 'listening');
  const addr = server.address() as AddressInfo;
  const urlHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${urlHost}:${addr.port}/`,
    host: addr.address,
    port: addr.port,
    close: async () => {
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections();
      await closed;
      await dash.close();
    },
  };
}
