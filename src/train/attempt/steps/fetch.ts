/**
 * FETCHING: the outputs verified against the host's sha256.txt, the orchestrator's own files added
 * (train.log masked, job.json, costs.json, runtime.json), then all uploaded and verified again, and
 * the candidate (what the promotion guard compares with production) written last.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { asRetrainError, OutputContractError } from '../../../errors.js';
import { artifactsId } from '../../../jobspec/build.js';
import { parseMetricsText } from '../../../promotion/metrics.js';
import { collectRun } from '../../../remote/collect.js';
import { maskFile } from '../../../remote/logMask.js';
import type { CollectedOutput } from '../../../remote/runner.js';
import { keys } from '../../../storage/layout.js';
import { EVENTS } from '../../../telemetry/events.js';
import { failpoint } from '../../../util/failpoint.js';
import { formatSha256Txt, sha256File } from '../../../util/hash.js';
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
    await rm(outDir, { recursive: true, force: true });
    await mkdir(outDir, { recursive: true });
    const { outputs, regular } = await collectRun(ctx.lease!.transport, ctx.workdir, outDir, ctx.recipe, [
      'train.log',
    ]);
    await ctx.hooks.afterTraining(ctx.lease!.transport, ctx.workdir, 'succeeded'); // the outputs are safe here first
    failpoint('fetching:collected');
    if (!outputs.some((o) => o.name === 'metrics.json'))
      throw new OutputContractError(`${spec.symbol}: the recipe did not produce metrics.json`);
    const parsed = parseMetricsText(await readFile(join(outDir, 'metrics.json'), 'utf8'));
    if (!parsed.ok)
      throw new OutputContractError(`${spec.symbol}: metrics.json is invalid: ${parsed.reason}`);
    const trainMinutes = await writeOwnFiles(ctx, outDir, regular.includes('train.log'));
    const { artifacts, hashes } = await hashOutputs(ctx, outDir, outputs);
    await upload(ctx, outDir, artifacts, hashes);
    ctx.outcome = { metrics: parsed.metrics as unknown as Record<string, unknown>, trainMinutes, artifacts };
  },
};

/** The orchestrator's own files beside the recipe's outputs; the training's minutes. */
async function writeOwnFiles(ctx: AttemptContext, outDir: string, logIsRegular: boolean): Promise<number> {
  const { spec, facts, workdir } = ctx;
  const endedAt = ctx.now();
  const startedAt = facts.executingSince ? new Date(facts.executingSince) : endedAt;
  const trainMinutes = (endedAt.getTime() - startedAt.getTime()) / 60_000;
  if (!logIsRegular) {
    throw new OutputContractError(`${spec.symbol}: train.log is missing or not a regular file`);
  }
  // Fetched with the outputs (collectRun).
  await maskFile(join(outDir, 'train.log'), ctx.recipeSecrets());
  await writeFile(join(outDir, 'job.json'), stableStringify(spec, 2) + '\n');
  await writeFile(join(outDir, 'costs.json'), JSON.stringify(spec.costs, null, 2) + '\n');
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
  await writeFile(join(outDir, 'runtime.json'), JSON.stringify(runtime, null, 2) + '\n');
  return trainMinutes;
}

/** Every file to store, hashed (and checked against the host's hashes), and sha256.txt written. */
async function hashOutputs(
  ctx: AttemptContext,
  outDir: string,
  outputs: CollectedOutput[],
): Promise<{ artifacts: AttemptOutcome['artifacts']; hashes: Record<string, string> }> {
  const names = [
    ...new Set([...outputs.map((o) => o.name), 'train.log', 'job.json', 'costs.json', 'runtime.json']),
  ].sort();
  const hashes: Record<string, string> = {};
  const artifacts: AttemptOutcome['artifacts'] = [];
  for (const name of names) {
    const { sha256, bytes } = await sha256File(join(outDir, name));
    const expected = outputs.find((o) => o.name === name)?.sha256;
    if (expected && expected !== sha256) {
      throw new OutputContractError(`${ctx.spec.symbol}: ${name} changed after verification`);
    }
    hashes[name] = sha256;
    artifacts.push({ name, sha256, bytes });
  }
  await writeFile(join(outDir, 'sha256.txt'), formatSha256Txt(hashes));
  return { artifacts, hashes };
}

async function upload(
  ctx: AttemptContext,
  outDir: string,
  artifacts: AttemptOutcome['artifacts'],
  hashes: Record<string, string>,
): Promise<void> {
  const { spec, store } = ctx;
  try {
    // A few at a time: each put is a verified copy (fsynced locally, a request to S3/R2) whose
    // wait is mostly I/O. The manifest follows the artifacts, the candidate follows both.
    const limit = pLimit(UPLOAD_CONCURRENCY);
    await Promise.all(
      artifacts.map((a) =>
        limit(() => store.putFile(keys.artifact(artifactsId(spec), a.name), join(outDir, a.name), a.sha256)),
      ),
    );
    await store.putFile(keys.artifact(artifactsId(spec), 'sha256.txt'), join(outDir, 'sha256.txt'));
    await Promise.all(
      (['model.bin', 'metrics.json'] as const).map((name) =>
        store.putFile(keys.candidate(spec.symbol, spec.date, name), join(outDir, name), hashes[name]),
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
