import type { Config } from '../config/schema.js';
import { CancelledError, NoCapacityError, ProvisionError, asRetrainError } from '../errors.js';
import type { JobSpec } from '../jobspec/types.js';
import { shellQuote } from '../recipes/template.js';
import type { HostKeyPins } from '../remote/ssh/hostKeys.js';
import { SshTransport } from '../remote/sshTransport.js';
import { VastClient, VastOfferGoneError } from '../vast/client.js';
import { sshEndpoint } from '../vast/endpoint.js';
import { allGpuNames, chooseByPreference, describeConstraints, gpuClasses } from '../vast/gpuPreferences.js';
import { bidFor, buildOfferQuery, type Bid, type OfferConstraints } from '../vast/offers.js';
import type { VastInstance } from '../vast/types.js';
import type { AcquireContext, ComputeProvider, Lease, LeaseInfo } from './provider.js';

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
}

export type VastProviderEvent =
  'instance_rented' | 'instance_destroyed' | 'provision_failed' | 'instance_preempted';

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

export function offerConstraints(config: Config, opts: { interruptible?: boolean } = {}): OfferConstraints {
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
    minCudaVersion: v.minCudaVersion,
    numGpus: v.numGpus,
  };
}

/**
 * A watchdog started on the instance at boot: after maxRuntimeMin it destroys the instance with the
 * instance-scoped key Vast puts in its environment (CONTAINER_API_KEY) — never the account key — so a
 * rental cannot outlive the orchestrator by more than the cap.
 */
export function watchdogOnstart(apiUrl: string, maxRuntimeMin: number): string {
  const secs = Math.ceil(maxRuntimeMin * 60);
  const url = `${apiUrl.replace(/\/+$/, '')}/api/v0/instances/`;
  // curl, else wget, else python3: whichever the image has. The key stays in the environment.
  const destroy = [
    `u=${shellQuote(url)}"$CONTAINER_ID/"`,
    'if command -v curl >/dev/null 2>&1; then curl -fsS -X DELETE -H "Authorization: Bearer $CONTAINER_API_KEY" "$u"',
    'elif command -v wget >/dev/null 2>&1; then wget -q -O- --method=DELETE --header="Authorization: Bearer $CONTAINER_API_KEY" "$u"',
    `else python3 -c ${shellQuote("import os,sys,urllib.request as r; r.urlopen(r.Request(sys.argv[1], method='DELETE', headers={'Authorization': 'Bearer ' + os.environ['CONTAINER_API_KEY']}))")} "$u"; fi`,
  ].join('; ');
  return ['#!/bin/bash', `( sleep ${secs}; ${destroy} ) >/dev/null 2>&1 &`].join('\n');
}

/** Statuses of an instance that may still become `running`. */
const BOOTING = new Set(['created', 'loading', 'scheduling']);

const defaultSleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(new CancelledError());
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), reject(new CancelledError())), { once: true });
  });

/**
 * Rents the cheapest offer meeting the constraints, waits for it to run and for SSH to answer
 * (within bootDeadlineSec), and on any failure destroys what it created, remembers the machine as
 * bad for the run and tries the next offer, up to maxProvisionTries.
 */
export class VastProvider implements ComputeProvider {
  readonly driver = 'vast' as const;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Instances isAlive found outbid (lostReason answers `preempted` for them until released). */
  private readonly preempted = new Set<string>();
  /** The run's bad-machine list of each instance this process rented (to exclude an outbid machine). */
  private readonly badOf = new Map<string, BadMachines>();

  constructor(private readonly opts: VastProviderOptions) {
    this.sleep = opts.sleep ?? defaultSleep;
  }

  private emit(event: VastProviderEvent, data: Record<string, unknown>) {
    try {
      this.opts.onEvent?.(event, data);
    } catch {
      /* listeners never throw */
    }
  }

  async acquire(spec: JobSpec, ctx: AcquireContext): Promise<Lease> {
    const { config, client } = this.opts;
    const v = config.vast;
    const bad = this.opts.badMachines(spec);
    const interruptible = wantsInterruptible(spec);
    const constraints = offerConstraints(config, { interruptible });
    const tried = new Set<number>();
    const failures: string[] = [];
    for (let attempt = 0; attempt < v.maxProvisionTries; attempt++) {
      const badIds = new Set(await bad.list());
      const classes = gpuClasses(v.gpuNames, v.maxHourlyCost);
      const found = chooseByPreference(
        await client.searchOffers(buildOfferQuery(constraints)),
        constraints,
        classes,
        {
          machineIds: badIds,
          offerIds: tried,
        },
      );
      const offers = found.offers;
      // Interruptible: the first offer a bid within the policy can win (never below its min_bid).
      let offer = offers[0];
      let bid: Bid | undefined;
      if (interruptible) {
        offer = undefined;
        const skipped: string[] = [];
        for (const o of offers) {
          const b = bidFor(o, {
            bidPrice: v.bidPrice,
            bidMultiplier: v.bidMultiplier,
            maxHourlyCost: v.maxHourlyCost,
            diskGb: v.diskGb,
          });
          if ('reject' in b) skipped.push(`offer ${o.id}: ${b.reject}`);
          else {
            offer = o;
            bid = b;
            break;
          }
        }
        if (!offer && skipped.length) {
          // No capacity at a bid within the policy: the capacity wait searches again later.
          const unmet = `${describeConstraints(constraints, classes)} (no offer to bid on: ${skipped.slice(0, 2).join('; ')})`;
          throw new NoCapacityError(`${spec.symbol}: no offer to bid on`, unmet);
        }
      }
      if (!offer) {
        // Not a failed rental: no capacity now (src/compute/capacityWait.ts waits and searches again).
        throw new NoCapacityError(
          `${spec.symbol}: no offer meets the constraints`,
          describeConstraints(constraints, classes),
        );
      }
      tried.add(offer.id);
      await ctx.beforeRent?.();
      let instanceId: number;
      try {
        ({ instanceId } = await client.createInstance(offer.id, {
          image: v.image,
          disk: v.diskGb,
          label: labelFor(config.deployment, spec.jobId),
          onstart: watchdogOnstart(v.apiUrl, v.maxRuntimeMin),
          runtype: v.runtype,
          // Only a price makes the rental interruptible (a bid search alone still rents on-demand).
          ...(bid ? { price: bid.price } : {}),
        }));
      } catch (err) {
        if (err instanceof VastOfferGoneError) {
          failures.push(`offer ${offer.id} gone`);
          continue;
        }
        throw err;
      }
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
        ...(found.gpuClass ? { gpuClass: found.gpuClass } : {}),
        ...(bid ? { interruptible: true, bidUsd: bid.price } : {}),
      };
      this.badOf.set(info.id, bad);
      // Saved before waiting: a crash from here on cannot orphan the instance.
      await ctx.onLeaseCreated?.(info);
      this.emit('instance_rented', {
        instanceId,
        offerId: offer.id,
        machineId: offer.machine_id,
        gpu: offer.gpu_name,
        dph: info.hourlyCostUsd,
        ...(bid ? { interruptible: true, bid: bid.price, minBid: bid.minBid } : {}),
      });
      try {
        await client.attachSshKey(instanceId, this.opts.publicKey);
        const lease = await this.waitReady(info, ctx.signal);
        return lease;
      } catch (err) {
        if (err instanceof CancelledError || ctx.signal.aborted) throw err;
        failures.push(
          `instance ${instanceId} on machine ${offer.machine_id}: ${asRetrainError(err).message}`,
        );
        this.emit('provision_failed', {
          instanceId,
          machineId: offer.machine_id,
          reason: asRetrainError(err).message,
        });
        await bad.add(offer.machine_id);
        await this.release(info);
        this.badOf.delete(info.id);
        await ctx.onLeaseReleased?.(info);
      }
    }
    throw new ProvisionError(
      `provisioning failed for ${spec.symbol}: ${failures.slice(-3).join('; ') || 'no attempt made'}`,
    );
  }

  /** Waits for `running` and an SSH answer within the boot deadline. */
  private async waitReady(info: LeaseInfo, signal: AbortSignal): Promise<Lease> {
    const { client, config } = this.opts;
    const deadline = Date.parse(info.acquiredAt) + config.vast.bootDeadlineSec * 1000;
    let delay = 500;
    let lastState = 'unknown';
    for (;;) {
      const inst = await client.getInstance(Number(info.id));
      if (!inst) throw new ProvisionError(`instance ${info.id} disappeared while booting`);
      lastState = inst.actual_status ?? 'created';
      if (['exited', 'offline', 'unknown', 'stopped'].includes(lastState)) {
        const outbid = isPreempted(inst, info) ? ' (outbid: interruptible)' : '';
        throw new ProvisionError(`instance ${info.id} is ${lastState} while booting${outbid}`);
      }
      const ep = lastState === 'running' ? sshEndpoint(inst) : null;
      if (ep) {
        try {
          const transport = await SshTransport.connect({
            host: ep.host,
            port: ep.port,
            username: info.user ?? 'root',
            privateKey: this.opts.privateKey,
            pins: this.opts.pins,
            pinId: `vast:${info.id}`,
            readyTimeoutMs: 10_000,
            connectRetries: 1,
          });
          return { info: { ...info, host: ep.host, port: ep.port }, transport };
        } catch (err) {
          lastState = `running, ssh: ${asRetrainError(err).message}`;
        }
      }
      if (Date.now() > deadline) {
        throw new ProvisionError(
          `instance ${info.id} not ready after ${config.vast.bootDeadlineSec}s (${lastState})`,
        );
      }
      await this.sleep(Math.min(delay, Math.max(0, deadline - Date.now())), signal);
      delay = Math.min(delay * 2, 10_000);
    }
  }

  async reattach(info: LeaseInfo, signal?: AbortSignal): Promise<Lease | null> {
    const inst = await this.opts.client.getInstance(Number(info.id));
    if (!inst) return null;
    const status = inst.actual_status ?? 'created';
    if (status !== 'running') {
      if (BOOTING.has(status)) {
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
    const transport = await SshTransport.connect({
      host: ep.host,
      port: ep.port,
      username: info.user ?? 'root',
      privateKey: this.opts.privateKey,
      pins: this.opts.pins,
      pinId: `vast:${info.id}`,
    });
    return { info: { ...info, host: ep.host, port: ep.port }, transport };
  }

  async isAlive(info: LeaseInfo): Promise<boolean> {
    const inst = await this.opts.client.getInstance(Number(info.id));
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
    return (
      inst !== null && (inst.actual_status === 'running' || BOOTING.has(inst.actual_status ?? 'created'))
    );
  }

  lostReason(info: LeaseInfo): 'preempted' | undefined {
    return this.preempted.has(info.id) ? 'preempted' : undefined;
  }

  async release(info: LeaseInfo): Promise<void> {
    await this.opts.client.destroyInstance(Number(info.id));
    this.preempted.delete(info.id);
    this.badOf.delete(info.id);
    await this.opts.pins.forget(`vast:${info.id}`);
    this.emit('instance_destroyed', { instanceId: Number(info.id), reason: 'released' });
  }

  async list(): Promise<LeaseInfo[]> {
    return deploymentInstances(this.opts.client, this.opts.config);
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
