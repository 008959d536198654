import { afterEach, describe, expect, it } from 'vitest';
import { VastClient } from '../../../src/vast/client.js';
import { defaultOffers, startVastSim, type VastSim } from '../../../src/vast/sim/server.js';
import { OutageReporter } from '../../../src/telemetry/outage.js';

const KEY = 'f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f';

let sim: VastSim | undefined;
afterEach(async () => {
  await sim?.close();
  sim = undefined;
});

describe('Vast API outage (the simulator over real HTTP)', () => {
  it('down (503, then refusing connections) for many calls and retries: one line; back: one line; a 401 is no outage', async () => {
    sim = await startVastSim({
      apiKey: KEY,
      offers: defaultOffers(),
      sshEndpoint: { host: '127.0.0.1', port: 2222 },
      bootDelayMs: 150,
      seed: 7,
    });
    const lines: { event: unknown; msg: string }[] = [];
    const log = {
      warn: (f: Record<string, unknown>, msg: string) => lines.push({ event: f.event, msg }),
      info: (f: Record<string, unknown>, msg: string) => lines.push({ event: f.event, msg }),
    };
    const outage = new OutageReporter({ name: 'Vast API', target: sim.url, log });
    const client = new VastClient({
      apiUrl: sim.url,
      apiKey: KEY,
      retries: 2,
      minRetryDelayMs: 5,
      maxRetryDelayMs: 20,
      timeoutMs: 3000,
      outage,
    });
    await client.listInstances();
    expect(outage.up).toBe(true);

    sim.setDown('503');
    for (let i = 0; i < 5; i++) await expect(client.listInstances()).rejects.toThrow(/HTTP 503/);
    sim.setDown('refuse');
    for (let i = 0; i < 5; i++) await expect(client.listInstances()).rejects.toThrow(/network error/);
    expect(outage.up).toBe(false);
    expect(outage.state().outages).toBe(1);

    sim.setDown('none');
    await client.listInstances();
    expect(lines.map((l) => l.event)).toEqual(['outage_started', 'outage_ended']);
    expect(lines[0]!.msg).toMatch(new RegExp(`^Vast API is unreachable at ${sim.url} \\(.*HTTP 503`));
    expect(lines.map((l) => l.msg).join('\n')).not.toContain(KEY);

    const wrongKey = new VastClient({ apiUrl: sim.url, apiKey: 'x'.repeat(64), retries: 0, outage });
    await expect(wrongKey.listInstances()).rejects.toThrow(/authentication failed/);
    expect(outage.up).toBe(true);
    expect(lines).toHaveLength(2);
  });
});
