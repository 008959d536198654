/**
 * Keys that name secrets are censored in every log line, at the depths the logger promises (a
 * top-level key, a key one level down, `headers.authorization` one level further), in a line's
 * own fields and in a child logger's bindings; a line without them is written as given.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LogHub } from '../../../src/telemetry/logger.js';

const DATE = '20260115';

describe('log lines and secret keys', () => {
  let home: string;
  let hub: LogHub;
  beforeEach(async () => {
    home = await mkdtemp(join(tmpdir(), 'log-redact-'));
    hub = new LogHub({ home, level: 'info', stdout: false });
  });
  afterEach(async () => {
    hub.close();
    await rm(home, { recursive: true, force: true });
  });

  const lines = async () =>
    (await readFile(join(home, 'logs', `${DATE}Z`, 'engine.log'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  it('censors secret keys at the top, one level down and in headers, and leaves the rest', async () => {
    const log = hub.forDate(DATE);
    const vast = {
      apiKey: 'k-top-1',
      region: 'eu',
      headers: { authorization: 'Bearer h-2', accept: 'json' },
    };
    log.info(
      {
        token: 't-top-3',
        password: 'p-top-4',
        vast,
        s3: { secret: 's-5', secrets: ['s-6'], bucket: 'b' },
        headers: { authorization: 'Bearer h-7' },
        list: [{ token: 'kept-in-array' }],
        count: 3,
      },
      'hello',
    );
    log.info({ event: 'plain', nested: { a: 1, b: [1, 2] } }, 'no secrets here');
    const [first, second] = await lines();
    const text = JSON.stringify(first);
    for (const leaked of ['k-top-1', 'h-2', 't-top-3', 'p-top-4', 's-5', 's-6', 'h-7']) {
      expect(text).not.toContain(leaked);
    }
    expect(first).toMatchObject({
      token: '[REDACTED]',
      password: '[REDACTED]',
      vast: { apiKey: '[REDACTED]', region: 'eu', headers: { authorization: '[REDACTED]', accept: 'json' } },
      s3: { secret: '[REDACTED]', secrets: '[REDACTED]', bucket: 'b' },
      headers: { authorization: '[REDACTED]' },
      count: 3,
      msg: 'hello',
    });
    // Only the paths named: an array's items are not searched (as pino's own redaction did).
    expect(first!.list).toEqual([{ token: 'kept-in-array' }]);
    // The caller's object is not changed by the censoring.
    expect(vast.apiKey).toBe('k-top-1');
    expect(vast.headers.authorization).toBe('Bearer h-2');
    expect(second).toMatchObject({ event: 'plain', nested: { a: 1, b: [1, 2] }, msg: 'no secrets here' });
  });

  it('an error carrying a secret field keeps its message and stack', async () => {
    const err = Object.assign(new Error('upload refused'), { token: 't-err-11', status: 403 });
    hub.forDate(DATE).error({ err }, 'failed');
    const [line] = await lines();
    expect(JSON.stringify(line)).not.toContain('t-err-11');
    expect(line!.err).toMatchObject({ message: 'upload refused', status: 403, token: '[REDACTED]' });
    expect(String((line!.err as { stack?: string }).stack)).toContain('upload refused');
    expect(err.token).toBe('t-err-11');
  });

  it("censors a child logger's bindings, and its children's", async () => {
    const child = hub
      .forDate(DATE)
      .child({ symbol: 'BTCUSDT', apiKey: 'k-child-8', ssh: { password: 'p-9' } });
    child.info({ step: 1 }, 'from the child');
    child.child({ token: 't-grandchild-10' }).info('from the grandchild');
    const [line, deeper] = await lines();
    expect(JSON.stringify(deeper)).not.toMatch(/k-child-8|p-9|t-grandchild-10/);
    expect(deeper).toMatchObject({ symbol: 'BTCUSDT', apiKey: '[REDACTED]', token: '[REDACTED]' });
    expect(JSON.stringify(line)).not.toMatch(/k-child-8|p-9/);
    expect(line).toMatchObject({
      symbol: 'BTCUSDT',
      apiKey: '[REDACTED]',
      ssh: { password: '[REDACTED]' },
      step: 1,
      msg: 'from the child',
    });
  });
});
