/**
 * Reading a Vast instance's state the cheap way: from the deployment's shared poller snapshot
 * (src/vast/poller.ts) when there is one, else one `GET /instances/{id}`; and what a state means for
 * a boot or a running training (bad image, transient status, gone).
 */
import type { VastClient } from '../vast/client.js';
import type { InstancePoller } from '../vast/poller.js';
import type { TurnOptions } from '../vast/budget.js';
import type { VastInstance } from '../vast/types.js';

/** Statuses of an instance that may still become `running`. */
export const BOOTING = new Set(['created', 'loading', 'scheduling']);

/** A missed heartbeat or a restart: passes on its own (vast-reality.md, "Booting"). */
export const TRANSIENT = new Set(['unknown', 'rebooting']);

/**
 * The error Vast reports in `status_msg` for an instance that will never boot (image pull, OCI
 * runtime), while it stays `loading`/`created`; null for a healthy message. The legacy CLI's
 * readiness loop destroys on "Error"; dstack on "OCI runtime create failed".
 */
export function bootErrorOf(inst: VastInstance): string | null {
  if (inst.actual_status === 'running') return null;
  const msg = (inst.status_msg ?? '').trim();
  return /error|failed|denied|unauthorized/i.test(msg) ? msg.slice(0, 300) : null;
}

/** A row of one instance, and how fresh it is. */
export interface InstanceRead {
  /** null: not in the list (destroyed, or not listed yet). */
  inst: VastInstance | null;
  /** Epoch ms the read was asked for. */
  at: number;
}

export class InstanceReader {
  constructor(
    private readonly client: Pick<VastClient, 'getInstance'>,
    private readonly poller?: InstancePoller,
  ) {}

  /**
   * A read asked for after `after` (epoch ms): the next poller snapshot, or a direct read when
   * there is no poller or no snapshot came (no leader could poll).
   */
  async next(id: number, after: number, turn: TurnOptions & { timeoutMs?: number }): Promise<InstanceRead> {
    if (this.poller) {
      await this.poller.watch(id);
      const snap = await this.poller.fresh(after, turn);
      if (snap) return { inst: snap.rows.find((r) => r.id === id) ?? null, at: snap.at };
    }
    const at = Date.now();
    return { inst: await this.client.getInstance(id, turn), at };
  }

  /** The latest read, however recent, when not older than `maxAgeMs`; else a direct read. */
  async latest(id: number, maxAgeMs: number, turn: TurnOptions = {}): Promise<InstanceRead> {
    if (this.poller) {
      await this.poller.watch(id);
      const snap = await this.poller.snapshot();
      if (snap && Date.now() - snap.at <= maxAgeMs) {
        return { inst: snap.rows.find((r) => r.id === id) ?? null, at: snap.at };
      }
    }
    const at = Date.now();
    return { inst: await this.client.getInstance(id, turn), at };
  }
}

/**
 * Remembers since when each instance has shown a transient status, so that one `unknown` is
 * tolerated and one that lasts past the grace is not.
 */
export class TransientClock {
  private readonly since = new Map<string, number>();

  /** true while `inst` is transient for no longer than graceMs; clears the clock otherwise. */
  tolerate(id: string, inst: VastInstance | null, graceMs: number, now = Date.now()): boolean {
    if (!inst || !TRANSIENT.has(inst.actual_status ?? '')) {
      this.since.delete(id);
      return false;
    }
    const first = this.since.get(id) ?? now;
    this.since.set(id, first);
    return now - first <= graceMs;
  }

  /** Seconds it has been transient (0 when not). */
  seconds(id: string, now = Date.now()): number {
    const first = this.since.get(id);
    return first === undefined ? 0 : Math.round((now - first) / 1000);
  }

  forget(id: string): void {
    this.since.delete(id);
  }
}
