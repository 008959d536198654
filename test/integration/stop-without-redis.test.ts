/**
 * `retrain scheduler` and `retrain dashboard` when their Redis (a private redis-server of this test)
 * goes away: one line says so, the scheduler's /healthz turns 503, and SIGTERM still ends them
 * within worker.shutdownGraceMs + 5 s. (The worker's case, with a training: redis-outage.test.ts.)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BIN, REPO, waitFor } from '../helpers/harness.js';
import { freePort, privateRedis, type PrivateRedis } from '../helpers/privateRedis.js';

const GRACE_MS = 2000;
const BOUND_MS = GRACE_MS + 5000;
const SLACK_MS = 3000;

interface Proc {
  proc: ChildProcess;
  lines(): string[];
  exited: Promise<number | null>;
}

function start(args: string[], env: NodeJS.ProcessEnv): Proc {
  const proc = spawn(process.execPath, [BIN, ...args], { env, cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return { proc, exited, lines: () => out.split('\n').filter((l) => l.trim() !== '') };
}

async function healthStatus(port: number): Promise<number | undefined> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(5000) })).status;
  } catch {
    return undefined;
  }
}

/** SIGTERM, and how long until the process is gone. */
async function terminate(p: Proc): Promise<{ code: number | null; ms: number }> {
  const t0 = Date.now();
  p.proc.kill('SIGTERM');
  const code = await p.exited;
  return { code, ms: Date.now() - t0 };
}

describe('scheduler and dashboard without Redis', () => {
  let redis: PrivateRedis | undefined;
  let home: string | undefined;
  const procs: Proc[] = [];
  afterEach(async () => {
    for (const p of procs.splice(0))
      if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
    await redis?.cleanup();
    if (home) rmSync(home, { recursive: true, force: true });
  });

  async function world(extra: NodeJS.ProcessEnv = {}) {
    redis = await privateRedis();
    home = mkdtempSync(join(tmpdir(), 'retrain-test-'));
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      RETRAIN_HOME: home,
      REDIS_URL: redis.url,
      RETRAIN_QUEUE_PREFIX: 'stop',
      RETRAIN_SHUTDOWN_GRACE_MS: String(GRACE_MS),
      LOG_LEVEL: 'info',
      ...extra,
    };
    delete env.RETRAIN_CONFIG;
    return { redis, env };
  }

  it('scheduler: /healthz 200, then one line and 503 when Redis goes, and SIGTERM ends it within the bound', async () => {
    const healthPort = await freePort();
    const { redis, env } = await world({ RETRAIN_HEALTH_PORT: String(healthPort) });
    const s = start(['scheduler'], env);
    procs.push(s);
    await waitFor('the health server', () => s.lines().some((l) => l.startsWith('health on http://')));
    expect(await healthStatus(healthPort)).toBe(200);
    const before = s.lines().length;
    await redis.stop();
    await waitFor('/healthz 503', async () => (await healthStatus(healthPort)) === 503, 10_000);
    await new Promise((r) => setTimeout(r, 3000));
    const { ms } = await terminate(s);
    expect(ms).toBeLessThanOrEqual(BOUND_MS + SLACK_MS);
    const after = s.lines().slice(before);
    expect(after.filter((l) => l.includes('Redis is unreachable at redis://127.0.0.1:'))).toHaveLength(1);
    // The outage line, and the stop's own line (or the deadline's): nothing per retry.
    expect(after.length, after.join('\n')).toBeLessThanOrEqual(3);
  }, 60_000);

  it('dashboard: one line when Redis goes, no error stacks, and SIGTERM ends it within the bound', async () => {
    const { redis, env } = await world({ DASHBOARD_TOKEN: 'stop-test-token-123456' });
    const d = start(['dashboard', '--port', '0'], env);
    procs.push(d);
    await waitFor('the dashboard', () => d.lines().some((l) => l.includes('"dashboard_started"')));
    const before = d.lines().length;
    await redis.stop();
    await new Promise((r) => setTimeout(r, 4000));
    const { ms } = await terminate(d);
    expect(ms).toBeLessThanOrEqual(BOUND_MS + SLACK_MS);
    const after = d.lines().slice(before);
    expect(after.filter((l) => l.includes('"outage_started"'))).toHaveLength(1);
    expect(after.join('\n')).not.toMatch(/ECONNREFUSED[^"]*\n\s+at /);
    expect(after.length, after.join('\n')).toBeLessThanOrEqual(3);
  }, 60_000);
});
