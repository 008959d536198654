import { keys } from '../storage/layout.js';
import type { ArtifactStore } from '../storage/store.js';
import { parseEntry, type LedgerEntry } from './types.js';

/** A consistent read of one date's ledger: the entries and the version they belong to. */
export interface LedgerSnapshot {
  version: number;
  entries: Record<string, LedgerEntry>;
}

/** The JSON written to `runs/<date>Z/status.json`. */
export interface LedgerMirrorDoc {
  date: string;
  updatedAt: string;
  version: number;
  symbols: Record<string, LedgerEntry>;
}

/** A date's entries as Redis holds them (each symbol's JSON text), read with their version. */
export interface RawLedgerSnapshot {
  version: number;
  raw: Record<string, string>;
}

export interface LedgerMirrorOptions {
  store: ArtifactStore;
  /** Reads a consistent snapshot of the date (entries, as stored, and version together). */
  snapshot: (date: string) => Promise<RawLedgerSnapshot>;
  /** Reads only the date's current version. */
  version: (date: string) => Promise<number>;
  now: () => Date;
  onError?: (err: unknown, date: string) => void;
  /**
   * Least time between two writes of a date of up to PACED_FROM_ENTRIES entries (default
   * MIRROR_MIN_INTERVAL_MS); a larger date waits longer, in proportion (see `pace`).
   */
  minIntervalMs?: number;
}

/** One symbol's part of status.json, kept while its stored text is unchanged. */
interface Piece {
  raw: string;
  updatedAt: string;
  /** `,\n    "SYM": {...}` as it sits in the document (UTF-8). */
  bytes: Buffer;
}

interface DateState {
  tail: Promise<void>;
  written: number;
  /** performance.now() at the end of the last write (0: none yet). */
  lastWriteAt: number;
  /** performance.now() when the last snapshot was read (0: none yet). */
  readAt: number;
  /** Entries in the last document written (paces the next write). */
  entries: number;
}

/**
 * A date's mirror is written at most this often: every write reads and writes the whole date (for
 * a run of 1,000 symbols, ~1 MB), and a run changes its ledger several times per symbol. The first
 * change after a quiet spell is written at once; the last change of a burst always is.
 */
export const MIRROR_MIN_INTERVAL_MS = 1000;

/**
 * A date of more entries than this is written less often, in proportion: every write reads the
 * whole date from Redis and writes the whole document, so the mirror's cost per second stays that
 * of a date this size. A 1,000-symbol run is written every 5 s: written every second, its mirror
 * cost ~1 ms of CPU per symbol (measured).
 */
export const PACED_FROM_ENTRIES = 200;

/** The pacing stops growing here: a date of 6,000 entries or more waits 30 intervals. */
const MAX_PACE_FACTOR = 30;

/** Least time between two writes of a date whose last document held `entries` entries. */
export function pace(minIntervalMs: number, entries: number): number {
  return minIntervalMs * Math.min(MAX_PACE_FACTOR, Math.max(1, entries / PACED_FROM_ENTRIES));
}

/**
 * A notify that a write seems to cover, this long after the last snapshot read, first checks that
 * the date's versions did not start again (its keys expired under `ledger.retentionDays` and the
 * date was used again); within a burst of changes it costs nothing.
 */
export const RESTART_CHECK_AFTER_MS = 60_000;

/** How many times one write re-reads when the ledger moved on while it was writing. */
const MAX_ROUNDS = 5;

/**
 * Dates whose pieces are kept (the newest written): a run changes its own date, and a worker
 * that lives for months must not keep every date it ever mirrored.
 */
const DATES_WITH_PIECES = 2;

/**
 * Mirrors a date's ledger (Redis) into the store as `runs/<date>Z/status.json`.
 *
 * Guarantees:
 * - within a process, writes for a date are serialised (one promise chain per date) and a write only
 *   happens when the snapshot read is newer than the last one this process wrote, so the mirror
 *   never goes back to an older version because of this process;
 * - a burst of changes is written at most once per `minIntervalMs` (longer for a large date: `pace`),
 *   always ending with the latest;
 * - after each write the version is read again, and if the ledger moved on meanwhile the write is
 *   redone from a fresh snapshot, so when updaters in several processes race, the last write to
 *   land reflects the latest version (eventual convergence);
 * - a date whose keys expired and that is used again (its version restarts at 1) is written again:
 *   version 1, or (checked after a quiet spell) a version below the one this process wrote, means
 *   the date started over;
 * - a write parses and serialises only the entries that changed since its date's last write: each
 *   symbol's part of the document is kept while the text Redis holds for it is the same (a run of
 *   1,000 symbols otherwise parsed and printed ~700 KB of JSON every second, ~15 ms of CPU);
 * - `notify` never throws and never rejects: failures go to `onError`;
 * - `flush` forces a fresh full write and rejects if it fails.
 */
export class LedgerMirror {
  private readonly states = new Map<string, DateState>();
  /** Each date's pieces by symbol, the most recently written date last. */
  private readonly pieces = new Map<string, Map<string, Piece>>();
  private readonly minIntervalMs: number;

  constructor(private readonly opts: LedgerMirrorOptions) {
    this.minIntervalMs = opts.minIntervalMs ?? MIRROR_MIN_INTERVAL_MS;
  }

  /** A change produced `version` for `date`: schedule a mirror write unless one already covers it. */
  notify(date: string, version: number): void {
    const st = this.state(date);
    st.tail = st.tail
      .then(async () => {
        // Version 1 is a date's first change: new, or started over after its keys expired.
        if (version === 1 || (version <= st.written && (await this.restarted(date, st)))) st.written = 0;
        if (version <= st.written) return;
        const wait = st.lastWriteAt + pace(this.minIntervalMs, st.entries) - performance.now();
        // Changes made meanwhile queue behind this write, and it reads them all.
        if (st.lastWriteAt > 0 && wait > 0) await new Promise((r) => setTimeout(r, wait));
        if (version > st.written) await this.write(date, st, false);
      })
      .catch((err: unknown) => this.report(err, date));
  }

  /** Writes the date's full current ledger now (after any queued write) and waits for it. */
  flush(date: string): Promise<void> {
    const st = this.state(date);
    const run = st.tail.then(() => this.write(date, st, true));
    st.tail = run.catch(() => undefined);
    return run;
  }

  /** Resolves when the writes queued so far for `date` are done (never rejects). */
  idle(date: string): Promise<void> {
    return this.state(date).tail;
  }

  /** The last version this process wrote for `date` (0 if none). */
  lastWritten(date: string): number {
    return this.states.get(date)?.written ?? 0;
  }

  private state(date: string): DateState {
    let st = this.states.get(date);
    if (!st) {
      st = { tail: Promise.resolve(), written: 0, lastWriteAt: 0, readAt: 0, entries: 0 };
      this.states.set(date, st);
    }
    return st;
  }

  private async write(date: string, st: DateState, force: boolean): Promise<void> {
    for (let round = 0; round < MAX_ROUNDS; round++) {
      st.readAt = performance.now();
      let snap: RawLedgerSnapshot | undefined = await this.opts.snapshot(date);
      const version = snap.version;
      // Versions only go down when the date expired and started over: what was written is moot.
      if (version < st.written) st.written = 0;
      if (!force && version <= st.written) return;
      const doc = this.doc(date, snap);
      st.entries = this.pieces.get(date)?.size ?? 0;
      // The snapshot (every entry's text) is garbage now, not kept through the store's write.
      snap = undefined;
      await this.opts.store.putBytes(keys.runStatus(date), doc);
      st.lastWriteAt = performance.now();
      st.written = Math.max(st.written, version);
      // A paced write is done: a change made meanwhile has its own notify queued behind this one,
      // which waits out the interval. Only flush() must return with the latest written.
      if (!force) return;
      force = false;
      if ((await this.opts.version(date)) <= st.written) return;
    }
  }

  /** Whether the date's version went below what this process wrote (checked after a quiet spell). */
  private async restarted(date: string, st: DateState): Promise<boolean> {
    if (st.written === 0 || performance.now() - st.readAt < RESTART_CHECK_AFTER_MS) return false;
    st.readAt = performance.now();
    return (await this.opts.version(date)) < st.written;
  }

  /**
   * The document `JSON.stringify(doc, null, 2)` plus a newline would print (a LedgerMirrorDoc),
   * built from the kept pieces of unchanged entries and new ones for the rest.
   */
  private doc(date: string, snap: RawLedgerSnapshot): Buffer {
    const kept = this.pieces.get(date) ?? new Map<string, Piece>();
    const now = new Map<string, Piece>();
    const parts: Buffer[] = [];
    let updatedAt = '';
    for (const sym of Object.keys(snap.raw).sort()) {
      const raw = snap.raw[sym]!;
      let piece = kept.get(sym);
      if (piece?.raw !== raw) piece = makePiece(sym, raw);
      now.set(sym, piece);
      parts.push(piece.bytes);
      if (piece.updatedAt > updatedAt) updatedAt = piece.updatedAt;
    }
    // Set last: the most recently written date. A write that threw keeps the pieces it had.
    this.pieces.delete(date);
    this.pieces.set(date, now);
    for (const old of this.pieces.keys()) {
      if (this.pieces.size <= DATES_WITH_PIECES) break;
      this.pieces.delete(old);
    }
    const head =
      `{\n  "date": ${JSON.stringify(date)},\n  "updatedAt": ${JSON.stringify(updatedAt || this.opts.now().toISOString())},` +
      `\n  "version": ${JSON.stringify(snap.version)},\n  "symbols": {`;
    if (parts.length === 0) return Buffer.from(`${head}}\n}\n`);
    // The first piece's leading comma is left out.
    parts[0] = parts[0]!.subarray(1);
    return Buffer.concat([Buffer.from(head), ...parts, Buffer.from('\n  }\n}\n')]);
  }

  private report(err: unknown, date: string): void {
    try {
      this.opts.onError?.(err, date);
    } catch {
      /* a failing error callback must not break the chain */
    }
  }
}

/** A symbol's entry, parsed (a damaged one throws, as a full parse would) and printed at its depth. */
function makePiece(sym: string, raw: string): Piece {
  const entry = parseEntry(raw, sym);
  // Inside "symbols" an entry sits four spaces deep; JSON text holds no raw newline but these.
  const text = JSON.stringify(entry, null, 2).replaceAll('\n', '\n    ');
  return { raw, updatedAt: entry.updatedAt, bytes: Buffer.from(`,\n    ${JSON.stringify(sym)}: ${text}`) };
}
