/** Outputs are only read when they are regular files reached through no symlink. */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { regularFiles } from '../../../src/remote/collect.js';
import { LocalTransport } from '../../../src/remote/localTransport.js';

const root = mkdtempSync(join(tmpdir(), 'retrain-regular-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('regularFiles', () => {
  it('keeps regular files and drops links, dirs, missing files and files under a linked out/', async () => {
    const outside = join(root, 'outside');
    mkdirSync(outside);
    writeFileSync(join(outside, 'secret.txt'), 'x');
    const a = join(root, 'a');
    mkdirSync(join(a, 'out'), { recursive: true });
    writeFileSync(join(a, 'train.log'), 'log');
    writeFileSync(join(a, 'out', 'model.bin'), 'm');
    symlinkSync(join(outside, 'secret.txt'), join(a, 'out', 'link.json'));
    mkdirSync(join(a, 'out', 'adir'));
    const t = new LocalTransport();
    expect(
      await regularFiles(t, a, [
        'train.log',
        'out/model.bin',
        'out/link.json',
        'out/adir',
        'out/none',
        "out/it's",
      ]),
    ).toEqual(['train.log', 'out/model.bin']);

    const b = join(root, 'b');
    mkdirSync(b);
    symlinkSync(outside, join(b, 'out'));
    symlinkSync(join(outside, 'secret.txt'), join(b, 'train.log'));
    expect(await regularFiles(t, b, ['train.log', 'out/secret.txt'])).toEqual([]);
  });
});
