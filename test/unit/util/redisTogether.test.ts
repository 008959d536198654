/**
 * sendTogether: a state change's writes (a BullMQ job's data, progress and log line, and a command
 * of our own) leave the connection in one write, and each still lands; outside it, one write each.
 */
import { randomBytes } from 'node:crypto';
import { Job, Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendTogether } from '../../../src/util/redisTogether.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `test-together-${randomBytes(4).toString('hex')}`;
let redis: Redis;
let queue: Queue;

beforeAll(async () => {
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  queue = new Queue('train', { connection: redis, prefix });
  await queue.waitUntilReady();
});

afterAll(async () => {
  await queue.obliterate({ force: true });
  await queue.close();
  redis.disconnect();
});

/** Counts the socket's writes to Redis (a corked batch is one writev) while `fn` runs. */
async function socketWrites(fn: () => Promise<unknown>): Promise<number> {
  const socket = redis.stream as unknown as Record<'_write' | '_writev', (...a: unknown[]) => unknown>;
  const write = socket._write;
  const writev = socket._writev;
  let writes = 0;
  socket._write = function (this: unknown, ...a: unknown[]) {
    writes++;
    return write.apply(this, a);
  };
  socket._writev = function (this: unknown, ...a: unknown[]) {
    writes++;
    return writev.apply(this, a);
  };
  try {
    await fn();
  } finally {
    socket._write = write;
    socket._writev = writev;
  }
  return writes;
}

/** The four writes of a state change, as AttemptContext.enter starts them. */
function stateChange(job: Job, state: string) {
  return Promise.all([
    job.updateData({ ...job.data, state }),
    job.updateProgress({ state }),
    job.log(`entered ${state}`),
    redis.hset(`${prefix}:ledger`, job.id!, state),
  ]);
}

describe('sendTogether', () => {
  it("sends a state change's job and ledger writes in one write, and each lands", async () => {
    const job = await queue.add('t', { state: 'PENDING' }, { jobId: 'together-1' });
    // Scripts are sent by body the first time on a connection; that write is not the one measured.
    await stateChange(job, 'PROVISIONING');

    const writes = await socketWrites(() => sendTogether(redis, () => stateChange(job, 'EXECUTING')));

    expect(writes).toBe(1);
    const stored = await Job.fromId(queue, 'together-1');
    expect(stored!.data).toEqual({ state: 'EXECUTING' });
    expect(stored!.progress).toEqual({ state: 'EXECUTING' });
    expect((await queue.getJobLogs('together-1')).logs).toEqual([
      'entered PROVISIONING',
      'entered EXECUTING',
    ]);
    expect(await redis.hget(`${prefix}:ledger`, 'together-1')).toBe('EXECUTING');
  });

  it('without it, the same writes leave one by one (what it saves)', async () => {
    const job = await queue.add('t', { state: 'PENDING' }, { jobId: 'together-2' });
    await stateChange(job, 'PROVISIONING');
    expect(await socketWrites(() => stateChange(job, 'EXECUTING'))).toBe(4);
  });

  it('returns what the writes return, and a failing one fails alone', async () => {
    await redis.set(`${prefix}:str`, 'x');
    const [ok, bad] = await sendTogether(redis, () =>
      Promise.allSettled([redis.incr(`${prefix}:n`), redis.hset(`${prefix}:str`, 'f', 'v')]),
    );
    expect(ok).toEqual({ status: 'fulfilled', value: 1 });
    expect(bad.status).toBe('rejected');
    expect(String((bad as PromiseRejectedResult).reason)).toMatch(/WRONGTYPE/);
  });

  it('on a connection not ready yet, the writes go out once it is', async () => {
    const late = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: null });
    try {
      const n = await sendTogether(late, () => late.incr(`${prefix}:late`));
      expect(n).toBe(1);
    } finally {
      late.disconnect();
    }
  });
});
