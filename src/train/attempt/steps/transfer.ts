/**
 * TRANSFERRING: dataset, costs, job spec, recipe and (on a retry) the checkpoint to resume from,
 * staged on the host and hash-verified there. A host that already has them is sent nothing.
 */
import { mkdir } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { asRetrainError, ChecksumError } from '../../../errors.js';
import { DIRECT_FROM_BYTES, planInputs, type InputFile } from '../../../remote/inputs.js';
import { buildRunScript } from '../../../remote/runScript.js';
import { claimWorkdir, recipeStageFiles, stageRun, type StageFile } from '../../../remote/runner.js';
import { EVENTS } from '../../../telemetry/events.js';
import { failpoint } from '../../../util/failpoint.js';
import { sha256Hex } from '../../../util/hash.js';
import { stableStringify } from '../../../util/stableJson.js';
import { checkpointKeys, readResumePoint } from '../../checkpoints.js';
import { reached } from '../../states.js';
import type { TrainFacts } from '../../types.js';
import type { AttemptContext } from '../context.js';
import { resumeBooked } from '../record.js';
import type { Step } from './step.js';

type ResumePoint = NonNullable<TrainFacts['resumedFrom']>;

export const transfer: Step = {
  name: 'TRANSFERRING',
  holds: (ctx) => reached(ctx.state, 'EXECUTING') && !!ctx.facts.workdir,
  async ensure(ctx) {
    const { spec, stagingDir, facts } = ctx;
    const t = ctx.lease!.transport;
    // A work dir claimed now is new and empty; one from the facts (a retry on this host, a
    // reattach) may hold inputs already, which staging then does not send again.
    const fresh = !facts.workdir;
    const workdir =
      facts.workdir ?? (await claimWorkdir(t, ctx.lease!.info.workRoot, spec.symbol, ctx.now()));
    await ctx.enter('TRANSFERRING', { workdir });
    // The staging dir is made by whatever first needs it (a large dataset, a checkpoint, a tar too
    // big for memory): a symbol whose inputs are small writes nothing here.
    await ctx.hooks.beforeStaging(t, ctx.lease!.info, workdir);
    // Small inputs travel as one deterministic tar (same inputs, same bytes, same SHA-256), a
    // large dataset as itself; a host that already has them (a retry on the same host, a
    // reattach) is sent nothing. Small ones are packed from memory, never staged here first.
    // Locally a file costs no round trip, so each input goes as itself (no tar to make or open).
    const planned = await planInputs(
      [
        await datasetInput(ctx),
        { name: 'costs.json', data: Buffer.from(JSON.stringify(spec.costs, null, 2) + '\n') },
        { name: 'job.json', data: Buffer.from(stableStringify(spec, 2) + '\n') },
      ],
      {
        tarPath: join(stagingDir, 'inputs.tar'),
        tarRel: 'inputs.tar',
        into: 'inputs',
        pack: t.kind !== 'local',
      },
    );
    const files: StageFile[] = [
      ...planned.files,
      ...(await recipeStageFiles(ctx.recipe)),
      ...(await ctx.hooks.extraInputs()),
    ];
    const resumedFrom = await resumePoint(ctx);
    if (resumedFrom) {
      files.push({
        localPath: join(stagingDir, 'resume', resumedFrom.name),
        remoteRel: `inputs/resume/${resumedFrom.name}`,
        sha256: resumedFrom.sha256,
      });
    }
    const ckptDef = ctx.recipe.def.checkpoints;
    const script = buildRunScript(ctx.recipe, {
      workdir,
      outdir: `${workdir}/out`,
      recipeDir: `${workdir}/recipe`,
      dataset: `${workdir}/inputs/features.csv`,
      costs: `${workdir}/inputs/costs.json`,
      symbol: spec.symbol,
      date: spec.date,
      featureset: spec.featureset,
      jobId: spec.jobId,
      ...(ckptDef ? { checkpointDir: posix.join(workdir, posix.dirname(ckptDef.path)) } : {}),
      resumeFrom: resumedFrom ? `${workdir}/inputs/resume/${resumedFrom.name}` : '',
    });
    await stageRun(t, { workdir, files, archives: planned.archive ? [planned.archive] : [], script, fresh });
    if (resumedFrom && !ctx.facts.resumeBooked) {
      await resumeBooked(ctx, resumedFrom);
      await ctx.save({ resumeBooked: true });
    }
    failpoint('transferring:staged');
    ctx.log.info(
      { event: EVENTS.inputsStaged, bytes: planned.bytes, sha256: planned.entries },
      `${spec.symbol} inputs staged and verified on the host`,
    );
    ctx.checkDeadline();
  },
};

/**
 * The dataset, verified against the plan's SHA-256: one small enough to be packed is read into
 * memory, a larger one is downloaded into the staging directory (it travels as itself).
 */
async function datasetInput(ctx: AttemptContext): Promise<InputFile> {
  const { key, sha256, bytes } = ctx.spec.dataset;
  if (bytes >= DIRECT_FROM_BYTES) {
    const path = join(ctx.stagingDir, 'features.csv');
    await ctx.store.getFile(key, path, sha256);
    return { name: 'features.csv', path, sha256 };
  }
  const data = await ctx.store.getBytes(key);
  const got = sha256Hex(data);
  if (got !== sha256) throw new ChecksumError(`checksum mismatch for ${key}: expected ${sha256}, got ${got}`);
  return { name: 'features.csv', data, sha256 };
}

/**
 * A retry resumes from the newest checkpoint an earlier attempt of this run stored: chosen once
 * (saved in the facts) and fetched into the staging directory. One gone or damaged in the store
 * means a fresh start, which is what the training would do without it.
 */
async function resumePoint(ctx: AttemptContext): Promise<ResumePoint | undefined> {
  const { spec, stagingDir } = ctx;
  if (ctx.recipe.def.checkpoints && !ctx.facts.resumedFrom) {
    const point = await readResumePoint(ctx.store, spec.jobId, ctx.runId, ctx.log);
    if (point) {
      await ctx.save({
        resumedFrom: { name: point.name, sha256: point.sha256, trainedSec: point.trainedSec },
      });
    }
  }
  const resumedFrom = ctx.facts.resumedFrom;
  if (!resumedFrom) return undefined;
  await mkdir(join(stagingDir, 'resume'), { recursive: true });
  try {
    await ctx.store.getFile(
      checkpointKeys.file(spec.jobId, resumedFrom.name),
      join(stagingDir, 'resume', resumedFrom.name),
      resumedFrom.sha256,
    );
    return resumedFrom;
  } catch (err) {
    ctx.log.warn(
      { event: EVENTS.checkpointUnusable, file: resumedFrom.name, err: asRetrainError(err).message },
      `${spec.symbol} cannot use checkpoint ${resumedFrom.name}; starting from zero`,
    );
    await ctx.save({ resumedFrom: undefined });
    return undefined;
  }
}
