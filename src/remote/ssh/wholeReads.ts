/**
 * readWhole over ssh, batched: the reads asked in the same turn of the event loop go to the
 * connection's command agent as one request, so a run's outputs and log come back in one round
 * trip instead of two per file over SFTP (open, read). Each read keeps readWhole's contract: the
 * bytes of a file smaller than SMALL_GET_BYTES and at most `maxBytes`, null for a bigger one (the
 * caller streams it with getFile), TransportError when it cannot be read. Without an agent, or when
 * the agent is lost during the read (a read changes nothing: it is asked again), each goes through
 * SFTP as before.
 */
import { TransportError } from '../../errors.js';
import type { AgentFile } from './agent.js';
import type { SshConnection } from './connection.js';
import { readWhole as sftpReadWhole, SMALL_GET_BYTES } from './sftp.js';

interface Pending {
  path: string;
  maxBytes: number;
  resolve(b: Buffer | null): void;
  reject(e: unknown): void;
}

export class WholeReads {
  private pending: Pending[] = [];

  constructor(private readonly conn: SshConnection) {}

  read(path: string, maxBytes: number): Promise<Buffer | null> {
    return new Promise((resolve, reject) => {
      if (this.pending.push({ path, maxBytes, resolve, reject }) === 1) setImmediate(() => void this.flush());
    });
  }

  private async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    const limits = batch.map((r) => Math.min(r.maxBytes, SMALL_GET_BYTES - 1) + 1);
    let answers: AgentFile[] | undefined;
    try {
      const { c, agent } = await this.conn.agent();
      // Guarded as an exec is: a connection found dead fails the read instead of leaving it waiting.
      if (agent)
        answers = await this.conn.guard(c, () => agent.read(batch.map((r, i) => [r.path, limits[i]!])));
    } catch {
      answers = undefined; // no agent now: SFTP says what is wrong, or reconnects
    }
    batch.forEach((r, i) => {
      const a = answers?.[i];
      if (!a) return void sftpReadWhole(this.conn, r.path, r.maxBytes).then(r.resolve, r.reject);
      if ('data' in a) return r.resolve(a.data);
      if ('big' in a) return r.resolve(null);
      r.reject(
        new TransportError(`ssh get failed for ${r.path} on ${this.conn.label}: ${a.error}`, {
          retryable: a.error !== 'EACCES',
        }),
      );
    });
  }
}
