/**
 * The local driver looks at out/ in place (inspectHere) instead of through a shell (inspect): both
 * must see every layout a recipe can leave the same way, or the two drivers would accept different
 * outputs.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OutputContractError, TransportError } from '../../../src/errors.js';
import { collectOutputs, inspect, inspectHere } from '../../../src/remote/collect.js';
import { LocalTransport } from '../../../src/remote/localTransport.js';
import { followRun, startDetached } from '../../../src/remote/runner.js';
import { makeTmp, prepareRun, recipeYaml } from './fixtures.js';

const root = mkdtempSync(join(tmpdir(), 'retrain-outlook-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const t = new LocalTransport();
const REGULAR = ['train.log', 'logs/extra.log', 'out/model.bin', 'out/none'];
let n = 0;

/** A work dir laid out by `make` (given its path and a dir outside it). */
function layout(make: (dir: string, outside: string) => void): string {
  const dir = join(root, `w${n++}`);
  const outside = join(root, `outside${n}`);
  mkdirSync(dir);
  mkdirSync(outside);
  writeFileSync(join(outside, 'sha256.txt'), `${'a'.repeat(64)}  model.bin\n`);
  writeFileSync(join(outside, 'model.bin'), 'm');
  make(dir, outside);
  return dir;
}

const LAYOUTS: Record<string, (dir: string, outside: string) => void> = {
  'a finished run': (d) => {
    mkdirSync(join(d, 'out'));
    mkdirSync(join(d, 'logs'));
    writeFileSync(join(d, 'out', 'model.bin'), 'm');
    writeFileSync(join(d, 'out', 'sha256.txt'), `${'b'.repeat(64)}  model.bin\n`);
    writeFileSync(join(d, 'train.log'), 'log\n');
    writeFileSync(join(d, 'logs', 'extra.log'), 'x');
  },
  'no out/': (d) => writeFileSync(join(d, 'train.log'), 'log\n'),
  'out/ a symlink to a dir elsewhere': (d, o) => symlinkSync(o, join(d, 'out')),
  'out/ a dangling symlink': (d, o) => symlinkSync(join(o, 'gone'), join(d, 'out')),
  'out/ a plain file': (d) => writeFileSync(join(d, 'out'), 'not a dir'),
  'no sha256.txt': (d) => {
    mkdirSync(join(d, 'out'));
    writeFileSync(join(d, 'out', 'model.bin'), 'm');
  },
  'sha256.txt a directory': (d) => mkdirSync(join(d, 'out', 'sha256.txt'), { recursive: true }),
  'sha256.txt empty': (d) => {
    mkdirSync(join(d, 'out'));
    writeFileSync(join(d, 'out', 'sha256.txt'), '');
  },
  'sha256.txt a symlink to a file elsewhere (read like any read)': (d, o) => {
    mkdirSync(join(d, 'out'));
    symlinkSync(join(o, 'sha256.txt'), join(d, 'out', 'sha256.txt'));
  },
  'sha256.txt over the bound': (d) => {
    mkdirSync(join(d, 'out'));
    writeFileSync(join(d, 'out', 'sha256.txt'), Buffer.alloc(1024 * 1024 + 10, 0x61));
  },
  'links in place of the regular files': (d, o) => {
    mkdirSync(join(d, 'out'));
    symlinkSync(join(o, 'model.bin'), join(d, 'out', 'model.bin'));
    symlinkSync(join(o, 'model.bin'), join(d, 'train.log'));
    symlinkSync(o, join(d, 'logs'));
    writeFileSync(join(o, 'extra.log'), 'x');
  },
  'a directory where a file is asked for': (d) => {
    mkdirSync(join(d, 'out', 'model.bin'), { recursive: true });
    mkdirSync(join(d, 'train.log'));
  },
};

describe('inspectHere', () => {
  for (const [name, make] of Object.entries(LAYOUTS)) {
    it(`sees ${name} as the shell does`, async () => {
      const dir = layout(make);
      const here = await inspectHere(dir, REGULAR);
      const there = await inspect(t, dir, REGULAR);
      expect(here).toEqual(there);
    });
  }

  it('answers the same for a finished run: out/ a dir, its sha256.txt, the regular files', async () => {
    const here = await inspectHere(layout(LAYOUTS['a finished run']!), REGULAR);
    expect(here.out).toBe('dir');
    expect(here.regular).toEqual(['train.log', 'logs/extra.log', 'out/model.bin']);
    expect(here.sha256Txt?.toString()).toBe(`${'b'.repeat(64)}  model.bin\n`);
  });

  it('refuses a sha256.txt that is a pipe instead of waiting on it, and a missing work dir', async () => {
    const dir = layout((d) => mkdirSync(join(d, 'out')));
    execFileSync('mkfifo', [join(dir, 'out', 'sha256.txt')]);
    const err = await inspectHere(dir, []).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OutputContractError);
    expect((err as Error).message).toBe('out/sha256.txt is not a regular file');

    const gone = await inspectHere(join(root, 'no-such-workdir'), []).catch((e: unknown) => e);
    expect(gone).toBeInstanceOf(TransportError);
    expect((gone as Error).message).toMatch(/work dir .*no-such-workdir is missing/);
  });

  it('is what the local driver collects by: a real run, then its out/ swapped for a symlink', async () => {
    const r = await prepareRun(recipeYaml({ train: 'echo m > {{outdir}}/model.bin' }));
    const pid = await startDetached(r.t, r.workdir);
    await followRun(r.t, r.workdir, { pid, deadline: Date.now() + 20_000, pollMs: 100 });
    const outs = await collectOutputs(r.t, r.workdir, await makeTmp(), r.recipe);
    expect(outs.map((o) => o.name)).toEqual(['model.bin']);

    // A symlink to a dir holding outputs that would pass: refused, nothing read from it.
    const elsewhere = mkdtempSync(join(root, 'elsewhere-'));
    writeFileSync(join(elsewhere, 'model.bin'), 'm\n');
    writeFileSync(join(elsewhere, 'sha256.txt'), `${outs[0]!.sha256}  model.bin\n`);
    rmSync(join(r.workdir, 'out'), { recursive: true });
    symlinkSync(elsewhere, join(r.workdir, 'out'));
    await expect(collectOutputs(r.t, r.workdir, await makeTmp(), r.recipe)).rejects.toThrow(
      'out/ was replaced by a symlink: outputs are only read from the work dir',
    );
  }, 30_000);
});
