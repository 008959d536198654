import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import {
  fakeRecipe,
  runCli,
  sandbox,
  startWorker,
  type Sandbox,
  type WorkerProc,
} from '../helpers/harness.js';

/** Largest number of trainings running at the same instant, from the recipe's own start/end marks. */
function maxOverlap(eventsFile: string): number {
  const marks = readFileSync(eventsFile, 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split(' '))
    .map(([kind, , t]) => ({ t: Number(t), d: kind === 'start' ? 1 : -1 }))
    .sort((a, b) => a.t - b.t || a.d - b.d);
  let cur = 0;
  let max = 0;
  for (const m of marks) {
    cur += m.d;
    max = Math.max(max, cur);
  }
  return max;
}

describe('modes: the cap holds across two worker processes', () => {
  let sb: Sandbox;
  let workers: WorkerProc[] = [];
  beforeEach(async () => {
    sb = await sandbox(inject('redisUrl'));
  });
  /**
   * Two worker processes, each taking at most half the cap: reaching the cap then needs both, so the
   * cap is shown to hold across processes, not within one.
   */
  async function startTwo(cap: number) {
    const env = { ...sb.env, RETRAIN_WORKER_CONCURRENCY: String(Math.max(1, Math.ceil(cap / 2))) };
    workers = [startWorker(env), startWorker(env)];
    const end = Date.now() + 30_000;
    while (!workers.every((w) => w.output().includes('"event":"worker_started"')) && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  afterEach(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await sb.cleanup();
  });

  const cases: { mode: string; symbols: string[]; extra: string[]; cap: number }[] = [
    { mode: 'sequential', symbols: ['BTCUSDT', 'ETHUSDT', 'SOLUSDT'], extra: [], cap: 1 },
    { mode: 'parallel', symbols: ['BTCUSDT', 'ETHUSDT', 'SOLUSDT', 'BNBUSDT'], extra: [], cap: 4 },
    {
      mode: 'hybrid',
      symbols: ['BTCUSDT', 'ETHUSDT', 'SOLUSDT', 'BNBUSDT', 'XRPUSDT'],
      extra: ['--max-concurrent', '2'],
      cap: 2,
    },
  ];
  for (const c of cases) {
    it(`${c.mode}: at most ${c.cap} at once, and the cap is reached`, async () => {
      await startTwo(c.cap);
      const events = join(sb.home, 'events.txt');
      const r = await runCli(
        [
          'enqueue',
          '--wait',
          '--mode',
          c.mode,
          ...c.extra,
          '--symbols',
          c.symbols.join(','),
          '--date',
          '20260110',
          '--ensure-features',
          '--synthetic',
          '--recipe',
          fakeRecipe,
          '--var',
          // Long enough for every training allowed at once to have started before the first ends,
          // even when a loaded machine spreads their starts.
          'sleep=4',
          '--var',
          `events=${events}`,
        ],
        sb.env,
      );
      expect(r.code, r.stdout + r.stderr + workers.map((w) => w.output()).join('\n')).toBe(0);
      expect(maxOverlap(events)).toBe(c.cap);
      // Both worker processes took part when the cap allows it.
      if (c.cap > 1) {
        const pids = new Set(
          readFileSync(join(sb.home, 'logs/20260110Z/engine.log'), 'utf8')
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l))
            .filter((e) => e.event === 'coin_started')
            .map((e) => e.pid),
        );
        expect(pids.size).toBe(2);
      }
    });
  }
});
