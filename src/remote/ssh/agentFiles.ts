/**
 * Small whole-file reads and writes over ssh, batched through the connection's command agent: the
 * calls made in the same turn of the event loop go as one request, so a run's outputs and log come
 * back, and its staged files go out, in one round trip instead of several SFTP round trips per file
 * (open, read or write, close, rename). Each keeps its Transport contract:
 * - `read`: the bytes of a file smaller than SMALL_GET_BYTES and at most `maxBytes`, null for a
 *   bigger one (the caller streams it with getFile), TransportError when it cannot be read; what is
 *   not a regular file (a pipe) is refused instead of waited on;
 * - `write`: the bytes land through `<path>.part` (made anew: a file or link there is removed
 *   first) and a rename, with `mode` as SFTP's open gives it (the host's umask applies).
 * Without an agent, or when it is lost during the request (these calls change nothing or redo the
 * same atomic write), each call goes through SFTP as before.
 */
import type { SshAgent } from './agent.js';
import type { SshConnection } from './connection.js';
import { hostFileError } from './errors.js';
import { readWhole as sftpReadWhole, SMALL_GET_BYTES } from './sftp.js';
import { putData as sftpPutData, type PutStats } from './upload.js';

/** Bytes one write through the agent may carry (held in memory on both sides); bigger ones go by SFTP. */
const AGENT_WRITE_MAX_BYTES = 8 * 1024 * 1024;

interface Call<A, R> {
  args: A;
  resolve(v: R): void;
  reject(e: unknown): void;
}

/** The calls made in one turn of the event loop, handed to `flush` together. */
class SameTurn<A, R> {
  private pending: Call<A, R>[] = [];

  constructor(private readonly flush: (calls: Call<A, R>[]) => Promise<void>) {}

  add(args: A): Promise<R> {
    return new Promise((resolve, reject) => {
      if (this.pending.push({ args, resolve, reject }) !== 1) return;
      setImmediate(() => {
        const calls = this.pending;
        this.pending = [];
        void this.flush(calls);
      });
    });
  }
}

export class AgentFiles {
  private readonly reads = new SameTurn<{ path: string; maxBytes: number }, Buffer | null>((calls) =>
    this.flushReads(calls),
  );
  private readonly writes = new SameTurn<{ data: Buffer; path: string; mode: number }, PutStats>((calls) =>
    this.flushWrites(calls),
  );

  constructor(private readonly conn: SshConnection) {}

  read(path: string, maxBytes: number): Promise<Buffer | null> {
    return this.reads.add({ path, maxBytes });
  }

  write(data: Buffer, path: string, mode: number): Promise<PutStats> {
    if (data.length > AGENT_WRITE_MAX_BYTES) return sftpPutData(this.conn, data, path, mode);
    return this.writes.add({ data, path, mode });
  }

  private async flushReads(calls: Call<{ path: string; maxBytes: number }, Buffer | null>[]): Promise<void> {
    const limits = calls.map((c) => Math.min(c.args.maxBytes, SMALL_GET_BYTES - 1) + 1);
    const answers = await this.ask((agent) => agent.read(calls.map((c, i) => [c.args.path, limits[i]!])));
    calls.forEach((c, i) => {
      const a = answers?.[i];
      if (!a) return void sftpReadWhole(this.conn, c.args.path, c.args.maxBytes).then(c.resolve, c.reject);
      if ('data' in a) return c.resolve(a.data);
      if ('big' in a) return c.resolve(null);
      c.reject(hostFileError('get', c.args.path, a.error, this.conn.label));
    });
  }

  private async flushWrites(
    calls: Call<{ data: Buffer; path: string; mode: number }, PutStats>[],
  ): Promise<void> {
    const answers = await this.ask((agent) =>
      agent.write(calls.map((c) => [c.args.path, c.args.mode, c.args.data])),
    );
    calls.forEach((c, i) => {
      const a = answers?.[i];
      const { data, path, mode } = c.args;
      if (!a) return void sftpPutData(this.conn, data, path, mode).then(c.resolve, c.reject);
      if ('error' in a) return c.reject(hostFileError('put', path, a.error, this.conn.label));
      c.resolve({ sentBytes: data.length, resumedFrom: 0, totalBytes: data.length });
    });
  }

  /** The agent's answer, or undefined when there is no agent or it was lost (SFTP then). */
  private async ask<T>(request: (agent: SshAgent) => Promise<T>): Promise<T | undefined> {
    try {
      const { c, agent } = await this.conn.agent();
      // Guarded as an exec is: a connection found dead fails the request instead of leaving it waiting.
      return agent ? await this.conn.guard(c, () => request(agent)) : undefined;
    } catch {
      return undefined; // SFTP says what is wrong, or reconnects
    }
  }
}
