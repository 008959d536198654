import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll } from 'vitest';

export const REPO = resolve(import.meta.dirname, '../..');
export const BIN = join(REPO, 'bin/retrain.mjs');
export const FIXTURES = join(REPO, 'test/fixtures');

export interface Sandbox {
  home: string;
  prefix: string;
  redisUrl: string;
  env: NodeJS.ProcessEnv;
  redis: Redis;
  cleanup(): Promise<void>;
}

/**
 * One isolated world per test: its own RETRAIN_HOME (tmp dir), its own BullMQ/ledger prefix on the
 * real Redis, fast polling and short retry delays. `cleanup` deletes both.
 */
export async function sandbox(redisUrl: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<Sandbox> {
  const home = mkdtempSync(join(tmpdir(), 'retrain-test-'));
  const prefix = `t-${randomUUID().slice(0, 8)}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    RETRAIN_HOME: home,
    RETRAIN_QUEUE_PREFIX: prefix,
    REDIS_URL: redisUrl,
    RETRAIN_BACKOFF_MS: '300',
    RETRAIN_POLL_MS: '150',
    LOG_LEVEL: 'info',
    ...extraEnv,
  };
  delete env.RETRAIN_CONFIG;
  const redis = new Redis(redisUrl);
  redis.on('error', () => undefined); // a Redis restarted by a chaos test comes back
  return {
    home,
    prefix,
    redisUrl,
    env,
    redis,
    async cleanup() {
      let cursor = '0';
      do {
        const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
        cursor = next;
        if (found.length) await redis.del(...found);
      } while (cursor !== '0');
      redis.disconnect();
      rmSync(home, { recursive: true, force: true });
    },
  };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real `retrain` CLI in a child process. */
export function runCli(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env,
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`retrain ${args.join(' ')} timed out\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code: code ?? -1, stdout, stderr });
    });
  });
}

export interface WorkerProc {
  proc: ChildProcess;
  output(): string;
  /** SIGTERM and wait for exit. */
  stop(): Promise<number | null>;
}

/** Starts `retrain worker` as a separate OS process. */
export function startWorker(env: NodeJS.ProcessEnv): WorkerProc {
  const proc = spawn(process.execPath, [BIN, 'worker'], {
    env,
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  return {
    proc,
    output: () => out,
    stop: () =>
      new Promise((r) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return r(proc.exitCode);
        proc.once('exit', (code) => r(code));
        proc.kill('SIGTERM');
      }),
  };
}

/**
 * The arguments of a `retrain run`/`enqueue` of `symbols` on `date` with `recipe` that builds its
 * features from generated (synthetic) market data: most integration tests train this way.
 */
export function syntheticRun(symbols: string, date: string, recipe: string): string[] {
  return ['--symbols', symbols, '--date', date, '--ensure-features', '--synthetic', '--recipe', recipe];
}

export const fakeRecipe = join(FIXTURES, 'recipes/fake');

/**
 * A fixture recipe that trains with the fake recipe's script. test/fixtures/recipes/<name>/ holds
 * only its recipe.yaml (one copy of fake_train.py for all of them); the loader ships only files
 * inside a recipe's own directory, so this puts both in a fresh directory and returns its path.
 * Call it at a test file's top level: the directory is removed after the file's tests.
 */
export function fakeVariantRecipe(name: string): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'retrain-recipe-')), name);
  afterAll(() => rmSync(dirname(dir), { recursive: true, force: true }));
  mkdirSync(dir);
  copyFileSync(join(FIXTURES, 'recipes', name, 'recipe.yaml'), join(dir, 'recipe.yaml'));
  copyFileSync(join(fakeRecipe, 'fake_train.py'), join(dir, 'fake_train.py'));
  return dir;
}

/** Polls `fn` every 100 ms until it returns something other than undefined or false. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
