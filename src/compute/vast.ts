import type { Config } from '../config/schema.js';
import { CancelledError, NoCapacityError, ProvisionError, asRetrainError } from '../errors.js';
import type { JobSpec } from '../jobspec/types.js';
import { imageErrorIn, maskLogin } from '../recipes/image.js';
import type { HostKeyPins } from '../remote/ssh/hostKeys.js';
import { connectLease } from './ssh.js';
import type { TurnOptions } from '../vast/budget.js';
import { VastClient, VastOfferGoneError } from '../vast/client.js';
import { sshEndpoint } from '../vast/endpoint.js';
import { allGpuNames, describeConstraints, gpuClasses } from '../vast/gpuPreferences.js';
import type { OfferBoard } from '../vast/market.js';
import { buildOfferQuery, type Bid, type OfferConstraints } from '../vast/offers.js';
import type { InstancePoller } from '../vast/poller.js';
import type { VastInstance, VastOffer } from '../vast/types.js';
import { watchdogScript } from '../vast/watchdog.js';
import type { AcquireContext, ComputeProvider, Lease, LeaseInfo } from './provider.js';
import { createOrAdopt, pickOffer, type Created } from './vastRent.js';
import { BOOTING, bootErrorOf, InstanceReader, TRANSIENT, TransientClock } from './vastStatus.js';

/** Machines that failed to boot, remembered for the rest of the run by every worker. */
export interface BadMachines {
  add(machineId: number): Promise<void>;
  list(): Promise<number[]>;
}

export interface VastProviderOptions {
  config: Config;
  client: VastClient;
  privateKey: Buffer;
  publicKey: string;
  pins: HostKeyPins;
  badMachines: (spec: JobSpec) => BadMachines;
  /** Called for every rent/destroy (events, metrics). Never throws. */
  onEvent?: (event: VastProviderEvent, data: Record<string, unknown>) => void;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** The deployment's shared instance list (boot waits, health checks, destroy confirmations). */
  poller?: InstancePoller;
  /** The deployment's shared offer search and machine claims. */
  board?: OfferBoard;
  /** Puts the deployment's SSH key on the account (once per deployment) before the first create. */
  ensureAccountKey?: (turn: TurnOptions) => Promise<unknown>;
}

export type VastProviderEvent =
  | 'instance_rented'
  | 'instance_destroyed'
  | 'provision_failed'
  | 'instance_preempted'
  | 'instance_lost'
  | 'create_unknown'
  | 'ssh_key_failed';

export function labelFor(deployment: string, jobId: string): string {
  return `retrain-${deployment}-${jobId}`;
}

/** The job id a label names, when it carries this deployment's prefix. */
export function jobIdFromLabel(deployment: string, label: string | null | undefined): string | null {
  const prefix = `retrain-${deployment}-`;
  return label && label.startsWith(prefix) ? label.slice(prefix.length) : null;
}

/** Whether a job rents interruptible (bid) instances: its spec says so (`--interruptible`). */
export function wantsInterruptible(spec: Pick<JobSpec, 'interruptible'>): boolean {
  return spec.interruptible === true;
}

/**
 * An interruptible instance that the host halted while we still want it running: outbid (Vast stops
 * it, `actual_status` stopped or exited, `intended_status` still running; vast-api.md §5, §9).
 */
export function isPreempted(inst: VastInstance, info?: Pick<LeaseInfo, 'interruptible'>): boolean {
  const bid = inst.is_bid === true || info?.interruptible === true;
  return (
    bid &&
    (inst.actual_status === 'stopped' || inst.actual_status === 'exited') &&
    inst.intended_status !== 'stopped'
  );
}

export function offerConstraints(
  config: Config,
  opts: { interruptible?: boolean; minCudaVersion?: number } = {},
): OfferConstraints {
  const v = config.vast;
  return {
    ...(opts.interruptible ? { interruptible: true } : {}),
    // The search covers every class of the preference list; each class is re-checked on its own cap.
    gpuNames: allGpuNames(v.gpuNames),
    maxHourlyCost: Math.max(...gpuClasses(v.gpuNames, v.maxHourlyCost).map((c) => c.maxHourlyCost)),
    minGpuMemoryGb: v.minGpuMemoryGb,
    minReliability: v.minReliability,
    verifiedOnly: v.verifiedOnly,
    minDiskGb: Math.max(v.minDiskGb, v.diskGb),
    minInetDownMbps: v.minInetDownMbps,
    minCudaVersion: opts.minCudaVersion ?? v.minCudaVersion,
    numGpus: v.numGpus,
    directSsh: v.runtype === 'ssh_direct',
    scanLimit: v.offers.scanLimit,
  };
}

/**
 * The watchdog started on the instance at boot (src/vast/watchdog.ts): destroys the instance at
 * `acquiredAt + maxRuntimeMin` with the instance-scoped key, logging to `<workRoot>/watchdog.log`.
 */
export function watchdogOnstart(
  apiUrl: string,
  maxRuntimeMin: number,
  opts: { now?: number; workRoot?: string } = {},
): string {
  return watchdogScript({
    apiUrl,
    deadlineEpochSec: Math.floor((opts.now ?? Date.now()) / 1000 + maxRuntimeMin * 60),
    logPath: `${(opts.workRoot ?? '/root/retrain').replace(/\/+$/, '')}/watchdog.log`,
  });
}

const defaultSleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(new CancelledError());
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), reject(new CancelledError())), { once: true });
  });

/**
 * Rents a near-cheapest offer meeting the constraints, waits for it to run and for SSH to answer
 * (within bootDeadlineSec), and on any failure destroys what it created, remembers the machine as
 * bad for the run and tries the next offer, up to maxProvisionTries. With the shared parts (poller,
 * offer board, account key) every worker of the deployment reads one instance list, one search and
 * one API budget.
 */
export class VastProvider implements ComputeProvider {
  readonly driver = 'vast' as const;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Instances isAlive found outbid (lostReason answers `preempted` for them until released). */
  private readonly preempted = new Set<string>();
  /** The run's bad-machine list of each instance this process rented (to exclude an outbid machine). */
  private readonly badOf = new Map<string, BadMachines>();
  private readonly reader: InstanceReader;
  private readonly transient = new TransientClock();

  constructor(private readonly opts: VastProviderOptions) {
    this.sleep = opts.sleep ?? defaultSleep;
    this.reader = new InstanceReader(opts.client, opts.poller);
  }

  private emit(event: VastProviderEvent, data: Record<string, unknown>) {
    try {
      this.opts.onEvent?.(event, data);
    } catch {
      /* listeners never throw */
    }
  }

  private get graceMs(): number {
    return this.opts.config.vast.transientGraceSec * 1000;
  }

  async acquire(spec: JobSpec, ctx: AcquireContext): Promise<Lease> {
    const { config, client } = this.opts;
    const v = config.vast;
    const bad = this.opts.badMachines(spec);
    const interruptible = wantsInterruptible(spec);
    const constraints = offerConstraints(config, { interruptible, minCudaVersion: ctx.minCudaVersion });
    const classes = gpuClasses(v.gpuNames, v.maxHourlyCost);
    const turn = { signal: ctx.signal, ...(ctx.deadline !== undefined ? { deadline: ctx.deadline } : {}) };
    const label = labelFor(config.deployment, spec.jobId);
    // Keys on the account reach every new container; a failure here leaves the attach below.
    await this.opts.ensureAccountKey?.(turn).catch((err: unknown) => {
      if (err instanceof CancelledError) throw err;
      this.emit('ssh_key_failed', { step: 'account', err: asRetrainError(err).message });
    });
    const tried = new Set<number>();
    const known = new Set<number>();
    const failures: string[] = [];
    for (let attempt = 0; attempt < v.maxProvisionTries; attempt++) {
      const pick = await pickOffer(client, this.opts.board, {
        query: buildOfferQuery(constraints),
        constraints,
        badMachines: new Set(await bad.list()),
        triedOffers: tried,
        classes,
        ...(interruptible
          ? {
              bidPolicy: {
                bidPrice: v.bidPrice,
                bidMultiplier: v.bidMultiplier,
                maxHourlyCost: v.maxHourlyCost,
                diskGb: v.diskGb,
              },
            }
          : {}),
        owner: spec.jobId,
        turn,
      });
      if ('fail' in pick) {
        // Offers used up by this attempt's failed rentals (bad images, boots): a provisioning failure.
        if (failures.length > 0) {
          failures.push(pick.fail);
          break;
        }
        // Not a failed rental: no capacity now (src/compute/capacityWait.ts waits and searches again).
        const why = pick.fail === 'no offer meets the constraints' ? '' : ` (${pick.fail})`;
        throw new NoCapacityError(
          `${spec.symbol}: ${pick.fail}`,
          describeConstraints(constraints, classes) + why,
        );
      }
      const { offer, bid, gpuClass } = pick;
      tried.add(offer.id);
      let created: Created | null;
      try {
        await ctx.beforeRent?.();
        created = await createOrAdopt(
          client,
          offer,
          {
            image: ctx.image?.image ?? v.image,
            ...(ctx.image?.login ? { imageLogin: ctx.image.login } : {}),
            disk: v.diskGb,
            label,
            onstart: watchdogOnstart(v.apiUrl, v.maxRuntimeMin, { workRoot: v.workRoot }),
            runtype: v.runtype,
            // Only a price makes the rental interruptible (a bid search alone still rents on-demand).
            ...(bid ? { price: bid.price } : {}),
          },
          {
            known,
            turn,
            onAmbiguous: (err) =>
              this.emit('create_unknown', {
                offerId: offer.id,
                label,
                err: maskLogin(err.message, ctx.image),
              }),
            destroyExtra: (id) => this.destroy(id),
          },
        );
      } catch (err) {
        if (err instanceof VastOfferGoneError) {
          failures.push(`offer ${offer.id} gone`);
          continue;
        }
        // An answer that echoes the request must not carry the registry token any further.
        if (ctx.image?.login && err instanceof Error) err.message = maskLogin(err.message, ctx.image);
        throw err;
      } finally {
        await pick.release();
      }
      if (!created) {
        failures.push(`offer ${offer.id}: the create got no answer and no instance carries ${label}`);
        continue;
      }
      const lease = await this.boot(spec, ctx, { offer, bid, gpuClass }, created, bad, failures);
      if (lease) return lease;
      known.add(created.instanceId);
    }
    throw new ProvisionError(
      `provisioning failed for ${spec.symbol}: ${failures.slice(-3).join('; ') || 'no attempt made'}`,
    );
  }

  /**
   * Records the new instance, attaches the key and waits for it to be ready; on failure destroys it,
   * marks the machine bad for the run and returns null (the next offer is tried).
   */
  private async boot(
    spec: JobSpec,
    ctx: AcquireContext,
    { offer, bid, gpuClass }: { offer: VastOffer; bid: Bid | undefined; gpuClass: string | undefined },
    created: Created,
    bad: BadMachines,
    failures: string[],
  ): Promise<Lease | null> {
    const v = this.opts.config.vast;
    const { instanceId } = created;
    const info: LeaseInfo = {
      driver: 'vast',
      id: String(instanceId),
      host: '',
      user: v.sshUser,
      workRoot: v.workRoot,
      acquiredAt: new Date().toISOString(),
      hourlyCostUsd: bid ? bid.hourly : offer.dph_total,
      machineId: offer.machine_id,
      gpu: offer.gpu_name,
      ...(gpuClass ? { gpuClass } : {}),
      ...(bid ? { interruptible: true, bidUsd: bid.price } : {}),
    };
    this.badOf.set(info.id, bad);
    await this.opts.poller?.watch(instanceId);
    // Saved before waiting: a crash from here on cannot orphan the instance.
    await ctx.onLeaseCreated?.(info);
    this.emit('instance_rented', {
      instanceId,
      offerId: offer.id,
      machineId: offer.machine_id,
      gpu: offer.gpu_name,
      dph: info.hourlyCostUsd,
      ...(created.adopted ? { adopted: true } : {}),
      ...(bid ? { interruptible: true, bid: bid.price, minBid: bid.minBid } : {}),
    });
    try {
      await this.attachKey(instanceId, ctx.signal);
      return await this.waitReady(info, ctx.signal);
    } catch (err) {
      if (err instanceof CancelledError || ctx.signal.aborted) throw err;
      const reason = asRetrainError(err).message;
      failures.push(`instance ${instanceId} on machine ${offer.machine_id}: ${reason}`);
      this.emit('provision_failed', { instanceId, machineId: offer.machine_id, reason });
      await bad.add(offer.machine_id);
      await this.release(info);
      this.badOf.delete(info.id);
      await ctx.onLeaseReleased?.({ ...info, bootFailure: reason });
      return null;
    }
  }

  /**
   * Attaches the deployment's key to the instance, retried: a failed attach is logged, never a
   * reason to drop the machine (the account key usually got there anyway; SSH tells).
   */
  private async attachKey(instanceId: number, signal: AbortSignal): Promise<void> {
    let wait = 1000;
    for (let i = 1; ; i++) {
      try {
        await this.opts.client.attachSshKey(instanceId, this.opts.publicKey, { signal });
        return;
      } catch (err) {
        if (err instanceof CancelledError || signal.aborted) throw err;
        if (i >= 3) {
          this.emit('ssh_key_failed', { step: 'attach', instanceId, err: asRetrainError(err).message });
          return;
        }
      }
      await this.sleep(wait, signal);
      wait *= 2;
    }
  }

  /**
   * Waits for `running` and an SSH answer within the boot deadline, reading the shared poller. An
   * error in `status_msg` (a bad image) ends the boot at the first read that shows it; `unknown` or
   * `rebooting` are tolerated for transientGraceSec.
   */
  private async waitReady(info: LeaseInfo, signal: AbortSignal): Promise<Lease> {
    const { config } = this.opts;
    const id = Number(info.id);
    const deadline = Date.parse(info.acquiredAt) + config.vast.bootDeadlineSec * 1000;
    let after = Date.parse(info.acquiredAt);
    let delay = 500;
    let missing = 0;
    let lastState = 'unknown';
    for (;;) {
      // No snapshot within a few intervals (no process could poll): one direct read instead.
      const waitMs = Math.min(Math.max(1000, deadline - Date.now()), (this.opts.poller?.intervalMs ?? 0) * 6);
      const read = await this.reader.next(id, after, { signal, timeoutMs: waitMs });
      after = read.at + 1;
      const inst = read.inst;
      // A list may not show a brand-new instance yet: gone only when two reads miss it.
      if (!inst) {
        if (++missing >= 2 || !this.opts.poller)
          throw new ProvisionError(`instance ${info.id} disappeared while booting`);
      } else {
        missing = 0;
        lastState = inst.actual_status ?? 'created';
        const imageError = imageErrorIn(inst.status_msg);
        if (imageError) throw new ProvisionError(`instance ${info.id}: image error at boot: ${imageError}`);
        const bootError = bootErrorOf(inst);
        if (bootError) throw new ProvisionError(`instance ${info.id} failed to boot: ${bootError}`);
        if (this.transient.tolerate(info.id, inst, this.graceMs)) {
          lastState = `${lastState} for ${this.transient.seconds(info.id)}s`;
        } else if (TRANSIENT.has(lastState) || ['exited', 'offline', 'stopped'].includes(lastState)) {
          this.transient.forget(info.id);
          const outbid = isPreempted(inst, info) ? ' (outbid: interruptible)' : '';
          throw new ProvisionError(`instance ${info.id} is ${lastState} while booting${outbid}`);
        }
        const ep = lastState === 'running' ? sshEndpoint(inst) : null;
        if (ep) {
          try {
            const at = { ...info, host: ep.host, port: ep.port };
            const transport = await connectLease(at, this.opts.privateKey, this.opts.pins, {
              pinId: `vast:${info.id}`,
              readyTimeoutMs: 10_000,
              connectRetries: 1,
              commandAgent: this.opts.config.ssh.commandAgent,
            });
            return { info: at, transport };
          } catch (err) {
            lastState = `running, ssh: ${asRetrainError(err).message}`;
          }
        }
      }
      if (Date.now() > deadline) {
        throw new ProvisionError(
          `instance ${info.id} not ready after ${config.vast.bootDeadlineSec}s (${lastState})`,
        );
      }
      // The poller paces the reads; without one, back off between direct reads.
      if (!this.opts.poller) {
        await this.sleep(Math.min(delay, Math.max(0, deadline - Date.now())), signal);
        delay = Math.min(delay * 2, 10_000);
      }
    }
  }

  async reattach(info: LeaseInfo, signal?: AbortSignal): Promise<Lease | null> {
    const fresh = (this.opts.poller?.intervalMs ?? 0) * 2;
    const { inst } = await this.reader.latest(Number(info.id), fresh, signal ? { signal } : {});
    if (!inst) return null;
    const status = inst.actual_status ?? 'created';
    if (status !== 'running') {
      if (BOOTING.has(status) || TRANSIENT.has(status)) {
        // Still booting (the previous worker died while waiting): wait for it rather than rent again.
        try {
          return await this.waitReady(info, signal ?? new AbortController().signal);
        } catch (err) {
          if (err instanceof CancelledError) throw err;
        }
      }
      await this.release(info);
      return null;
    }
    const ep = sshEndpoint(inst);
    if (!ep) return null;
    const at = { ...info, host: ep.host, port: ep.port };
    const transport = await connectLease(at, this.opts.privateKey, this.opts.pins, {
      pinId: `vast:${info.id}`,
      commandAgent: this.opts.config.ssh.commandAgent,
    });
    return { info: at, transport };
  }

  /**
   * Reads the shared snapshot (a direct read when it is stale). A transient status is alive until it
   * has lasted transientGraceSec.
   */
  async isAlive(info: LeaseInfo): Promise<boolean> {
    const poller = this.opts.poller;
    const maxAge = poller ? poller.intervalMs * 4 : 0;
    const read = await this.reader.latest(Number(info.id), maxAge);
    const inst = read.inst;
    // Not listed in a snapshot asked for before the rental began: too early to say.
    if (!inst && read.at <= Date.parse(info.acquiredAt)) return true;
    if (inst && isPreempted(inst, info)) {
      if (!this.preempted.has(info.id)) {
        this.preempted.add(info.id);
        const machineId = info.machineId ?? inst.machine_id;
        this.emit('instance_preempted', {
          instanceId: Number(info.id),
          machineId,
          status: inst.actual_status,
          bid: info.bidUsd,
        });
        // Outbid there once at this bid, likely again: not rented on that machine again this run.
        if (machineId !== undefined)
          await this.badOf
            .get(info.id)
            ?.add(machineId)
            .catch(() => undefined);
      }
      return false;
    }
    if (this.transient.tolerate(info.id, inst, this.graceMs)) return true;
    if (inst && TRANSIENT.has(inst.actual_status ?? '')) {
      this.emit('instance_lost', {
        instanceId: Number(info.id),
        status: inst.actual_status,
        graceSec: this.graceMs / 1000,
      });
      return false;
    }
    return (
      inst !== null && (inst.actual_status === 'running' || BOOTING.has(inst.actual_status ?? 'created'))
    );
  }

  async markUnsound(info: LeaseInfo): Promise<void> {
    if (info.machineId !== undefined) await this.badOf.get(info.id)?.add(info.machineId);
  }

  lostReason(info: LeaseInfo): 'preempted' | undefined {
    return this.preempted.has(info.id) ? 'preempted' : undefined;
  }

  /** DELETE, confirmed gone by the poller's next snapshots (or a read back without one). */
  private async destroy(id: number): Promise<void> {
    const poller = this.opts.poller;
    if (poller) await poller.watch(id);
    await this.opts.client.destroyInstance(
      id,
      poller ? { confirmGone: (i, ms) => poller.confirmGone(i, ms) } : {},
    );
    await poller?.unwatch(id);
  }

  async release(info: LeaseInfo): Promise<void> {
    await this.destroy(Number(info.id));
    this.preempted.delete(info.id);
    this.badOf.delete(info.id);
    this.transient.forget(info.id);
    await this.opts.pins.forget(`vast:${info.id}`);
    this.emit('instance_destroyed', { instanceId: Number(info.id), reason: 'released' });
  }

  async list(): Promise<LeaseInfo[]> {
    return deploymentInstances(this.opts.client, this.opts.config);
  }

  async close(): Promise<void> {
    await this.opts.poller?.close();
  }
}

/** This deployment's instances (by label), as leases; others on the account are left out. */
export async function deploymentInstances(
  client: Pick<VastClient, 'listInstances'>,
  config: Config,
): Promise<LeaseInfo[]> {
  const all = await client.listInstances();
  return all
    .filter((i) => jobIdFromLabel(config.deployment, i.label) !== null)
    .map((i) => ({
      driver: 'vast' as const,
      id: String(i.id),
      host: i.ssh_host ?? '',
      workRoot: config.vast.workRoot,
      acquiredAt: i.start_date ? new Date(i.start_date * 1000).toISOString() : '',
      hourlyCostUsd: i.dph_total ?? 0,
      label: i.label ?? undefined,
    }));
}
