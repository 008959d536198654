import { describe, expect, it } from 'vitest';
import { stateDurations } from '../../../dashboards/stateDurations.js';

const t = (s: number) => new Date(Date.UTC(2026, 0, 10, 0, 0, s)).toISOString();
const at = (s: number) => Date.UTC(2026, 0, 10, 0, 0, s);

describe('stateDurations (seconds per train state, from a job log)', () => {
  it('times each state to the next state line, ignoring training output', () => {
    const log = [
      `${t(0)} PENDING`,
      `${t(1)} PROVISIONING`,
      `${t(4)} TRANSFERRING`,
      `${t(6)} EXECUTING`,
      'RETRAIN_PROGRESS step=1 total=2',
      `epoch 3 ${t(7)} EXECUTING`,
      `${t(16)} FETCHING`,
      `${t(18)} RELEASING`,
      `${t(19)} SUCCEEDED`,
    ];
    expect(stateDurations(log, at(19))).toEqual([
      { state: 'PENDING', seconds: 1 },
      { state: 'PROVISIONING', seconds: 3 },
      { state: 'TRANSFERRING', seconds: 2 },
      { state: 'EXECUTING', seconds: 10 },
      { state: 'FETCHING', seconds: 2 },
      { state: 'RELEASING', seconds: 1 },
    ]);
  });

  it('does not time the last state of a failed attempt across the retry, and ends the final one at finishedOn', () => {
    const log = [
      `${t(0)} PENDING`,
      `${t(1)} PROVISIONING`,
      `${t(2)} EXECUTING`, // attempt 1 fails here at an unrecorded time
      `${t(30)} PENDING`,
      `${t(31)} PROVISIONING`,
      `${t(33)} EXECUTING`, // attempt 2 fails; the job finished at 40
    ];
    expect(stateDurations(log, at(40))).toEqual([
      { state: 'PENDING', seconds: 1 },
      { state: 'PROVISIONING', seconds: 1 },
      { state: 'PENDING', seconds: 1 },
      { state: 'PROVISIONING', seconds: 2 },
      { state: 'EXECUTING', seconds: 7 },
    ]);
  });

  it('uses what a capped log still holds', () => {
    expect(
      stateDurations([`line 9`, `${t(10)} FETCHING`, `${t(12)} RELEASING`, `${t(13)} SUCCEEDED`], at(13)),
    ).toEqual([
      { state: 'FETCHING', seconds: 2 },
      { state: 'RELEASING', seconds: 1 },
    ]);
    expect(stateDurations([], at(1))).toEqual([]);
  });
});
