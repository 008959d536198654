/**
 * One attempt's context: the job and what it needs (deps), the facts a resume goes by and the
 * only ways to change them (`enter` a state, `save` facts), the clock and the attempt's deadline,
 * its local paths, and the recipe it runs (checked against the plan).
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { ComputeProvider, Lease, LeaseInfo } from '../../compute/provider.js';
import type { Config } from '../../config/schema.js';
import { RecipeError, RunCancelledError, TimeoutError } from '../../errors.js';
import type { JobSpec } from '../../jobspec/types.js';
import type { Ledger } from '../../ledger/ledger.js';
import { loadRecipe, shippedRecipesDir, type LoadedRecipe } from '../../recipes/loader.js';
import { maskedSecretNames } from '../../recipes/secrets.js';
import type { ArtifactStore } from '../../storage/store.js';
import { failpoint } from '../../util/failpoint.js';
import { linkSignals, type LinkedSignal } from '../../util/linkSignals.js';
import type { CheckpointSync } from '../checkpoints.js';
import { RecipeHooks } from '../recipeHooks.js';
import type { RunSpend } from '../spend.js';
import type { TrainState } from '../states.js';
import type { JobHandle, TrainFacts, TrainResult } from '../types.js';
import { attemptResumed, attemptStarted, stateEntered, stateWrites, together } from './record.js';

export interface TrainDeps {
  config: Config;
  store: ArtifactStore;
  ledger: Ledger;
  provider: ComputeProvider;
  logger: Logger;
  /** Aborted on shutdown: stops our waiting, never the remote training. */
  signal: AbortSignal;
  /** Aborted when the user cancels the run: the training is killed, the host given back. */
  cancel?: AbortSignal;
  /** Secret values for the recipe's `secrets:` names (from the orchestrator's env). */
  secretEnv?: NodeJS.ProcessEnv;
  /** What each run has spent on rentals (needed for a run with a budget). */
  spend?: RunSpend;
  now?: () => Date;
}

/** What FETCHING stored: the attempt's result, less what the job spec already says. */
export type AttemptOutcome = Pick<TrainResult, 'metrics' | 'trainMinutes' | 'artifacts'>;

export class AttemptContext {
  readonly config: Config;
  readonly store: ArtifactStore;
  readonly ledger: Ledger;
  readonly provider: ComputeProvider;
  readonly spec: JobSpec;
  readonly log: Logger;
  /** Shutdown or the run's cancellation: stops our waiting. */
  readonly signal: AbortSignal;
  /** What ties `signal` to the worker's shutdown signal, let go of by close(). */
  private readonly link: LinkedSignal | undefined;
  readonly now: () => Date;
  /** This attempt's local copies (inputs, outputs, partials), removed on success. */
  readonly stagingDir: string;
  /** The symbol's training log as retrain keeps it (masked), across attempts. */
  readonly trainingLog: string;
  /** A new attempt starts from PENDING with fresh facts; a resumed one keeps them. */
  readonly fresh: boolean;
  state: TrainState;
  facts: TrainFacts;
  /** Epoch ms after which the attempt is killed. */
  deadline = 0;
  recipe!: LoadedRecipe;
  /** What the recipe adds around its training (checks, extra inputs, folder sync, cleanup). */
  hooks!: RecipeHooks;
  /** The host this process holds (in memory: a reattach after a crash finds it again). */
  lease: Lease | null = null;
  /** The checkpoint sync of the training being followed, if the recipe has checkpoints. */
  ckpt: CheckpointSync | undefined;
  /** What FETCHING produced in this process (a resume after it reads the store instead). */
  outcome: AttemptOutcome | undefined;
  /** The failure is a hand-over on shutdown: nothing is killed or given back. */
  cancelled = false;
  /** After a failure: whether it was the recipe's, on a sound host (which another symbol may reuse). */
  hostSound = false;

  constructor(
    readonly job: JobHandle,
    readonly deps: TrainDeps,
  ) {
    this.config = deps.config;
    this.store = deps.store;
    this.ledger = deps.ledger;
    this.provider = deps.provider;
    this.spec = job.data.spec;
    this.link = deps.cancel ? linkSignals([deps.signal, deps.cancel]) : undefined;
    this.signal = this.link?.signal ?? deps.signal;
    this.now = deps.now ?? (() => new Date());
    this.log = deps.logger.child({
      runId: job.data.runId,
      symbol: this.spec.symbol,
      jobId: this.spec.jobId,
      attempt: job.attempt,
    });
    const home = deps.config.home;
    this.stagingDir = join(home, 'staging', this.spec.jobId, `attempt-${job.attempt}`);
    this.trainingLog = join(home, 'logs', `${this.spec.date}Z`, this.spec.symbol, 'training.log');
    this.fresh = job.data.attempt !== job.attempt;
    this.state = this.fresh ? 'PENDING' : (job.data.state ?? 'PENDING');
    this.facts = this.fresh ? {} : { ...(job.data.facts ?? {}) };
  }

  /** The attempt's work is over: its signal no longer follows the worker's (idempotent). */
  close(): void {
    this.link?.dispose();
  }

  get runId(): string {
    return this.job.data.runId;
  }

  /** The host's work directory (set by TRANSFERRING, before anything is sent). */
  get workdir(): string {
    return this.facts.workdir!;
  }

  /** Enters a state: the job data (what a resume goes by) and the displays, written together. */
  async enter(next: TrainState, patch: Partial<TrainFacts> = {}): Promise<void> {
    this.state = next;
    this.facts = { ...this.facts, ...patch, stateSince: this.now().toISOString() };
    // Independent writes, sent together (one write to Redis and one round trip's wait, not four);
    // a crash between them leaves the job data, which a resume goes by, and the displays in any
    // mix, as before.
    await together(this.job, () =>
      Promise.all([
        this.job.save({ state: next, attempt: this.job.attempt, facts: this.facts }),
        ...stateWrites(this, next),
      ]),
    );
    stateEntered(this, next);
    failpoint(`enter:${next}`);
  }

  /**
   * Persists facts in the current state (the only way facts change). A save that changes nothing
   * the job holds (a lease saved as rented, then again as acquired) writes nothing.
   */
  async save(patch: Partial<TrainFacts>): Promise<void> {
    this.facts = { ...this.facts, ...patch };
    const held = this.job.data;
    if (
      held.state === this.state &&
      held.attempt === this.job.attempt &&
      JSON.stringify(held.facts) === JSON.stringify(this.facts)
    ) {
      return;
    }
    await this.job.save({ state: this.state, attempt: this.job.attempt, facts: this.facts });
  }

  /**
   * Changes facts in memory only: they are written with the next state change or save. For a fact a
   * resume before that write can do without (it redoes a little work), not worth a write of its own.
   */
  note(patch: Partial<TrainFacts>): void {
    this.facts = { ...this.facts, ...patch };
  }

  /** When following a training on this lease must stop: the attempt's deadline or the rental's. */
  runLimit(info: LeaseInfo): { deadline: number; timeLimitMs: number } {
    const maxRuntimeMs = this.config.vast.maxRuntimeMin * 60_000;
    const rentalEnd = info.driver === 'vast' ? Date.parse(info.acquiredAt) + maxRuntimeMs : Infinity;
    return rentalEnd < this.deadline
      ? { deadline: rentalEnd, timeLimitMs: maxRuntimeMs }
      : { deadline: this.deadline, timeLimitMs: this.spec.timeoutMinutes * 60_000 };
  }

  checkCancelled(): void {
    if (this.deps.cancel?.aborted)
      throw new RunCancelledError(`${this.spec.symbol}: run ${this.runId} was cancelled`);
  }

  /** Between steps: the run cancelled or the attempt out of time ends it. */
  checkDeadline(): void {
    this.checkCancelled();
    if (Date.now() > this.deadline)
      throw new TimeoutError(
        `${this.spec.symbol}: attempt exceeded its time limit of ${this.spec.timeoutMinutes} min`,
      );
  }

  /** The env the recipe's secrets come from. */
  get secretSource(): NodeJS.ProcessEnv {
    return this.deps.secretEnv ?? process.env;
  }

  /** The recipe's secret values set here: masked in every copy of its log that retrain keeps. */
  recipeSecrets(): string[] {
    return maskedSecretNames(this.recipe.def)
      .map((name) => this.secretSource[name])
      .filter((v) => v !== undefined);
  }
}

/**
 * Opens an attempt: a new one is recorded as started and enters PENDING with its deadline; a
 * resumed one keeps its state and facts. Then the recipe is loaded and must be the planned one.
 */
export async function openAttempt(job: JobHandle, deps: TrainDeps): Promise<AttemptContext> {
  const ctx = new AttemptContext(job, deps);
  try {
    return await prepare(ctx);
  } catch (err) {
    ctx.close();
    throw err;
  }
}

async function prepare(ctx: AttemptContext): Promise<AttemptContext> {
  const { spec } = ctx;
  if (ctx.fresh) {
    const startedAt = ctx.now().toISOString();
    await attemptStarted(ctx, startedAt);
    await ctx.enter('PENDING', {
      attemptStartedAt: startedAt,
      deadline: Date.now() + spec.timeoutMinutes * 60_000,
    });
  } else {
    attemptResumed(ctx);
  }
  ctx.deadline = ctx.facts.deadline ?? Date.now() + spec.timeoutMinutes * 60_000;
  ctx.recipe = await loadRecipe(spec.recipe.ref, {
    recipesDir: shippedRecipesDir(),
    overrides: spec.recipe.vars,
  });
  if (ctx.recipe.sha256 !== spec.recipe.sha256) {
    throw new RecipeError(
      `recipe ${ctx.recipe.file} changed since the run was planned (sha256 differs); re-plan the run`,
    );
  }
  ctx.hooks = new RecipeHooks(ctx.recipe, spec, {
    store: ctx.store,
    log: ctx.log,
    stagingDir: ctx.stagingDir,
    secretSource: ctx.secretSource,
  });
  return ctx;
}
