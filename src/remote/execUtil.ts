/** Small helpers shared by the runner modules. */
import { OutputContractError, TransportError } from '../errors.js';
import type { Transport } from './transport.js';

/** A plain file name: one segment, no `..`, no leading dot. */
export const SAFE_SEGMENT_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/** Runs `cmd`; TransportError (with the last stderr lines) unless it exits 0. */
export async function mustExec(
  t: Transport,
  cmd: string,
  what: string,
  opts: { env?: Record<string, string>; timeoutMs?: number; signal?: AbortSignal } = {},
) {
  const r = await t.exec(cmd, {
    timeoutMs: opts.timeoutMs ?? 60_000,
    ...(opts.env ? { env: opts.env } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  if (r.code !== 0) {
    const detail = r.stderr.trim().split('\n').slice(-3).join(' | ').slice(0, 500);
    throw new TransportError(`could not ${what} (exit ${r.code})${detail ? `: ${detail}` : ''}`);
  }
  return r;
}

/** A plain output name: no directory part, no `..`, not absolute. OutputContractError otherwise. */
export function checkName(name: string): void {
  if (!SAFE_SEGMENT_RE.test(name)) {
    throw new OutputContractError(`output name ${JSON.stringify(name)} is not a plain file name`);
  }
}

/** Keeps the first `max` bytes of a stream. */
export class Capped {
  private readonly parts: Buffer[] = [];
  private size = 0;
  constructor(private readonly max: number) {}
  add(b: Buffer): void {
    const room = this.max - this.size;
    if (room <= 0) return;
    const part = b.length > room ? b.subarray(0, room) : b;
    this.parts.push(part);
    this.size += part.length;
  }
  text(): string {
    return Buffer.concat(this.parts).toString('utf8');
  }
}
