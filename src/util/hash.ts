import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Streams the file, so memory stays flat whatever its size. */
export async function sha256File(path: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), bytes };
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
