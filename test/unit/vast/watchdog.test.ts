/**
 * The on-instance watchdog: the onstart script destroys its own instance after maxRuntimeMin with
 * the instance-scoped key, whichever HTTP tool the image has. Run by bash against the simulator.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { watchdogOnstart } from '../../../src/compute/vast.js';
import { VastClient } from '../../../src/vast/client.js';
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

/** A PATH holding only `sleep` and the given tool. */
function pathWith(tool: string): string {
  const d = mkdtempSync(join(tmpdir(), 'retrain-wd-'));
  dirs.push(d);
  for (const t of ['sleep', tool]) symlinkSync(`/usr/bin/${t}`, join(d, t));
  return d;
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
  it('never carries the account key', () => {
    expect(watchdogOnstart(sim.url, 60)).not.toContain(ACCOUNT_KEY);
    expect(watchdogOnstart(sim.url, 60)).toContain('sleep 3600;');
  });

  for (const tool of ['curl', 'wget', 'python3']) {
    it.skipIf(!existsSync(`/usr/bin/${tool}`))(
      `destroys its own instance after the cap with the instance key (${tool})`,
      async () => {
        const id = await rentOne();
        const env = sim.state().env[id]!;
        const script = watchdogOnstart(sim.url, 1 / 60);
        const child = spawn('/bin/bash', ['-c', script], {
          env: {
            PATH: pathWith(tool),
            CONTAINER_ID: env.CONTAINER_ID!,
            CONTAINER_API_KEY: env.CONTAINER_API_KEY!,
          },
          stdio: 'ignore',
        });
        await new Promise((r) => child.once('exit', r));
        // Still alive before the cap...
        expect(sim.state().alive).toContain(id);
        const end = Date.now() + 10_000;
        while (sim.state().alive.includes(id) && Date.now() < end)
          await new Promise((r) => setTimeout(r, 100));
        // ...destroyed after it, by the instance itself.
        expect(sim.state().destroyed).toContain(id);
      },
      20_000,
    );
  }
});
