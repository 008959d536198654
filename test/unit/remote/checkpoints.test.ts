/**
 * Checkpoint snapshots on a host (the local transport: real files, real processes): only a complete
 * checkpoint is ever taken, and the sync stores it verified with a manifest a retry can resume from.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { checkpointPattern, listCheckpoints, snapshotCheckpoint } from '../../../src/remote/checkpoints.js';
import { LocalTransport } from '../../../src/remote/localTransport.js';
import { LocalStore } from '../../../src/storage/local.js';
import { CheckpointSync, checkpointKeys, readResumePoint } from '../../../src/train/checkpoints.js';
import { cleanupTmp, makeTmp } from './fixtures.js';

const log = pino({ level: 'silent' });
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  await cleanupTmp();
});

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** Makes a file look `ageSec` old. */
async function age(path: string, ageSec: number) {
  const t = (Date.now() - ageSec * 1000) / 1000;
  await utimes(path, t, t);
}

async function workdirWith(files: Record<string, string>) {
  const workdir = await makeTmp('retrain-ckpt-');
  await mkdir(join(workdir, 'ckpt'));
  for (const [name, body] of Object.entries(files)) await writeFile(join(workdir, 'ckpt', name), body);
  return workdir;
}

/** A writer that has written half of `path` and keeps it open (as a slow torch.save would). */
async function holdOpenHalfWritten(path: string): Promise<void> {
  const writer = spawn(
    'python3',
    [
      '-c',
      'import sys,time; f=open(sys.argv[1],"wb"); f.write(b"half"); f.flush(); print("ready", flush=True); time.sleep(60)',
      path,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  children.push(writer);
  await new Promise((r) => writer.stdout!.once('data', r));
}

/** A CheckpointSync of job1/run1 attempt 1 over `workdir` into `store`, started `ranSec` ago. */
async function syncFor(
  workdir: string,
  store: LocalStore,
  opts: { baseTrainedSec?: number; ranSec: number },
) {
  return new CheckpointSync({
    transport: new LocalTransport(),
    workdir,
    path: 'ckpt/step-*.json',
    store,
    jobId: 'job1',
    runId: 'run1',
    attempt: 1,
    stagingDir: await makeTmp('retrain-staging-'),
    baseTrainedSec: opts.baseTrainedSec ?? 0,
    startedAtMs: Date.now() - opts.ranSec * 1000,
    previous: null,
    log,
  });
}

describe('checkpointPattern', () => {
  it('matches names in the dir by the glob, and nothing odd', () => {
    const p = checkpointPattern('out/ckpt/step-*.pt');
    expect(p.dir).toBe('out/ckpt');
    expect(p.matches('step-000010.pt')).toBe(true);
    expect(p.matches('step-1.pt.tmp')).toBe(false);
    expect(p.matches('other.pt')).toBe(false);
    expect(p.matches('.step-1.pt')).toBe(false);
    expect(checkpointPattern('ckpt/model?.bin').matches('model7.bin')).toBe(true);
    expect(checkpointPattern('ckpt/a.b').matches('aXb')).toBe(false);
  });
});

describe('listCheckpoints and snapshotCheckpoint', () => {
  it('lists matching regular files newest first, with their age by the host clock', async () => {
    const workdir = await workdirWith({ 'step-1.json': 'one', 'step-2.json': 'two', 'notes.txt': 'x' });
    await age(join(workdir, 'ckpt', 'step-1.json'), 60);
    await age(join(workdir, 'ckpt', 'step-2.json'), 30);
    const t = new LocalTransport();
    const files = await listCheckpoints(t, workdir, checkpointPattern('ckpt/step-*.json'));
    expect(files.map((f) => f.name)).toEqual(['step-2.json', 'step-1.json']);
    expect(files[0]!.bytes).toBe(3);
    expect(files[0]!.ageSec).toBeGreaterThan(25);
    expect(files[0]!.ageSec).toBeLessThan(40);
    expect(await listCheckpoints(t, join(workdir, 'nope'), checkpointPattern('ckpt/*'))).toEqual([]);
  });

  it('takes a complete file, and refuses one a process still holds open or that changed', async () => {
    const workdir = await workdirWith({ 'step-1.json': 'complete checkpoint' });
    await age(join(workdir, 'ckpt', 'step-1.json'), 10);
    const t = new LocalTransport();
    const pattern = checkpointPattern('ckpt/step-*.json');
    const [file] = await listCheckpoints(t, workdir, pattern);
    const snap = await snapshotCheckpoint(t, workdir, pattern, file!);
    expect(snap).toMatchObject({
      ok: true,
      name: 'step-1.json',
      sha256: sha('complete checkpoint'),
      bytes: 19,
    });

    // A writer that has written half and keeps the file open (as a slow torch.save would).
    const path = join(workdir, 'ckpt', 'step-2.json');
    await holdOpenHalfWritten(path);
    await age(path, 10);
    const listed = await listCheckpoints(t, workdir, pattern);
    expect(listed[0]!.name).toBe('step-2.json');
    expect(await snapshotCheckpoint(t, workdir, pattern, listed[0]!)).toEqual({ ok: false, why: 'open' });

    // Changed since it was listed.
    const again = (await listCheckpoints(t, workdir, pattern)).find((f) => f.name === 'step-1.json')!;
    await writeFile(join(workdir, 'ckpt', 'step-1.json'), 'rewritten, longer');
    expect(await snapshotCheckpoint(t, workdir, pattern, again)).toEqual({ ok: false, why: 'changed' });
  });
});

describe('CheckpointSync', () => {
  it('stores the newest settled checkpoint verified, then the manifest; skips one still settling', async () => {
    const workdir = await workdirWith({ 'step-1.json': 'state at step 1', 'step-2.json': 'state at step 2' });
    await age(join(workdir, 'ckpt', 'step-1.json'), 20);
    await age(join(workdir, 'ckpt', 'step-2.json'), 10);
    const storeDir = await makeTmp('retrain-store-');
    const store = new LocalStore(storeDir);
    const sync = await syncFor(workdir, store, { baseTrainedSec: 100, ranSec: 60 });
    const m = await sync.tick();
    expect(m).toMatchObject({
      name: 'step-2.json',
      sha256: sha('state at step 2'),
      runId: 'run1',
      attempt: 1,
    });
    // 100 s it resumed from + ~60 s of this attempt - the file's 10 s of age.
    expect(m!.trainedSec).toBeGreaterThan(145);
    expect(m!.trainedSec).toBeLessThan(160);
    expect(await readFile(join(storeDir, checkpointKeys.file('job1', 'step-2.json')), 'utf8')).toBe(
      'state at step 2',
    );
    // Nothing new: nothing sent.
    expect(await sync.tick()).toBeNull();

    // A newer one written just now is not taken until it has settled; then it replaces the old one.
    await writeFile(join(workdir, 'ckpt', 'step-3.json'), 'state at step 3');
    expect(await sync.tick()).toBeNull();
    await age(join(workdir, 'ckpt', 'step-3.json'), 5);
    expect(await sync.tick()).toMatchObject({ name: 'step-3.json' });
    expect(await store.exists(checkpointKeys.file('job1', 'step-2.json'))).toBe(false);

    // A retry of the same run resumes from it; another run (a --force re-run) does not.
    expect(await readResumePoint(store, 'job1', 'run1')).toMatchObject({
      name: 'step-3.json',
      sha256: sha('state at step 3'),
    });
    expect(await readResumePoint(store, 'job1', 'run2')).toBeNull();
  });

  it('while the newest is held open by its writer, takes the newest complete one before it', async () => {
    const workdir = await workdirWith({ 'step-1.json': 'state at step 1' });
    await age(join(workdir, 'ckpt', 'step-1.json'), 20);
    const path = join(workdir, 'ckpt', 'step-2.json');
    await holdOpenHalfWritten(path);
    await age(path, 10);
    const store = new LocalStore(await makeTmp('retrain-store-'));
    const sync = await syncFor(workdir, store, { baseTrainedSec: 0, ranSec: 30 });
    expect(await sync.tick()).toMatchObject({ name: 'step-1.json', sha256: sha('state at step 1') });
    expect(await sync.tick()).toBeNull();
  });

  it('ignores a manifest that does not hold together (a retry then starts from zero)', async () => {
    const store = new LocalStore(await makeTmp('retrain-store-'));
    await store.putJson(checkpointKeys.manifest('job1'), {
      runId: 'run1',
      jobId: 'job1',
      name: '../../etc/passwd',
      key: 'ml-artifacts/job1/checkpoints/../../etc/passwd',
      sha256: 'x',
      trainedSec: 10,
    });
    expect(await readResumePoint(store, 'job1', 'run1')).toBeNull();
  });
});
