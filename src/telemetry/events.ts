/** Event names (DESIGN.md "Ledger and events"): the `event` field of every structured log line. */
export const EVENTS = {
  jobStarted: 'job_started',
  coinStarted: 'coin_started',
  coinPartialSaved: 'coin_partial_saved',
  coinSucceeded: 'coin_succeeded',
  coinFailed: 'coin_failed',
  coinSkipped: 'coin_skipped',
  coinRetrying: 'coin_retrying',
  uploadSucceeded: 'upload_succeeded',
  uploadFailed: 'upload_failed',
  jobCompleted: 'job_completed',
  instanceRented: 'instance_rented',
  instanceDestroyed: 'instance_destroyed',
  promotionDecided: 'promotion_decided',
  trainingResumed: 'training.resumed',
  trainingHung: 'training.hung',
  trainingHandedBack: 'training.handed_back',
  /** A pooled instance given back to its pool (which may hand it to the next symbol). */
  instanceReleased: 'instance.released',
  instanceReleaseFailed: 'instance.release_failed',
  inputsStaged: 'inputs.staged',
  checkpointResume: 'checkpoint.resume',
  checkpointUnusable: 'checkpoint.unusable',
  checkpointSyncFailed: 'checkpoint.sync_failed',
  sshConnectionLost: 'ssh.connection_lost',
  sshReconnected: 'ssh.reconnected',
  attemptLogsKept: 'attempt.logs_kept',
  attemptLogsNotKept: 'attempt.logs_not_kept',
  /** A slot of the daily job scheduler was taken by a worker (and planned, or found already planned). */
  scheduleFired: 'schedule_fired',
} as const;

export type EventName = (typeof EVENTS)[keyof typeof EVENTS] | `training.remote.${string}`;

export function stateEvent(state: string): EventName {
  return `training.remote.${state.toLowerCase()}`;
}
