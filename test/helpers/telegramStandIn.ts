import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request the stand-in received. */
export interface TelegramRequest {
  at: number;
  method: string;
  path: string;
  body: Record<string, unknown>;
}

/**
 * How the stand-in answers: like the Bot API (`ok`), always 500, always 429 with `retry_after`
 * seconds, 400 (e.g. chat not found), or never (`hang`: holds the request open).
 */
export type StandInMode =
  { kind: 'ok' } | { kind: '500' } | { kind: '429'; retryAfter: number } | { kind: '400' } | { kind: 'hang' };

export interface TelegramStandIn {
  url: string;
  requests: TelegramRequest[];
  /** Texts of the sendMessage requests answered ok, in order. */
  texts(): string[];
  mode: StandInMode;
  close(): Promise<void>;
}

/** A local HTTP stand-in for the Telegram Bot API on 127.0.0.1 (a free port). */
export async function startTelegramStandIn(mode: StandInMode = { kind: 'ok' }): Promise<TelegramStandIn> {
  const requests: TelegramRequest[] = [];
  const delivered: string[] = [];
  const hanging = new Set<ServerResponse>();
  const state = { mode };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let raw = '';
    req.on('data', (d) => (raw += d));
    req.on('end', () => {
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        /* recorded as {} */
      }
      requests.push({ at: Date.now(), method: req.method ?? '', path: req.url ?? '', body });
      const json = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(JSON.stringify(payload));
      };
      const m = state.mode;
      if (m.kind === 'hang') {
        hanging.add(res);
        return;
      }
      if (m.kind === '500')
        return json(500, { ok: false, error_code: 500, description: 'Internal Server Error' });
      if (m.kind === '429') {
        return json(
          429,
          {
            ok: false,
            error_code: 429,
            description: `Too Many Requests: retry after ${m.retryAfter}`,
            parameters: { retry_after: m.retryAfter },
          },
          { 'retry-after': String(m.retryAfter) },
        );
      }
      if (m.kind === '400')
        return json(400, { ok: false, error_code: 400, description: 'Bad Request: chat not found' });
      if (!/^\/bot[^/]+\/sendMessage$/.test(req.url ?? '') || req.method !== 'POST') {
        return json(404, { ok: false, error_code: 404, description: 'Not Found' });
      }
      delivered.push(String(body.text ?? ''));
      json(200, { ok: true, result: { message_id: delivered.length, text: body.text } });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    texts: () => [...delivered],
    get mode() {
      return state.mode;
    },
    set mode(m: StandInMode) {
      state.mode = m;
    },
    async close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
