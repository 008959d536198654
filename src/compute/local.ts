/**
 * The local ComputeProvider: "renting" is a no-op and the host is this machine. Work dirs live
 * under `root` (e.g. <RETRAIN_HOME>/models) and commands run through LocalTransport.
 */
import { resolve } from 'node:path';
import { CancelledError } from '../errors.js';
import type { JobSpec } from '../jobspec/types.js';
import { LocalTransport, type LocalTransportOptions } from '../remote/localTransport.js';
import { ensureDir } from '../util/inPlaceFs.js';
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
    await ensureDir(this.root);
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
