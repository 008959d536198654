import type { Redis } from 'ioredis';
import { RetrainError } from '../errors.js';
import type { ArtifactStore } from '../storage/store.js';
import { LedgerMirror, type LedgerSnapshot, type RawLedgerSnapshot } from './mirror.js';
import { INIT_LUA, UPDATE_LUA } from './scripts.js';
import {
  checkDate,
  checkStatus,
  checkSymbol,
  parseEntry,
  type LedgerEntry,
  type LedgerPlanItem,
  type UpdateOptions,
} from './types.js';

export type { HistoryItem, LedgerEntry, LedgerPlanItem, LedgerStatus, UpdateOptions } from './types.js';
export { LEDGER_STATUSES } from './types.js';
export type { LedgerMirrorDoc, LedgerSnapshot } from './mirror.js';

export interface LedgerOptions {
  /** Any ioredis connection (a BullMQ one with maxRetriesPerRequest: null is fine). */
  redis: Redis;
  /** Key prefix, e.g. the queue prefix: keys are `<prefix>:ledger:<YYYYMMDD>`. */
  prefix: string;
  store: ArtifactStore;
  now?: () => Date;
  /** Mirror write failures end here (they never fail an update). */
  onMirrorError?: (err: unknown, date: string) => void;
  /**
   * `ledger.retentionDays`: a date's keys expire this long after its last change (0: they are
   * kept, an expiry set before is removed; unset: the expiry is left as it is, for readers and
   * tools). The store's `status.json` stays the durable record of an expired date.
   */
  retentionDays?: number;
}

/** The outcome of a conditional update. */
export interface UpdateResult {
  /** false when `onlyIf` blocked the update (nothing was written). */
  applied: boolean;
  entry: LedgerEntry;
  version: number;
}

/** Fields an update can never delete (a patch value of `undefined` for them is ignored). */
const REQUIRED = new Set(['status', 'attempts', 'costUsd', 'history']);
/** Fields the ledger owns (a patch cannot set them). */
const OWNED = new Set(['symbol', 'updatedAt']);

const UPDATE_CMD = 'retrainLedgerUpdate';
const INIT_CMD = 'retrainLedgerInit';
type ScriptCmd = (...args: (string | number)[]) => Promise<unknown>;

/**
 * The resume ledger: per run date, symbol → LedgerEntry.
 *
 * Redis is authoritative: one hash per date (`<prefix>:ledger:<date>`, field = symbol, value = entry
 * JSON), a version counter per date (`<prefix>:ledger:<date>:v`, incremented by every change) and
 * the set of known dates (`<prefix>:ledger:dates`). With `retentionDays`, a date's hash and version
 * counter expire that long after its last change, and dates whose hash is gone leave the set when
 * the dates are listed or a plan is written. Every change is one Lua script doing
 * read-merge-write inside Redis, so concurrent updaters in any number of processes lose nothing.
 *
 * After every change the whole date is mirrored to the store at `runs/<date>Z/status.json` (see
 * LedgerMirror for the ordering guarantees). A mirror failure never fails the change.
 *
 * Number fields round-trip through Lua's cjson, which keeps 14 significant digits.
 */
export class Ledger {
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly now: () => Date;
  private readonly mirror: LedgerMirror;
  /** Expiry of a date's keys after its last change, seconds (0: none, -1: left as it is). */
  readonly ttlSec: number;

  constructor(opts: LedgerOptions) {
    this.redis = opts.redis;
    this.prefix = opts.prefix;
    this.ttlSec = ledgerTtlSec(opts.retentionDays);
    this.now = opts.now ?? (() => new Date());
    const r = this.redis as unknown as Record<string, unknown>;
    if (typeof r[UPDATE_CMD] !== 'function')
      this.redis.defineCommand(UPDATE_CMD, { numberOfKeys: 3, lua: UPDATE_LUA });
    if (typeof r[INIT_CMD] !== 'function')
      this.redis.defineCommand(INIT_CMD, { numberOfKeys: 3, lua: INIT_LUA });
    this.mirror = new LedgerMirror({
      store: opts.store,
      snapshot: (date) => this.rawSnapshot(date),
      version: (date) => this.version(date),
      now: this.now,
      ...(opts.onMirrorError ? { onError: opts.onMirrorError } : {}),
    });
  }

  /**
   * Atomically merges `patch` into the symbol's entry (creating a `pending` entry when there is none)
   * and returns the result. A patch key whose value is `undefined` deletes that optional field (e.g.
   * `{error: undefined}` clears a previous error); `symbol` and `updatedAt` are set by the ledger.
   * When `onlyIf` blocks the update, the current entry is returned unchanged (see `tryUpdate`).
   */
  async update(
    date: string,
    symbol: string,
    patch: Partial<LedgerEntry>,
    opts: UpdateOptions = {},
  ): Promise<LedgerEntry> {
    return (await this.tryUpdate(date, symbol, patch, opts)).entry;
  }

  /**
   * `update` for a writer that does not read the entry back (an attempt's writes, about nine per
   * symbol): the same change, without parsing the entry Redis answers with.
   */
  async apply(
    date: string,
    symbol: string,
    patch: Partial<LedgerEntry>,
    opts: UpdateOptions = {},
  ): Promise<void> {
    await this.send(date, symbol, patch, opts);
  }

  /** `update`, also telling whether it was applied and the version it produced. */
  async tryUpdate(
    date: string,
    symbol: string,
    patch: Partial<LedgerEntry>,
    opts: UpdateOptions = {},
  ): Promise<UpdateResult> {
    const { applied, json, version } = await this.send(date, symbol, patch, opts);
    return { applied, entry: parseEntry(json, symbol), version };
  }

  /** Runs the update script: whether it applied, the entry's JSON and the date's version. */
  private async send(
    date: string,
    symbol: string,
    patch: Partial<LedgerEntry>,
    opts: UpdateOptions,
  ): Promise<{ applied: boolean; json: string; version: number }> {
    checkDate(date);
    checkSymbol(symbol);
    if (patch.status !== undefined) checkStatus(patch.status);
    for (const s of opts.onlyIf?.statusNot ?? []) checkStatus(s);
    const res = (await this.cmd(UPDATE_CMD)(
      this.hashKey(date),
      this.versionKey(date),
      this.datesKey(),
      symbol,
      encodePatch(patch),
      this.now().toISOString(),
      date,
      opts.appendHistory ? JSON.stringify(opts.appendHistory) : '',
      opts.patchLastHistory ? encodePatch(opts.patchLastHistory, new Set()) : '',
      opts.onlyIf?.statusNot?.length ? JSON.stringify(opts.onlyIf.statusNot) : '',
      this.ttlSec,
      opts.increment ? JSON.stringify(opts.increment) : '',
    )) as [number, string, number];
    const [applied, json, version] = res;
    if (applied === 1) this.mirror.notify(date, Number(version));
    return { applied: applied === 1, json, version: Number(version) };
  }

  /**
   * Writes the entries of a new plan, atomically. Each item becomes a fresh entry (status, reason,
   * jobId, runId from the item; costUsd 0; other fields cleared) that keeps the previous entry's
   * `attempts` and `history`. An existing `success` entry is left untouched unless `force`. Symbols
   * of the date that are not in `items` are left as they are. Returns the resulting entries of
   * `items`.
   */
  async init(date: string, items: LedgerPlanItem[], force = false): Promise<Record<string, LedgerEntry>> {
    checkDate(date);
    const plan = items.map((it) => ({
      symbol: checkSymbol(it.symbol),
      status: checkStatus(it.status),
      ...(it.reason !== undefined ? { reason: it.reason } : {}),
      ...(it.jobId !== undefined ? { jobId: it.jobId } : {}),
      ...(it.runId !== undefined ? { runId: it.runId } : {}),
      ...(it.error !== undefined ? { error: { type: it.error.type, message: it.error.message } } : {}),
    }));
    const res = (await this.cmd(INIT_CMD)(
      this.hashKey(date),
      this.versionKey(date),
      this.datesKey(),
      this.now().toISOString(),
      force ? '1' : '0',
      date,
      JSON.stringify(plan),
      this.ttlSec,
    )) as [number, ...string[]];
    const [version, ...pairs] = res;
    const out: Record<string, LedgerEntry> = {};
    for (let i = 0; i + 1 < pairs.length; i += 2) out[pairs[i]!] = parseEntry(pairs[i + 1]!, pairs[i]!);
    this.mirror.notify(date, Number(version));
    await this.pruneDates();
    return out;
  }

  /** All entries of a date, keyed by symbol (sorted); {} for an unknown date. */
  async get(date: string): Promise<Record<string, LedgerEntry>> {
    return (await this.snapshot(date)).entries;
  }

  async getEntry(date: string, symbol: string): Promise<LedgerEntry | null> {
    checkDate(date);
    const json = await this.redis.hget(this.hashKey(date), checkSymbol(symbol));
    return json === null ? null : parseEntry(json, symbol);
  }

  /** The entries and their version, read atomically (MULTI). */
  async snapshot(date: string): Promise<LedgerSnapshot> {
    const { version, raw } = await this.rawSnapshot(date);
    const entries: Record<string, LedgerEntry> = {};
    for (const sym of Object.keys(raw).sort()) entries[sym] = parseEntry(raw[sym]!, sym);
    return { version, entries };
  }

  /** The entries as Redis holds them (unparsed) and their version, read atomically (MULTI). */
  private async rawSnapshot(date: string): Promise<RawLedgerSnapshot> {
    checkDate(date);
    const res = await this.redis.multi().hgetall(this.hashKey(date)).get(this.versionKey(date)).exec();
    if (!res)
      throw new RetrainError('internal', `ledger snapshot of ${date} was aborted`, { retryable: true });
    const [[hErr, hash], [vErr, v]] = res as [
      [Error | null, Record<string, string>],
      [Error | null, string | null],
    ];
    if (hErr) throw hErr;
    if (vErr) throw vErr;
    return { version: Number(v ?? 0), raw: hash };
  }

  /** The date's version counter (0 when nothing was ever written). */
  async version(date: string): Promise<number> {
    checkDate(date);
    return Number((await this.redis.get(this.versionKey(date))) ?? 0);
  }

  /** The dates the ledger holds, newest first (expired ones are dropped from the set). */
  async dates(): Promise<string[]> {
    const members = await this.pruneDates();
    return members.filter((d) => /^\d{8}$/.test(d)).sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
  }

  /** Removes from the set of dates those whose hash has expired; returns the ones left. */
  private async pruneDates(): Promise<string[]> {
    const members = await this.redis.smembers(this.datesKey());
    if (members.length === 0) return members;
    const exists = await Promise.all(members.map((d) => this.redis.exists(this.hashKey(d))));
    const gone = members.filter((_, i) => exists[i] === 0);
    if (gone.length > 0) await this.redis.srem(this.datesKey(), ...gone);
    return members.filter((_, i) => exists[i] !== 0);
  }

  /**
   * Removes a date's entries from Redis. The store's mirror (status.json) is kept as the durable
   * record, and the version counter is bumped rather than deleted, so versions never go back and
   * other processes' mirrors keep working if the date is used again.
   */
  async remove(date: string): Promise<void> {
    checkDate(date);
    const m = this.redis
      .multi()
      .del(this.hashKey(date))
      .srem(this.datesKey(), date)
      .incr(this.versionKey(date));
    if (this.ttlSec > 0) m.expire(this.versionKey(date), this.ttlSec);
    else if (this.ttlSec === 0) m.persist(this.versionKey(date));
    await m.exec();
  }

  /** Writes the date's full ledger to the store now and waits for it; rejects if that write fails. */
  flushMirror(date: string): Promise<void> {
    checkDate(date);
    return this.mirror.flush(date);
  }

  /** Resolves when the mirror writes queued so far for `date` are done (never rejects). */
  mirrorIdle(date: string): Promise<void> {
    checkDate(date);
    return this.mirror.idle(date);
  }

  private cmd(name: string): ScriptCmd {
    const fn = (this.redis as unknown as Record<string, ScriptCmd>)[name]!;
    return fn.bind(this.redis);
  }

  private hashKey(date: string): string {
    return `${this.prefix}:ledger:${date}`;
  }

  private versionKey(date: string): string {
    return `${this.prefix}:ledger:${date}:v`;
  }

  private datesKey(): string {
    return `${this.prefix}:ledger:dates`;
  }
}

/** `ledger.retentionDays` as a key expiry in seconds (0: keep; -1, unset: leave the expiry alone). */
export function ledgerTtlSec(retentionDays: number | undefined): number {
  if (retentionDays === undefined) return -1;
  return retentionDays > 0 ? Math.max(1, Math.round(retentionDays * 86_400)) : 0;
}

/**
 * Serialises a patch for the Lua merge: `undefined` (and non-finite numbers) become null, which the
 * script turns into "delete the field"; `required` fields are never deleted; owned fields are dropped.
 */
function encodePatch(patch: object, required: Set<string> = REQUIRED): string {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(patch)) {
    if (OWNED.has(k)) continue;
    const clear = v === undefined || (typeof v === 'number' && !Number.isFinite(v));
    if (clear) {
      if (!required.has(k)) out[k] = null;
    } else {
      out[k] = v;
    }
  }
  return JSON.stringify(out);
}
