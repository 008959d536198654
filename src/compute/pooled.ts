/**
 * PooledProvider: the vast provider with an instance pool (src/compute/pool.ts) in front. acquire()
 * takes a free slot of one of the run's instances when there is one (relabelled for the new holder,
 * the previous holder's work dir removed from its disk) and rents otherwise; release() hands a sound
 * instance back to the pool and destroys it when no symbol waits, after idleGraceSec unclaimed, or at
 * once when it failed for a host reason.
 */
import { posix } from 'node:path';
import type { Config } from '../config/schema.js';
import { CancelledError, asRetrainError } from '../errors.js';
import type { JobSpec } from '../jobspec/types.js';
import { shellQuote } from '../recipes/template.js';
import { mustExec, SAFE_SEGMENT_RE } from '../remote/execUtil.js';
import type { VastClient } from '../vast/client.js';
import type { InstancePool } from './pool.js';
import type { AcquireContext, ComputeProvider, Lease, LeaseInfo, ReleaseHint } from './provider.js';
import { labelFor } from './vast.js';

export interface PooledProviderOptions {
  config: Config;
  inner: ComputeProvider;
  pool: InstancePool;
  client: Pick<VastClient, 'setLabel'>;
  /**
   * How many train jobs wait to start (or to retry); a free instance is kept only while they are at
   * least as many as the run's free slots, else it is destroyed at once rather than idled.
   */
  symbolsWaiting?: (runId: string) => Promise<number>;
  /** Books what a run's instances cost while no symbol held them. */
  bookIdle?: (runId: string, usd: number) => Promise<void>;
  onEvent?: (event: string, data: Record<string, unknown>) => void;
}

export class PooledProvider implements ComputeProvider {
  readonly driver: ComputeProvider['driver'];
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;

  constructor(private readonly opts: PooledProviderOptions) {
    this.driver = opts.inner.driver;
  }

  private emit(event: string, data: Record<string, unknown>) {
    try {
      this.opts.onEvent?.(event, data);
    } catch {
      /* listeners never throw */
    }
  }

  private get slots(): number {
    return this.opts.config.vast.pool.slotsPerHost;
  }

  private expiresAt(info: LeaseInfo): number {
    return Date.parse(info.acquiredAt) + this.opts.config.vast.maxRuntimeMin * 60_000;
  }

  /**
   * The holder's own root, `<vast.workRoot>/<jobId>`: removed whole when its slot changes hands (a
   * job id that is not a plain path segment gets the shared root, which is never removed).
   */
  private rootFor(jobId: string): string {
    const base = this.opts.config.vast.workRoot;
    return SAFE_SEGMENT_RE.test(jobId) ? posix.join(base, jobId) : base;
  }

  async acquire(spec: JobSpec, ctx: AcquireContext): Promise<Lease> {
    const runId = ctx.runId ?? spec.date;
    const v = this.opts.config.vast;
    for (let tries = 0; tries < 2 * v.maxProvisionTries; tries++) {
      if (ctx.signal.aborted) throw new CancelledError('acquire cancelled');
      // A run that has spent its budget starts no symbol, on a new instance or a pooled one.
      await ctx.beforeRent?.();
      const taken = await this.opts.pool.take({
        runId,
        jobId: spec.jobId,
        // Only an instance whose rental (maxRuntimeMin) outlasts this symbol's own time limit.
        needMs: spec.timeoutMinutes * 60_000,
        root: this.rootFor(spec.jobId),
      });
      if (!taken) break;
      const now = Date.now();
      await this.opts.bookIdle?.(
        runId,
        (taken.info.hourlyCostUsd * Math.max(0, now - taken.freeSince)) / 3_600_000 / taken.slots,
      );
      const info: LeaseInfo = {
        ...taken.info,
        workRoot: this.rootFor(spec.jobId),
        label: labelFor(this.opts.config.deployment, spec.jobId),
        heldSince: new Date(now).toISOString(),
        pool: { runId, jobId: spec.jobId, slot: taken.slot, slots: taken.slots },
      };
      // Saved before anything else: a crash from here on reattaches to this slot.
      await ctx.onLeaseCreated?.(info);
      const lease = await this.handOver(info, taken.previousRoot, ctx.signal);
      if (lease) {
        this.emit('instance_reused', { instanceId: Number(info.id), jobId: spec.jobId, slot: taken.slot });
        return lease;
      }
      // Unusable: it is destroyed and out of the pool; this symbol paid nothing for it. Next one.
      await ctx.onLeaseReleased?.(info);
    }
    const slotOf = (info: LeaseInfo): LeaseInfo => ({
      ...info,
      workRoot: this.rootFor(spec.jobId),
      heldSince: info.acquiredAt,
      pool: { runId, jobId: spec.jobId, slot: 0, slots: this.slots },
    });
    const lease = await this.opts.inner.acquire(spec, {
      ...ctx,
      ...(ctx.onLeaseCreated ? { onLeaseCreated: (info) => ctx.onLeaseCreated!(slotOf(info)) } : {}),
      ...(ctx.onLeaseReleased ? { onLeaseReleased: (info) => ctx.onLeaseReleased!(slotOf(info)) } : {}),
    });
    const info = slotOf(lease.info);
    await this.opts.pool.ensureHeld({
      info: { ...info, workRoot: v.workRoot },
      runId,
      slots: this.slots,
      expiresAt: this.expiresAt(info),
      slot: 0,
      jobId: spec.jobId,
      since: Date.parse(info.acquiredAt),
      root: info.workRoot,
    });
    return { info, transport: lease.transport };
  }

  /**
   * Connects to a slot just taken: relabels the instance for its new holder and removes the previous
   * holder's work dir. null (the instance destroyed and out of the pool) when it is gone or unusable.
   */
  private async handOver(info: LeaseInfo, previousRoot: string, signal: AbortSignal): Promise<Lease | null> {
    let lease: Lease | null = null;
    try {
      await this.opts.client.setLabel(Number(info.id), info.label!).catch(() => undefined);
      lease = await this.opts.inner.reattach(info, signal);
      if (!lease) throw new Error('instance gone');
      // Only a previous holder's own root, strictly under the work root, is ever removed.
      const base = this.opts.config.vast.workRoot.replace(/\/+$/, '');
      if (previousRoot.startsWith(`${base}/`) && previousRoot !== info.workRoot) {
        await mustExec(
          lease.transport,
          `rm -rf -- ${shellQuote(previousRoot)}`,
          'clean the previous work dir',
        );
      }
      return lease;
    } catch (err) {
      if (err instanceof CancelledError || signal.aborted) throw err;
      this.emit('pool_handover_failed', { instanceId: Number(info.id), err: asRetrainError(err).message });
      await lease?.transport.close().catch(() => undefined);
      await this.destroy(info, 'handover_failed', { bad: true }).catch(() => undefined);
      return null;
    }
  }

  async reattach(info: LeaseInfo, signal?: AbortSignal): Promise<Lease | null> {
    if (!info.pool) return this.opts.inner.reattach(info, signal);
    const lease = await this.opts.inner.reattach(info, signal);
    if (!lease) {
      // Gone (or destroyed as unusable by the inner provider): out of the pool for everyone.
      await this.opts.pool.claim(info.id, null).catch(() => undefined);
      return null;
    }
    // A crash between the rental and its pool record leaves none: make sure it is this job's.
    const ours = await this.opts.pool.ensureHeld({
      info: { ...info, workRoot: this.opts.config.vast.workRoot },
      runId: info.pool.runId,
      slots: info.pool.slots,
      expiresAt: this.expiresAt(info),
      slot: info.pool.slot,
      jobId: info.pool.jobId,
      since: Date.parse(info.heldSince ?? info.acquiredAt),
      root: info.workRoot,
    });
    if (!ours) {
      await lease.transport.close().catch(() => undefined);
      return null;
    }
    return lease;
  }

  isAlive(info: LeaseInfo): Promise<boolean> {
    return this.opts.inner.isAlive ? this.opts.inner.isAlive(info) : Promise.resolve(true);
  }

  lostReason(info: LeaseInfo): 'preempted' | undefined {
    return this.opts.inner.lostReason?.(info);
  }

  async markUnsound(info: LeaseInfo): Promise<void> {
    await this.opts.inner.markUnsound?.(info);
  }

  async release(info: LeaseInfo, hint: ReleaseHint = {}): Promise<void> {
    const p = info.pool;
    if (!p) return this.opts.inner.release(info);
    const grace = this.opts.config.vast.pool.idleGraceSec * 1000;
    // Not worth keeping: a host-side failure, or too little rental left for another symbol's limit.
    const bad = !hint.reusable || this.expiresAt(info) - Date.now() < 60_000;
    const r = await this.opts.pool.release({ id: info.id, slot: p.slot, jobId: p.jobId, bad });
    if (r === 'not_holder') return; // released before (the slot may be someone else's by now)
    if (r === 'gone') return this.opts.inner.release(info); // not pooled any more: make sure it is gone
    if (r === 'shared') return; // the last of its holders decides
    if (r === 'bad') {
      await this.destroy(info, 'host_failed', {});
      return;
    }
    const wanted = this.opts.symbolsWaiting
      ? await this.opts.symbolsWaiting(p.runId).then(
          async (waiting) => waiting >= (await this.opts.pool.freeSlots(p.runId)),
          () => true,
        )
      : true;
    if (!wanted || grace === 0) {
      await this.destroy(info, 'no_symbol_waiting', {});
      return;
    }
    this.emit('instance_pooled', { instanceId: Number(info.id), runId: p.runId, graceSec: grace / 1000 });
    this.scheduleIdleCheck(info.id, grace);
  }

  /** After the grace, destroys the instance if it has been idle all that time (else its taker has it). */
  private scheduleIdleCheck(id: string, graceMs: number): void {
    if (this.closed) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      void this.reapIdle(id, graceMs).catch(() => undefined);
    }, graceMs + 50);
    t.unref();
    this.timers.add(t);
  }

  /** Destroys a pooled instance idle for graceMs (null: at once if nobody holds it). */
  async reapIdle(id: string, graceMs: number | null, reason = 'idle'): Promise<boolean> {
    const claimed = await this.opts.pool.claim(id, graceMs);
    if (!claimed) return false;
    await this.finishClaim(claimed.info, claimed, reason);
    return true;
  }

  /** Destroys every idle instance of the run (run end). Held ones are left to their holders. */
  async drainRun(runId: string): Promise<number> {
    let n = 0;
    for (const id of await this.opts.pool.runInstances(runId)) {
      if (await this.reapIdle(id, null, 'run_ended').catch(() => false)) n++;
    }
    return n;
  }

  /** Claims (if nobody holds it) and destroys the instance, booking its idle slot-time to the run. */
  private async destroy(info: LeaseInfo, reason: string, opts: { bad?: boolean }): Promise<void> {
    if (opts.bad) {
      await this.opts.pool.release({
        id: info.id,
        slot: info.pool!.slot,
        jobId: info.pool!.jobId,
        bad: true,
      });
    }
    // Not claimed: another symbol holds a slot (the last to let go destroys it), or it is claimed.
    // The holder's own slot is booked to it up to the destroy (trainSymbol books after release).
    const claimed = await this.opts.pool.claim(info.id, null);
    if (claimed) await this.finishClaim(info, claimed, reason, info.pool?.slot);
  }

  private async finishClaim(
    info: LeaseInfo,
    claimed: { runId: string; idleUsd(until: number, except?: number): number },
    reason: string,
    holderSlot?: number,
  ): Promise<void> {
    await this.opts.inner.release({ ...info, pool: undefined, heldSince: undefined });
    const usd = claimed.idleUsd(Date.now(), holderSlot);
    await this.opts.bookIdle?.(claimed.runId, usd).catch(() => undefined);
    this.emit('instance_unpooled', {
      instanceId: Number(info.id),
      runId: claimed.runId,
      reason,
      idleUsd: usd,
    });
  }

  list(): Promise<LeaseInfo[]> {
    return this.opts.inner.list();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.opts.inner.close?.();
  }
}
