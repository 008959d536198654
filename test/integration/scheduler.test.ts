import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Queue, type Job } from 'bullmq';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { finalizeJobId, QUEUES } from '../../queues/names.js';
import { readSlot } from '../../scheduler/claim.js';
import {
  BIN,
  REPO,
  fakeRecipe,
  runCli,
  sandbox,
  startWorker,
  type Sandbox,
  type WorkerProc,
} from '../helpers/harness.js';

interface SchedulerProc {
  proc: ChildProcess;
  output(): string;
  /** Resolves with the first stdout line (what the registration did). */
  firstLine: Promise<string>;
  stop(): Promise<void>;
}

function startScheduler(env: NodeJS.ProcessEnv): SchedulerProc {
  const proc = spawn(process.execPath, [BIN, 'scheduler'], {
    env,
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const firstLine = new Promise<string>((resolve, reject) => {
    proc.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(out.split('\n')[0]!);
    });
    proc.stderr!.on('data', (d) => (out += d));
    proc.once('exit', (code) =>
      reject(new Error(`retrain scheduler exited ${code} before registering:\n${out}`)),
    );
  });
  firstLine.catch(() => undefined);
  return {
    proc,
    output: () => out,
    firstLine,
    stop: () =>
      new Promise((r) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return r();
        proc.once('exit', () => r());
        proc.kill('SIGTERM');
      }),
  };
}

async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 40_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

/** What the test expects independently of the code under test: the UTC day before the slot's. */
function expectedDate(slotMs: number): string {
  const d = new Date(slotMs);
  d.setUTCDate(d.getUTCDate() - 1);
  return `${d.getUTCFullYear()}${String(d.getUTCMonth() + 1).padStart(2, '0')}${String(d.getUTCDate()).padStart(2, '0')}`;
}

interface SlotResult {
  slot: number;
  date: string;
  runId: string;
  duplicate: boolean;
}

describe('retrain scheduler: one schedule, one run per slot, dated from the slot', () => {
  let sb: Sandbox;
  let schedulerQ: Queue;
  let finalizeQ: Queue;
  const procs: { stop(): Promise<unknown> }[] = [];

  beforeEach(async () => {
    sb = await sandbox(inject('redisUrl'));
    const cfg = join(sb.home, 'retrain.config.yaml');
    writeFileSync(
      cfg,
      [
        `recipe: ${JSON.stringify(fakeRecipe)}`,
        'schedule:',
        "  cron: '*/2 * * * * *'", // every 2 seconds, so slots fire during the test
        '  symbols: BTCUSDT,ETHUSDT',
        '  ensureFeatures: true',
        '  synthetic: true',
        '  recheckSec: 1', // the running schedulers re-check every second, racing each other
        '',
      ].join('\n'),
    );
    sb.env.RETRAIN_CONFIG = cfg;
    schedulerQ = new Queue(QUEUES.scheduler, { connection: sb.redis, prefix: sb.prefix });
    finalizeQ = new Queue(QUEUES.finalize, { connection: sb.redis, prefix: sb.prefix });
  });
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.stop()));
    await schedulerQ.close();
    await finalizeQ.close();
    await sb.cleanup();
  });

  it('two schedulers started at once, restarted twice: one scheduler entry, one run per slot', async () => {
    // Two at once, then restarted twice (three rounds of two).
    const firstLines: string[] = [];
    let round: SchedulerProc[] = [];
    for (let i = 0; i < 3; i++) {
      await Promise.all(round.map((p) => p.stop()));
      round = [startScheduler(sb.env), startScheduler(sb.env)];
      procs.push(...round);
      firstLines.push(...(await Promise.all(round.map((p) => p.firstLine))));
    }
    // Exactly one process ever created it; every other start found it in place.
    expect(
      firstLines.filter((l) => l.startsWith('daily schedule created')),
      firstLines.join('\n'),
    ).toHaveLength(1);
    expect(firstLines.filter((l) => l.startsWith('daily schedule unchanged'))).toHaveLength(5);
    const schedulers = await schedulerQ.getJobSchedulers();
    expect(schedulers.map((s) => [s.key, s.pattern, s.tz])).toEqual([
      ['daily-retrain', '*/2 * * * * *', 'UTC'],
    ]);

    // Two workers compete for the slots while the two schedulers keep re-checking.
    const workers: WorkerProc[] = [startWorker(sb.env), startWorker(sb.env)];
    procs.push(...workers);
    const fired = async () =>
      (await schedulerQ.getJobs(['completed'])).filter((j) => j.id?.startsWith('repeat:daily-retrain:'));
    const firstSlots = await waitFor('three slots to be planned', async () => {
      const done = await fired();
      return done.length >= 3 && done;
    });

    // A second job for a slot already planned (what a duplicate scheduler or a re-run would make)
    // enqueues nothing and names the slot's run.
    const first = firstSlots.sort((a, b) => a.opts.prevMillis! - b.opts.prevMillis!)[0]!;
    const original = first.returnvalue as SlotResult;
    await schedulerQ.add('daily-run', first.data, {
      jobId: 'duplicate-slot',
      prevMillis: first.opts.prevMillis!,
    });
    // A slot taken long after its time plans the slot's date, not the clock's.
    const lateSlot = Date.UTC(2025, 0, 1, 0, 15);
    await schedulerQ.add('daily-run', first.data, { jobId: 'late-slot', prevMillis: lateSlot });
    // A job read before it completed and checked with isCompleted() after carries no returnvalue:
    // wait on what one read of the job's hash says (finishedOn and returnvalue are written together).
    const finished = async (id: string) => {
      const j = await schedulerQ.getJob(id);
      return j?.finishedOn ? j : undefined;
    };
    const dup = await waitFor('the duplicate slot job', () => finished('duplicate-slot'));
    expect(dup!.returnvalue).toMatchObject({ duplicate: true, runId: original.runId, date: original.date });
    const late = await waitFor('the late slot job', () => finished('late-slot'));
    expect(late!.returnvalue).toMatchObject({ duplicate: false, date: '20241231', runId: '20241231-1' });
    const lateLedger = await sb.redis.hgetall(`${sb.prefix}:ledger:20241231`);
    expect(Object.keys(lateLedger).sort()).toEqual(['BTCUSDT', 'ETHUSDT']);

    // Stop the schedulers and remove the schedule: no slot fires after that.
    await Promise.all(round.map((p) => p.stop()));
    const removed = await runCli(['scheduler', '--remove'], sb.env);
    expect(removed.stdout).toContain('daily schedule daily-retrain removed');
    expect(await schedulerQ.getJobSchedulers()).toEqual([]);
    await waitFor('the scheduler queue to drain', async () => {
      const c = await schedulerQ.getJobCounts('active', 'waiting', 'delayed', 'prioritized');
      return Object.values(c).every((n) => n === 0) || undefined;
    });
    const settled = await fired();
    await new Promise((r) => setTimeout(r, 2500)); // more than one cron period
    expect((await fired()).length).toBe(settled.length);

    // One run per slot: each slot's job planned a run of its own, dated the day before the slot.
    const results = settled.map((j: Job) => ({ id: j.id!, r: j.returnvalue as SlotResult }));
    const bySlot = new Map<number, SlotResult>();
    for (const { id, r } of results) {
      const slot = Number(id.split(':').pop());
      expect(r.slot).toBe(slot);
      expect(r.duplicate).toBe(false);
      expect(r.date).toBe(expectedDate(slot));
      expect(bySlot.has(slot)).toBe(false);
      bySlot.set(slot, r);
      expect((await readSlot(sb.redis, sb.prefix, slot))?.runId).toBe(r.runId);
    }
    expect(new Set(results.map((x) => x.r.runId)).size).toBe(results.length);
    // Counted from what the runs themselves created: one finalize-run flow per slot, with the
    // slot's date, and the date's run counter equal to the number of its slots.
    const dates = new Set([...bySlot.values()].map((r) => r.date));
    for (const date of dates) {
      const slots = [...bySlot.values()].filter((r) => r.date === date);
      expect(Number(await sb.redis.get(`${sb.prefix}:runseq:${date}`))).toBe(slots.length);
      for (const r of slots) {
        const seq = Number(r.runId.split('-').pop());
        const fin = await finalizeQ.getJob(finalizeJobId(date, seq));
        expect(fin?.data).toMatchObject({ runId: r.runId, date });
      }
    }
  }, 120_000);

  it('bad schedule input: exit 2 with one line, nothing registered; --once and --list --json', async () => {
    for (const [env, what] of [
      [{ RETRAIN_SCHEDULE_CRON: '61 * * * *' }, /schedule\.cron: must be a valid cron pattern/],
      [{ RETRAIN_SCHEDULE_SYMBOLS: 'BTC;rm -rf /' }, /^retrain: invalid symbol "BTC;rm -rf \/"/],
    ] as const) {
      const r = await runCli(['scheduler', '--once'], { ...sb.env, ...env });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(what);
    }
    expect(await schedulerQ.getJobSchedulers()).toEqual([]);

    const once = await runCli(['scheduler', '--once'], { ...sb.env, RETRAIN_SCHEDULE_CRON: '15 0 * * *' });
    expect(once.code, once.stderr).toBe(0);
    expect(once.stdout).toMatch(
      /^daily schedule created: daily-retrain: cron "15 0 \* \* \*" UTC; next slot \S+T00:15:00\.000Z plans \d{8}/,
    );
    const list = await runCli(['scheduler', '--list', '--json'], sb.env);
    const info = JSON.parse(list.stdout) as {
      pattern: string;
      next: number;
      nextDate: string;
      data: { symbols: string[] };
    };
    expect(info.pattern).toBe('15 0 * * *');
    expect(new Date(info.next).toISOString()).toMatch(/T00:15:00\.000Z$/);
    expect(info.nextDate).toBe(expectedDate(info.next));
    expect(info.data.symbols).toEqual(['BTCUSDT', 'ETHUSDT']);
  });
});
