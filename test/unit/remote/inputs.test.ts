/**
 * How a training's inputs are split for the trip: large files as themselves, small ones in one
 * deterministic tar.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../../../src/errors.js';
import { planInputs } from '../../../src/remote/inputs.js';
import { sha256File, sha256Hex } from '../../../src/util/hash.js';
import { cleanupTmp, makeTmp } from './fixtures.js';

afterAll(cleanupTmp);

async function files(dir: string): Promise<{ name: string; path: string }[]> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'features.csv'), 'x'.repeat(5000));
  await writeFile(join(dir, 'costs.json'), '{"fee":1}\n');
  await writeFile(join(dir, 'job.json'), '{"symbol":"ETHUSDT"}\n');
  return ['features.csv', 'costs.json', 'job.json'].map((name) => ({ name, path: join(dir, name) }));
}

describe('planInputs', () => {
  it('sends a file of directFromBytes or more as itself and packs the rest into one tar', async () => {
    const dir = await makeTmp();
    const inputs = await files(join(dir, 'in'));
    const planned = await planInputs(inputs, {
      tarPath: join(dir, 'inputs.tar'),
      tarRel: 'inputs.tar',
      into: 'inputs',
      directFromBytes: 4096,
    });
    const featuresSha = (await sha256File(inputs[0]!.path)).sha256;
    expect(planned.files).toEqual([
      { localPath: inputs[0]!.path, remoteRel: 'inputs/features.csv', sha256: featuresSha },
    ]);
    // A tar this small is packed in memory and sent from there: nothing is written at tarPath.
    expect(planned.archive).toMatchObject({ remoteRel: 'inputs.tar', into: 'inputs' });
    expect(planned.archive!.localPath).toBeUndefined();
    expect(existsSync(join(dir, 'inputs.tar'))).toBe(false);
    expect(Object.keys(planned.archive!.entries).sort()).toEqual(['costs.json', 'job.json']);
    expect(planned.archive!.sha256).toBe(sha256Hex(planned.archive!.data!));
    const listed = execFileSync('tar', ['-t'], { input: planned.archive!.data! }).toString();
    expect(listed.split('\n').filter(Boolean)).toEqual(['costs.json', 'job.json']);
    expect(planned.bytes).toBe(5000 + 10 + 21);
    expect(planned.entries['features.csv']).toBe(featuresSha);

    // Same inputs, same tar bytes: an unchanged upload is recognised on the host.
    const again = await planInputs(await files(join(dir, 'in2')), {
      tarPath: join(dir, 'inputs2.tar'),
      tarRel: 'inputs.tar',
      into: 'inputs',
      directFromBytes: 4096,
    });
    expect(again.archive!.sha256).toBe(planned.archive!.sha256);
  });

  it('takes a known checksum as given and packs nothing when every file is large', async () => {
    const dir = await makeTmp();
    const [features] = await files(join(dir, 'in'));
    const known = 'a'.repeat(64);
    const planned = await planInputs([{ ...features!, sha256: known }], {
      tarPath: join(dir, 'inputs.tar'),
      tarRel: 'inputs.tar',
      into: 'inputs',
      directFromBytes: 1,
    });
    expect(planned.files).toEqual([
      { localPath: features!.path, remoteRel: 'inputs/features.csv', sha256: known },
    ]);
    expect(planned.archive).toBeUndefined();
  });

  it('packs nothing without pack: every input travels as itself, bytes in memory sent from there', async () => {
    const dir = await makeTmp();
    const [features, costs] = await files(join(dir, 'in'));
    const job = Buffer.from('{"symbol":"ETHUSDT"}\n');
    const planned = await planInputs([features!, costs!, { name: 'job.json', data: job }], {
      tarPath: join(dir, 'inputs.tar'),
      tarRel: 'inputs.tar',
      into: 'inputs',
      pack: false,
    });
    expect(planned.archive).toBeUndefined();
    expect(existsSync(join(dir, 'inputs.tar'))).toBe(false);
    expect(planned.files).toEqual([
      {
        localPath: features!.path,
        remoteRel: 'inputs/features.csv',
        sha256: (await sha256File(features!.path)).sha256,
      },
      {
        localPath: costs!.path,
        remoteRel: 'inputs/costs.json',
        sha256: (await sha256File(costs!.path)).sha256,
      },
      { data: job, remoteRel: 'inputs/job.json', sha256: sha256Hex(job) },
    ]);
    expect(planned.bytes).toBe(5000 + 10 + job.length);
    expect(planned.entries['job.json']).toBe(sha256Hex(job));
  });

  it('names a missing input', async () => {
    const dir = await makeTmp();
    const err = await planInputs([{ name: 'features.csv', path: join(dir, 'gone.csv') }], {
      tarPath: join(dir, 'inputs.tar'),
      tarRel: 'inputs.tar',
      into: 'inputs',
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toBe(`cannot stage ${join(dir, 'gone.csv')}: ENOENT`);
  });
});
