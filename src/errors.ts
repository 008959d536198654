/**
 * The error taxonomy. Every failure that crosses a module boundary is a RetrainError with a stable
 * `code` (what goes into the ledger as `reason`) and `retryable` (whether another attempt can help).
 * The processor boundary is the only place that turns a non-retryable error into BullMQ's
 * UnrecoverableError.
 */
export type ErrorCode =
  | 'bad_input'
  | 'bad_config'
  | 'bad_recipe'
  | 'no_data'
  | 'timeout'
  | 'recipe_failed'
  | 'bad_output'
  | 'checksum'
  | 'store'
  | 'provisioning'
  | 'no_capacity'
  | 'transport'
  | 'cancelled'
  | 'budget'
  | 'host_lost'
  | 'preempted'
  | 'hung'
  | 'production_busy'
  | 'disk'
  | 'unhealthy'
  | 'internal';

export interface RetrainErrorOptions {
  retryable?: boolean;
  cause?: unknown;
}

export class RetrainError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, opts: RetrainErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = opts.retryable ?? false;
  }
}

/** A symbol, date, flag or file given by the user is invalid. Never retried. */
export class InputError extends RetrainError {
  constructor(message: string, opts: RetrainErrorOptions = {}) {
    super('bad_input', message, { ...opts, retryable: false });
  }
}

/** The configuration (file, env or flags) is invalid. Never retried. */
export class ConfigError extends RetrainError {
  constructor(message: string, opts: RetrainErrorOptions = {}) {
    super('bad_config', message, { ...opts, retryable: false });
  }
}

/** A recipe file is malformed, has unknown fields or unsafe variables. Never retried. */
export class RecipeError extends RetrainError {
  constructor(message: string, opts: RetrainErrorOptions = {}) {
    super('bad_recipe', message, { ...opts, retryable: false });
  }
}

/** No features exist for the symbol and date. Never retried: the symbol is skipped. */
export class NoDataError extends RetrainError {
  constructor(message: string, opts: RetrainErrorOptions = {}) {
    super('no_data', message, { ...opts, retryable: false });
  }
}

/** The per-symbol (or per-step) deadline passed; the training process tree was killed. Retryable. */
export class TimeoutError extends RetrainError {
  constructor(message: string, opts: RetrainErrorOptions = {}) {
    super('timeout', message, { ...opts, retryable: true });
  }
}

/** The recipe ran and exited non-zero. Retryable (trainings can be flaky). */
export class TrainingFailedError extends RetrainError {
  readonly exitCode: number;
  constructor(exitCode: number, message: string, opts: RetrainErrorOptions = {}) {
    super('recipe_failed', message, { ...opts, retryable: true });
    this.exitCode = exitCode;
  }
}

/** The recipe exited 0 but broke the output contract (missing file, bad metrics.json). Not retried. */
export class OutputContractError extends RetrainError {
  constructor(message: string, opts: RetrainErrorOptions = {}) {
    super('bad_output', message, { ...opts, retryable: false });
  }
}

/** A file's SHA-256 does not match what was recorded. Retryable: copies can be redone. */
export class ChecksumError extends RetrainError {
  constructor(message: string, opts: RetrainErrorOptions = {}) {
    super('checksum', message, { ...opts, retryable: true });
  }
}

/** Another promotion or rollback held the symbol's production lock for longer than the wait. Retryable. */
export class ProductionBusyError extends RetrainError {
  constructor(message: string, opts: RetrainErrorOptions = {}) {
    super('production_busy', message, { ...opts, retryable: true });
  }
}

/** The artifact store failed (IO, permissions, network). Retryable unless stated otherwise. */
export class StoreError extends RetrainError {
  constructor(message: string, opts: RetrainErrorOptions = {}) {
    super('store', message, { retryable: true, ...opts });
  }
}

/**
 * A production model cannot be read as one consistent whole: its manifest is unreadable, or its files
 * stay missing or unlike the manifest's SHA-256 after the bounded re-reads (damage, not a publish in
 * flight); also a history entry that cannot be restored. Not retried.
 */
export class ProductionReadError extends StoreError {
  constructor(message: string, opts: RetrainErrorOptions = {}) {
    super(message, { ...opts, retryable: false });
  }
}

/** Executing commands or moving files on the host failed. Retryable unless stated otherwise. */
export class TransportError extends RetrainError {
  constructor(message: string, opts: RetrainErrorOptions = {}) {
    super('transport', message, { retryable: true, ...opts });
  }
}

/** The connection to the host dropped or cannot be re-established right now. Retryable. */
export class ConnectionLostError extends TransportError {
  constructor(message: string, opts: RetrainErrorOptions = {}) {
    super(message, { ...opts, retryable: true });
  }
}

/** The rented host died under a training (the provider reports it gone). Retryable on a new host. */
export class HostLostError extends RetrainError {
  constructor(message: string, opts: RetrainErrorOptions = {}) {
    super('host_lost', message, { ...opts, retryable: true });
  }
}

/**
 * An interruptible (bid) instance was outbid or stopped by the host under a training. Retryable: the
 * instance is destroyed and the attempt runs again on another offer.
 */
export class PreemptedError extends RetrainError {
  constructor(message: string, opts: RetrainErrorOptions = {}) {
    super('preempted', message, { ...opts, retryable: true });
  }
}

/** The training is alive but gave no sign of work for heartbeatStaleMin: killed. Retryable. */
export class HungError extends RetrainError {
  constructor(message: string, opts: RetrainErrorOptions = {}) {
    super('hung', message, { ...opts, retryable: true });
  }
}

/** The host has less free disk than the recipe's minDiskGb. Retryable (another host may have it). */
export class DiskSpaceError extends RetrainError {
  constructor(message: string, opts: RetrainErrorOptions = {}) {
    super('disk', message, { ...opts, retryable: true });
  }
}

/** The recipe's healthcheck failed on the host: released as unsound, retried on another. */
export class UnhealthyHostError extends RetrainError {
  constructor(message: string, opts: RetrainErrorOptions = {}) {
    super('unhealthy', message, { ...opts, retryable: true });
  }
}

/** Renting or reaching a host failed. Retryable. */
export class ProvisionError extends RetrainError {
  constructor(message: string, opts: RetrainErrorOptions & { code?: 'provisioning' | 'no_capacity' } = {}) {
    super(opts.code ?? 'provisioning', message, { retryable: true, ...opts });
  }
}

/**
 * No offer (and no pooled instance) met the constraints. Inside the capacity wait it means "search
 * again later"; thrown out of it, the symbol waited to its wait limit: never retried (a retry would
 * only wait again). `unmet` names the constraints no offer met (for the alert).
 */
export class NoCapacityError extends ProvisionError {
  constructor(
    message: string,
    readonly unmet: string,
    opts: RetrainErrorOptions = {},
  ) {
    super(message, { ...opts, code: 'no_capacity', retryable: false });
  }
}

/** The run has spent its `--budget-usd`: no new rental is made for it. Never retried. */
export class BudgetExceededError extends RetrainError {
  constructor(message: string, opts: RetrainErrorOptions = {}) {
    super('budget', message, { ...opts, retryable: false });
  }
}

/**
 * The user cancelled the run (Ctrl-C on `retrain run`): the training is stopped, its host given back,
 * and the symbol fails. Never retried, unlike a worker's hand-over (CancelledError).
 */
export class RunCancelledError extends RetrainError {
  constructor(message: string, opts: RetrainErrorOptions = {}) {
    super('cancelled', message, { ...opts, retryable: false });
  }
}

/** Work was stopped on purpose (shutdown, Ctrl-C). Retryable: another worker takes over. */
export class CancelledError extends RetrainError {
  constructor(message = 'cancelled', opts: RetrainErrorOptions = {}) {
    super('cancelled', message, { retryable: true, ...opts });
  }
}

/** Turns anything thrown into a RetrainError, keeping the original as `cause`. */
export function asRetrainError(err: unknown): RetrainError {
  if (err instanceof RetrainError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new RetrainError('internal', message, { retryable: true, cause: err });
}

/** A short stack (first frames only) for the ledger. */
export function shortStack(err: unknown, frames = 6): string | undefined {
  if (!(err instanceof Error) || !err.stack) return undefined;
  return err.stack
    .split('\n')
    .slice(0, frames + 1)
    .join('\n');
}
