/**
 * The limiter keeps at most N tasks running, starts them in order, passes results and failures
 * (a synchronous throw included) through, and keeps going after a failure.
 */
import { describe, expect, it } from 'vitest';
import { Limiter } from '../../../src/util/limiter.js';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('Limiter', () => {
  it('runs at most N at once, in the order given, and returns each result', async () => {
    const limit = new Limiter(2);
    let running = 0;
    let peak = 0;
    const started: number[] = [];
    const results = await Promise.all(
      [30, 10, 20, 5, 1].map((ms, i) =>
        limit.run(async () => {
          started.push(i);
          running++;
          peak = Math.max(peak, running);
          await tick(ms);
          running--;
          return i * 10;
        }),
      ),
    );
    expect(results).toEqual([0, 10, 20, 30, 40]);
    expect(peak).toBe(2);
    expect(started).toEqual([0, 1, 2, 3, 4]);
    expect(limit.activeCount).toBe(0);
    expect(limit.pendingCount).toBe(0);
  });

  it('passes failures through (a synchronous throw too) and frees the place', async () => {
    const limit = new Limiter(1);
    const a = limit.run(() => {
      throw new Error('sync boom');
    });
    const b = limit.run(async () => {
      await tick(1);
      throw new Error('async boom');
    });
    const c = limit.run(() => 'after');
    await expect(a).rejects.toThrow('sync boom');
    await expect(b).rejects.toThrow('async boom');
    await expect(c).resolves.toBe('after');
  });

  it('refuses a concurrency that is not a positive integer', () => {
    expect(() => new Limiter(0)).toThrow(/positive integer, got 0/);
    expect(() => new Limiter(1.5)).toThrow(RangeError);
  });
});
