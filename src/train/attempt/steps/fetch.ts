/**
 * FETCHING: the outputs verified against the host's sha256.txt, the orchestrator's own files added
 * (train.log masked, job.json, costs.json, runtime.json), then all uploaded and verified again, and
 * the candidate (what the promotion guard compares with production) written last.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { asRetrainError, OutputContractError } from '../../../errors.js';
import { artifactsId } from '../../../jobspec/build.js';
import { parseMetricsText } from '../../../promotion/metrics.js';
import { collectRun, KEEP_BYTES } from '../../../remote/collect.js';
import { maskBytes, maskFile } from '../../../remote/logMask.js';
import type { CollectedOutput } from '../../../remote/runner.js';
import { keys } from '../../../storage/layout.js';
import { EVENTS } from '../../../telemetry/events.js';
import { failpoint } from '../../../util/failpoint.js';
import { formatSha256Txt, readIfSmall, sha256File, sha256Hex } from '../../../util/hash.js';
import { removeIfPresent } from '../../../util/inPlaceFs.js';
import { Limiter } from '../../../util/limiter.js';
import { stableStringify } from '../../../util/stableJson.js';
import { reached } from '../../states.js';
import type { AttemptContext, AttemptOutcome } from '../context.js';
import type { Step } from './step.js';

/** Store uploads in flight at once while a symbol's artifacts are stored. */
const UPLOAD_CONCURRENCY = 4;

export const fetch: Step = {
  name: 'FETCHING',
  holds: (ctx) => reached(ctx.state, 'RELEASING'),
  async ensure(ctx) {
    const { spec } = ctx;
    await ctx.enter('FETCHING');
    const outDir = join(ctx.stagingDir, 'out');
    // Cleared of an earlier try's files; made again only if a file lands on disk (collectRun).
    await removeIfPresent(outDir);
    // What is read whole stays in memory and is stored from there; only the rest lands in outDir.
    const { outputs, regular, contents, extras } = await collectRun(
      ctx.lease!.transport,
      ctx.workdir,
      outDir,
      ctx.recipe,
      ['train.log'],
      { memoryOnly: true },
    );
    await ctx.hooks.afterTraining(ctx.lease!.transport, ctx.workdir, 'succeeded'); // the outputs are safe here first
    failpoint('fetching:collected');
    if (!outputs.some((o) => o.name === 'metrics.json'))
      throw new OutputContractError(`${spec.symbol}: the recipe did not produce metrics.json`);
    const metricsText = (
      contents.get('metrics.json') ?? (await readFile(join(outDir, 'metrics.json')))
    ).toString('utf8');
    const parsed = parseMetricsText(metricsText);
    if (!parsed.ok)
      throw new OutputContractError(`${spec.symbol}: metrics.json is invalid: ${parsed.reason}`);
    const held = new Map<string, Held>();
    for (const o of outputs) {
      const data = contents.get(o.name);
      if (data) held.set(o.name, { data, sha256: o.sha256 });
    }
    const log = extras.get('train.log');
    const trainMinutes = await writeOwnFiles(ctx, outDir, regular.includes('train.log'), held, log);
    const { artifacts, hashes } = await hashOutputs(ctx, outDir, outputs, held);
    await upload(ctx, outDir, artifacts, hashes, held);
    ctx.outcome = { metrics: parsed.metrics as unknown as Record<string, unknown>, trainMinutes, artifacts };
  },
};

/** A file to store that is in memory, with its SHA-256: stored from there, not read again. */
interface Held {
  data: Buffer;
  sha256: string;
}

/** The orchestrator's own files (held in memory) beside the recipe's outputs; the training's minutes. */
async function writeOwnFiles(
  ctx: AttemptContext,
  outDir: string,
  logIsRegular: boolean,
  held: Map<string, Held>,
  log: Buffer | undefined,
): Promise<number> {
  const { spec, facts, workdir } = ctx;
  const endedAt = ctx.now();
  const startedAt = facts.executingSince ? new Date(facts.executingSince) : endedAt;
  const trainMinutes = (endedAt.getTime() - startedAt.getTime()) / 60_000;
  if (!logIsRegular) {
    throw new OutputContractError(`${spec.symbol}: train.log is missing or not a regular file`);
  }
  // Fetched with the outputs (collectRun): in memory when small, else into outDir.
  if (log) {
    const data = maskBytes(log, ctx.recipeSecrets());
    held.set('train.log', { data, sha256: sha256Hex(data) });
  } else await maskFile(join(outDir, 'train.log'), ctx.recipeSecrets());
  const runtime = {
    jobId: spec.jobId,
    runId: ctx.runId,
    attempt: ctx.job.attempt,
    driver: spec.driver,
    host: ctx.lease!.info.host,
    workdir,
    attemptStartedAt: facts.attemptStartedAt,
    executingSince: facts.executingSince,
    fetchedAt: endedAt.toISOString(),
    trainMinutes,
    hourlyCostUsd: ctx.lease!.info.hourlyCostUsd,
  };
  const own: [string, string][] = [
    ['job.json', stableStringify(spec, 2) + '\n'],
    ['costs.json', JSON.stringify(spec.costs, null, 2) + '\n'],
    ['runtime.json', JSON.stringify(runtime, null, 2) + '\n'],
  ];
  for (const [name, text] of own) {
    const data = Buffer.from(text, 'utf8');
    held.set(name, { data, sha256: sha256Hex(data) });
  }
  return trainMinutes;
}

/**
 * Every file to store, hashed (the outputs checked against the host's hashes), and sha256.txt
 * made. A file in memory is what was verified and is what gets stored; one on disk (train.log, an
 * output too large to hold) is read here, and a small one is held from then on.
 */
async function hashOutputs(
  ctx: AttemptContext,
  outDir: string,
  outputs: CollectedOutput[],
  held: Map<string, Held>,
): Promise<{ artifacts: AttemptOutcome['artifacts']; hashes: Record<string, string> }> {
  const names = [
    ...new Set([...outputs.map((o) => o.name), 'train.log', 'job.json', 'costs.json', 'runtime.json']),
  ].sort();
  const hashes: Record<string, string> = {};
  const artifacts: AttemptOutcome['artifacts'] = [];
  for (const name of names) {
    const { sha256, bytes } = await hashOf(join(outDir, name), name, held);
    const expected = outputs.find((o) => o.name === name)?.sha256;
    if (expected && expected !== sha256) {
      throw new OutputContractError(`${ctx.spec.symbol}: ${name} changed after verification`);
    }
    hashes[name] = sha256;
    artifacts.push({ name, sha256, bytes });
  }
  const manifest = Buffer.from(formatSha256Txt(hashes), 'utf8');
  held.set('sha256.txt', { data: manifest, sha256: sha256Hex(manifest) });
  return { artifacts, hashes };
}

async function hashOf(
  path: string,
  name: string,
  held: Map<string, Held>,
): Promise<{ sha256: string; bytes: number }> {
  const known = held.get(name);
  if (known) return { sha256: known.sha256, bytes: known.data.length };
  const whole = await readIfSmall(path);
  if (!whole) return sha256File(path);
  const sha256 = sha256Hex(whole);
  // Held only within the same bound as the outputs (memory stays bounded); else read again to store.
  let heldBytes = 0;
  for (const h of held.values()) heldBytes += h.data.length;
  if (heldBytes + whole.length <= KEEP_BYTES) held.set(name, { data: whole, sha256 });
  return { sha256, bytes: whole.length };
}

async function upload(
  ctx: AttemptContext,
  outDir: string,
  artifacts: AttemptOutcome['artifacts'],
  hashes: Record<string, string>,
  held: Map<string, Held>,
): Promise<void> {
  const { spec, store } = ctx;
  const put = (key: string, name: string, sha256?: string) => {
    const inMemory = held.get(name);
    return inMemory
      ? store.putBytes(key, inMemory.data, inMemory.sha256)
      : store.putFile(key, join(outDir, name), sha256);
  };
  try {
    // A few at a time: each put is a verified copy (fsynced locally, a request to S3/R2) whose
    // wait is mostly I/O. The manifest follows the artifacts, the candidate follows both.
    const limit = new Limiter(UPLOAD_CONCURRENCY);
    await Promise.all(
      artifacts.map((a) => limit.run(() => put(keys.artifact(artifactsId(spec), a.name), a.name, a.sha256))),
    );
    await put(keys.artifact(artifactsId(spec), 'sha256.txt'), 'sha256.txt');
    await Promise.all(
      (['model.bin', 'metrics.json'] as const).map((name) =>
        put(keys.candidate(spec.symbol, spec.date, name), name, hashes[name]),
      ),
    );
  } catch (err) {
    ctx.log.error(
      { event: EVENTS.uploadFailed, err: asRetrainError(err).message },
      `${spec.symbol} upload failed`,
    );
    throw err;
  }
  ctx.log.info(
    {
      event: EVENTS.uploadSucceeded,
      files: artifacts.length,
      prefix: keys.artifactsPrefix(artifactsId(spec)),
    },
    `${spec.symbol} artifacts uploaded`,
  );
}
