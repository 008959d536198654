import type { Worker } from 'bullmq';
import type { HealthSources } from '../src/telemetry/healthServer.js';
import type { OutageReporter } from '../src/telemetry/outage.js';
import type { RedisWatch } from '../src/telemetry/redisWatch.js';

/** A BullMQ worker's loop is alive while it runs and is not closing. */
function loopAlive(w: Worker): boolean {
  return w.isRunning() && !w.closing;
}

/**
 * What `retrain worker`'s /healthz judges: Redis answers a PING, and every worker loop (train,
 * promote, finalize-run, scheduled-run, maintenance) runs. The S3 store's and the Vast API's outage
 * states are shown beside them but do not fail the check: restarting a worker does not bring them
 * back, and a worker waits them out.
 */
export function workerHealth(deps: {
  redis: RedisWatch;
  workers: Worker[];
  outages: OutageReporter[];
}): HealthSources {
  const loops = () => Object.fromEntries(deps.workers.map((w) => [w.name, loopAlive(w)]));
  return {
    outages: deps.outages,
    loops,
    checks: async () => {
      const state = loops();
      const stopped = Object.entries(state)
        .filter(([, up]) => !up)
        .map(([name]) => name);
      return {
        redis: await deps.redis.check(),
        loops: stopped.length ? { ok: false, stopped, state } : { ok: true, state },
      };
    },
  };
}
