import type { LeaseInfo } from '../compute/provider.js';
import type { JobSpec } from '../jobspec/types.js';
import type { TrainState } from './states.js';

/** The persisted state machine of one symbol's training: its states and their order are in states.ts. */
export type { TrainState };

/** Facts needed to resume an attempt, written before the step that depends on them. */
export interface TrainFacts {
  attemptStartedAt?: string;
  /** Epoch ms after which the attempt is killed (kept across a reattach). */
  deadline?: number;
  lease?: LeaseInfo;
  workdir?: string;
  pid?: number;
  executingSince?: string;
  logOffset?: number;
  /** Size of the local training.log when this attempt began following (resume point). */
  localLogBase?: number;
  partialSaved?: string[];
  /** The checkpoint this attempt resumed from (name, training seconds it stands for). */
  resumedFrom?: { name: string; sha256: string; trainedSec: number };
  /** The resume's saved minutes are in the ledger (booked once per attempt). */
  resumeBooked?: boolean;
  /** When the current state was entered (ISO): what a stuck-state alert measures. */
  stateSince?: string;
  /** While the symbol waits for capacity (ISO): since when (src/compute/capacityWait.ts). */
  capacityWaitSince?: string;
}

export interface TrainJobData {
  spec: JobSpec;
  runId: string;
  state?: TrainState;
  /** The attempt these facts belong to; a new attempt starts from PENDING. */
  attempt?: number;
  facts?: TrainFacts;
  /** `--budget-usd` of the run: no new rental once the run has spent it. */
  budgetUsd?: number;
}

export interface TrainProgress {
  state: TrainState;
  step?: number;
  total?: number;
  percent?: number;
}

/** What the state machine needs from the queue job (a BullMQ Job in production, a fake in tests). */
export interface JobHandle {
  readonly data: TrainJobData;
  /** 1-based number of the attempt being run. */
  readonly attempt: number;
  readonly maxAttempts: number;
  /** Persists a patch of the data (merged, then written whole). */
  save(patch: Partial<TrainJobData>): Promise<void>;
  progress(p: TrainProgress): Promise<void>;
  log(line: string): Promise<void>;
  /**
   * Runs `issue`, which starts several writes (this handle's and the ledger's), and sends what it
   * started to Redis in one write where the queue and the ledger share a connection (the worker's);
   * absent, the writes go one by one.
   */
  together?<T>(issue: () => T): T;
}

export interface TrainResult {
  symbol: string;
  date: string;
  jobId: string;
  metricsKey: string;
  metrics: Record<string, unknown>;
  trainMinutes: number;
  artifacts: { name: string; sha256: string; bytes: number }[];
}
