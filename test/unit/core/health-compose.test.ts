import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import { startHealthServer, type RunningHealthServer } from '../../../src/telemetry/healthServer.js';
import { OutageReporter } from '../../../src/telemetry/outage.js';
import { REPO } from '../../helpers/harness.js';

interface Service {
  environment?: Record<string, string>;
  healthcheck?: { test: string[] };
}
const compose = parseYaml(readFileSync(join(REPO, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
};

let server: RunningHealthServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe("docker-compose.yml's worker and scheduler healthchecks", () => {
  for (const name of ['worker', 'scheduler']) {
    it(`${name}: its command passes on 200 from /healthz and fails on 503 or nothing listening`, async () => {
      const svc = compose.services[name]!;
      const test = svc.healthcheck?.test ?? [];
      expect(test.slice(0, 3)).toEqual(['CMD', 'node', '-e']);
      const port = svc.environment?.RETRAIN_HEALTH_PORT;
      expect(port).toBe('${RETRAIN_HEALTH_PORT:-9464}');
      let ok = true;
      const redis = new OutageReporter({ name: 'Redis', target: 'redis://x', log: { warn() {}, info() {} } });
      server = await startHealthServer({
        host: '127.0.0.1',
        port: 0,
        component: name,
        outages: [redis],
        checks: async () => ({ redis: { ok } }),
      });
      // What the container runs, with the port compose would give it.
      // (Spawned, not spawnSync: this process serves the answer meanwhile.)
      const probe = (healthPort = server!.port) =>
        new Promise<number | null>((resolve) => {
          const child = spawn(process.execPath, ['-e', test[3]!], {
            env: { ...process.env, RETRAIN_HEALTH_PORT: String(healthPort) },
            stdio: 'ignore',
          });
          child.on('exit', (code) => resolve(code));
        });
      expect(await probe()).toBe(0);
      ok = false;
      expect(await probe()).toBe(1);
      const gone = server.port;
      await server.close();
      server = undefined;
      expect(await probe(gone)).toBe(1);
    });
  }
});

describe('the health server', () => {
  it('/metrics exports dependency and loop series; unknown paths 404; writes 405', async () => {
    const redis = new OutageReporter({ name: 'Redis', target: 'redis://x', log: { warn() {}, info() {} } });
    redis.failure(new Error('connect ECONNREFUSED'));
    server = await startHealthServer({
      host: '127.0.0.1',
      port: 0,
      component: 'worker',
      outages: [redis],
      checks: async () => ({ redis: { ok: false } }),
      loops: () => ({ train: true, promote: false }),
    });
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).toContain('retrain_dependency_up{dependency="Redis",component="worker"} 0');
    expect(text).toContain('retrain_dependency_outages_total{dependency="Redis",component="worker"} 1');
    expect(text).toContain('retrain_loop_up{loop="train",component="worker"} 1');
    expect(text).toContain('retrain_loop_up{loop="promote",component="worker"} 0');
    expect(text).toMatch(/^process_cpu_seconds_total\{component="worker"\}/m);
    redis.success();
    const again = await (await fetch(`${server.url}/metrics`)).text();
    expect(again).toContain('retrain_dependency_up{dependency="Redis",component="worker"} 1');
    expect(again).toContain('retrain_dependency_outages_total{dependency="Redis",component="worker"} 1');
    expect((await fetch(`${server.url}/nope`)).status).toBe(404);
    expect((await fetch(`${server.url}/healthz`, { method: 'POST' })).status).toBe(405);
    const h = await fetch(`${server.url}/healthz`);
    expect(h.status).toBe(503);
    expect(await h.json()).toMatchObject({ status: 'unhealthy', failing: ['redis'] });
  });

  it('a port already taken is one clear error', async () => {
    server = await startHealthServer({
      host: '127.0.0.1',
      port: 0,
      component: 'w',
      outages: [],
      checks: async () => ({}),
    });
    await expect(
      startHealthServer({
        host: '127.0.0.1',
        port: server.port,
        component: 'w',
        outages: [],
        checks: async () => ({}),
      }),
    ).rejects.toThrow(`cannot serve /healthz on 127.0.0.1:${server.port}: listen EADDRINUSE`);
  });
});
