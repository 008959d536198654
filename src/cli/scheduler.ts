import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { QUEUES } from '../../queues/names.js';
import {
  describeSchedule,
  ensureDailySchedule,
  removeDailySchedule,
  type EnsureAction,
  type ScheduleInfo,
} from '../../scheduler/register.js';
import { DAILY_SCHEDULER_ID, runDateForSlot } from '../../scheduler/slot.js';
import { scheduledRunData } from '../../scheduler/template.js';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { startHealthServer, type RunningHealthServer } from '../telemetry/healthServer.js';
import { isConnectionError, type OutageLog } from '../telemetry/outage.js';
import { RedisWatch } from '../telemetry/redisWatch.js';
import { closeRedis, untracked } from '../util/close.js';
import { healthOverrides } from './healthFlags.js';
import { connectRedis } from './redis.js';
import { BoundedShutdown, untilSignal } from './shutdown.js';

export interface SchedulerFlags {
  config?: string;
  remove?: boolean;
  list?: boolean;
  json?: boolean;
  once?: boolean;
  healthPort?: string;
}

/** The scheduler's lines are plain text: warnings on stderr, the rest on stdout. */
const plainLog: OutageLog = {
  warn: (_f, msg) => void process.stderr.write(`retrain scheduler: ${msg}\n`),
  info: (_f, msg) => void process.stdout.write(`${msg}\n`),
};

/** The keeper loop is alive when it woke up within two recheck periods (plus slack). */
function keeperHealth(redis: RedisWatch, recheckSec: number, lastTick: () => number) {
  const alive = () => Date.now() - lastTick() < 2 * recheckSec * 1000 + 10_000;
  return {
    outages: [redis.outage],
    loops: () => ({ 'schedule keeper': alive() }),
    checks: async () => ({
      redis: await redis.check(),
      loops: { ok: alive(), lastTickAt: new Date(lastTick()).toISOString() },
    }),
  };
}

function describe(s: ScheduleInfo | undefined): string {
  if (!s) return `no daily schedule (${DAILY_SCHEDULER_ID}) is registered`;
  const next = s.next
    ? `next slot ${new Date(s.next).toISOString()} plans ${runDateForSlot(s.next)}`
    : 'no next slot';
  const d = s.data;
  const what = d
    ? `; ${d.symbolsSpec} (${d.symbols.length} symbols), mode ${d.mode}, promote ${d.promote}${d.canary ? ' (canary)' : ''}, recipe ${d.recipe}`
    : '';
  return `${s.id}: cron "${s.pattern}" ${s.tz ?? 'UTC'}; ${next}${what}`;
}

function jsonOf(s: ScheduleInfo | undefined): unknown {
  if (!s) return null;
  return {
    ...s,
    nextAt: s.next ? new Date(s.next).toISOString() : null,
    nextDate: s.next ? runDateForSlot(s.next) : null,
  };
}

async function ensure(
  queue: Queue,
  redis: Redis,
  config: Config,
): Promise<{ action: EnsureAction; line: string }> {
  const data = await scheduledRunData(config);
  const { action, schedule } = await ensureDailySchedule({ queue, redis, config, data });
  if (action === 'removed' || action === 'absent') {
    return {
      action,
      line: `schedule.enabled is false: daily schedule ${action === 'removed' ? 'removed' : 'not registered'}`,
    };
  }
  return { action, line: `daily schedule ${action}: ${describe(schedule)}` };
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });

/**
 * `retrain scheduler`: registers the daily job scheduler (an upsert keyed by `daily-retrain`, so
 * restarts and replicas never make a second one), prints the next slot, then stays up and puts the
 * schedule back every `schedule.recheckSec` should it change in the config or vanish from Redis.
 * `--once` registers and exits; `--remove` removes it; `--list` shows it.
 */
export async function schedulerCommand(flags: SchedulerFlags): Promise<number> {
  const config = loadConfig({ file: flags.config, overrides: healthOverrides(flags.healthPort) });
  const redis = await connectRedis(config.redisUrl);
  const queue = new Queue(QUEUES.scheduler, { connection: redis, prefix: config.queuePrefix });
  queue.on('error', () => undefined);
  const out = process.stdout;
  let bounded: BoundedShutdown | undefined;
  let watch: RedisWatch | undefined;
  let health: RunningHealthServer | undefined;
  try {
    if (flags.remove) {
      const removed = await removeDailySchedule(queue, redis, config.queuePrefix);
      out.write(removed ? `daily schedule ${DAILY_SCHEDULER_ID} removed\n` : `no daily schedule to remove\n`);
      return 0;
    }
    if (flags.list) {
      const s = await describeSchedule(queue);
      out.write(flags.json ? JSON.stringify(jsonOf(s), null, 2) + '\n' : describe(s) + '\n');
      return 0;
    }
    out.write((await ensure(queue, redis, config)).line + '\n');
    if (flags.once) return 0;

    bounded = new BoundedShutdown({ command: 'retrain scheduler', graceMs: config.worker.shutdownGraceMs });
    const stop = new AbortController();
    void untilSignal(bounded).then(() => stop.abort());
    // Redis outages: one line when it goes, reminders, one when it is back (not one per recheck).
    watch = new RedisWatch({ url: config.redisUrl, log: plainLog });
    let lastTick = Date.now();
    if (config.health.port !== undefined) {
      health = await startHealthServer({
        ...keeperHealth(watch, config.schedule.recheckSec, () => lastTick),
        component: 'scheduler',
        host: config.health.host,
        port: config.health.port,
      });
      out.write(`health on ${health.url}/healthz\n`);
    }
    while (!stop.signal.aborted) {
      await sleep(config.schedule.recheckSec * 1000, stop.signal);
      lastTick = Date.now();
      if (stop.signal.aborted) break;
      try {
        // The config is read again: an edited file or CSV of symbols reaches the schedule.
        const fresh = loadConfig({ file: flags.config });
        const { action, line } = await ensure(queue, redis, fresh);
        watch.outage.success();
        if (action !== 'unchanged' && action !== 'absent') out.write(line + '\n');
      } catch (err) {
        if (isConnectionError(err)) watch.outage.failure(err);
        else
          process.stderr.write(
            `retrain scheduler: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}\n`,
          );
      }
    }
    out.write('scheduler stopped (the schedule stays registered; `retrain scheduler --remove` removes it)\n');
    return 0;
  } finally {
    const step = bounded?.step ?? untracked;
    await step('health server', async () => health?.close());
    await step('scheduler queue', () => queue.close().catch(() => undefined));
    await step('redis connection', () => closeRedis(redis));
    watch?.close();
    bounded?.finish();
  }
}
