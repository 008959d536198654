/**
 * Small helpers of the simulator: seeded randomness, loose number parsing, HTTP replies.
 */
import type { IncomingMessage } from 'node:http';

import { mulberry32 } from '../../util/random.js';

/** The simulator's seeded randomness: the project's one PRNG. */
export const prng = mulberry32;

export class HttpReply {
  constructor(
    readonly status: number,
    readonly body: unknown,
    readonly contentType = 'application/json',
    readonly headers: Record<string, string> = {},
  ) {}
}

export const json = (status: number, body: unknown) => new HttpReply(status, body);
export const fail = (status: number, error: string, msg: string, extra: Record<string, unknown> = {}) =>
  json(status, { success: false, error, msg, ...extra });

export function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function coerceLike(sample: unknown, v: unknown): unknown {
  if (typeof sample === 'number') return typeof v === 'number' ? v : Number(v);
  if (typeof sample === 'boolean') return v === true || v === 'true' || v === 1 || v === '1';
  if (typeof sample === 'string') return String(v);
  return v;
}

/** Applies one `{op: value}` filter; throws on an unknown op. */
export function num(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : undefined;
}

export async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    const b = c as Buffer;
    size += b.length;
    if (size > 1_048_576) throw new Error('body too large');
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A plain-text reply (Vast's 429s and gateway pages are not JSON). */
export const text = (
  status: number,
  body: string,
  contentType = 'text/plain',
  headers: Record<string, string> = {},
) => new HttpReply(status, body, contentType, headers);

/** The JSON body of a request, `{}` when empty; undefined when it is not JSON. */
export function parseBody(raw: string): unknown {
  if (raw.trim() === '') return {};
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return undefined;
  }
}

/** A public key's `type base64` part: the comment does not matter when keys are compared. */
export function keyId(k: string): string {
  return k.trim().split(/\s+/).slice(0, 2).join(' ');
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());
