import { describe, expect, it } from 'vitest';
import { LogScanner, parseProgressLine, utf8CompleteLength } from '../../../src/remote/logScan.js';

describe('parseProgressLine', () => {
  it('reads step, total and percent', () => {
    expect(parseProgressLine('RETRAIN_PROGRESS step=3 total=12')).toEqual({
      step: 3,
      total: 12,
      percent: 25,
    });
    expect(parseProgressLine('RETRAIN_PROGRESS step=4')).toEqual({ step: 4 });
    expect(parseProgressLine('12:00:01 INFO RETRAIN_PROGRESS step=1 total=2 loss=0.3')).toMatchObject({
      step: 1,
    });
    expect(parseProgressLine('RETRAIN_PROGRESS step=5 total=0')).toEqual({ step: 5, total: 0 });
  });

  it('ignores other lines and the runner echoing commands', () => {
    expect(parseProgressLine('step=3')).toBeUndefined();
    expect(parseProgressLine('XRETRAIN_PROGRESS step=3')).toBeUndefined();
    expect(parseProgressLine("[retrain] step 1/1: 'echo RETRAIN_PROGRESS step=9'")).toBeUndefined();
  });
});

describe('LogScanner', () => {
  it('finds progress lines across chunk boundaries and CR/CRLF breaks', () => {
    const s = new LogScanner();
    expect(s.push('hello\nRETRAIN_PRO')).toEqual([]);
    expect(s.push('GRESS step=1 total=4\r\nx\rRETRAIN_PROGRESS step=2 total=4\r')).toEqual([
      { step: 1, total: 4, percent: 25 },
      { step: 2, total: 4, percent: 50 },
    ]);
    expect(s.push('RETRAIN_PROGRESS step=3')).toEqual([]);
    expect(s.flush()).toEqual([{ step: 3 }]);
  });

  it('keeps at most maxLineChars of a giant line, then recovers', () => {
    const s = new LogScanner(1000);
    for (let i = 0; i < 200; i++) s.push('y'.repeat(10_000));
    expect(s.bufferedChars).toBe(1000);
    expect(s.push('\nRETRAIN_PROGRESS step=2 total=2\n')).toEqual([{ step: 2, total: 2, percent: 100 }]);
    expect(s.peakBufferedChars).toBe(1000);
    expect(s.bufferedChars).toBe(0);
  });
});

describe('utf8CompleteLength', () => {
  it('cuts before an unfinished multi-byte character only', () => {
    const euro = Buffer.from('a€', 'utf8'); // 61 e2 82 ac
    expect(utf8CompleteLength(euro)).toBe(4);
    expect(utf8CompleteLength(euro.subarray(0, 3))).toBe(1);
    expect(utf8CompleteLength(euro.subarray(0, 2))).toBe(1);
    expect(utf8CompleteLength(Buffer.from('abc'))).toBe(3);
    expect(utf8CompleteLength(Buffer.alloc(0))).toBe(0);
    const emoji = Buffer.from('😀', 'utf8');
    expect(utf8CompleteLength(emoji.subarray(0, 3))).toBe(0);
  });
});
