/**
 * The recipe runner: stages a work dir, starts run.sh detached, follows it (log, progress,
 * partial outputs, deadline), kills it, and collects its outputs. It only talks to a Transport, so
 * the local, ssh and vast drivers share it. Every shell command it builds quotes its data.
 * The work is split over stage.ts, lifecycle.ts, follow.ts and collect.ts; this is the facade.
 */
export { collectOutputs, type CollectedOutput } from './collect.js';
export { followRun, LOG_CHUNK_BYTES, type FollowOptions, type FollowResult } from './follow.js';
export { inspectRun, killRun, startDetached, type RunState } from './lifecycle.js';
export { recipeStageFiles, stageRun, type StageArchive, type StageFile } from './stage.js';

export { claimWorkdir, workdirName } from './workdir.js';
