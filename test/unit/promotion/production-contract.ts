/**
 * Production publishing, reading, history and rollback, run against any ArtifactStore backend
 * (LocalStore in production.test.ts, S3Store on moto in production-s3.test.ts).
 */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InputError, ProductionReadError } from '../../../src/errors.js';
import { promoteCandidate } from '../../../src/promotion/guard.js';
import type { ProductionLock } from '../../../src/promotion/lock.js';
import type { ProductionManifest } from '../../../src/promotion/manifest.js';
import { publishProduction } from '../../../src/promotion/publish.js';
import { readProduction } from '../../../src/promotion/read.js';
import { listHistory, rollbackProduction } from '../../../src/promotion/rollback.js';
import { keys } from '../../../src/storage/layout.js';
import type { ArtifactStore } from '../../../src/storage/store.js';
import { sha256Hex } from '../../../src/util/hash.js';

export const SYM = 'BTCUSDT';

export interface Candidate {
  id: string;
  date: string;
  jobId: string;
  model: Buffer;
  /** metrics.json bytes; they embed the model's id and SHA-256, so a pair can be checked. */
  metricsBytes: Buffer;
}

/** Writes a candidate for `date` whose metrics.json names its model (`model_id`, `model_sha256`). */
export async function putCandidate(
  store: ArtifactStore,
  id: string,
  date: string,
  hitRate: number,
  modelBytes = 16 * 1024,
): Promise<Candidate> {
  const model = Buffer.concat([Buffer.from(`model-${id}:`), randomBytes(modelBytes)]);
  const metricsBytes = Buffer.from(
    JSON.stringify({
      directionalHitRate: hitRate,
      maxDrawdown: 0.1,
      sharpe: 1,
      net_bps_after_costs: 2,
      n_train: 100,
      n_test: 20,
      model_id: id,
      model_sha256: sha256Hex(model),
    }),
  );
  await store.putBytes(keys.candidate(SYM, date, 'model.bin'), model);
  await store.putBytes(keys.candidate(SYM, date, 'metrics.json'), metricsBytes);
  return { id, date, jobId: `train__${SYM}__${date}`, model, metricsBytes };
}

/** Which model a (model, metrics) pair is, or 'mixed' when the metrics belong to another model. */
export function pairOf(model: Buffer, metricsBytes: Buffer): string {
  const m = JSON.parse(metricsBytes.toString('utf8')) as { model_id: string; model_sha256: string };
  return m.model_sha256 === sha256Hex(model) ? m.model_id : 'mixed';
}

/** Publishes a candidate directly (no rules), as the guard does after a `promote` decision. */
export function publish(store: ArtifactStore, c: Candidate, at: Date) {
  return publishProduction({
    store,
    symbol: SYM,
    date: c.date,
    jobId: c.jobId,
    rule: 'higher_hit_rate',
    decidedAt: at,
    metrics: JSON.parse(c.metricsBytes.toString('utf8')) as never,
    metricsBytes: c.metricsBytes,
  });
}

/** Runs the guard in `auto` mode on candidate `c` (rules v1, drawdown tolerance 1.1). */
export function promoteAuto(store: ArtifactStore, c: Candidate, now: () => Date, lock?: ProductionLock) {
  return promoteCandidate({
    store,
    symbol: SYM,
    date: c.date,
    jobId: c.jobId,
    mode: 'auto',
    canary: false,
    maxDrawdownTolerance: 1.1,
    now,
    ...(lock ? { lock } : {}),
  });
}

/** The naive read this project documents against: the two top-level keys, one after the other. */
export async function naiveRead(store: ArtifactStore): Promise<string> {
  const model = await store.getBytes(keys.production(SYM, 'model.bin'));
  const metrics = await store.getBytes(keys.production(SYM, 'metrics.json'));
  return pairOf(model, metrics);
}

export interface ProductionFixture {
  store: ArtifactStore;
  cleanup(): Promise<void>;
}

export function runProductionContract(
  name: string,
  makeStore: () => Promise<ProductionFixture>,
  opts: { publishes: number } = { publishes: 40 },
): void {
  describe(`production: ${name}`, () => {
    let fx: ProductionFixture;
    let store: ArtifactStore;
    let clock: number;
    const tick = () => new Date((clock += 1000));

    beforeEach(async () => {
      fx = await makeStore();
      store = fx.store;
      clock = Date.UTC(2026, 0, 16, 0, 30, 0);
    });
    afterEach(() => fx.cleanup());

    const manifest = () => store.getJson<ProductionManifest>(keys.production(SYM, 'manifest.json'));
    const promote = (c: Candidate) => promoteAuto(store, c, tick);

    it('two promotions: production is the second, history holds the first, readProduction agrees', async () => {
      const a = await putCandidate(store, 'A', '20260115', 0.55);
      const b = await putCandidate(store, 'B', '20260116', 0.6);
      expect(await readProduction(store, SYM)).toBeNull();
      expect(await promote(a)).toMatchObject({ promoted: true, rule: 'no_production' });
      const r = await promote(b);
      expect(r).toMatchObject({ promoted: true, rule: 'higher_hit_rate' });

      const snap = (await readProduction(store, SYM))!;
      expect(snap.model!.equals(b.model)).toBe(true);
      expect(snap.metricsBytes.equals(b.metricsBytes)).toBe(true);
      expect(snap.manifest).toMatchObject({ jobId: b.jobId, replaced: { jobId: a.jobId, date: a.date } });
      expect((await store.getBytes(keys.production(SYM, 'model.bin'))).equals(b.model)).toBe(true);

      const history = await listHistory(store, SYM);
      expect(history.map((h) => h.stamp)).toEqual([r.historyStamp]);
      expect(history[0]!.files).toEqual(['manifest.json', 'metrics.json', 'model.bin']);
      const h = (name: string) => store.getBytes(`${history[0]!.prefix}${name}`);
      expect((await h('model.bin')).equals(a.model)).toBe(true);
      expect((await h('metrics.json')).equals(a.metricsBytes)).toBe(true);
      expect(JSON.parse((await h('manifest.json')).toString())).toMatchObject({ jobId: a.jobId });
    });

    it('rollback restores the previous model with lineage; history keeps the rolled-back-from one', async () => {
      const a = await putCandidate(store, 'A', '20260115', 0.55);
      const b = await putCandidate(store, 'B', '20260116', 0.6);
      await promote(a);
      const first = await manifest();
      await promote(b);
      const second = await manifest();
      const [entryA] = await listHistory(store, SYM);

      const r = await rollbackProduction({ store, symbol: SYM, now: tick });
      expect(r).toMatchObject({
        dryRun: false,
        restored: { jobId: a.jobId, date: a.date, stamp: entryA!.stamp, from: entryA!.prefix },
        replaced: { jobId: b.jobId, date: b.date, sha256: second.sha256 },
      });

      const snap = (await readProduction(store, SYM))!;
      expect(snap.model!.equals(a.model)).toBe(true);
      expect(snap.metricsBytes.equals(a.metricsBytes)).toBe(true);
      expect((await store.getBytes(keys.production(SYM, 'model.bin'))).equals(a.model)).toBe(true);
      expect((await store.getBytes(keys.production(SYM, 'metrics.json'))).equals(a.metricsBytes)).toBe(true);
      const m = await manifest();
      const rolledTo = `models/production/${SYM}/history/${r.historyStamp}/`;
      expect(m).toMatchObject({
        jobId: a.jobId,
        date: a.date,
        rule: 'rollback',
        sha256: first.sha256,
        replaced: { jobId: b.jobId, date: b.date, sha256: second.sha256 },
        rolledBackFrom: { jobId: b.jobId, date: b.date, sha256: second.sha256, history: rolledTo },
        restoredFrom: entryA!.prefix,
        originallyPromotedAt: first.promotedAt,
        history: rolledTo,
      });
      expect(m.version).not.toBe(first.version);

      // history: A (replaced by B), then B (replaced by the rollback)
      const history = await listHistory(store, SYM);
      expect(history.map((h) => h.stamp)).toEqual([entryA!.stamp, r.historyStamp]);
      expect((await store.getBytes(`${rolledTo}model.bin`)).equals(b.model)).toBe(true);
      expect((await store.getBytes(`${rolledTo}metrics.json`)).equals(b.metricsBytes)).toBe(true);
      expect(await store.getJson(`${rolledTo}manifest.json`)).toEqual(second);

      // a second rollback undoes the first (the most recent entry is B); --to picks any entry
      await rollbackProduction({ store, symbol: SYM, now: tick });
      expect(pairOf((await readProduction(store, SYM))!.model!, b.metricsBytes)).toBe('B');
      await rollbackProduction({ store, symbol: SYM, to: entryA!.stamp, now: tick });
      const back = (await readProduction(store, SYM))!;
      expect(back.model!.equals(a.model)).toBe(true);
      expect(back.manifest.restoredFrom).toBe(entryA!.prefix);
    });

    it('rollback --dry-run writes nothing; bad requests fail with one clear line', async () => {
      await expect(rollbackProduction({ store, symbol: SYM })).rejects.toThrow(
        new InputError(
          `unknown symbol ${SYM}: it has no production model (nothing under models/production/${SYM}/)`,
        ),
      );
      const a = await putCandidate(store, 'A', '20260115', 0.55);
      await promote(a);
      await expect(rollbackProduction({ store, symbol: SYM })).rejects.toThrow(
        /^no history for BTCUSDT: nothing to roll back to/,
      );
      const b = await putCandidate(store, 'B', '20260116', 0.6);
      await promote(b);
      const [entry] = await listHistory(store, SYM);

      const before = await store.list('models/production/');
      const dry = await rollbackProduction({ store, symbol: SYM, dryRun: true, now: tick });
      expect(dry).toMatchObject({
        dryRun: true,
        restored: { jobId: a.jobId, stamp: entry!.stamp },
        replaced: { jobId: b.jobId },
        historyStamp: null,
      });
      expect(dry.manifest).toBeUndefined();
      expect(await store.list('models/production/')).toEqual(before);

      for (const [to, message] of [
        ['yesterday', /^invalid --to "yesterday": expected a history stamp like 20260116T003000Z/],
        [
          '20200101T000000Z',
          new RegExp(`^no history entry 20200101T000000Z for BTCUSDT \\(have: ${entry!.stamp}\\)$`),
        ],
      ] as const) {
        const err = await rollbackProduction({ store, symbol: SYM, to }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(InputError);
        expect((err as Error).message).toMatch(message);
      }

      // a damaged history entry is never published
      await store.putBytes(`${entry!.prefix}model.bin`, 'tampered');
      const err = await rollbackProduction({ store, symbol: SYM }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProductionReadError);
      expect((err as Error).message).toMatch(/cannot be restored: model\.bin does not match its manifest/);
      expect(await store.list('models/production/')).toEqual(before);
      expect((await readProduction(store, SYM))!.model!.equals(b.model)).toBe(true);
    });

    it('a publish keeps only the new and the replaced version folders', async () => {
      const cands = [
        await putCandidate(store, 'A', '20260115', 0.5),
        await putCandidate(store, 'B', '20260116', 0.5),
        await putCandidate(store, 'C', '20260117', 0.5),
      ];
      const versions: string[] = [];
      for (const c of cands) versions.push((await publish(store, c, tick())).manifest.version!);
      const parent = `models/production/${SYM}/versions/`;
      const left = new Set((await store.list(parent)).map((k) => k.slice(parent.length).split('/')[0]));
      expect([...left].sort()).toEqual(versions.slice(1).sort());
    });

    it('at every step of a publish, readProduction returns the old or the new model whole (a naive read does not)', async () => {
      const a = await putCandidate(store, 'A', '20260115', 0.5);
      const b = await putCandidate(store, 'B', '20260116', 0.5);
      await publish(store, a, tick());
      await publish(store, b, tick());
      const seen: string[] = [];
      const naive: string[] = [];
      const check = async () => {
        const snap = (await readProduction(store, SYM, { attempts: 1 }))!;
        seen.push(pairOf(snap.model!, snap.metricsBytes));
        naive.push(await naiveRead(store).catch(() => 'missing'));
      };
      // Pause after every write the publish makes, and read there.
      const paused = new Proxy(store, {
        get(target, prop, receiver) {
          const v = Reflect.get(target, prop, receiver) as unknown;
          if (typeof v !== 'function') return v;
          if (!['putFile', 'putBytes', 'putJson', 'copy', 'delete'].includes(String(prop))) {
            return (v as (...x: unknown[]) => unknown).bind(target);
          }
          return async (...args: unknown[]) => {
            const out = await (v as (...x: unknown[]) => Promise<unknown>).apply(target, args);
            await check();
            return out;
          };
        },
      });
      await publish(paused, a, tick());
      await publish(paused, b, tick());
      expect(seen.length).toBeGreaterThan(10);
      expect(seen).not.toContain('mixed');
      // production switches exactly twice: at each manifest flip
      expect(seen.join(',').replace(/(\w)(,\1)+/g, '$1')).toBe('B,A,B');
      // the same moments, read naively, include a model with the other model's metrics
      expect(naive).toContain('mixed');
    });

    it(`a reader racing ${opts.publishes} publishes of A and B never sees a mixed pair`, async () => {
      const a = await putCandidate(store, 'A', '20260115', 0.5, 256 * 1024);
      const b = await putCandidate(store, 'B', '20260116', 0.5, 256 * 1024);
      await publish(store, a, tick());
      let done = false;
      const reads: Record<string, number> = {};
      const naive: Record<string, number> = {};

      const publisher = (async () => {
        try {
          for (let i = 0; i < opts.publishes; i++) await publish(store, i % 2 === 0 ? b : a, tick());
        } finally {
          done = true;
        }
      })();
      const reader = async () => {
        while (!done) {
          const snap = (await readProduction(store, SYM, { retryDelayMs: 5 }))!;
          const id = pairOf(snap.model!, snap.metricsBytes);
          reads[id] = (reads[id] ?? 0) + 1;
        }
      };
      const naiveReader = async () => {
        while (!done) {
          const id = await naiveRead(store);
          naive[id] = (naive[id] ?? 0) + 1;
        }
      };
      await Promise.all([publisher, reader(), reader(), naiveReader()]);

      expect(reads.mixed ?? 0).toBe(0);
      // the readers really overlapped the publishes: they saw both models
      expect(reads.A).toBeGreaterThan(0);
      expect(reads.B).toBeGreaterThan(0);
      // and the same race, read naively, is caught by the same check
      expect(naive.mixed ?? 0, JSON.stringify(naive)).toBeGreaterThan(0);
    });
  });
}
