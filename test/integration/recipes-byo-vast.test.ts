/**
 * Bring your own training on Vast (the simulator over real HTTP, a real sshd as every host): the
 * recipe's private image and registry login reach the create request and nothing else (no log,
 * no Redis, no output), an image that cannot be pulled is reported as an image error at boot,
 * the recipe's minCudaVersion picks the offer, and a host failing the healthcheck is given back
 * and the training moves to another machine.
 */
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { fakeVariantRecipe } from '../helpers/harness.js';
import { expectNothingLeftRented, startVastWorld, vastRun, type VastWorld } from '../helpers/vastWorld.js';

const DATE = '20260110';
const IMAGE = 'registry.example.com/team/trainer:2.1';
const USER = 'team-robot';
const TOKEN = `ghp_sEcReTtOkEn${process.pid}x7Q`;
const privateImage = fakeVariantRecipe('private-image');
const byoHooks = fakeVariantRecipe('byo-hooks');

const status = (w: VastWorld) =>
  JSON.parse(readFileSync(join(w.sb.home, 'store', `runs/${DATE}Z/status.json`), 'utf8')).symbols;

/** Every value under the sandbox's Redis prefix, as one string. */
async function redisDump(redis: Redis, prefix: string): Promise<string> {
  const parts: string[] = [];
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
    cursor = next;
    for (const key of found) {
      const type = await redis.type(key);
      if (type === 'string') parts.push((await redis.get(key)) ?? '');
      else if (type === 'hash') parts.push(JSON.stringify(await redis.hgetall(key)));
      else if (type === 'list') parts.push(JSON.stringify(await redis.lrange(key, 0, -1)));
      else if (type === 'set') parts.push(JSON.stringify(await redis.smembers(key)));
      else if (type === 'zset') parts.push(JSON.stringify(await redis.zrange(key, 0, -1)));
      else if (type === 'stream') parts.push(JSON.stringify(await redis.xrange(key, '-', '+')));
    }
  } while (cursor !== '0');
  return parts.join('\n');
}

/** Every file under `dir`, concatenated (logs, ledger copies, artifacts). */
function allText(dir: string): string {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(readFileSync(join(e.parentPath, e.name), 'latin1'));
  }
  return out.join('\n');
}

describe('recipes on Vast: image, registry login, minCudaVersion, healthcheck', () => {
  let w: VastWorld | undefined;
  afterEach(async () => {
    await w?.close();
    w = undefined;
  });

  it('rents the recipe image with image_login from the named secrets; the token is nowhere else', async () => {
    const login = `-u ${USER} -p ${TOKEN} registry.example.com`;
    w = await startVastWorld(inject('redisUrl'), {
      env: { REGISTRY_USER: USER, REGISTRY_TOKEN: TOKEN },
      sim: { privateImages: { [IMAGE]: login } },
    });
    const r = await vastRun(w.sb.env, { symbols: ['BTCUSDT'], date: DATE, recipe: privateImage });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(status(w).BTCUSDT).toMatchObject({ status: 'success' });
    const st = w.sim.state();
    expect(st.rented).toHaveLength(1);
    const id = st.rented[0]!;
    expect(st.instances.find((i) => i.id === id)?.image_uuid).toBe(IMAGE);
    expect(st.imageLogins[id]).toBe(login);
    // minCudaVersion 12.7: only the CUDA 12.8 machines qualify (32001 is the cheapest of them).
    expect(st.instances.find((i) => i.id === id)?.machine_id).toBe(32001);
    expectNothingLeftRented(w.sim);
    // Never in a log, the store, Redis (job data, ledger) or the CLI's output.
    expect(allText(w.sb.home)).not.toContain(TOKEN);
    expect(await redisDump(w.sb.redis, w.sb.prefix)).not.toContain(TOKEN);
    expect(r.stdout + r.stderr).not.toContain(TOKEN);
  });

  it('an image the registry refuses is reported as an image error at boot, and nothing stays rented', async () => {
    w = await startVastWorld(inject('redisUrl'), {
      env: { REGISTRY_USER: USER, REGISTRY_TOKEN: 'a-wrong-token', RETRAIN_BOOT_DEADLINE_SEC: '60' },
      sim: { privateImages: { [IMAGE]: `-u ${USER} -p ${TOKEN} registry.example.com` } },
    });
    const started = Date.now();
    const r = await vastRun(w.sb.env, {
      symbols: ['BTCUSDT'],
      date: DATE,
      recipe: privateImage,
      extra: ['--retries', '0'],
    });
    expect(r.code).toBe(1);
    const e = status(w).BTCUSDT;
    expect(e).toMatchObject({ status: 'failed', reason: 'provisioning' });
    expect(e.error.message).toMatch(/image error at boot: Error response from daemon: pull access denied/);
    // Failed on the status message, not after the 60 s boot deadline.
    expect(Date.now() - started).toBeLessThan(60_000);
    expectNothingLeftRented(w.sim);
    expect(allText(w.sb.home)).not.toContain('a-wrong-token');
  });

  it('an unset registry secret is refused by name before anything is rented', async () => {
    w = await startVastWorld(inject('redisUrl'), { env: { REGISTRY_USER: USER } });
    delete w.sb.env.REGISTRY_TOKEN;
    const r = await vastRun(w.sb.env, {
      symbols: ['BTCUSDT'],
      date: DATE,
      recipe: privateImage,
      extra: ['--retries', '0'],
    });
    expect(r.code).toBe(1);
    const e = status(w).BTCUSDT;
    expect(e).toMatchObject({ status: 'failed', reason: 'bad_recipe' });
    expect(e.error.message).toContain('imageLogin.token: secret "REGISTRY_TOKEN" is not set');
    expect(w.sim.state().rented).toEqual([]);
  });

  it('a host failing the healthcheck is released as unsound and the training moves to another machine', async () => {
    w = await startVastWorld(inject('redisUrl'));
    const hp = join(w.sb.home, 'store/hyperparams/BTCUSDT');
    mkdirSync(hp, { recursive: true });
    writeFileSync(join(hp, 'params.json'), '{"eta": 0.1}\n');
    const marker = join(w.sb.home, 'healthy-marker');
    const r = await vastRun(w.sb.env, {
      symbols: ['BTCUSDT'],
      date: DATE,
      recipe: byoHooks,
      extra: ['--var', `hc_marker=${marker}`, '--retries', '1'],
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const e = status(w).BTCUSDT;
    expect(e).toMatchObject({ status: 'success', attempts: 2 });
    expect(e.history[0]).toMatchObject({ outcome: 'retrying', reason: 'unhealthy' });
    const st = w.sim.state();
    expect(st.rented).toHaveLength(2);
    const machines = st.rented.map((id) => st.instances.find((i) => i.id === id)?.machine_id);
    expect(machines[0]).not.toBe(machines[1]);
    // The unsound host was destroyed, not kept for reuse.
    expect(st.destroyed).toContain(st.rented[0]);
    expectNothingLeftRented(w.sim);
  });
});
