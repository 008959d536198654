import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CancelledError,
  ChecksumError,
  OutputContractError,
  TimeoutError,
  TransportError,
} from '../../../src/errors.js';
import { collectRun } from '../../../src/remote/collect.js';
import type { Progress } from '../../../src/remote/logScan.js';
import {
  claimWorkdir,
  collectOutputs,
  followRun,
  inspectRun,
  killRun,
  LOG_CHUNK_BYTES,
  stageRun,
  startDetached,
  workdirName,
} from '../../../src/remote/runner.js';
import { buildRunScript, standardRunContext } from '../../../src/remote/runScript.js';
import type { ExecOptions, Transport } from '../../../src/remote/transport.js';
import { sha256Hex } from '../../../src/util/hash.js';
import {
  cleanupTmp,
  followToEnd,
  makeTmp,
  prepareRun,
  processes,
  recipeYaml,
  runProcesses,
  stageFile,
  waitFor,
} from './fixtures.js';

afterAll(cleanupTmp);

const JOB = {
  datasetName: 'features.csv',
  symbol: 'BTCUSDT',
  date: '20240501',
  featureset: 'v1',
  jobId: 'train__BTCUSDT__20240501',
};

const rand = () => randomBytes(4).toString('hex');
/** A `sleep` duration unique to one test, so its processes can be found by args. */
const uniqueSleep = () => `${300 + (randomBytes(2).readUInt16BE(0) % 500)}.${randomBytes(2).readUInt16BE(0)}`;

/** Wraps a transport and records what the runner asked of it. */
class RecordingTransport implements Transport {
  readonly kind = 'local' as const;
  maxReadRequested = 0;
  maxReadReturned = 0;
  puts: string[] = [];
  commands: string[] = [];
  constructor(private readonly inner: Transport) {}
  exec(command: string, opts?: ExecOptions) {
    this.commands.push(command);
    return this.inner.exec(command, opts);
  }
  putFile(l: string, r: string) {
    this.puts.push(r);
    return this.inner.putFile(l, r);
  }
  getFile(r: string, l: string) {
    return this.inner.getFile(r, l);
  }
  putData(d: Buffer, r: string, mode?: number) {
    this.puts.push(r);
    return this.inner.putData(d, r, mode);
  }
  readWhole(r: string, max: number) {
    return this.inner.readWhole(r, max);
  }
  async readRange(p: string, offset: number, max: number) {
    this.maxReadRequested = Math.max(this.maxReadRequested, max);
    const b = await this.inner.readRange(p, offset, max);
    this.maxReadReturned = Math.max(this.maxReadReturned, b.length);
    return b;
  }
  stat(p: string) {
    return this.inner.stat(p);
  }
  mkdirp(p: string) {
    return this.inner.mkdirp(p);
  }
  close() {
    return this.inner.close();
  }
}

const FULL_STEP = [
  'echo training {{symbol}} for {{date}}',
  'for i in 1 2 3 4; do echo "RETRAIN_PROGRESS step=$i total=4"; done',
  'echo "{\\"rows\\": 2}" > {{outdir}}/features.json',
  'cat {{dataset}} > {{outdir}}/model.bin',
  'echo "{\\"sharpe\\": 1}" > {{outdir}}/metrics.json',
  'cp {{costs}} {{outdir}}/unlisted.json',
  // Long enough to be seen alive, and the partial output seen twice at one size, on a loaded machine.
  'sleep 3',
].join('\n');

describe('runner: a full run', () => {
  it('stages, starts, follows (log, progress, partials) and collects verified outputs', async () => {
    const r = await prepareRun(
      recipeYaml({
        train: ['echo setup ok', FULL_STEP],
        required: ['model.bin', 'metrics.json'],
        optional: ['features.json', 'absent.json'],
        partial: ['features.json'],
      }),
    );
    expect((await stat(join(r.workdir, 'run.sh'))).mode & 0o777).toBe(0o700);

    const pid = await startDetached(r.t, r.workdir);
    expect(pid).toBeGreaterThan(1);
    await waitFor(async () => (await inspectRun(r.t, r.workdir)).heartbeatAgeSec !== undefined);
    const running = await inspectRun(r.t, r.workdir);
    expect(running).toMatchObject({ pid, alive: true });
    expect(running.heartbeatAgeSec).toBeLessThanOrEqual(2);

    let logText = '';
    const progress: Progress[] = [];
    const partials: string[] = [];
    const res = await followRun(r.t, r.workdir, {
      pid,
      deadline: Date.now() + 30_000,
      pollMs: 100,
      onLog: (text, off) => {
        logText += text;
        expect(off).toBe(Buffer.byteLength(logText));
      },
      onProgress: (p) => progress.push(p),
      partial: ['features.json'],
      onPartial: async (name) => {
        partials.push(name);
      },
    });
    const log = await readFile(join(r.workdir, 'train.log'), 'utf8');
    expect(res.exitCode).toBe(0);
    expect(res.logOffset).toBe(Buffer.byteLength(log));
    expect(logText).toBe(log);
    expect(log).toContain('[retrain] step 1/2: echo setup ok');
    expect(log).toContain('training BTCUSDT for 20240501');
    expect(progress).toEqual([1, 2, 3, 4].map((step) => ({ step, total: 4, percent: step * 25 })));
    expect(partials).toEqual(['features.json']);

    const sha = await readFile(join(r.workdir, 'out', 'sha256.txt'), 'utf8');
    expect(
      sha
        .trim()
        .split('\n')
        .map((l) => l.slice(66)),
    ).toEqual(['features.json', 'metrics.json', 'model.bin', 'unlisted.json']);

    const local = await makeTmp();
    const outs = await collectOutputs(r.t, r.workdir, local, r.recipe);
    expect(outs.map((o) => o.name)).toEqual(['features.json', 'metrics.json', 'model.bin']);
    expect(outs.find((o) => o.name === 'model.bin')).toEqual({
      name: 'model.bin',
      sha256: sha256Hex('a,b\n1,2\n'),
      bytes: 8,
    });
    expect(existsSync(join(local, 'unlisted.json'))).toBe(false);

    expect(await inspectRun(r.t, r.workdir)).toMatchObject({ pid, alive: false, exitCode: 0 });
    expect(runProcesses(pid)).toEqual([]);
  }, 30_000);

  it('reports a failing step by its exit code and stops there', async () => {
    const r = await prepareRun(recipeYaml({ train: ['echo one', 'exit 3', 'echo never > {{outdir}}/x'] }));
    const pid = await startDetached(r.t, r.workdir);
    const res = await followRun(r.t, r.workdir, { pid, deadline: Date.now() + 20_000, pollMs: 100 });
    expect(res.exitCode).toBe(3);
    const log = await readFile(join(r.workdir, 'train.log'), 'utf8');
    expect(log).toContain('[retrain] step 2/3 failed with exit code 3');
    expect(log).not.toContain('step 3/3');
    await expect(collectOutputs(r.t, r.workdir, await makeTmp(), r.recipe)).rejects.toThrow(
      /sha256.txt is missing/,
    );
  }, 30_000);

  it('never lets a hostile symbol or variable become shell syntax', async () => {
    const marker = `/tmp/pwned-${rand()}`;
    const symbol = `$(touch ${marker})\`touch ${marker}\`;touch ${marker}'"\n`;
    const r = await prepareRun(
      recipeYaml({ train: 'printf "%s" {{symbol}} > {{outdir}}/model.bin' }),
      {},
      { symbol },
    );
    const pid = await startDetached(r.t, r.workdir);
    expect(
      (await followRun(r.t, r.workdir, { pid, deadline: Date.now() + 20_000, pollMs: 100 })).exitCode,
    ).toBe(0);
    expect(await readFile(join(r.workdir, 'out', 'model.bin'), 'utf8')).toBe(symbol);
    expect(existsSync(marker)).toBe(false);
  }, 30_000);
});

describe('runner: time limits', () => {
  it('kills the whole process tree when the deadline passes', async () => {
    const s = uniqueSleep();
    const r = await prepareRun(recipeYaml({ train: `sleep ${s} & sleep ${s} & (sleep ${s}; true) & wait` }));
    const pid = await startDetached(r.t, r.workdir);
    await waitFor(() => processes().filter((p) => p.args === `sleep ${s}`).length === 3);

    const err = await followRun(r.t, r.workdir, {
      pid,
      deadline: Date.now() + 500,
      pollMs: 100,
      timeLimitMs: 500,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as Error).message).toMatch(/^training exceeded its time limit of 1s/);
    expect(runProcesses(pid)).toEqual([]);
    expect(processes().filter((p) => p.args.includes(`sleep ${s}`))).toEqual([]);
    expect(existsSync(join(r.workdir, 'exit_code'))).toBe(false);
  }, 30_000);

  it('kills steps running under timeout (their own process group) when the deadline passes', async () => {
    const s = uniqueSleep();
    const r = await prepareRun(recipeYaml({ train: `sleep ${s} & sleep ${s} & wait`, timeoutSec: 600 }));
    const pid = await startDetached(r.t, r.workdir);
    await waitFor(() => processes().filter((p) => p.args === `sleep ${s}`).length === 2);
    const inOtherGroup = processes().filter((p) => p.args === `sleep ${s}`);
    expect(inOtherGroup.every((p) => p.pgid !== pid && p.sid === pid)).toBe(true);

    await expect(followRun(r.t, r.workdir, { pid, deadline: Date.now() + 300, pollMs: 100 })).rejects.toThrow(
      /training exceeded its time limit \(deadline /,
    );
    expect(processes().filter((p) => p.sid === pid || p.args.includes(`sleep ${s}`))).toEqual([]);
  }, 30_000);

  it('ends a step over its timeoutSec with exit code 124 and leaves no process behind', async () => {
    const s = uniqueSleep();
    const r = await prepareRun(
      recipeYaml({ train: [`sleep ${s} & sleep ${s} & wait`, 'echo never'], timeoutSec: 1 }),
    );
    const pid = await startDetached(r.t, r.workdir);
    const res = await followRun(r.t, r.workdir, { pid, deadline: Date.now() + 30_000, pollMs: 100 });
    expect(res.exitCode).toBe(124);
    expect(await readFile(join(r.workdir, 'train.log'), 'utf8')).toContain(
      '[retrain] step 1/2 timed out after 1s',
    );
    expect(processes().filter((p) => p.sid === pid || p.args.includes(`sleep ${s}`))).toEqual([]);
  }, 30_000);
});

describe('runner: detached life', () => {
  it('reattaches instead of starting twice, and never restarts a finished run', async () => {
    const r = await prepareRun(
      recipeYaml({ train: 'echo started >> {{workdir}}/starts; sleep 1; echo m > {{outdir}}/model.bin' }),
    );
    const [a, b] = await Promise.all([startDetached(r.t, r.workdir), startDetached(r.t, r.workdir)]);
    expect(b).toBe(a);
    expect(await startDetached(r.t, r.workdir)).toBe(a);
    expect(
      (await followRun(r.t, r.workdir, { pid: a, deadline: Date.now() + 20_000, pollMs: 100 })).exitCode,
    ).toBe(0);
    expect(await startDetached(r.t, r.workdir)).toBe(a);
    await new Promise((res) => setTimeout(res, 300));
    expect(await readFile(join(r.workdir, 'starts'), 'utf8')).toBe('started\n');
  }, 30_000);

  it('beats the heartbeat every interval without a sleep process, and a killed run leaves none', async () => {
    const nap = uniqueSleep();
    const r = await prepareRun(recipeYaml({ train: `sleep ${nap}` }));
    // A one-second interval, so that beats are seen within the test (the script says 5).
    const script = join(r.workdir, 'run.sh');
    const text = await readFile(script, 'utf8');
    expect(text).toContain('RETRAIN_HB_SEC=5\n');
    await writeFile(script, text.replace('RETRAIN_HB_SEC=5\n', 'RETRAIN_HB_SEC=1\n'));

    const pid = await startDetached(r.t, r.workdir);
    const beat = async () =>
      Number((await readFile(join(r.workdir, 'heartbeat'), 'utf8').catch(() => '0')).trim());
    await waitFor(async () => (await beat()) > 0);
    const first = await beat();
    await waitFor(async () => (await beat()) >= first + 2, 10_000);
    // The run's session: run.sh, its heartbeat (a copy of run.sh's shell) and the step; no `sleep 1`.
    const session = runProcesses(pid).map((p) => p.args);
    expect(session.filter((a) => a === 'bash run.sh')).toHaveLength(2);
    expect(session.some((a) => a.includes(`sleep ${nap}`))).toBe(true);
    expect(session.filter((a) => /^sleep\b/.test(a) && !a.includes(nap))).toEqual([]);

    await killRun(r.t, r.workdir, pid, 2000);
    expect(runProcesses(pid)).toEqual([]);
    expect((await inspectRun(r.t, r.workdir)).alive).toBe(false);
  }, 30_000);

  it('survives the Node process that started it being SIGKILLed', async () => {
    const r = await prepareRun(recipeYaml({ train: 'sleep 2; echo done > {{outdir}}/model.bin' }));
    const helper = fileURLToPath(new URL('./startInChild.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', helper, r.workdir], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor(() => /pid=\d+/.test(out), 20_000);
    const pid = Number(/pid=(\d+)/.exec(out)![1]);
    child.kill('SIGKILL');
    await new Promise((res) => child.once('exit', res));

    expect((await inspectRun(r.t, r.workdir)).alive).toBe(true);
    const res = await followRun(r.t, r.workdir, { pid, deadline: Date.now() + 20_000, pollMs: 100 });
    expect(res.exitCode).toBe(0);
    expect(await readFile(join(r.workdir, 'out', 'model.bin'), 'utf8')).toBe('done\n');
  }, 40_000);

  it('reports a run killed without an exit code as vanished (retryable)', async () => {
    const r = await prepareRun(recipeYaml({ train: 'sleep 30' }));
    const pid = await startDetached(r.t, r.workdir);
    await killRun(r.t, r.workdir, pid, 0);
    const err = await followRun(r.t, r.workdir, { pid, deadline: Date.now() + 20_000, pollMs: 100 }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).retryable).toBe(true);
    expect((err as Error).message).toBe(`training process ${pid} vanished without an exit code`);

    // Started again there, it is a new run: the dead one's pid file and heartbeat do not stand in
    // for it (a stale pid.tmp neither).
    await writeFile(join(r.workdir, 'pid.tmp'), '1\n');
    await writeFile(join(r.workdir, 'heartbeat'), '1\n');
    const again = await startDetached(r.t, r.workdir);
    expect(again).not.toBe(pid);
    expect((await readFile(join(r.workdir, 'pid'), 'utf8')).trim()).toBe(String(again));
    expect(Number((await readFile(join(r.workdir, 'heartbeat'), 'utf8').catch(() => '0')).trim())).not.toBe(
      1,
    );
    await killRun(r.t, r.workdir, again, 0);
  }, 30_000);

  it('stops following on abort without touching the run', async () => {
    const r = await prepareRun(recipeYaml({ train: 'sleep 30' }));
    const pid = await startDetached(r.t, r.workdir);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    await expect(
      followRun(r.t, r.workdir, { pid, deadline: Date.now() + 20_000, pollMs: 100, signal: ac.signal }),
    ).rejects.toBeInstanceOf(CancelledError);
    expect((await inspectRun(r.t, r.workdir)).alive).toBe(true);
    await killRun(r.t, r.workdir, pid, 1000);
    expect(runProcesses(pid)).toEqual([]);
    await killRun(r.t, r.workdir, pid); // already gone: a no-op
    await expect(killRun(r.t, r.workdir, 1)).rejects.toThrow(/refusing/);
  }, 30_000);
});

describe('runner: bounded log tailing', () => {
  it('handles a 10 MB single-line log with bounded reads and buffer, and sees the progress after it', async () => {
    const r = await prepareRun(
      recipeYaml({
        train: 'head -c 10485760 /dev/zero | tr "\\0" x; echo; echo "RETRAIN_PROGRESS step=7 total=8"',
      }),
    );
    const t = new RecordingTransport(r.t);
    const pid = await startDetached(t, r.workdir);
    const progress: Progress[] = [];
    let logBytes = 0;
    const res = await followRun(t, r.workdir, {
      pid,
      deadline: Date.now() + 60_000,
      pollMs: 100,
      onProgress: (p) => progress.push(p),
      onLog: (text) => {
        logBytes += Buffer.byteLength(text);
      },
    });
    expect(res.exitCode).toBe(0);
    expect(progress).toEqual([{ step: 7, total: 8, percent: 87.5 }]);
    expect(res.peakLineBufferChars).toBeLessThanOrEqual(64 * 1024);
    expect(t.maxReadRequested).toBeLessThanOrEqual(LOG_CHUNK_BYTES);
    expect(res.logOffset).toBe((await stat(join(r.workdir, 'train.log'))).size);
    expect(logBytes).toBe(res.logOffset);
  }, 60_000);

  it('tails many MB of log lines in bounded chunks, resuming from an offset', async () => {
    const r = await prepareRun(
      recipeYaml({
        // pipefail is on in steps: `yes` dies of SIGPIPE, so it is wrapped.
        train:
          '(yes "epoch 1 batch 2 loss 0.123456 lr 0.001" || true) | head -c 41943040; echo; echo "RETRAIN_PROGRESS step=2 total=2"',
      }),
    );
    const t = new RecordingTransport(r.t);
    const pid = await startDetached(t, r.workdir);
    const progress: Progress[] = [];
    const res = await followRun(t, r.workdir, {
      pid,
      deadline: Date.now() + 60_000,
      pollMs: 100,
      logOffset: 10,
      onProgress: (p) => progress.push(p),
    });
    expect(res.exitCode).toBe(0);
    expect(progress).toEqual([{ step: 2, total: 2, percent: 100 }]);
    expect(t.maxReadReturned).toBeLessThanOrEqual(LOG_CHUNK_BYTES);
    expect(res.peakLineBufferChars).toBeLessThan(1000);
    expect(res.logOffset).toBe((await stat(join(r.workdir, 'train.log'))).size);
  }, 60_000);
});

describe('runner: output contract', () => {
  it('names a missing required output', async () => {
    const r = await prepareRun(
      recipeYaml({ train: 'echo m > {{outdir}}/model.bin', required: ['model.bin', 'metrics.json'] }),
    );
    const pid = await startDetached(r.t, r.workdir);
    await followRun(r.t, r.workdir, { pid, deadline: Date.now() + 20_000, pollMs: 100 });
    const err = await collectOutputs(r.t, r.workdir, await makeTmp(), r.recipe).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OutputContractError);
    expect((err as Error).message).toBe('required output metrics.json is missing');
  }, 30_000);

  it('names an output whose bytes do not match sha256.txt, and refuses a malformed or unsafe sha256.txt', async () => {
    const r = await prepareRun(recipeYaml({ train: 'echo m > {{outdir}}/model.bin' }));
    const pid = await startDetached(r.t, r.workdir);
    await followRun(r.t, r.workdir, { pid, deadline: Date.now() + 20_000, pollMs: 100 });
    await writeFile(join(r.workdir, 'out', 'model.bin'), 'tampered');
    const err = await collectOutputs(r.t, r.workdir, await makeTmp(), r.recipe).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChecksumError);
    expect((err as Error).message).toMatch(/^output model.bin: sha256 [0-9a-f]{64} does not match/);

    await writeFile(join(r.workdir, 'out', 'sha256.txt'), 'not a checksum line\n');
    await expect(collectOutputs(r.t, r.workdir, await makeTmp(), r.recipe)).rejects.toThrow(
      /sha256.txt is malformed/,
    );
    await writeFile(join(r.workdir, 'out', 'sha256.txt'), `${'0'.repeat(64)}  ../model.bin\n`);
    await expect(collectOutputs(r.t, r.workdir, await makeTmp(), r.recipe)).rejects.toThrow(/unsafe name/);
  }, 30_000);
});

/** A run of `train` (model.bin and metrics.json required, extra.bin optional) staged, run and ended. */
async function endedRun(train: string) {
  const r = await prepareRun(
    recipeYaml({ train, required: ['model.bin', 'metrics.json'], optional: ['extra.bin'] }),
  );
  const pid = await startDetached(r.t, r.workdir);
  await followRun(r.t, r.workdir, { pid, deadline: Date.now() + 20_000, pollMs: 100 });
  return r;
}

describe('runner: outputs held in memory', () => {
  it('hands back the verified bytes of outputs within the bound only, and every output is on disk', async () => {
    const r = await endedRun(
      'head -c 3000 /dev/zero > {{outdir}}/model.bin; echo m > {{outdir}}/metrics.json; head -c 3000 /dev/zero > {{outdir}}/extra.bin',
    );
    const local = await makeTmp();
    const { outputs, contents } = await collectRun(r.t, r.workdir, local, r.recipe, [], { keepBytes: 4000 });
    expect(outputs.map((o) => o.name)).toEqual(['extra.bin', 'metrics.json', 'model.bin']);
    // Fetched at once, so which fit is a race; never more than the bound in all.
    const held = [...contents.values()].reduce((n, b) => n + b.length, 0);
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThanOrEqual(4000);
    expect(contents.size).toBeLessThan(3);
    for (const [name, data] of contents) {
      expect(sha256Hex(data)).toBe(outputs.find((o) => o.name === name)!.sha256);
    }
    for (const o of outputs) expect(sha256Hex(await readFile(join(local, o.name)))).toBe(o.sha256);
  }, 30_000);

  it('memoryOnly: what is handed back is not written here, the rest is, and train.log comes back too', async () => {
    const r = await endedRun(
      'echo "log line"; head -c 3000 /dev/zero > {{outdir}}/model.bin; echo m > {{outdir}}/metrics.json; head -c 3000 /dev/urandom > {{outdir}}/extra.bin',
    );
    // Made only when a file lands there.
    const local = join(await makeTmp(), 'not-made-yet');
    const got = await collectRun(r.t, r.workdir, local, r.recipe, ['train.log'], {
      keepBytes: 4000,
      memoryOnly: true,
    });
    expect(got.outputs.map((o) => o.name)).toEqual(['extra.bin', 'metrics.json', 'model.bin']);
    expect(got.regular).toEqual(['train.log']);
    const log = await readFile(join(r.workdir, 'train.log'));
    const held = new Map([...got.contents, ...got.extras]);
    expect([...held.values()].reduce((n, b) => n + b.length, 0)).toBeLessThanOrEqual(4000);
    if (got.extras.has('train.log')) expect(got.extras.get('train.log')!.equals(log)).toBe(true);
    else expect((await readFile(join(local, 'train.log'))).equals(log)).toBe(true);
    // Every output is either handed back (verified) or on disk here (verified), never both.
    for (const o of got.outputs) {
      const data = got.contents.get(o.name);
      expect(existsSync(join(local, o.name))).toBe(!data);
      expect(sha256Hex(data ?? (await readFile(join(local, o.name))))).toBe(o.sha256);
    }
    expect(got.contents.size).toBeGreaterThan(0);
    expect(got.contents.size).toBeLessThan(3);
  }, 30_000);

  it('memoryOnly: an output whose bytes differ from sha256.txt is refused, naming it', async () => {
    const r = await prepareRun(
      recipeYaml({
        train: `echo m > {{outdir}}/metrics.json; echo model > {{outdir}}/model.bin`,
        required: ['model.bin', 'metrics.json'],
      }),
    );
    const pid = await startDetached(r.t, r.workdir);
    await followRun(r.t, r.workdir, { pid, deadline: Date.now() + 20_000, pollMs: 100 });
    await writeFile(join(r.workdir, 'out', 'model.bin'), 'changed after the hash\n');
    await expect(
      collectRun(r.t, r.workdir, await makeTmp(), r.recipe, [], { memoryOnly: true }),
    ).rejects.toThrow(/output model\.bin: sha256 [0-9a-f]{64} does not match sha256\.txt/);
  }, 30_000);
});

describe('runner: secrets', () => {
  it('delivers secrets through the environment only', async () => {
    const secret = `s3cret-${rand()}`;
    const r = await prepareRun(
      recipeYaml({
        train: 'printf "%s" "$RT_SECRET" > {{outdir}}/model.bin; sleep 1.5',
        secrets: ['RT_SECRET'],
      }),
    );
    const t = new RecordingTransport(r.t);
    const pid = await startDetached(t, r.workdir, { env: { RT_SECRET: secret } });
    await waitFor(() => runProcesses(pid).length > 0);
    const seenInPs = processes().filter((p) => p.args.includes(secret));
    await followRun(t, r.workdir, { pid, deadline: Date.now() + 20_000, pollMs: 100 });

    expect(seenInPs).toEqual([]);
    expect(await readFile(join(r.workdir, 'out', 'model.bin'), 'utf8')).toBe(secret);
    expect(r.script).not.toContain(secret);
    expect(await readFile(join(r.workdir, 'run.sh'), 'utf8')).not.toContain(secret);
    expect(await readFile(join(r.workdir, 'train.log'), 'utf8')).not.toContain(secret);
    expect(t.commands.some((c) => c.includes(secret))).toBe(false);
    expect(process.env.RT_SECRET).toBeUndefined();
  }, 30_000);
});

describe('stageRun', () => {
  it('re-sends nothing that is already there and names a file whose hash does not match', async () => {
    const r = await prepareRun(recipeYaml({ train: 'true' }));
    const t = new RecordingTransport(r.t);
    const local = await makeTmp();
    await writeFile(join(local, 'features.csv'), 'a,b\n1,2\n');
    const file = await stageFile(join(local, 'features.csv'), 'inputs/features.csv');
    await stageRun(t, { workdir: r.workdir, files: [file], script: r.script });
    expect(t.puts).toEqual([]);

    await writeFile(join(local, 'other.csv'), 'x\n');
    await expect(
      stageRun(t, {
        workdir: r.workdir,
        files: [
          { ...(await stageFile(join(local, 'other.csv'), 'inputs/other.csv')), sha256: 'f'.repeat(64) },
        ],
        script: r.script,
      }),
    ).rejects.toThrow(/staged file inputs\/other.csv has sha256/);
    await expect(
      stageRun(t, { workdir: r.workdir, files: [{ ...file, remoteRel: '../escape.csv' }], script: r.script }),
    ).rejects.toThrow(/not a plain relative path/);
  }, 30_000);

  it('a fresh work dir gets run.sh in its place, mode 0700, verified with the rest in one exec; a damaged upload is named', async () => {
    const r = await prepareRun(recipeYaml({ train: 'echo m > {{outdir}}/model.bin' }));
    const local = await makeTmp();
    await writeFile(join(local, 'features.csv'), 'a,b\n1,2\n');
    const file = await stageFile(join(local, 'features.csv'), 'inputs/features.csv');
    const fresh = async () => {
      const workdir = await claimWorkdir(r.t, await makeTmp('retrain-work-'), 'BTCUSDT', new Date());
      const script = buildRunScript(r.recipe, standardRunContext(workdir, JOB));
      return { workdir, script, t: new RecordingTransport(r.t) };
    };

    const a = await fresh();
    await stageRun(a.t, { workdir: a.workdir, files: [file], script: a.script, fresh: true });
    expect(a.t.puts.sort()).toEqual([join(a.workdir, 'inputs/features.csv'), join(a.workdir, 'run.sh')]);
    expect(a.t.commands).toHaveLength(1);
    expect((await stat(join(a.workdir, 'run.sh'))).mode & 0o777).toBe(0o700);
    expect(await readFile(join(a.workdir, 'run.sh'), 'utf8')).toBe(a.script);
    expect(existsSync(join(a.workdir, 'run.sh.tmp'))).toBe(false);
    const { res } = await followToEnd(r.t, a.workdir);
    expect(res.exitCode).toBe(0);

    // An upload that does not arrive whole fails the staging, naming it.
    const b = await fresh();
    const bad = { ...file, sha256: 'e'.repeat(64) };
    await expect(
      stageRun(b.t, { workdir: b.workdir, files: [bad], script: b.script, fresh: true }),
    ).rejects.toThrow(/staged file inputs\/features.csv has sha256 .* expected e{64}/);
  }, 30_000);
});

describe('workdirName', () => {
  it('is YYYYMMDD_HHMMSSZ in UTC', () => {
    expect(workdirName(new Date('2024-05-01T02:03:04.567Z'))).toBe('20240501_020304Z');
  });
});
