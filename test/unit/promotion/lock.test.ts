/**
 * The production lock on the real Redis: one holder per symbol, renewed while held, a clear
 * retryable error when it cannot be had, and promotions and rollbacks racing on one symbol (on a
 * real LocalStore) leaving one linear history and a readable production.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ProductionBusyError } from '../../../src/errors.js';
import { redisProductionLock, type ProductionLock } from '../../../src/promotion/lock.js';
import type { ProductionManifest } from '../../../src/promotion/manifest.js';
import { publishProduction } from '../../../src/promotion/publish.js';
import { readProduction } from '../../../src/promotion/read.js';
import { listHistory, rollbackProduction } from '../../../src/promotion/rollback.js';
import { keys } from '../../../src/storage/layout.js';
import { LocalStore } from '../../../src/storage/local.js';
import { promoteAuto, publish, putCandidate, SYM } from './production-contract.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('production lock (real Redis)', () => {
  let redis: Redis;
  let prefix: string;
  let root: string;
  let store: LocalStore;

  beforeEach(async () => {
    redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 2 });
    prefix = `t-plock-${randomUUID().slice(0, 8)}`;
    root = await mkdtemp(join(tmpdir(), 'production-lock-'));
    store = new LocalStore(root);
  });
  afterEach(async () => {
    const found = await redis.keys(`${prefix}:*`);
    if (found.length) await redis.del(...found);
    redis.disconnect();
    await rm(root, { recursive: true, force: true });
  });

  it('one holder per symbol, renewed past its duration; other symbols are not held up', async () => {
    // A 2 s lock (renewed when 666 ms are left) held for 5 s: only renewal keeps the second holder out.
    const lock = redisProductionLock(redis, prefix, { durationMs: 2000, waitMs: 20_000 });
    const spans: Record<string, [number, number]> = {};
    const hold = (name: string, symbol: string, ms: number) =>
      lock.hold(symbol, async (signal) => {
        const from = Date.now();
        await sleep(ms);
        expect(signal.aborted).toBe(false);
        spans[name] = [from, Date.now()];
        return name;
      });
    const first = hold('first', SYM, 5000);
    await sleep(50);
    const results = await Promise.all([first, hold('second', SYM, 100), hold('other', 'ETHUSDT', 100)]);
    expect(results).toEqual(['first', 'second', 'other']);
    expect(spans.second![0]).toBeGreaterThanOrEqual(spans.first![1]);
    expect(spans.other![1]).toBeLessThan(spans.first![1]);
    expect(await redis.keys(`${prefix}:lock:*`)).toEqual([]);
  });

  it('waiting longer than allowed: ProductionBusyError, retryable, naming the symbol; fn never runs', async () => {
    const holder = redisProductionLock(redis, prefix, { durationMs: 5000 });
    const waiter = redisProductionLock(redis, prefix, { waitMs: 400 });
    let ran = false;
    const held = holder.hold(SYM, () => sleep(1500));
    await sleep(50);
    const err = await waiter
      .hold(SYM, async () => {
        ran = true;
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProductionBusyError);
    expect((err as ProductionBusyError).retryable).toBe(true);
    expect((err as Error).message).toMatch(
      /^production of BTCUSDT is locked by another promotion or rollback \(waited 0 s\); try again$/,
    );
    expect(ran).toBe(false);
    await held;
  });

  it('a lock lost while held: the publish refuses to replace the manifest, production is unchanged', async () => {
    const a = await putCandidate(store, 'A', '20260115', 0.55);
    const b = await putCandidate(store, 'B', '20260116', 0.6);
    await publish(store, a, new Date(Date.UTC(2026, 0, 16, 0, 30, 0)));
    const before = await store.getJson<ProductionManifest>(keys.production(SYM, 'manifest.json'));
    const lock = redisProductionLock(redis, prefix, { durationMs: 600 });
    const err = await lock
      .hold(SYM, async (signal) => {
        // Someone else's value in the key (what an expiry and another holder look like).
        await redis.set(`${prefix}:lock:production:${SYM}`, 'another-holder', 'PX', 5000);
        for (let i = 0; i < 50 && !signal.aborted; i++) await sleep(50);
        expect(signal.aborted).toBe(true);
        return publishProduction({
          store,
          symbol: SYM,
          date: b.date,
          jobId: b.jobId,
          rule: 'higher_hit_rate',
          decidedAt: new Date(Date.UTC(2026, 0, 16, 0, 31, 0)),
          metrics: JSON.parse(b.metricsBytes.toString('utf8')) as never,
          metricsBytes: b.metricsBytes,
          signal,
        });
      })
      .catch((e: unknown) => e);
    expect(String(err)).toMatch(/lost the production lock of BTCUSDT before replacing its manifest/);
    expect(await store.getJson(keys.production(SYM, 'manifest.json'))).toEqual(before);
    const snap = (await readProduction(store, SYM))!;
    expect(snap.model!.equals(a.model)).toBe(true);
  });

  it('promotions and rollbacks racing on one symbol: one linear history, production readable', async () => {
    const lock = redisProductionLock(redis, prefix);
    const result = await race(store, lock);
    // Every production was archived exactly once by the publish that replaced it.
    expect(result.duplicateArchives).toEqual([]);
    expect(result.history).toBe(result.publishes - 1);
    expect(result.readable).toBe(true);
    expect(result.versions).toBeLessThanOrEqual(2);
  });
});

/**
 * Six promotions of ever better candidates and two rollbacks of one symbol, all at once.
 */
async function race(store: LocalStore, lock: ProductionLock) {
  // Two models published before: production and one history entry, so a rollback has something to do.
  for (const day of [1, 2]) {
    const seed = await putCandidate(store, `seed${day}`, `2026010${day}`, 0.5);
    await publish(store, seed, new Date(Date.UTC(2026, 0, day, 0, 30, 0)));
  }
  const candidates = await Promise.all(
    [0, 1, 2, 3, 4, 5].map((i) => putCandidate(store, `C${i}`, `2026011${i}`, 0.55 + i * 0.01)),
  );
  let clock = Date.UTC(2026, 0, 20, 0, 0, 0);
  const tick = () => new Date((clock += 1000));
  let publishes = 2;
  await Promise.all([
    ...candidates.map(async (c) => {
      const r = await promoteAuto(store, c, tick, lock);
      if (r.promoted) publishes++;
    }),
    ...[0, 1].map(async () => {
      await sleep(5);
      await rollbackProduction({ store, symbol: SYM, now: tick, lock });
      publishes++;
    }),
  ]);
  const history = await listHistory(store, SYM);
  const archived: string[] = [];
  for (const h of history) {
    archived.push((await store.getJson<ProductionManifest>(`${h.prefix}manifest.json`)).version!);
  }
  const current = await store.getJson<ProductionManifest>(keys.production(SYM, 'manifest.json'));
  const all = [...archived, current.version!];
  const snap = await readProduction(store, SYM).catch(() => null);
  const versionDirs = new Set(
    (await store.list(`${keys.productionPrefix(SYM)}versions/`)).map((k) => k.split('/').at(-2)),
  );
  return {
    publishes,
    history: history.length,
    duplicateArchives: all.filter((v, i) => all.indexOf(v) !== i),
    readable: snap !== null && snap.manifest.version === current.version,
    versions: versionDirs.size,
  };
}
