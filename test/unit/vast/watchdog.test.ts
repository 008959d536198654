/**
 * The on-instance watchdog: the onstart script destroys its own instance at the rental's deadline
 * with the instance-scoped key, whichever HTTP tool the image has; a restart does not move the
 * deadline; failed destroys are retried; what it did is in its log file; without CONTAINER_API_KEY
 * it says so. Run by bash against the simulator.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { watchdogOnstart } from '../../../src/compute/vast.js';
import { VastClient } from '../../../src/vast/client.js';
import { watchdogScript } from '../../../src/vast/watchdog.js';
import { defaultOffers, startVastSim, type VastSim } from '../../../src/vast/sim/server.js';

const ACCOUNT_KEY = 'account-key-watchdog-test';
let sim: VastSim;
const dirs: string[] = [];

beforeAll(async () => {
  sim = await startVastSim({
    apiKey: ACCOUNT_KEY,
    offers: defaultOffers(),
    sshEndpoint: { host: '127.0.0.1', port: 1 },
    bootDelayMs: 0,
  });
});
afterAll(async () => {
  await sim.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A PATH holding only the coreutils the script uses and the given HTTP tool. */
function pathWith(tool: string): string {
  const d = mkdtempSync(join(tmpdir(), 'retrain-wd-'));
  dirs.push(d);
  for (const t of ['sleep', 'date', 'mkdir', 'dirname', 'sed', 'tr', 'tail', tool])
    symlinkSync(`/usr/bin/${t}`, join(d, t));
  return d;
}

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'retrain-wdlog-'));
  dirs.push(d);
  return d;
}

/** Runs the onstart script as Vast would (it forks the watchdog and returns). */
async function runOnstart(script: string, env: NodeJS.ProcessEnv): Promise<void> {
  const child = spawn('/bin/bash', ['-c', script], { env, stdio: 'ignore' });
  await new Promise((r) => child.once('exit', r));
}

async function until(what: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!what() && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
  return what();
}

async function rentOne(): Promise<number> {
  const client = new VastClient({ apiUrl: sim.url, apiKey: ACCOUNT_KEY });
  const [offer] = await client.searchOffers({}); // offers taken by earlier tests are not listed
  const { instanceId } = await client.createInstance(offer!.id, {
    image: 'x',
    disk: 10,
    label: 'retrain-default-train__BTCUSDT__20260101',
  });
  return instanceId;
}

describe('watchdogOnstart', () => {
  it('never carries the account key; its deadline is fixed at the rental, under the onstart limit', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    const script = watchdogOnstart(sim.url, 60, { now });
    expect(script).not.toContain(ACCOUNT_KEY);
    expect(script).toContain(`d=${now / 1000 + 3600};`);
    expect(script.length).toBeLessThan(4096);
  });

  for (const tool of ['curl', 'wget', 'python3']) {
    it.skipIf(!existsSync(`/usr/bin/${tool}`))(
      `destroys its own instance after the cap with the instance key (${tool})`,
      async () => {
        const id = await rentOne();
        const env = sim.state().env[id]!;
        const root = tmp();
        const script = watchdogOnstart(sim.url, 1 / 60, { workRoot: root });
        await runOnstart(script, {
          PATH: pathWith(tool),
          CONTAINER_ID: env.CONTAINER_ID!,
          CONTAINER_API_KEY: env.CONTAINER_API_KEY!,
        });
        // Still alive before the cap...
        expect(sim.state().alive).toContain(id);
        const end = Date.now() + 10_000;
        while (sim.state().alive.includes(id) && Date.now() < end)
          await new Promise((r) => setTimeout(r, 100));
        // ...destroyed after it, by the instance itself, and the log on the instance says so.
        expect(sim.state().destroyed).toContain(id);
        expect(
          await until(() => /destroy requested \(HTTP 200/.test(readLog(root)), 5000),
          readLog(root),
        ).toBe(true);
      },
      20_000,
    );
  }

  it('a container restart does not move the deadline: a restart after it destroys at once', async () => {
    const id = await rentOne();
    const env = sim.state().env[id]!;
    const root = tmp();
    // The rental began 2 min ago with a 1 min cap; the container just restarted (onstart runs again).
    const script = watchdogOnstart(sim.url, 1, { now: Date.now() - 120_000, workRoot: root });
    await runOnstart(script, {
      PATH: process.env.PATH,
      CONTAINER_ID: env.CONTAINER_ID!,
      CONTAINER_API_KEY: env.CONTAINER_API_KEY!,
    });
    expect(await until(() => sim.state().destroyed.includes(id), 5000)).toBe(true);
  }, 20_000);

  it('retries a failed destroy with backoff and logs each try', async () => {
    // A stand-in API that refuses twice (429, 502) and then accepts.
    const codes = [429, 502, 200];
    const seen: string[] = [];
    const srv = createServer((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers.authorization}`);
      res.statusCode = codes.shift() ?? 200;
      res.end(res.statusCode === 200 ? '{"success":true}' : 'API requests too frequent');
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as { port: number }).port;
    const root = tmp();
    try {
      const script = watchdogScript({
        apiUrl: `http://127.0.0.1:${port}`,
        deadlineEpochSec: Date.now() / 1000,
        logPath: join(root, 'watchdog.log'),
        firstRetrySec: 1,
      });
      await runOnstart(script, { PATH: process.env.PATH, CONTAINER_ID: '42', CONTAINER_API_KEY: 'inst-key' });
      expect(await until(() => readLog(root).includes('destroy requested'), 10_000), readLog(root)).toBe(
        true,
      );
      expect(seen).toEqual(Array(3).fill('DELETE /api/v0/instances/42/ Bearer inst-key'));
      expect(readLog(root)).toMatch(/destroy failed \(HTTP 429, try 1\); again in 1s/);
      expect(readLog(root)).toMatch(/destroy failed \(HTTP 502, try 2\); again in 2s/);
    } finally {
      srv.close();
    }
  }, 20_000);

  it('without CONTAINER_API_KEY it logs that it cannot destroy and leaves the limit to the orchestrator', async () => {
    const id = await rentOne();
    const root = tmp();
    const script = watchdogOnstart(sim.url, 1 / 120, { workRoot: root });
    await runOnstart(script, { PATH: process.env.PATH, CONTAINER_ID: String(id) });
    expect(await until(() => readLog(root).includes('no CONTAINER_API_KEY'), 5000), readLog(root)).toBe(true);
    expect(sim.state().alive).toContain(id);
  }, 20_000);
});

function readLog(root: string): string {
  const p = join(root, 'watchdog.log');
  return existsSync(p) ? readFileSync(p, 'utf8') : '';
}
