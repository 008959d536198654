/**
 * Container mode with a real runtime (podman, image built locally by test/helpers/container.ts):
 * every step runs in a container with the work dir mounted, a worker killed mid-training is
 * replaced by one that reattaches to the same run, and a killed attempt leaves no container and no
 * process behind. Where no container can run on the machine, one test says why and the rest skip.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { prepareContainer, retrainContainers } from '../helpers/container.js';
import {
  fakeVariantRecipe,
  runCli,
  sandbox,
  startWorker,
  syntheticRun,
  type Sandbox,
  type WorkerProc,
} from '../helpers/harness.js';
import { ensureDeploymentKey } from '../../src/remote/ssh/keys.js';
import { startSshd } from '../helpers/sshd.js';
import { processesWith } from '../helpers/vastWorld.js';

const DATE = '20260110';
const recipe = fakeVariantRecipe('container');
const setup = await prepareContainer();

async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  ms = 60_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

const ledgerEntry = (sb: Sandbox) =>
  sb.redis.hget(`${sb.prefix}:ledger:${DATE}`, 'BTCUSDT').then((v) => (v ? JSON.parse(v) : undefined));

/** The events file the fake training writes in its work dir (start/end lines). */
function events(sb: Sandbox): string[] {
  const root = join(sb.home, 'models/BTCUSDT');
  if (!existsSync(root)) return [];
  return readdirSync(root).flatMap((d) => {
    const f = join(root, d, 'events.txt');
    return existsSync(f) ? readFileSync(f, 'utf8').trim().split('\n') : [];
  });
}

it.runIf(!setup.ok)('container mode: no container runtime can run here', () => {
  // Not a pass for the feature: the reason is printed so the report can say it.
  console.warn(`container-mode tests skipped: ${setup.ok ? '' : setup.reason}`);
});

describe.skipIf(!setup.ok)('container mode (driver local, podman)', () => {
  let sb: Sandbox;
  const workers: WorkerProc[] = [];
  beforeEach(async () => {
    sb = await sandbox(inject('redisUrl'), {
      ...(setup.ok ? setup.env : {}),
      RETRAIN_LOCK_DURATION_MS: '2000',
      RETRAIN_STALLED_INTERVAL_MS: '1000',
    });
  });
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop()));
    await sb.cleanup();
  });
  const env = () => sb.env;

  it('runs every step in the container; outputs verified and stored; no container left', async () => {
    const r = await runCli(['run', ...syntheticRun('BTCUSDT', DATE, recipe), '--promote', 'dry'], env());
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const log = readFileSync(
      join(sb.home, 'store/ml-artifacts', `train__BTCUSDT__${DATE}`, 'train.log'),
      'utf8',
    );
    expect(log).toMatch(
      /step 1 runs in podman container retrain-\d+-1 \(image localhost\/retrain-test-py:1\)/,
    );
    expect(log).toContain('retrain-in-container: no /usr/share here');
    expect(log).toMatch(/line 3\n/);
    expect(await retrainContainers(env())).toEqual([]);
  });

  it('SIGKILL to the worker mid-training: the next worker reattaches to the same container run', async () => {
    const enq = await runCli(
      ['enqueue', ...syntheticRun('BTCUSDT', DATE, recipe), '--var', 'sleep=8'],
      env(),
    );
    expect(enq.code, enq.stderr).toBe(0);
    const first = startWorker(env());
    workers.push(first);
    await waitFor('the training to start in its container', () =>
      events(sb).some((e) => e.startsWith('start')) ? true : undefined,
    );
    const running = await retrainContainers(env());
    expect(running).toHaveLength(1);
    const exited = new Promise((r) => first.proc.once('exit', r));
    first.proc.kill('SIGKILL');
    await exited;
    const second = startWorker(env());
    workers.push(second);
    const entry = await waitFor('success', async () => {
      const e = await ledgerEntry(sb);
      return e?.status === 'success' ? e : undefined;
    });
    expect(entry.attempts).toBe(1);
    const marks = events(sb);
    expect(marks.filter((m) => m.startsWith('start'))).toHaveLength(1);
    expect(marks.filter((m) => m.startsWith('end'))).toHaveLength(1);
    expect(second.output()).toContain('resuming at EXECUTING');
    expect(await retrainContainers(env())).toEqual([]);
  });

  it('driver ssh: the same steps run in the container on the host behind sshd', async () => {
    if (!setup.ok) return;
    const key = await ensureDeploymentKey(join(sb.home, 'keys'), 'host');
    // The host's podman reads its settings from the host's environment, as any ssh host's would.
    const sshd = await startSshd({
      authorizedKeys: [key.publicKey],
      extraConfig: [`SetEnv CONTAINERS_CONF=${setup.env.CONTAINERS_CONF}`],
    });
    try {
      const r = await runCli(['run', '--driver', 'ssh', ...syntheticRun('BTCUSDT', DATE, recipe)], {
        ...env(),
        RETRAIN_SSH_HOST: sshd.host,
        RETRAIN_SSH_PORT: String(sshd.port),
        RETRAIN_SSH_USER: sshd.user,
        RETRAIN_SSH_KEY: key.privateKeyPath,
        RETRAIN_REMOTE_ROOT: join(sb.home, 'remote'),
      });
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const log = readFileSync(
        join(sb.home, 'store/ml-artifacts', `train__BTCUSDT__${DATE}`, 'train.log'),
        'utf8',
      );
      expect(log).toContain('retrain-in-container: no /usr/share here');
      const runtime = JSON.parse(
        readFileSync(join(sb.home, 'store/ml-artifacts', `train__BTCUSDT__${DATE}`, 'runtime.json'), 'utf8'),
      );
      expect(runtime).toMatchObject({ driver: 'ssh', host: sshd.host });
      expect(await retrainContainers(env())).toEqual([]);
    } finally {
      await sshd.stop();
    }
  });

  it('an attempt past its time limit is killed: its container is stopped, no process left', async () => {
    const marker = `retrain-ct-marker-${process.pid}-${Date.now()}`;
    const r = await runCli(
      [
        'run',
        ...syntheticRun('BTCUSDT', DATE, recipe),
        '--var',
        'sleep=120',
        '--var',
        `marker=${marker}`,
        '--timeout-minutes',
        '0.15',
        '--retries',
        '0',
      ],
      env(),
    );
    expect(r.code).toBe(1);
    const st = JSON.parse(readFileSync(join(sb.home, 'store', `runs/${DATE}Z/status.json`), 'utf8')).symbols;
    expect(st.BTCUSDT).toMatchObject({ status: 'failed', reason: 'timeout' });
    // The training had started inside its container before it was killed.
    expect(events(sb).some((e) => e.startsWith('start'))).toBe(true);
    expect(await retrainContainers(env())).toEqual([]);
    expect(processesWith(marker)).toEqual([]);
  });
});
