import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { ConfigError } from '../errors.js';
import type { OutageReporter } from './outage.js';

/** One line of /healthz: ok or not, with what an operator needs to tell why. */
export interface HealthCheck {
  ok: boolean;
  [detail: string]: unknown;
}

export interface HealthSources {
  /** Redis, the S3 store, the Vast API: each one's outage state is shown and exported. */
  outages: OutageReporter[];
  /** Checks that decide the status (e.g. redis answers, the worker's loops run). */
  checks: () => Promise<Record<string, HealthCheck>>;
  /** Per-loop liveness for /metrics (1 running, 0 not). */
  loops?: () => Record<string, boolean>;
}

export interface HealthServerOptions extends HealthSources {
  host: string;
  port: number;
  /** "worker", "scheduler": the `component` label of every series. */
  component: string;
}

export interface RunningHealthServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * The process's own series (per process, unlike the dashboard's /metrics, which reads the queues
 * and the ledger for the whole deployment): dependency reachability, outage counts, loop liveness,
 * and prom-client's default process metrics.
 */
export function healthRegistry(component: string, src: HealthSources): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ component });
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  new Gauge({
    name: 'retrain_dependency_up',
    help: 'Whether the dependency (Redis, S3 store, Vast API) answered its last use: 1 up, 0 down',
    labelNames: ['dependency'],
    registers,
    collect() {
      for (const o of src.outages) this.set({ dependency: o.name }, o.up ? 1 : 0);
    },
  });
  new Gauge({
    name: 'retrain_dependency_down_seconds',
    help: 'Length of the current outage of the dependency so far (0 while up)',
    labelNames: ['dependency'],
    registers,
    collect() {
      for (const o of src.outages) this.set({ dependency: o.name }, o.state().downForSec ?? 0);
    },
  });
  const seen = new Map<string, number>();
  new Counter({
    name: 'retrain_dependency_outages_total',
    help: 'Outages of the dependency seen by this process',
    labelNames: ['dependency'],
    registers,
    collect() {
      for (const o of src.outages) {
        const n = o.state().outages;
        const delta = n - (seen.get(o.name) ?? 0);
        this.inc({ dependency: o.name }, delta);
        seen.set(o.name, n);
      }
    },
  });
  if (src.loops) {
    const loops = src.loops;
    new Gauge({
      name: 'retrain_loop_up',
      help: "Whether one of the process's loops (a BullMQ worker, the schedule keeper) runs: 1 yes, 0 no",
      labelNames: ['loop'],
      registers,
      collect() {
        for (const [loop, up] of Object.entries(loops())) this.set({ loop }, up ? 1 : 0);
      },
    });
  }
  return registry;
}

/** What /healthz answers: 200 when every check is ok, else 503; outages are shown, not judged. */
export async function healthReport(
  src: HealthSources,
): Promise<{ status: 200 | 503; body: Record<string, unknown> }> {
  let checks: Record<string, HealthCheck>;
  try {
    checks = await src.checks();
  } catch (err) {
    checks = { checks: { ok: false, error: err instanceof Error ? err.message : String(err) } };
  }
  const ok = Object.values(checks).every((c) => c.ok);
  const failing = Object.entries(checks)
    .filter(([, c]) => !c.ok)
    .map(([name]) => name);
  return {
    status: ok ? 200 : 503,
    body: {
      status: ok ? 'ok' : 'unhealthy',
      ...(failing.length ? { failing } : {}),
      checks,
      dependencies: Object.fromEntries(src.outages.map((o) => [o.name, o.state()])),
    },
  };
}

/** Serves GET /healthz and GET /metrics (no credentials: nothing here is data). */
export async function startHealthServer(opts: HealthServerOptions): Promise<RunningHealthServer> {
  const registry = healthRegistry(opts.component, opts);
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    const reply = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (path === '/healthz') {
      void healthReport(opts).then(({ status, body }) =>
        reply(status, 'application/json; charset=utf-8', JSON.stringify(body) + '\n'),
      );
    } else if (path === '/metrics') {
      registry.metrics().then(
        (text) => reply(200, registry.contentType, text),
        (err: unknown) => reply(500, 'text/plain', `metrics failed: ${String(err)}\n`),
      );
    } else {
      reply(404, 'text/plain', 'not found: try /healthz or /metrics\n');
    }
  });
  // A probe that hangs up mid-answer must not take the process down.
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    const fail = (err: Error) =>
      reject(new ConfigError(`cannot serve /healthz on ${opts.host}:${opts.port}: ${err.message}`));
    server.once('error', fail);
    server.listen(opts.port, opts.host, () => {
      server.off('error', fail);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  return {
    url: `http://${host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
