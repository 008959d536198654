import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { IN_PLACE_MAX_BYTES, readAtInPlace, withFileInPlace, yieldToLoop } from './inPlaceFs.js';

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Files up to this size are read whole (one buffer, no stream): most of what a symbol moves
 * (features, recipes, metrics, small models) is this small, and a stream's per-chunk machinery
 * costs more CPU than the hashing itself. Larger files stream, so memory stays bounded.
 */
export const WHOLE_FILE_BYTES = 4 * 1024 * 1024;

/** The whole file when it is at most WHOLE_FILE_BYTES (one read, no stream), else null. */
export async function readIfSmall(path: string): Promise<Buffer | null> {
  // Most are small enough to read in place (inPlaceFs.ts): no round trips through the pool.
  const inPlace = withFileInPlace(path, (fd, size) =>
    size <= IN_PLACE_MAX_BYTES ? readAtInPlace(fd, 0, size) : size > WHOLE_FILE_BYTES ? null : undefined,
  );
  if (inPlace !== undefined) return yieldToLoop().then(() => inPlace);
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    return size <= WHOLE_FILE_BYTES ? await fh.readFile() : null;
  } finally {
    await fh.close();
  }
}

/** The file's SHA-256 and size; memory stays bounded whatever its size. */
export async function sha256File(path: string): Promise<{ sha256: string; bytes: number }> {
  const whole = await readIfSmall(path);
  if (whole) return { sha256: sha256Hex(whole), bytes: whole.length };
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

/**
 * A pass-through stream that hashes (SHA-256) and counts what flows through it: put it in a
 * pipeline between a source and a file, then read `result()` once the pipeline has finished.
 */
export function hashingTap(): { tap: Transform; result(): { sha256: string; bytes: number } } {
  const hash = createHash('sha256');
  let bytes = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      cb(null, chunk);
    },
  });
  return { tap, result: () => ({ sha256: hash.digest('hex'), bytes }) };
}

/** `sha256sum` format: "<hex>  <name>" per line, sorted by name. */
export function formatSha256Txt(entries: Record<string, string>): string {
  return (
    Object.keys(entries)
      .sort()
      .map((name) => `${entries[name]}  ${name}`)
      .join('\n') + '\n'
  );
}

/** Parses `sha256sum` output; rejects anything that is not "<64 hex>  <name>". */
export function parseSha256Txt(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (!line) continue;
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (!m) throw new Error(`malformed sha256.txt line: ${JSON.stringify(line.slice(0, 120))}`);
    out[m[2]!.replace(/^\.\//, '')] = m[1]!;
  }
  return out;
}
