/**
 * Secrets end to end: one `retrain run --driver vast` with a marker value in every secret (the Vast
 * account key, the S3 credentials, the Telegram token, the dashboard credentials and a recipe's
 * declared secret), over the Vast simulator, a real sshd standing for the rented host, moto as the
 * S3 store, a Telegram stand-in and the real Redis. While it trains, every process's command line
 * and environment is watched; afterwards every file of RETRAIN_HOME (logs, remote work dirs, ssh
 * dir, staging), every object in the bucket, every Redis key of the deployment, the CLI's output and
 * everything the simulator recorded are searched for the markers.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { defaultOffers, startVastSim, type VastSim } from '../../src/vast/sim/server.js';
import { BIN, FIXTURES, REPO, runCli, sandbox, syntheticRun, type Sandbox } from '../helpers/harness.js';
import { startS3Server, type S3ServerHandle } from '../helpers/s3server.js';
import { startSshd, type SshdHandle } from '../helpers/sshd.js';
import { startTelegramStandIn, type TelegramStandIn } from '../helpers/telegramStandIn.js';

const DATE = '20260113';
const SYMBOL = 'BTCUSDT';

let sb: Sandbox | undefined;
let sshd: SshdHandle | undefined;
let sim: VastSim | undefined;
let s3: S3ServerHandle | undefined;
let telegram: TelegramStandIn | undefined;
let cliTmp: string | undefined;

afterEach(async () => {
  await telegram?.close();
  await sim?.close();
  await sshd?.stop();
  await s3?.stop();
  await sb?.cleanup();
  if (cliTmp) rmSync(cliTmp, { recursive: true, force: true });
});

/** What a snapshot of one process showed. */
interface Seen {
  pid: number;
  comm: string;
  cwd: string;
  /** Markers (by name) found in its command line. */
  inArgs: string[];
  /** Markers (by name) found in its environment. */
  inEnv: string[];
  /** An ancestor is an sshd (the process runs on the "host", under an SSH session). */
  underSshd: boolean;
  /** The process is the CLI's own child (e.g. tsx's esbuild): the orchestrator itself. */
  underCli: boolean;
  /** Its session id: the training runs in a session of its own (setsid), children included. */
  sid: number;
}

function readProc(pid: string, file: string): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'latin1');
  } catch {
    return undefined;
  }
}

/** Every live process whose command line or environment holds a marker. */
function snapshot(markers: Record<string, string>, cli: number): Seen[] {
  const parent = new Map<string, string>();
  const comm = new Map<string, string>();
  const session = new Map<string, number>();
  const pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  for (const p of pids) {
    const stat = readProc(p, 'stat');
    if (!stat) continue;
    const close = stat.lastIndexOf(')');
    comm.set(p, stat.slice(stat.indexOf('(') + 1, close));
    const fields = stat.slice(close + 2).split(' ');
    parent.set(p, fields[1]!);
    session.set(p, Number(fields[3]));
  }
  const out: Seen[] = [];
  for (const p of pids) {
    const args = readProc(p, 'cmdline') ?? '';
    const env = readProc(p, 'environ') ?? '';
    const inArgs = Object.keys(markers).filter((k) => args.includes(markers[k]!));
    const inEnv = Object.keys(markers).filter((k) => env.includes(markers[k]!));
    if (inArgs.length === 0 && inEnv.length === 0) continue;
    let underSshd = false;
    let underCli = false;
    for (let a = parent.get(p), n = 0; a && a !== '0' && n < 64; a = parent.get(a), n++) {
      if (comm.get(a)?.startsWith('sshd')) underSshd = true;
      if (a === String(cli)) underCli = true;
    }
    let cwd = '';
    try {
      cwd = readlinkSync(`/proc/${p}/cwd`);
    } catch {
      /* gone */
    }
    out.push({
      pid: Number(p),
      comm: comm.get(p) ?? '',
      cwd,
      inArgs,
      inEnv,
      underSshd,
      underCli,
      sid: session.get(p) ?? 0,
    });
  }
  return out;
}

/** Every regular file under `dir` (symlinks not followed). */
function listFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...listFiles(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** `where: marker names` for each text holding a marker. */
function findMarkers(markers: Record<string, string>, texts: [string, Buffer | string][]): string[] {
  const hits: string[] = [];
  for (const [where, content] of texts) {
    const buf = typeof content === 'string' ? Buffer.from(content) : content;
    const names = Object.keys(markers).filter((k) => buf.includes(markers[k]!));
    if (names.length) hits.push(`${where}: ${names.join(', ')}`);
  }
  return hits;
}

/** Every value of every Redis key under the sandbox's prefix, read by its type. */
async function redisContents(s: Sandbox): Promise<[string, string][]> {
  const out: [string, string][] = [];
  let cursor = '0';
  do {
    const [next, found] = await s.redis.scan(cursor, 'MATCH', `${s.prefix}:*`, 'COUNT', 500);
    cursor = next;
    for (const key of found) {
      const type = await s.redis.type(key);
      let value: unknown;
      if (type === 'string') value = await s.redis.get(key);
      else if (type === 'hash') value = await s.redis.hgetall(key);
      else if (type === 'list') value = await s.redis.lrange(key, 0, -1);
      else if (type === 'set') value = await s.redis.smembers(key);
      else if (type === 'zset') value = await s.redis.zrange(key, 0, -1, 'WITHSCORES');
      else if (type === 'stream') value = await s.redis.xrange(key, '-', '+');
      else value = `(${type})`;
      out.push([`redis ${key} (${type})`, JSON.stringify(value)]);
    }
  } while (cursor !== '0');
  return out;
}

describe('secrets', () => {
  it('no marker secret reaches a log, job data, the store, a command line or the host; key files 0600; no temp file left', async () => {
    const tag = randomBytes(6).toString('hex');
    const markers: Record<string, string> = {
      VAST_API_KEY: `vastacct${tag}KEY`,
      S3_ACCESS_KEY_ID: `AKIA${tag.toUpperCase()}ID`,
      S3_SECRET_ACCESS_KEY: `s3secret${tag}SECRET`,
      TELEGRAM_TOKEN: `123456789:tg${tag}TOKEN`,
      DASHBOARD_PASSWORD: `dashpw${tag}PASS`,
      DASHBOARD_TOKEN: `dashtok${tag}TOK`,
      RETRAIN_TEST_SECRET: `recipesecret${tag}RS`,
    };
    const orchestratorOnly = Object.keys(markers).filter((k) => k !== 'RETRAIN_TEST_SECRET');

    sb = await sandbox(inject('redisUrl'));
    const remoteRoot = join(sb.home, 'remote');
    // The CLI creates the deployment key itself; the "host" accepts whatever key the API attached.
    sshd = await startSshd({ authorizedKeys: [] });
    sim = await startVastSim({
      apiKey: markers.VAST_API_KEY,
      offers: defaultOffers(),
      sshEndpoint: { host: sshd.host, port: sshd.port },
      bootDelayMs: 300,
      seed: 13,
    });
    s3 = await startS3Server();
    const bucket = await s3.createBucket();
    telegram = await startTelegramStandIn();
    cliTmp = mkdtempSync(join(tmpdir(), 'secrets-cli-tmp-'));
    Object.assign(sb.env, markers, {
      LOG_LEVEL: 'debug',
      TMPDIR: cliTmp,
      VAST_API_URL: sim.url,
      RETRAIN_REMOTE_ROOT: remoteRoot,
      RETRAIN_SSH_USER: sshd.user,
      RETRAIN_BOOT_DEADLINE_SEC: '20',
      RETRAIN_VAST_RETRY_MS: '40',
      RETRAIN_STORE: 's3',
      S3_BUCKET: bucket,
      S3_ENDPOINT: s3.endpoint,
      S3_REGION: s3.region,
      S3_FORCE_PATH_STYLE: 'true',
      TELEGRAM_CHAT_ID: '-100123',
      TELEGRAM_API_URL: telegram.url,
    });

    const child = spawn(
      process.execPath,
      [
        BIN,
        'run',
        '--driver',
        'vast',
        ...syntheticRun(SYMBOL, DATE, join(FIXTURES, 'recipes/with-secret')),
        '--var',
        'sleep=4',
        '--promote',
        'auto',
      ],
      { env: sb.env, cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    let done = false;
    void exited.then(() => (done = true));

    const seen: Seen[] = [];
    const seenKeys = new Set<string>();
    const tmpSeen = new Set<string>();
    const psOutputs: string[] = [];
    const authorized = join(sshd.dir, 'authorized_keys');
    let keysWritten = '';
    try {
      while (!done) {
        // What the API attached to an instance is what the host lets in (as on Vast).
        const keys = [...new Set(Object.values(sim.state().sshKeys).flat())].join('\n');
        if (keys && keys !== keysWritten) {
          await writeFile(authorized, keys + '\n', { mode: 0o600 });
          keysWritten = keys;
        }
        for (const s of snapshot(markers, child.pid!)) {
          if (s.pid === child.pid) continue;
          const key = JSON.stringify([s.pid, s.comm, s.cwd, s.inArgs, s.inEnv]);
          if (seenKeys.has(key)) continue;
          seenKeys.add(key);
          seen.push(s);
        }
        // While the training runs (its processes hold the recipe secret), also ask ps.
        const training = seen.some((s) => !s.underCli && s.inEnv.includes('RETRAIN_TEST_SECRET'));
        if (training && psOutputs.length < 3) {
          const ps = spawn('ps', ['-eo', 'pid,args', '--cols', '100000']);
          let text = '';
          ps.stdout.on('data', (d) => (text += d));
          await new Promise((r) => ps.once('close', r));
          psOutputs.push(text);
        }
        for (const f of readdirSync(cliTmp)) tmpSeen.add(f);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(await exited, stdout + stderr).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }

    // The run did what it should, and the recipe's secret reached its training.
    const ledger = JSON.parse((await sb.redis.hget(`${sb.prefix}:ledger:${DATE}`, SYMBOL))!);
    expect(ledger).toMatchObject({ status: 'success', decision: 'promote' });
    const config = await s3.client.send(
      new GetObjectCommand({ Bucket: bucket, Key: `ml-artifacts/train__${SYMBOL}__${DATE}/config.json` }),
    );
    expect(JSON.parse(await config.Body!.transformToString()).secret_sha256).toBe(
      createHash('sha256').update(markers.RETRAIN_TEST_SECRET!).digest('hex'),
    );
    expect(telegram.texts().length).toBeGreaterThan(0);

    // Command lines: no secret on any, at any time (ps included).
    expect(seen.filter((s) => s.inArgs.length > 0)).toEqual([]);
    expect(psOutputs.length).toBeGreaterThan(0);
    expect(
      findMarkers(
        markers,
        psOutputs.map((t, i) => [`ps #${i}`, t]),
      ),
    ).toEqual([]);
    // Environments: no orchestrator secret in any process but the CLI and its own helpers; the
    // recipe secret only in the training's processes on the host.
    expect(seen.filter((s) => !s.underCli && s.inEnv.some((k) => orchestratorOnly.includes(k)))).toEqual([]);
    expect(seen.filter((s) => s.underCli && s.underSshd)).toEqual([]);
    const withRecipeSecret = seen.filter((s) => !s.underCli && s.inEnv.includes('RETRAIN_TEST_SECRET'));
    expect(withRecipeSecret.some((s) => s.comm.startsWith('python'))).toBe(true);
    // A process of the training's own session counts as the training wherever it stands (a pyenv
    // shim behind `python3` briefly cds into pyenv's hook dirs).
    const trainingSessions = new Set(
      withRecipeSecret.filter((s) => s.cwd.startsWith(remoteRoot)).map((s) => s.sid),
    );
    expect(
      withRecipeSecret.filter(
        (s) => !s.underSshd && !s.cwd.startsWith(remoteRoot) && !trainingSessions.has(s.sid),
      ),
    ).toEqual([]);

    // Files: every file of RETRAIN_HOME (logs, remote work dirs, ssh dir, staging, local copies).
    const files = listFiles(sb.home);
    expect(files.some((f) => f.endsWith('engine.log'))).toBe(true);
    expect(files.some((f) => f.startsWith(remoteRoot) && f.endsWith('train.log'))).toBe(true);
    expect(
      findMarkers(
        markers,
        files.map((f) => [f, readFileSync(f)]),
      ),
    ).toEqual([]);

    // The store: every object in the bucket.
    const objects: [string, Buffer][] = [];
    let token: string | undefined;
    do {
      const page = await s3.client.send(
        new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }),
      );
      for (const o of page.Contents ?? []) {
        const obj = await s3.client.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key! }));
        objects.push([`s3://${bucket}/${o.Key}`, Buffer.from(await obj.Body!.transformToByteArray())]);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    expect(objects.some(([k]) => k.endsWith('/model.bin'))).toBe(true);
    expect(findMarkers(markers, objects)).toEqual([]);

    // Redis: job data, job logs, ledger, everything under the deployment's prefix.
    const redis = await redisContents(sb);
    expect(redis.some(([k]) => k.includes(`:train:train__${SYMBOL}__${DATE}:logs`))).toBe(true);
    expect(findMarkers(markers, redis)).toEqual([]);

    // What the CLI printed, what `retrain status` prints, what Telegram was sent.
    const status = await runCli(['status', '--date', DATE, '--json'], sb.env);
    expect(status.code, status.stderr).toBe(0);
    const texts: [string, string][] = [
      ['run stdout', stdout],
      ['run stderr', stderr],
      ['status stdout', status.stdout],
      ['status stderr', status.stderr],
      ...telegram.requests.map((r, i): [string, string] => [`telegram body #${i}`, JSON.stringify(r.body)]),
    ];
    expect(findMarkers(markers, texts)).toEqual([]);

    // The host never got the account key: not in the instance's environment, onstart or anything
    // else the simulator recorded about it.
    const st = sim.state();
    expect(Object.keys(st.env)).toHaveLength(1);
    expect(findMarkers(markers, [['simulator state', JSON.stringify(st)]])).toEqual([]);

    // Key files are private; the CLI left no temp file behind.
    const sshDir = join(sb.home, 'ssh');
    expect(statSync(sshDir).mode & 0o777).toBe(0o700);
    const keyFiles = readdirSync(sshDir).filter((f) => f.endsWith('_ed25519'));
    expect(keyFiles).toEqual(['default_ed25519']);
    for (const f of keyFiles) expect(statSync(join(sshDir, f)).mode & 0o777, f).toBe(0o600);
    // The CLI worked in its own TMPDIR (tsx's cache, our staging dirs) and removed what was ours.
    expect(tmpSeen.size).toBeGreaterThan(0);
    expect(readdirSync(cliTmp).filter((f) => f.startsWith('retrain'))).toEqual([]);
    expect(
      findMarkers(
        markers,
        listFiles(cliTmp).map((f) => [f, readFileSync(f)]),
      ),
    ).toEqual([]);
    expect(files.filter((f) => /\.(tmp|part)($|-)|\.retrain-tmp-/.test(f))).toEqual([]);
    expect(listFiles(join(sb.home, 'staging'))).toEqual([]);
  }, 180_000);
});
