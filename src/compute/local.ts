/**
 * The local ComputeProvider: "renting" is a no-op and the host is this machine. Work dirs live
 * under `root` (e.g. <RETRAIN_HOME>/models) and commands run through LocalTransport.
 */
import { mkdir } from 'node:fs/promises';
import { posix, resolve } from 'node:path';
import { CancelledError, InputError } from '../errors.js';
import type { JobSpec } from '../jobspec/types.js';
import { LocalTransport, type LocalTransportOptions } from '../remote/localTransport.js';
import { workdirName } from '../remote/runner.js';
import type { Transport } from '../remote/transport.js';
import type { AcquireContext, ComputeProvider, Lease, LeaseInfo } from './provider.js';

export interface LocalProviderOptions extends LocalTransportOptions {
  /** Root of the work dirs; made absolute. */
  root: string;
}

export class LocalProvider implements ComputeProvider {
  readonly driver = 'local' as const;
  private readonly root: string;
  private readonly transport: LocalTransport;

  constructor(opts: LocalProviderOptions) {
    this.root = resolve(opts.root);
    this.transport = new LocalTransport(opts.baseEnv ? { baseEnv: opts.baseEnv } : {});
  }

  /** Creates the root and returns the local lease (id `local`, cost 0). */
  async acquire(_spec: JobSpec, ctx: AcquireContext): Promise<Lease> {
    if (ctx.signal.aborted) throw new CancelledError('acquire cancelled');
    await mkdir(this.root, { recursive: true });
    const info: LeaseInfo = {
      driver: 'local',
      id: 'local',
      host: 'localhost',
      workRoot: this.root,
      acquiredAt: new Date().toISOString(),
      hourlyCostUsd: 0,
    };
    await ctx.onLeaseCreated?.(info);
    return { info, transport: this.transport };
  }

  /** The same machine is always there: returns a lease for `info` (null for another driver). */
  async reattach(info: LeaseInfo): Promise<Lease | null> {
    if (info.driver !== 'local') return null;
    return { info, transport: this.transport };
  }

  /** Nothing to give back. Idempotent. */
  async release(_info: LeaseInfo): Promise<void> {}

  /** Local leases cost nothing and are never reaped. */
  async list(): Promise<LeaseInfo[]> {
    return [];
  }
}

const SYMBOL_DIR_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * `<workRoot>/<symbol>/<YYYYMMDD_HHMMSSZ>`, with `_2`, `_3`, ... appended while that path exists
 * (checked with the transport's stat; the dir is not created). InputError for a symbol that is not
 * a safe path segment.
 */
export async function workdirFor(t: Transport, workRoot: string, symbol: string, now: Date): Promise<string> {
  if (!SYMBOL_DIR_RE.test(symbol) || symbol.includes('..')) {
    throw new InputError(`symbol ${JSON.stringify(symbol)} cannot be used as a directory name`);
  }
  const base = posix.join(workRoot, symbol, workdirName(now));
  for (let n = 1; ; n++) {
    const candidate = n === 1 ? base : `${base}_${n}`;
    if (!(await t.stat(candidate))) return candidate;
  }
}
