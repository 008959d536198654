/**
 * The follow's long poll: a probe waits on the host for the run's end (bash builtin naps, no
 * process per look) and answers as soon as it comes; where the host cannot nap, the follow sleeps
 * between probes itself. Also what run.sh does around the training without starting processes: the
 * process scan's parsing of /proc stat lines (its reap) and keeping the empty out/ staging made.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { copyFile, lstat, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { probeRun } from '../../../src/remote/lifecycle.js';
import { followRun, killRun, startDetached } from '../../../src/remote/runner.js';
import { COMMON_SH } from '../../../src/remote/shellLib.js';
import type { ExecOptions, Transport } from '../../../src/remote/transport.js';
import {
  cleanupTmp,
  followToEnd,
  makeTmp,
  prepareRun,
  processes,
  recipeYaml,
  runProcesses,
} from './fixtures.js';

afterAll(cleanupTmp);

/** A process's stat line; null once it is gone. */
function readStatOrNull(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
}

/** A transport whose host cannot nap (as a bash without fractional `read -t`), counting probes. */
function withoutNaps(inner: Transport): Transport & { probes: number } {
  const t = Object.create(inner) as Transport & { probes: number };
  t.probes = 0;
  t.exec = (command: string, opts?: ExecOptions) => {
    if (command.includes('echo "pid=$fp"')) t.probes++;
    return inner.exec(command.replace(/retrain_nap_open; then/g, 'false; then'), opts);
  };
  return t;
}

describe('probeRun with waitMs (long poll)', () => {
  it('answers as soon as the run ends, not when the wait is over', async () => {
    const r = await prepareRun(recipeYaml({ train: 'sleep 0.5; echo m > {{outdir}}/model.bin' }));
    const pid = await startDetached(r.t, r.workdir);
    const t0 = Date.now();
    const probe = await probeRun(r.t, r.workdir, pid, { waitMs: 20_000 });
    const took = Date.now() - t0;
    // run.sh writes exit_code as its last act, so it may still be alive for an instant after it.
    expect(probe).toMatchObject({ exitCode: 0, waited: true });
    expect(took).toBeLessThan(10_000);
  }, 30_000);

  it('waits its time for a run that goes on, then reports it alive', async () => {
    const r = await prepareRun(recipeYaml({ train: 'sleep 30' }));
    const pid = await startDetached(r.t, r.workdir);
    const t0 = Date.now();
    const probe = await probeRun(r.t, r.workdir, pid, { waitMs: 400 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
    expect(probe).toMatchObject({ pid, alive: true, waited: true });
    expect(probe.exitCode).toBeUndefined();
    // Without waitMs it answers at once and says it did not wait.
    expect(await probeRun(r.t, r.workdir, pid)).toMatchObject({ alive: true, waited: false });
    await killRun(r.t, r.workdir, pid, 1000);
    expect(runProcesses(pid)).toEqual([]);
  }, 30_000);

  it('stops waiting when the run dies without an exit code', async () => {
    const r = await prepareRun(recipeYaml({ train: 'sleep 30' }));
    const pid = await startDetached(r.t, r.workdir);
    setTimeout(() => process.kill(-pid, 'SIGKILL'), 300);
    const t0 = Date.now();
    const probe = await probeRun(r.t, r.workdir, pid, { waitMs: 20_000 });
    expect(probe).toMatchObject({ alive: false, waited: true });
    expect(probe.exitCode).toBeUndefined();
    expect(Date.now() - t0).toBeLessThan(10_000);
  }, 30_000);

  it('on a host that cannot nap, says so, and the follow sleeps between probes instead', async () => {
    const r = await prepareRun(recipeYaml({ train: 'sleep 1; echo m > {{outdir}}/model.bin' }));
    const t = withoutNaps(r.t);
    const pid = await startDetached(t, r.workdir);
    expect(await probeRun(t, r.workdir, pid, { waitMs: 5000 })).toMatchObject({ alive: true, waited: false });
    t.probes = 0;
    const res = await followRun(t, r.workdir, { pid, deadline: Date.now() + 20_000, pollMs: 200 });
    expect(res.exitCode).toBe(0);
    // Slept between probes (50, 100, 200, 200 ... ms): a handful in a second, not a spin.
    expect(t.probes).toBeGreaterThanOrEqual(2);
    expect(t.probes).toBeLessThan(20);
  }, 30_000);
});

describe('the local follow and the log', () => {
  it('stats train.log itself (no `stat` process per probe on the host) and streams all of it', async () => {
    const r = await prepareRun(
      recipeYaml({
        train: 'for i in 1 2 3 4 5; do echo "line $i é"; sleep 0.1; done; echo m > {{outdir}}/model.bin',
      }),
    );
    const commands: string[] = [];
    const t = Object.create(r.t) as Transport;
    t.exec = (command: string, opts?: ExecOptions) => {
      commands.push(command);
      return r.t.exec(command, opts);
    };
    const { pid, res, text } = await followToEnd(t, r.workdir);
    expect(res.exitCode).toBe(0);
    const probes = commands.filter((c) => c.includes('echo "pid=$fp"'));
    expect(probes.length).toBeGreaterThan(0);
    expect(probes.filter((c) => c.includes('stat -c %s train.log'))).toEqual([]);
    expect(text).toBe(await readFile(join(r.workdir, 'train.log'), 'utf8'));
    expect(text).toContain('line 5 é');
    expect(res.logOffset).toBe(Buffer.byteLength(text));
    // The size and the tail come together or not at all.
    await expect(probeRun(r.t, r.workdir, pid, { logFrom: 0, logSize: false })).rejects.toThrow(/its size/);
  }, 30_000);
});

describe('the process scan', () => {
  it("reaps a leftover whose name holds ') ' and numbers like a stat line's fields", async () => {
    const dir = await makeTmp('retrain-comm-');
    // comm is the executable's name (15 characters at most): ") Z 1 1 1 1" would pass for a
    // zombie of another session to a parser that took the first ") ".
    const odd = join(dir, 'a) Z 1 1 1 1');
    await copyFile('/bin/sleep', odd);
    const r = await prepareRun(
      recipeYaml({ train: `chmod +x '${odd}'; ('${odd}' 300 &); echo m > {{outdir}}/model.bin` }),
    );
    const pid = await startDetached(r.t, r.workdir);
    const res = await followRun(r.t, r.workdir, { pid, deadline: Date.now() + 20_000, pollMs: 100 });
    expect(res.exitCode).toBe(0);
    expect(processes().filter((p) => p.args.includes(odd))).toEqual([]);
    expect(runProcesses(pid)).toEqual([]);
  }, 30_000);

  it("skips unread only the kernel's threads, which are in no run's session, and still finds every process of its own", async () => {
    const dir = await makeTmp('retrain-scan-');
    const script = join(dir, 'scan.sh');
    await writeFile(
      script,
      [
        COMMON_SH,
        // Children forked before the scan (each exists by then, exec'd or not); no output held.
        'sleep 30 >/dev/null 2>&1 & a=$!',
        '( exec sleep 31 ) >/dev/null 2>&1 & b=$!',
        'retrain_kthreads',
        'echo "skip ${!RETRAIN_SKIP[*]}"',
        'retrain_scan $$',
        'echo "found ${RETRAIN_PIDS[*]}"',
        'echo "started $a $b"',
        'kill "${RETRAIN_PIDS[@]}" 2>/dev/null; exit 0',
      ].join('\n'),
    );
    // In a session of its own, as run.sh is.
    const out = execFileSync('setsid', ['bash', script], { encoding: 'utf8', timeout: 20_000 });
    const line = (key: string) =>
      (out.split('\n').find((l) => l.startsWith(`${key} `)) ?? '').split(' ').slice(1);
    const skipped = line('skip').map(Number);
    const found = line('found').map(Number);
    const started = line('started').map(Number);
    expect(found.sort()).toEqual(started.sort());
    expect(skipped).toContain(1);
    const kthreadd = readFileSync('/proc/2/stat', 'utf8').startsWith('2 (kthreadd) ');
    if (kthreadd) {
      const kids = readFileSync('/proc/2/task/2/children', 'utf8')
        .trim()
        .split(/\s+/)
        .filter(Boolean)
        .map(Number);
      expect(skipped).toEqual(expect.arrayContaining([2, ...kids]));
      // What is skipped is never in a user's session (a kernel thread's session is 0).
      for (const p of skipped.filter((p) => p > 2)) {
        const stat = readStatOrNull(p);
        if (stat !== null) expect(Number(stat.slice(stat.lastIndexOf(') ') + 2).split(' ')[3])).toBe(0);
      }
    } else {
      expect(skipped).toEqual([1]);
    }
  });
});

describe('out/ when the run starts', () => {
  it('is emptied of what an earlier start left (dot files too), and a link there becomes a directory', async () => {
    const r = await prepareRun(
      recipeYaml({ train: 'ls -A {{outdir}} > {{workdir}}/seen.txt; echo m > {{outdir}}/model.bin' }),
    );
    const out = join(r.workdir, 'out');
    // A dot file alone: out/ is not empty for all that.
    await writeFile(join(out, '.hidden'), 'stale');
    let pid = await startDetached(r.t, r.workdir);
    expect((await followRun(r.t, r.workdir, { pid, deadline: Date.now() + 20_000 })).exitCode).toBe(0);
    expect(await readFile(join(r.workdir, 'seen.txt'), 'utf8')).toBe('');
    expect((await readdir(out)).sort()).toEqual(['model.bin', 'sha256.txt']);

    await writeFile(join(out, 'old.bin'), 'stale');
    await rm(join(r.workdir, 'exit_code'));
    pid = await startDetached(r.t, r.workdir);
    expect((await followRun(r.t, r.workdir, { pid, deadline: Date.now() + 20_000 })).exitCode).toBe(0);
    expect(await readFile(join(r.workdir, 'seen.txt'), 'utf8')).toBe('');

    // Start again with out/ a link to a directory elsewhere: the link goes, the target is untouched.
    const elsewhere = await makeTmp('retrain-elsewhere-');
    await writeFile(join(elsewhere, 'keep.bin'), 'keep');
    await rm(out, { recursive: true });
    await symlink(elsewhere, out);
    await rm(join(r.workdir, 'exit_code'));
    pid = await startDetached(r.t, r.workdir);
    expect((await followRun(r.t, r.workdir, { pid, deadline: Date.now() + 20_000 })).exitCode).toBe(0);
    expect((await lstat(out)).isDirectory()).toBe(true);
    expect(await readFile(join(r.workdir, 'seen.txt'), 'utf8')).toBe('');
    expect(await readdir(elsewhere)).toEqual(['keep.bin']);
  }, 30_000);
});
