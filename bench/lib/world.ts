/**
 * What every benchmark needs: a Redis (REDIS_URL, else 127.0.0.1:6379, else a private redis-server),
 * an isolated RETRAIN_HOME and key prefix, a Config built the way the CLI builds it, and the last
 * line of output (one JSON object of figures).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, fsyncSync, mkdtempSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { cpus, freemem, totalmem, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { redisAnswers } from '../../src/util/redisPing.js';
import { freePort } from '../../src/util/net.js';

export const REPO = resolve(import.meta.dirname, '../..');
export const NOOP_RECIPE = join(REPO, 'bench/recipes/noop');

let privateRedis: ChildProcess | undefined;

/** The Redis the benchmarks use (the same rule as the tests and the demo). */
export async function benchRedisUrl(): Promise<string> {
  const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  if (await redisAnswers(url)) return url;
  if (process.env.REDIS_URL) throw new Error(`REDIS_URL=${url} does not answer PING`);
  const port = await freePort();
  privateRedis = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  const own = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 50 && !(await redisAnswers(own)); i++) await sleep(100);
  if (!(await redisAnswers(own))) throw new Error('no Redis: set REDIS_URL or install redis-server');
  return own;
}

export function stopPrivateRedis(): void {
  privateRedis?.kill('SIGTERM');
  privateRedis = undefined;
}

export interface World {
  home: string;
  prefix: string;
  redisUrl: string;
  redis: Redis;
  /** A Config as the CLI would build it from this world's env, plus `overrides` (flags). */
  config(overrides?: Record<string, unknown>): Config;
  cleanup(): Promise<void>;
}

/** An isolated RETRAIN_HOME (tmp dir) and key prefix on the Redis; `cleanup` deletes both. */
export async function world(name: string, redisUrl: string): Promise<World> {
  const home = mkdtempSync(join(tmpdir(), `retrain-bench-${name}-`));
  const prefix = `bench-${name}-${randomUUID().slice(0, 8)}`;
  const redis = new Redis(redisUrl);
  redis.on('error', () => undefined);
  return {
    home,
    prefix,
    redisUrl,
    redis,
    config: (overrides = {}) =>
      loadConfig({
        env: { RETRAIN_HOME: home, REDIS_URL: redisUrl, RETRAIN_QUEUE_PREFIX: prefix, LOG_LEVEL: 'info' },
        cwd: home,
        overrides,
      }),
    async cleanup() {
      await deleteKeys(redis, `${prefix}:*`);
      redis.disconnect();
      rmSync(home, { recursive: true, force: true });
    },
  };
}

export async function deleteKeys(redis: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (found.length) await redis.unlink(...found);
  } while (cursor !== '0');
}

/** Bytes Redis attributes to the keys matching `pattern` (MEMORY USAGE, all samples), and their count. */
export async function keyMemory(redis: Redis, pattern: string): Promise<{ bytes: number; keys: number }> {
  let cursor = '0';
  let bytes = 0;
  let keys = 0;
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (found.length) {
      const pipe = redis.pipeline();
      for (const k of found) pipe.memory('USAGE', k, 'SAMPLES', 0);
      for (const [err, n] of (await pipe.exec()) ?? []) {
        if (!err && typeof n === 'number') bytes += n;
      }
      keys += found.length;
    }
  } while (cursor !== '0');
  return { bytes, keys };
}

/** `S0001`, `S0002`, ...: valid symbols (2-24 chars A-Z0-9) that are not in the shipped universe. */
export function syntheticSymbols(n: number, letter = 'S'): string[] {
  const width = Math.max(4, String(n).length);
  return Array.from({ length: n }, (_, i) => `${letter}${String(i + 1).padStart(width, '0')}`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The p-th percentile (0-100) by nearest rank; NaN for an empty list. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

export function round(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** One line describing the machine, for RESULTS.md. */
export function machineLine(): string {
  const gib = (b: number) => (b / 2 ** 30).toFixed(1);
  return (
    `machine: ${cpus().length} cores (${cpus()[0]?.model.trim() ?? 'unknown'}), ` +
    `${gib(totalmem())} GiB RAM (${gib(freemem())} free), node ${process.version}`
  );
}

/**
 * CPU (µs, this process) to create, write, fsync and rename one small file in `dir`, over 200 files:
 * what the store and the work dir's files cost here, which varies with the machine's state.
 */
export function fileCreateCpuUs(dir: string): number {
  const d = mkdtempSync(join(dir, 'retrain-fscal-'));
  const data = Buffer.alloc(400, 120);
  const n = 200;
  try {
    const c0 = process.cpuUsage();
    for (let i = 0; i < n; i++) {
      const fd = openSync(join(d, `.t${i}`), 'wx');
      writeSync(fd, data);
      fsyncSync(fd);
      closeSync(fd);
      renameSync(join(d, `.t${i}`), join(d, `f${i}`));
    }
    const c = process.cpuUsage(c0);
    return (c.user + c.system) / n;
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
}

/** Human-readable lines go to stdout as they come; the figures are the last line, one JSON object. */
export function say(line: string): void {
  process.stdout.write(line + '\n');
}

export function figures(obj: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}
