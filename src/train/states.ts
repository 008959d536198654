/**
 * The states of one symbol's training, in order, and the line each transition writes to the job
 * log (`<ISO time> <STATE>`): written by attempt/context.ts, read by the dashboard's state timings.
 * The one place the order is written down.
 */

/** The path of a successful attempt, in order (DESIGN.md "Data flow", step 2). */
export const STATE_ORDER = [
  'PENDING',
  'PROVISIONING',
  'TRANSFERRING',
  'EXECUTING',
  'FETCHING',
  'RELEASING',
  'SUCCEEDED',
] as const;

/** Where a training ends other than SUCCEEDED (written by the ledger, never entered by an attempt). */
export const OTHER_END_STATES = ['FAILED', 'SKIPPED'] as const;

export type TrainState = (typeof STATE_ORDER)[number] | (typeof OTHER_END_STATES)[number];

/** States a training spends time in (the terminal ones end it). */
export const TIMED_STATES = STATE_ORDER.filter(
  (s): s is Exclude<(typeof STATE_ORDER)[number], 'SUCCEEDED'> => s !== 'SUCCEEDED',
);
export type TimedState = (typeof TIMED_STATES)[number];

const ALL_STATES: readonly string[] = [...STATE_ORDER, ...OTHER_END_STATES];

/** Whether an attempt in `current` (none: PENDING) has got as far as `target`. */
export function reached(current: TrainState | undefined, target: TrainState): boolean {
  const order: readonly string[] = STATE_ORDER;
  return order.indexOf(current ?? 'PENDING') >= order.indexOf(target);
}

/** The job-log line of a transition. */
export function formatStateLine(at: Date, state: TrainState): string {
  return `${at.toISOString()} ${state}`;
}

const STATE_LINE = new RegExp(
  `^(\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(?:\\.\\d+)?Z) (${ALL_STATES.join('|')})$`,
);

/** A job-log line written by `formatStateLine`, or null for any other line (training output). */
export function parseStateLine(line: string): { state: TrainState; at: number } | null {
  const m = STATE_LINE.exec(line);
  return m ? { state: m[2] as TrainState, at: Date.parse(m[1]!) } : null;
}
