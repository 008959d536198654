import { parseStateLine, TIMED_STATES, type TimedState } from '../src/train/states.js';

export interface StateDuration {
  state: TimedState;
  seconds: number;
}

/**
 * How long a finished train job spent in each state, from its BullMQ job log: the train state
 * machine writes `<ISO time> <STATE>` there on every transition (src/train/states.ts), and
 * every attempt starts again at PENDING.
 *
 * A state lasts from its line to the next state line of the same attempt; the last state of the
 * final attempt lasts until `finishedOn` (the job's end). The last state of an earlier, failed
 * attempt has no recorded end (the failure writes no state line), so it is not counted. Job logs
 * are capped (oldest lines dropped), so for a very chatty training only the later states may still
 * be there; what remains is still exact. A resumed training (another worker took it over) keeps its
 * state across the hand-over, and that time counts towards the state, as the training was in it.
 */
export function stateDurations(logLines: readonly string[], finishedOn: number): StateDuration[] {
  const marks: { state: string; at: number }[] = [];
  for (const line of logLines) {
    const mark = parseStateLine(line);
    if (mark) marks.push(mark);
  }
  const out: StateDuration[] = [];
  for (let i = 0; i < marks.length; i++) {
    const cur = marks[i]!;
    if (!isTimed(cur.state)) continue;
    const next = marks[i + 1];
    let end: number | undefined;
    if (next === undefined) end = Number.isFinite(finishedOn) ? finishedOn : undefined;
    else if (next.state !== 'PENDING') end = next.at;
    if (end === undefined || end < cur.at) continue;
    out.push({ state: cur.state, seconds: (end - cur.at) / 1000 });
  }
  return out;
}

function isTimed(s: string): s is TimedState {
  return (TIMED_STATES as readonly string[]).includes(s);
}
