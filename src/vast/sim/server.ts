/**
 * A local Vast.ai simulator over real HTTP (node:http), faithful to shared/reference/vast-api.md
 * and, with `profile: 'vast-like'`, to how Vast really behaves (shared/reference/vast-reality.md).
 * Every instance is backed by one real SSH endpoint given by the caller. The official `vastai`
 * CLI works against it (src/vast/sim/README.md, docs/gpu-path.md; test/integration/vastai-cli.test.ts,
 * test/unit/vast/sim-cli-contract.test.ts).
 *
 * Modules: context (state), routes, offers, create, lifecycle, view, list, instances, account,
 * billing, ratelimit, faults, sshgate, hooks, state (snapshot), profile.
 *
 * Time: bootDelayMs and every `...Ms` fault are real time; billing is real time × timeScale; rate
 * limit intervals are simulated time (divided by timeScale).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { createContext, defaultOffers, withFaults } from './context.js';
import { outbid, surcharge, transient } from './hooks.js';
import { live } from './instances.js';
import { route } from './routes.js';
import { closeSshGates } from './sshgate.js';
import { snapshot } from './state.js';
import type { VastSim, VastSimFaults, VastSimOptions } from './types.js';
import { fail, type HttpReply } from './util.js';

export { defaultOffers };
export type {
  InstanceCharges,
  RateLimitConfig,
  SimEndpoint,
  VastSim,
  VastSimBilling,
  VastSimFaults,
  VastSimOptions,
  VastSimState,
} from './types.js';

function send(res: ServerResponse, r: HttpReply): void {
  if (res.destroyed) return;
  const text = typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
  res.writeHead(r.status, {
    'Content-Type':
      r.contentType === 'application/json' ? 'application/json' : `${r.contentType}; charset=utf-8`,
    'Content-Length': Buffer.byteLength(text),
    ...r.headers,
  });
  res.end(text);
}

export async function startVastSim(opts: VastSimOptions): Promise<VastSim> {
  const host = opts.host ?? '127.0.0.1';
  const ctx = createContext(opts);
  const sockets = new Set<Socket>();
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    route(ctx, req).then(
      (r) => send(res, r),
      (e: unknown) => send(res, fail(500, 'internal', `simulator error: ${(e as Error).message}`)),
    );
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve((server.address() as { port: number }).port);
      });
    });
  const port = await listen(opts.port ?? 0);
  ctx.url = `http://${host}:${port}`;
  let listening = true;
  let pending: Promise<unknown> = Promise.resolve();

  const stopListening = () =>
    new Promise<void>((resolve) => {
      if (!listening) return resolve();
      listening = false;
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    });

  return {
    url: ctx.url,
    async close() {
      await pending.catch(() => undefined);
      await stopListening();
      await closeSshGates(ctx);
    },
    setFaults(f: VastSimFaults) {
      ctx.faults = withFaults(ctx.baseFaults, f);
    },
    killInstance(id: number, status: 'exited' | 'offline' | 'unknown' = 'exited') {
      const i = live(ctx, id);
      if (!i || i.killed) return;
      i.killed = { at: Date.now(), status };
    },
    outbidInstance: (id, status = 'stopped') => outbid(ctx, id, status).status === 200,
    transientStatus: (id, status, ms) => transient(ctx, id, status, ms).status === 200,
    surcharge: (id, usd) => surcharge(ctx, id, usd).status === 200,
    setDown(mode) {
      ctx.down = mode;
      if (mode === 'refuse') {
        if (listening) pending = Promise.all([pending, stopListening()]);
      } else if (!listening) {
        pending = pending.then(async () => {
          if (listening) return;
          await listen(port);
          listening = true;
        });
      }
    },
    state: () => snapshot(ctx),
  };
}
