/** Shared helpers for the runner tests: tmp recipe dirs, staged work dirs, process listings. */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadRecipe, type LoadedRecipe } from '../../../src/recipes/loader.js';
import { buildRunScript, standardRunContext, type RunContext } from '../../../src/remote/runScript.js';
import {
  followRun,
  recipeStageFiles,
  stageRun,
  startDetached,
  type FollowResult,
  type StageFile,
} from '../../../src/remote/runner.js';
import { LocalTransport } from '../../../src/remote/localTransport.js';
import type { Transport } from '../../../src/remote/transport.js';
import { sha256File } from '../../../src/util/hash.js';

export const tmpDirs: string[] = [];

export async function makeTmp(prefix = 'retrain-test-'): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), prefix));
  tmpDirs.push(d);
  return d;
}

export async function cleanupTmp(): Promise<void> {
  await Promise.all(tmpDirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
}

/** Writes recipe.yaml (+ extra files) into a fresh dir and returns the dir. */
export async function writeRecipeDir(yaml: string, files: Record<string, string> = {}): Promise<string> {
  const dir = await makeTmp('retrain-recipe-');
  await writeFile(join(dir, 'recipe.yaml'), yaml);
  for (const [name, body] of Object.entries(files)) await writeFile(join(dir, name), body);
  return dir;
}

/** A recipe with a single train step `run`, writing the standard outputs when asked. */
export function recipeYaml(opts: {
  train: string[] | string;
  timeoutSec?: number;
  required?: string[];
  optional?: string[];
  partial?: string[];
  secrets?: string[];
  vars?: Record<string, string>;
  env?: Record<string, string>;
  files?: string[];
}): string {
  const train = Array.isArray(opts.train) ? opts.train : [opts.train];
  return JSON.stringify({
    name: 'fake',
    version: 1,
    files: opts.files ?? [],
    vars: opts.vars ?? {},
    env: opts.env ?? {},
    secrets: opts.secrets ?? [],
    train: train.map((run) => (opts.timeoutSec ? { run, timeoutSec: opts.timeoutSec } : { run })),
    outputs: { required: opts.required ?? ['model.bin'], optional: opts.optional ?? [] },
    partial: opts.partial ?? [],
  });
}

export interface PreparedRun {
  t: LocalTransport;
  workdir: string;
  recipe: LoadedRecipe;
  ctx: RunContext;
  script: string;
}

/** Loads the recipe, builds run.sh and stages everything into a fresh work dir on this machine. */
export async function prepareRun(
  yaml: string,
  files: Record<string, string> = {},
  ctxOverrides: Partial<RunContext> = {},
): Promise<PreparedRun> {
  const t = new LocalTransport();
  return { t, ...(await stageOn(t, yaml, files, ctxOverrides)) };
}

/** prepareRun over any transport (an ssh one reaches a loopback sshd): the staged run's parts. */
export async function stageOn(
  t: Transport,
  yaml: string,
  files: Record<string, string> = {},
  ctxOverrides: Partial<RunContext> = {},
): Promise<Omit<PreparedRun, 't'>> {
  const recipeDir = await writeRecipeDir(yaml, files);
  const recipe = await loadRecipe(recipeDir, { recipesDir: '/nonexistent' });
  const root = await makeTmp('retrain-work-');
  const workdir = join(root, 'BTCUSDT', '20240501_000000Z');
  const local = await makeTmp('retrain-inputs-');
  await writeFile(join(local, 'features.csv'), 'a,b\n1,2\n');
  await writeFile(join(local, 'costs.json'), '{"taker_fee_bps":1}\n');
  const ctx: RunContext = {
    ...standardRunContext(workdir, {
      datasetName: 'features.csv',
      symbol: 'BTCUSDT',
      date: '20240501',
      featureset: 'v1',
      jobId: 'train__BTCUSDT__20240501',
    }),
    ...ctxOverrides,
  };
  const stage: StageFile[] = [
    await stageFile(join(local, 'features.csv'), 'inputs/features.csv'),
    await stageFile(join(local, 'costs.json'), 'inputs/costs.json'),
    ...(await recipeStageFiles(recipe)),
  ];
  const script = buildRunScript(recipe, ctx);
  await stageRun(t, { workdir, files: stage, script });
  return { workdir, recipe, ctx, script };
}

export async function stageFile(localPath: string, remoteRel: string): Promise<StageFile> {
  return { localPath, remoteRel, sha256: (await sha256File(localPath)).sha256 };
}

export interface Proc {
  pid: number;
  pgid: number;
  sid: number;
  stat: string;
  args: string;
}

/**
 * Live processes from `ps -eo pid,pgid,sid,stat,args` (the ps itself excluded). Zombies are left
 * out: they run nothing, and in some sandboxes PID 1 never reaps orphans.
 */
export function processes(): Proc[] {
  const out = execFileSync('ps', ['-eo', 'pid=,pgid=,sid=,stat=,args='], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((l) => /^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ pid: Number(m[1]), pgid: Number(m[2]), sid: Number(m[3]), stat: m[4]!, args: m[5]! }))
    .filter((p) => !p.stat.startsWith('Z') && !p.args.startsWith('ps -eo'));
}

/** Live processes of run `pid` (its process group or its session). */
export function runProcesses(pid: number): Proc[] {
  return processes().filter((p) => p.pgid === pid || p.sid === pid);
}

export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts the run staged in `workdir` and follows it to its end: its pid, the result, the log text it brought. */
export async function followToEnd(
  t: Transport,
  workdir: string,
  opts: { pollMs?: number; deadlineMs?: number } = {},
): Promise<{ pid: number; res: FollowResult; text: string }> {
  const pid = await startDetached(t, workdir);
  let text = '';
  const res = await followRun(t, workdir, {
    pid,
    deadline: Date.now() + (opts.deadlineMs ?? 20_000),
    pollMs: opts.pollMs ?? 100,
    onLog: (chunk) => {
      text += chunk;
    },
  });
  return { pid, res, text };
}
