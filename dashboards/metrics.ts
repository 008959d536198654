import type { Queue } from 'bullmq';
import { Gauge, Histogram, Registry } from 'prom-client';
import type { Ledger, LedgerEntry } from '../src/ledger/ledger.js';
import { LEDGER_STATUSES } from '../src/ledger/ledger.js';
import type { SavedReconciliation } from '../src/ledger/costReport.js';
import type { RunSpend } from '../src/train/spend.js';
import type { TrainJobData } from '../src/train/types.js';
import { QUEUES } from '../queues/names.js';
import { stateDurations } from './stateDurations.js';

/** BullMQ job states reported per queue. */
export const JOB_STATES = [
  'waiting',
  'active',
  'delayed',
  'prioritized',
  'waiting-children',
  'completed',
  'failed',
] as const;

/** Finished train jobs read per state and scrape when looking for new state durations. */
const FINISHED_WINDOW = 1000;

/** Buckets of retrain_train_state_seconds: seconds to hours. */
const STATE_BUCKETS = [0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400];

export interface DashboardMetricsOptions {
  queues: ReadonlyMap<string, Queue>;
  ledger: Ledger;
  spend: RunSpend;
  /** How many of the newest ledger dates the ledger series cover. */
  recentDates: number;
  /** The last `retrain cost` reconciliation of a date with Vast's charges (kept in Redis). */
  reconciliation?: (date: string) => Promise<SavedReconciliation | null>;
  now?: () => Date;
}

/**
 * The Prometheus exposition of `/metrics`: every series is `retrain_*` and is read from Redis (the
 * queues, the ledger, the runs' spend hashes, the train jobs' logs) when scraped, never from a
 * provider's API. See docs/dashboard.md for the list.
 */
export class DashboardMetrics {
  readonly registry = new Registry();
  private readonly jobs: Gauge<'queue' | 'state'>;
  private readonly ledgerSymbols: Gauge<'date' | 'status'>;
  private readonly gpuSpend: Gauge<'date'>;
  private readonly runSpend: Gauge<'run_id'>;
  private readonly instancesAlive: Gauge;
  private readonly costBooked: Gauge;
  private readonly costBilled: Gauge<'date'>;
  private readonly costDifference: Gauge<'date'>;
  private readonly costFlagged: Gauge<'date'>;
  private readonly stateSeconds: Histogram<'state'>;
  /** Finished train jobs already observed by the histogram (id, created, finished). */
  private observed = new Set<string>();
  private inFlight: Promise<string> | null = null;
  private readonly now: () => Date;

  constructor(private readonly opts: DashboardMetricsOptions) {
    this.now = opts.now ?? (() => new Date());
    const registers = [this.registry];
    this.jobs = new Gauge({
      name: 'retrain_jobs',
      help: 'BullMQ jobs per queue and state',
      labelNames: ['queue', 'state'],
      registers,
    });
    this.ledgerSymbols = new Gauge({
      name: 'retrain_ledger_symbols',
      help: 'Symbols per ledger status, for the most recent run dates',
      labelNames: ['date', 'status'],
      registers,
    });
    this.gpuSpend = new Gauge({
      name: 'retrain_gpu_spend_usd',
      help: 'Dollars booked to the ledger for rented hosts (released leases), per run date',
      labelNames: ['date'],
      registers,
    });
    this.runSpend = new Gauge({
      name: 'retrain_run_spend_usd',
      help: 'Dollars a run has spent on rentals: booked plus accrued on leases still held',
      labelNames: ['run_id'],
      registers,
    });
    this.instancesAlive = new Gauge({
      name: 'retrain_instances_alive',
      help: 'Rented Vast.ai instances held by active train jobs',
      registers,
    });
    this.costBooked = new Gauge({
      name: 'retrain_cost_booked_usd_total',
      help: 'Dollars booked to the ledger over the recent run dates',
      registers,
    });
    this.costBilled = new Gauge({
      name: 'retrain_cost_billed_usd',
      help: "Dollars Vast billed for the run date's labelled instances (last `retrain cost` reconciliation)",
      labelNames: ['date'],
      registers,
    });
    this.costDifference = new Gauge({
      name: 'retrain_cost_difference_usd',
      help: 'Billed minus booked, per run date (last `retrain cost` reconciliation)',
      labelNames: ['date'],
      registers,
    });
    this.costFlagged = new Gauge({
      name: 'retrain_cost_flagged',
      help: '1 when the difference between billed and booked was over the tolerance',
      labelNames: ['date'],
      registers,
    });
    this.stateSeconds = new Histogram({
      name: 'retrain_train_state_seconds',
      help: 'Seconds finished train jobs spent in each state, from their job logs',
      labelNames: ['state'],
      buckets: STATE_BUCKETS,
      registers,
    });
  }

  /** Refreshes every series from Redis and returns the exposition text. One refresh at a time. */
  render(): Promise<string> {
    this.inFlight ??= this.refresh()
      .then(() => this.registry.metrics())
      .finally(() => {
        this.inFlight = null;
      });
    return this.inFlight;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private async refresh(): Promise<void> {
    await Promise.all([this.refreshJobs(), this.refreshLedger(), this.refreshTrainJobs()]);
  }

  private async refreshJobs(): Promise<void> {
    const counts = await Promise.all(
      [...this.opts.queues].map(async ([name, q]) => [name, await q.getJobCounts(...JOB_STATES)] as const),
    );
    this.jobs.reset();
    for (const [name, c] of counts)
      for (const s of JOB_STATES) this.jobs.set({ queue: name, state: s }, c[s] ?? 0);
  }

  private async refreshLedger(): Promise<void> {
    const dates = (await this.opts.ledger.dates()).slice(0, this.opts.recentDates);
    const byDate = await Promise.all(dates.map(async (d) => [d, await this.opts.ledger.get(d)] as const));
    const runIds = new Set<string>();
    for (const [, entries] of byDate)
      for (const e of Object.values(entries)) if (e.runId) runIds.add(e.runId);
    const now = this.now();
    const spends = await Promise.all(
      [...runIds].map(async (id) => [id, await this.opts.spend.spent(id, now)] as const),
    );
    const reconciled = this.opts.reconciliation
      ? await Promise.all(dates.map(async (d) => [d, await this.opts.reconciliation!(d)] as const))
      : [];
    this.costBilled.reset();
    this.costDifference.reset();
    this.costFlagged.reset();
    for (const [date, r] of reconciled) {
      if (!r) continue;
      this.costBilled.set({ date }, r.billed);
      this.costDifference.set({ date }, r.difference);
      this.costFlagged.set({ date }, r.flagged ? 1 : 0);
    }
    let bookedTotal = 0;
    this.ledgerSymbols.reset();
    this.gpuSpend.reset();
    this.runSpend.reset();
    for (const [date, entries] of byDate) {
      const list: LedgerEntry[] = Object.values(entries);
      for (const status of LEDGER_STATUSES)
        this.ledgerSymbols.set({ date, status }, list.filter((e) => e.status === status).length);
      const booked = list.reduce((sum, e) => sum + (e.costUsd || 0), 0);
      this.gpuSpend.set({ date }, booked);
      bookedTotal += booked;
    }
    this.costBooked.set(bookedTotal);
    for (const [runId, usd] of spends) this.runSpend.set({ run_id: runId }, usd);
  }

  private async refreshTrainJobs(): Promise<void> {
    const train = this.opts.queues.get(QUEUES.train);
    if (!train) return;
    const active = await train.getJobs(['active']);
    this.instancesAlive.set(
      active.filter((j) => (j.data as TrainJobData | undefined)?.facts?.lease?.driver === 'vast').length,
    );

    const finished = await train.getJobs(['completed', 'failed'], 0, FINISHED_WINDOW - 1);
    const seen = new Set<string>();
    for (const job of finished) {
      if (!job.id || !job.finishedOn) continue;
      const key = `${job.id}@${job.timestamp}@${job.finishedOn}`;
      seen.add(key);
      if (this.observed.has(key)) continue;
      const { logs } = await train.getJobLogs(job.id, 0, -1, true);
      for (const d of stateDurations(logs, job.finishedOn))
        this.stateSeconds.observe({ state: d.state }, d.seconds);
      this.observed.add(key);
    }
    // Jobs Redis no longer keeps cannot come back with the same creation time: forget them.
    this.observed = new Set([...this.observed].filter((k) => seen.has(k)));
  }
}
