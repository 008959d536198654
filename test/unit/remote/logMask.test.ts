import { describe, expect, it } from 'vitest';
import { LogMask } from '../../../src/remote/logMask.js';

/** Everything the mask returns for `text` cut at `cuts`, then its flush. */
function run(secrets: string[], text: string, cuts: number[]): { out: string; held: number[] } {
  const mask = new LogMask(secrets);
  const bytes = Buffer.from(text, 'utf8');
  const parts: Buffer[] = [];
  const held: number[] = [];
  let from = 0;
  for (const to of [...cuts, bytes.length]) {
    parts.push(mask.push(bytes.subarray(from, to)));
    held.push(mask.heldBytes);
    from = to;
  }
  parts.push(mask.flush());
  return { out: Buffer.concat(parts).toString('utf8'), held };
}

describe('LogMask', () => {
  const secret = 'tok_9f8e7d6c5b';

  it('masks every occurrence with as many stars as bytes, however the stream is cut', () => {
    const text = `start ${secret}\nurl=https://x/?k=${secret}&a=1\n${secret}${secret} end\n`;
    const expected = text.split(secret).join('*'.repeat(secret.length));
    const bytes = Buffer.byteLength(text);
    // Every single cut point, and cuts of one byte at a time.
    for (let c = 0; c <= bytes; c++) {
      const { out } = run([secret], text, [c]);
      expect(out, `cut at ${c}`).toBe(expected);
    }
    const allCuts = Array.from({ length: bytes - 1 }, (_, i) => i + 1);
    expect(run([secret], text, allCuts).out).toBe(expected);
    expect(Buffer.byteLength(expected)).toBe(bytes);
  });

  it('holds back only a tail that could begin a secret, and gives it back when it does not', () => {
    const mask = new LogMask([secret]);
    expect(mask.push(Buffer.from('loss=0.1 tok_9f')).toString()).toBe('loss=0.1 ');
    expect(mask.heldBytes).toBe(6);
    expect(mask.push(Buffer.from('x rest\n')).toString()).toBe('tok_9fx rest\n');
    expect(mask.heldBytes).toBe(0);
    expect(mask.push(Buffer.from('plain line\n')).toString()).toBe('plain line\n');
    expect(mask.push(Buffer.from('ends with t')).toString()).toBe('ends with ');
    expect(mask.flush().toString()).toBe('t');
    // reset(): the held bytes will be read again, so they are dropped, not returned twice.
    mask.push(Buffer.from('tok_'));
    mask.reset();
    expect(mask.heldBytes).toBe(0);
    expect(mask.flush().length).toBe(0);
  });

  it('masks overlapping and multi-byte secrets whole; short secrets are left alone', () => {
    const a = 'abcdef12';
    const b = 'f12xyz99';
    const text = `x abcdef12xyz99 y`;
    for (let c = 0; c <= text.length; c++) {
      expect(run([a, b], text, [c]).out, `cut at ${c}`).toBe(`x ${'*'.repeat(13)} y`);
    }
    const utf = 'clé-secrète';
    const line = `k=${utf};`;
    const n = Buffer.byteLength(utf);
    for (let c = 0; c <= Buffer.byteLength(line); c++) {
      expect(run([utf], line, [c]).out).toBe(`k=${'*'.repeat(n)};`);
    }
    // Under six characters: not masked (it would wreck the log), and nothing is held back for it.
    expect(run(['abc'], 'abc abc', [2]).out).toBe('abc abc');
    expect(new LogMask(['abc', '']).empty).toBe(true);
  });

  it('with no secret, returns each chunk as it came', () => {
    const mask = new LogMask([]);
    const chunk = Buffer.from('anything');
    expect(mask.push(chunk)).toBe(chunk);
    expect(mask.heldBytes).toBe(0);
  });
});
