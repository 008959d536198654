import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { fakeRecipe, runCli, sandbox, type Sandbox } from '../helpers/harness.js';

describe('bad input: one line naming the problem, non-zero exit, nothing enqueued or executed', () => {
  let sb: Sandbox;
  const pwned = `/tmp/pwned-${process.pid}-${Date.now()}`;
  beforeAll(async () => {
    sb = await sandbox(inject('redisUrl'));
    const dir = join(sb.home, 'recipes');
    mkdirSync(join(dir, 'broken'), { recursive: true });
    writeFileSync(join(dir, 'broken/recipe.yaml'), 'name: broken\nversion: 1\ntrain:\n  - run: [unclosed\n');
    mkdirSync(join(dir, 'unknown'), { recursive: true });
    writeFileSync(
      join(dir, 'unknown/recipe.yaml'),
      'name: unknown\nversion: 1\nbogus: true\ntrain:\n  - run: echo hi\noutputs:\n  required: [model.bin]\n',
    );
  });
  afterAll(async () => sb.cleanup());

  const cases: [string, string[], RegExp][] = [
    ['path traversal symbol', ['--symbols', 'BTCUSDT,../../etc'], /invalid symbol "\.\.\/\.\.\/etc"/],
    ['shell in a symbol', ['--symbols', 'BTC;rm -rf /'], /invalid symbol "BTC;rm -rf \/"/],
    ['impossible date', ['--date', '2026-13-45'], /invalid date "2026-13-45"/],
    ['unknown mode', ['--mode', 'turbo'], /--mode must be one of sequential, parallel, hybrid, got "turbo"/],
    ['zero concurrency', ['--max-concurrent', '0'], /--max-concurrent must be a whole number >= 1, got "0"/],
    ['recipe syntax error', ['--recipe', 'RECIPES/broken'], /recipe .*broken\/recipe\.yaml: .*line/],
    [
      'recipe unknown field',
      ['--recipe', 'RECIPES/unknown'],
      /recipe .*unknown\/recipe\.yaml: .*unknown field "bogus"/,
    ],
    [
      'recipe variable with shell syntax',
      ['--recipe', fakeRecipe, '--var', `marker=$(touch ${'PWNED'})`],
      /recipe variable "marker"/,
    ],
  ];

  for (const [name, args, expected] of cases) {
    it(name, async () => {
      const resolved = args.map((a) =>
        a.replace('RECIPES', join(sb.home, 'recipes')).replace('PWNED', pwned),
      );
      const r = await runCli(
        [
          'enqueue',
          '--ensure-features',
          '--synthetic',
          '--symbols',
          'BTCUSDT',
          '--date',
          '20260110',
          ...resolved,
        ],
        sb.env,
      );
      expect(r.code).toBe(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(expected);
      expect(r.stdout).toBe('');
      expect(await sb.redis.keys(`${sb.prefix}:*`)).toEqual([]);
      expect(existsSync(pwned)).toBe(false);
      expect(existsSync(join(sb.home, 'models'))).toBe(false);
    });
  }
});

describe('an unreachable Redis', () => {
  it('one line naming where it looked, without the password of the URL', async () => {
    const sb = await sandbox(inject('redisUrl'));
    try {
      const password = `pw-${process.pid}-${Date.now()}`;
      // Port 1 on loopback: nothing listens there.
      const env = { ...sb.env, REDIS_URL: `redis://:${password}@127.0.0.1:1/0` };
      for (const args of [['status'], ['enqueue', '--symbols', 'BTCUSDT', '--date', '20260110']]) {
        const r = await runCli(args, env);
        expect(r.code, args.join(' ')).toBe(2);
        expect(r.stderr.trim().split('\n')).toEqual([
          'retrain: Redis is not reachable at redis://***@127.0.0.1:1/0: start one (e.g. `redis-server --daemonize yes`) or set REDIS_URL',
        ]);
        expect(r.stdout + r.stderr).not.toContain(password);
      }
    } finally {
      await sb.cleanup();
    }
  });
});
