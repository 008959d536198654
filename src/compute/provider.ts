import type { RentalImage } from '../recipes/image.js';
import type { JobSpec } from '../jobspec/types.js';
import type { Transport } from '../remote/transport.js';

/** What is persisted in the job about a rented/reserved host, so a new worker can reattach. */
export interface LeaseInfo {
  driver: 'local' | 'ssh' | 'vast';
  /** Provider-specific id (vast instance id, ssh host alias, `local`). */
  id: string;
  host: string;
  port?: number;
  user?: string;
  /** Root under which this lease's work dirs live on the host. */
  workRoot: string;
  acquiredAt: string;
  /** $/hour while held (0 for local/ssh). */
  hourlyCostUsd: number;
  /** Vast: the physical machine (excluded for the run when it fails to boot). */
  machineId?: number;
  /** Vast: the GPU rented (the offer's gpu_name), and the preference class it was chosen from. */
  gpu?: string;
  gpuClass?: string;
  /** Vast: the instance label (`retrain-<deployment>-<jobId>`). */
  label?: string;
  /** Vast: an interruptible (bid) rental, and its bid in $/h. */
  interruptible?: boolean;
  bidUsd?: number;
  /**
   * When this holder got the host: a pooled instance is billed to a symbol only from here (not from
   * acquiredAt, which still dates the rental for maxRuntimeMin). Absent: acquiredAt.
   */
  heldSince?: string;
  /** A pooled instance's slot held by this lease (src/compute/pool.ts). */
  pool?: PoolSlot;
  /** Vast: why the instance was given back before it booted (e.g. the image error in status_msg). */
  bootFailure?: string;
}

/** Which slot of a pooled instance a lease holds, and for whom. */
export interface PoolSlot {
  runId: string;
  jobId: string;
  slot: number;
  /** Slots of the instance: each is billed 1/slots of its price. */
  slots: number;
}

/** How a lease is given back. */
export interface ReleaseHint {
  /**
   * The host is fine for another symbol (the symbol succeeded, or its recipe failed on a sound host).
   * false after a host-side failure (lost, hung, timed out, unreachable): never reused. Default false.
   */
  reusable?: boolean;
}

export interface Lease {
  info: LeaseInfo;
  transport: Transport;
}

export interface AcquireContext {
  signal: AbortSignal;
  /** Epoch ms: the symbol's deadline. No wait for an API turn, nor for capacity, runs past it. */
  deadline?: number;
  /** Called as soon as something billable exists, before waiting on it (crash safety). */
  onLeaseCreated?: (info: LeaseInfo) => Promise<void>;
  /** Called before each new rental; throws (e.g. BudgetExceededError) to stop renting. */
  beforeRent?: () => Promise<void>;
  /** The run the symbol belongs to (a pooled instance is shared within a run only). */
  runId?: string;
  /**
   * Told when the symbol starts waiting for capacity, and once it has a host (or gave up) after
   * acquire was called (src/compute/capacityWait.ts). Never throws.
   */
  onCapacity?: (e: CapacityEvent) => Promise<void>;
  /** Called after the provider itself gave back a lease it created (one that failed to boot). */
  onLeaseReleased?: (info: LeaseInfo) => Promise<void>;
  /** Driver vast: the recipe's image (and registry login, a secret held in memory only). */
  image?: RentalImage;
  /** Driver vast: the recipe's minimum CUDA version (overrides vast.minCudaVersion). */
  minCudaVersion?: number;
}

export interface ComputeProvider {
  readonly driver: 'local' | 'ssh' | 'vast';
  /** Rents or reserves a host; resolves when commands can run on it. */
  acquire(spec: JobSpec, ctx: AcquireContext): Promise<Lease>;
  /**
   * Reconnects to a lease recorded earlier (waiting for it to finish booting when it is still
   * booting); null when it is gone or unusable — then nothing of it is left running.
   */
  reattach(info: LeaseInfo, signal?: AbortSignal): Promise<Lease | null>;
  /**
   * Whether the host is still there (checked now and then while a training runs). Providers whose
   * hosts cannot vanish leave it out. Throws on an answer it cannot get (treated as "don't know").
   */
  isAlive?(info: LeaseInfo): Promise<boolean>;
  /**
   * Why a host that isAlive reported gone is gone, when the provider can tell more than "lost":
   * `preempted` for an interruptible (bid) instance that was outbid or stopped by the host.
   */
  lostReason?(info: LeaseInfo): 'preempted' | undefined;
  /** The recipe found the host unsound (healthcheck, disk): not rented again for this run. */
  markUnsound?(info: LeaseInfo): Promise<void>;
  /**
   * Idempotent. For vast: destroy and confirm it is gone — or, pooled and `hint.reusable`, hand the
   * instance back to the run's pool for the next symbol.
   */
  release(info: LeaseInfo, hint?: ReleaseHint): Promise<void>;
  /** What this deployment holds now (for the reaper). */
  list(): Promise<LeaseInfo[]>;
  /** Lets go of what the provider keeps between leases (pooled connections); for shutdown. */
  close?(): Promise<void>;
}

/** A symbol's wait for capacity, as told to AcquireContext.onCapacity. */
export type CapacityEvent =
  | { state: 'waiting'; since: string; unmet: string }
  | { state: 'done'; waitedMs: number; since?: string; gpu?: string; gpuClass?: string };
