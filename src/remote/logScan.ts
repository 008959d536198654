/**
 * Bounded scanning of train.log for progress lines. Memory stays flat whatever the log holds:
 * the scanner keeps at most `maxLineChars` of an unfinished line and drops the rest of a giant
 * line instead of growing.
 */

export interface Progress {
  step: number;
  total?: number;
  /** 0–100, when total is known and positive. */
  percent?: number;
}

/** `RETRAIN_PROGRESS step=<n> [total=<m>]`, at the start of a line or after whitespace. */
const PROGRESS_RE = /(?:^|\s)RETRAIN_PROGRESS\s+step=(\d+)(?:\s+total=(\d+))?(?=\s|$)/;
/** Lines the runner itself writes (they echo commands, which may contain anything). */
const RUNNER_PREFIX = '[retrain] ';

/** Default cap on the buffered unfinished line. */
export const MAX_LINE_CHARS = 64 * 1024;

export function parseProgressLine(line: string): Progress | undefined {
  if (line.startsWith(RUNNER_PREFIX)) return undefined;
  const m = PROGRESS_RE.exec(line);
  if (!m) return undefined;
  const step = Number(m[1]);
  const total = m[2] === undefined ? undefined : Number(m[2]);
  if (!Number.isSafeInteger(step) || (total !== undefined && !Number.isSafeInteger(total))) return undefined;
  const p: Progress = { step };
  if (total !== undefined) {
    p.total = total;
    if (total > 0) p.percent = Math.min(100, (step / total) * 100);
  }
  return p;
}

/**
 * Splits a text stream into lines (`\n`, `\r\n` or `\r`) and reports progress lines. Guarantees:
 * the buffered remainder never exceeds `maxLineChars`; a line longer than that is judged on its
 * first `maxLineChars` characters only.
 */
export class LogScanner {
  private buf = '';
  private overflowed = false;
  private peak = 0;

  constructor(private readonly maxLineChars = MAX_LINE_CHARS) {}

  /** Characters currently held for an unfinished line. */
  get bufferedChars(): number {
    return this.buf.length;
  }

  /** The most characters ever held at once (for tests and metrics). */
  get peakBufferedChars(): number {
    return this.peak;
  }

  /** Feeds a chunk; returns the progress lines completed by it, in order. */
  push(text: string): Progress[] {
    const out: Progress[] = [];
    let start = 0;
    for (;;) {
      const nl = nextBreak(text, start);
      if (nl < 0) break;
      this.append(text, start, nl);
      this.endLine(out);
      start = nl + 1;
    }
    this.append(text, start, text.length);
    return out;
  }

  /** Ends the stream: a last line without a newline is judged too. */
  flush(): Progress[] {
    const out: Progress[] = [];
    if (this.buf.length > 0) this.endLine(out);
    return out;
  }

  private append(text: string, from: number, to: number): void {
    if (from >= to || this.overflowed) {
      if (from < to) this.overflowed = true;
      return;
    }
    const room = this.maxLineChars - this.buf.length;
    if (to - from > room) {
      this.buf += text.slice(from, from + room);
      this.overflowed = true;
    } else {
      this.buf += text.slice(from, to);
    }
    if (this.buf.length > this.peak) this.peak = this.buf.length;
  }

  private endLine(out: Progress[]): void {
    const p = parseProgressLine(this.buf);
    if (p) out.push(p);
    this.buf = '';
    this.overflowed = false;
  }
}

function nextBreak(text: string, from: number): number {
  const n = text.indexOf('\n', from);
  const r = text.indexOf('\r', from);
  if (n < 0) return r;
  if (r < 0) return n;
  return Math.min(n, r);
}

/**
 * Length of the longest prefix of `buf` that ends on a UTF-8 character boundary (so a chunk cut
 * in the middle of a character is not decoded half). Invalid sequences count as complete.
 */
export function utf8CompleteLength(buf: Buffer): number {
  const len = buf.length;
  for (let back = 1; back <= Math.min(4, len); back++) {
    const b = buf[len - back]!;
    if ((b & 0xc0) === 0x80) continue; // continuation byte: look further back
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return need > back ? len - back : len;
  }
  return len;
}
