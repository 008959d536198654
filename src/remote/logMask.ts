/**
 * Masking a recipe's secret values in its training log as it is read in chunks. A recipe may print
 * a secret it was given (a token in a URL, a debug dump of its environment); what retrain keeps of
 * the log (training.log, the BullMQ job log, the stored train.log) must not hold it.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** Secrets shorter than this are not masked (masking `abc` everywhere would wreck the log). */
export const MIN_MASKED_SECRET = 6;
const STAR = 0x2a;

/**
 * Replaces every occurrence of the secrets with `*` of the same byte length, so an offset into the
 * masked copy is the offset into the original. An occurrence split across chunks is caught: the
 * tail of a chunk that could be the start of a secret is held back until the next chunk (or
 * `flush()` at the end of the stream).
 */
export class LogMask {
  private readonly needles: Buffer[];
  /** Read, not yet returned: unmasked, with which of its bytes belong to a secret already found. */
  private held: Buffer = Buffer.alloc(0);
  private heldMarks = new Uint8Array(0);

  constructor(secrets: Iterable<string>) {
    const unique = new Set([...secrets].filter((s) => s.length >= MIN_MASKED_SECRET));
    this.needles = [...unique].map((s) => Buffer.from(s, 'utf8'));
  }

  /** True when there is nothing to mask (every push returns its input unchanged). */
  get empty(): boolean {
    return this.needles.length === 0;
  }

  /** Bytes read but not yet returned (a possible start of a secret). */
  get heldBytes(): number {
    return this.held.length;
  }

  /** Masks what was held followed by `chunk`; returns what is final now and holds the rest. */
  push(chunk: Buffer): Buffer {
    if (this.empty) return chunk;
    const data = this.held.length ? Buffer.concat([this.held, chunk]) : chunk;
    const marks = new Uint8Array(data.length);
    marks.set(this.heldMarks);
    // Searched in the unmasked bytes, so overlapping secrets are each masked whole.
    for (const needle of this.needles) {
      for (let at = data.indexOf(needle); at !== -1; at = data.indexOf(needle, at + 1)) {
        marks.fill(1, at, at + needle.length);
      }
    }
    const cut = data.length - this.partialTail(data);
    this.held = Buffer.from(data.subarray(cut));
    this.heldMarks = marks.slice(cut);
    return masked(data.subarray(0, cut), marks);
  }

  /** The end of the stream: what was held, which can no longer become a secret. */
  flush(): Buffer {
    const rest = masked(this.held, this.heldMarks);
    this.reset();
    return rest;
  }

  /** Forgets what was held (the stream is read again from before it). */
  reset(): void {
    this.held = Buffer.alloc(0);
    this.heldMarks = new Uint8Array(0);
  }

  /** Length of the longest tail of `data` that is the start of a secret (and not all of it). */
  private partialTail(data: Buffer): number {
    let best = 0;
    for (const n of this.needles) {
      for (let k = Math.min(data.length, n.length - 1); k > best; k--) {
        if (n.subarray(0, k).equals(data.subarray(data.length - k))) {
          best = k;
          break;
        }
      }
    }
    return best;
  }
}

/** `bytes`, or a copy of it with every byte marked in `marks` (same offsets) replaced by `*`. */
function masked(bytes: Buffer, marks: Uint8Array): Buffer {
  if (marks.subarray(0, bytes.length).indexOf(1) === -1) return bytes;
  const out = Buffer.from(bytes);
  for (let i = 0; i < out.length; i++) if (marks[i]) out[i] = STAR;
  return out;
}

/** `data` with every secret masked, as maskFile would leave a file holding it. */
export function maskBytes(data: Buffer, secrets: Iterable<string>): Buffer {
  const mask = new LogMask(secrets);
  if (mask.empty) return data;
  return Buffer.concat([mask.push(data), mask.flush()]);
}

/**
 * Rewrites the file at `path` with the secrets masked (same length), through a temporary file
 * renamed over it, so a crash leaves the old file or the new one. Nothing is written when there is
 * no secret to mask.
 */
export async function maskFile(path: string, secrets: Iterable<string>): Promise<void> {
  const mask = new LogMask(secrets);
  if (mask.empty) return;
  const tmp = `${path}.masking`;
  try {
    await pipeline(
      createReadStream(path),
      new Transform({
        transform(chunk: Buffer, _enc, done) {
          done(null, mask.push(chunk));
        },
        flush(done) {
          done(null, mask.flush());
        },
      }),
      createWriteStream(tmp),
    );
    await rename(tmp, path);
  } finally {
    await rm(tmp, { force: true });
  }
}
