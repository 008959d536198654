/**
 * A recipe that prints its own secret: retrain's copies of its log (training.log, the BullMQ job
 * log, the stored train.log of the success and of the failed attempt) show stars instead, the same
 * length, so nothing else in them moves. The host's own train.log is the recipe's file, left alone.
 */
import { createHash, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { FIXTURES, runCli, sandbox, syntheticRun, type Sandbox } from '../helpers/harness.js';

const DATE = '20260116';
const SYMBOL = 'BTCUSDT';
const JOB = `train__${SYMBOL}__${DATE}`;
let sb: Sandbox;
beforeEach(async () => {
  sb = await sandbox(inject('redisUrl'));
});
afterEach(async () => sb.cleanup());

function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listFiles(join(dir, e.name)) : e.isFile() ? [join(dir, e.name)] : [],
  );
}

describe('a recipe that prints its secret', () => {
  it('every copy of the log retrain keeps has stars of the same length instead, on every attempt', async () => {
    const secret = `rs-${randomUUID()}`;
    sb.env.RETRAIN_TEST_SECRET = secret;
    const counter = join(sb.home, 'attempts.txt');
    const r = await runCli(
      [
        'run',
        ...syntheticRun(SYMBOL, DATE, join(FIXTURES, 'recipes/with-secret')),
        '--var',
        'echo=1',
        '--var',
        `counter=${counter}`,
        '--var',
        'fail_until=1',
        '--retries',
        '1',
      ],
      sb.env,
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const stars = '*'.repeat(secret.length);
    const store = join(sb.home, 'store');
    const artifact = (name: string) => readFileSync(join(store, 'ml-artifacts', JOB, name), 'utf8');

    // The training got the secret and printed it: the host's own log has it (the recipe's file).
    expect(JSON.parse(artifact('config.json')).secret_sha256).toBe(
      createHash('sha256').update(secret).digest('hex'),
    );
    const hostLogs = listFiles(join(sb.home, 'models')).filter((f) => f.endsWith('/train.log'));
    expect(hostLogs.length).toBeGreaterThan(0);
    expect(hostLogs.some((f) => readFileSync(f, 'utf8').includes(`token=${secret}`))).toBe(true);

    // The local training.log: both attempts, every way it was printed, masked in place.
    const training = readFileSync(join(sb.home, 'logs', `${DATE}Z`, SYMBOL, 'training.log'), 'utf8');
    for (const n of [1, 2]) expect(training).toContain(`attempt ${n} token=${stars}\n`);
    expect(training).toContain(`key=${stars}&x=1\n`);
    expect(training.match(new RegExp(`split \\*{${secret.length}} end\\n`, 'g'))).toHaveLength(2);

    // The stored train.log of the success and of the failed attempt; the manifest hashes what is stored.
    const stored = artifact('train.log');
    expect(stored).toContain(`attempt 2 token=${stars}\n`);
    expect(stored).toContain(`split ${stars} end\n`);
    const manifest = artifact('sha256.txt');
    expect(manifest).toContain(createHash('sha256').update(stored).digest('hex'));
    const failed = artifact('attempts/1/train.log');
    expect(failed).toContain(`attempt 1 token=${stars}\n`);
    expect(failed).toContain('attempt 1: failing on purpose');

    // The BullMQ job log (what Bull Board shows).
    const jobLog = await sb.redis.lrange(`${sb.prefix}:train:${JOB}:logs`, 0, -1);
    expect(jobLog).toContain(`attempt 2 token=${stars}`);
    expect(jobLog.some((l) => l.includes(`${stars} end`))).toBe(true);

    // Nowhere but the host's work dirs: every file under RETRAIN_HOME, every Redis key's value.
    const leaks = listFiles(sb.home)
      .filter((f) => !f.startsWith(join(sb.home, 'models') + '/'))
      .filter((f) => readFileSync(f).includes(secret));
    expect(leaks).toEqual([]);
    const keys = await sb.redis.keys(`${sb.prefix}:*`);
    const values: string[] = [];
    for (const k of keys) {
      const type = await sb.redis.type(k);
      if (type === 'string') values.push((await sb.redis.get(k))!);
      if (type === 'hash') values.push(JSON.stringify(await sb.redis.hgetall(k)));
      if (type === 'list') values.push(...(await sb.redis.lrange(k, 0, -1)));
    }
    expect(values.filter((v) => v.includes(secret))).toEqual([]);
    expect(r.stdout + r.stderr).not.toContain(secret);
  });
});
