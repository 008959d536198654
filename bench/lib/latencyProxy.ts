/**
 * A TCP proxy that holds every chunk for half a round trip in each direction, in order: a rented
 * host 50-200 ms away, on loopback. What it shows is how many round trips a symbol waits on; the
 * bandwidth is not limited.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface LatencyProxy {
  host: '127.0.0.1';
  port: number;
  close(): Promise<void>;
}

export async function startLatencyProxy(
  target: { host: string; port: number },
  rttMs: number,
): Promise<LatencyProxy> {
  const oneWay = rttMs / 2;
  const sockets = new Set<Socket>();
  const delayed = (from: Socket, to: Socket) => {
    from.on('data', (b: Buffer) => {
      setTimeout(() => {
        if (!to.destroyed) to.write(b);
      }, oneWay);
    });
    from.on('end', () => setTimeout(() => to.end(), oneWay));
    from.on('error', () => to.destroy());
    from.on('close', () => setTimeout(() => to.destroy(), oneWay + 1));
  };
  const server: Server = createServer((client) => {
    client.setNoDelay(true);
    const upstream = connect(target.port, target.host);
    upstream.setNoDelay(true);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    delayed(client, upstream);
    delayed(upstream, client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  if (!addr || typeof addr === 'string') throw new Error('latency proxy has no port');
  return {
    host: '127.0.0.1',
    port: addr.port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
