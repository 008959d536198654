/**
 * Which keys an instance holds decides whether SSH to it works. The simulator cannot make the one
 * sshd behind every instance accept a key per instance, so, when `sshAuthorizedKeys` names the
 * keys that sshd accepts, each instance gets its own loopback port here (its `ssh_port` and
 * `ports["22/tcp"]`): a connection is piped to the sshd while the instance holds one of those keys
 * and is closed at once otherwise (the client sees the connection closed before the SSH banner,
 * where Vast's sshd would say "Permission denied (publickey)"). `sim.state().sshAccess` and
 * `sshRefused` tell a test which instances were reachable and how often SSH was refused.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { SimContext } from './context.js';
import type { SimInstance } from './types.js';
import { keyId } from './util.js';

const gates = new WeakMap<SimContext, Map<number, { server: Server; sockets: Set<Socket> }>>();

/** Whether the instance holds a key the SSH endpoint accepts; null when no keys are configured. */
export function sshAccess(ctx: SimContext, i: SimInstance): boolean | null {
  const accepted = ctx.opts.sshAuthorizedKeys;
  if (!accepted) return null;
  const want = new Set(accepted.map(keyId));
  return i.sshKeys.some((k) => want.has(keyId(k)));
}

export async function openSshGate(ctx: SimContext, i: SimInstance): Promise<number> {
  const sockets = new Set<Socket>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  };
  const server = createServer((client) => {
    track(client);
    if (i.destroyedAt !== undefined || !sshAccess(ctx, i)) {
      if (i.destroyedAt === undefined) i.sshRefused++;
      client.destroy();
      return;
    }
    const up = connect(ctx.opts.sshEndpoint.port, ctx.opts.sshEndpoint.host);
    track(up);
    client.pipe(up).pipe(client);
    const end = () => {
      client.destroy();
      up.destroy();
    };
    client.on('error', end);
    up.on('error', end);
    client.on('close', end);
    up.on('close', end);
  });
  const host = ctx.opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  let byInstance = gates.get(ctx);
  if (!byInstance) gates.set(ctx, (byInstance = new Map()));
  byInstance.set(i.id, { server, sockets });
  return (server.address() as { port: number }).port;
}

/** Closes an instance's gate (destroy) or every gate (close). */
export async function closeSshGates(ctx: SimContext, id?: number): Promise<void> {
  const byInstance = gates.get(ctx);
  if (!byInstance) return;
  const ids = id === undefined ? [...byInstance.keys()] : [id];
  await Promise.all(
    ids.map(async (n) => {
      const g = byInstance.get(n);
      if (!g) return;
      byInstance.delete(n);
      for (const s of g.sockets) s.destroy();
      await new Promise<void>((r) => g.server.close(() => r()));
    }),
  );
}
