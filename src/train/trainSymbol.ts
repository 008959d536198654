import { appendFile, mkdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import pLimit from 'p-limit';
import type { Logger } from 'pino';
import type { ComputeProvider, Lease, LeaseInfo } from '../compute/provider.js';
import { hostGoneError } from '../compute/lost.js';
import { leaseCostUsd } from '../compute/reap.js';
import { workdirFor } from '../compute/local.js';
import type { Config } from '../config/schema.js';
import {
  BudgetExceededError,
  CancelledError,
  RunCancelledError,
  ConnectionLostError,
  DiskSpaceError,
  UnhealthyHostError,
  HostLostError,
  HungError,
  OutputContractError,
  PreemptedError,
  RecipeError,
  TimeoutError,
  TrainingFailedError,
  asRetrainError,
} from '../errors.js';
import { artifactsId } from '../jobspec/build.js';
import type { Ledger } from '../ledger/ledger.js';
import { parseMetricsText } from '../promotion/metrics.js';
import { loadRecipe, shippedRecipesDir } from '../recipes/loader.js';
import { rentalImage } from '../recipes/image.js';
import { maskedSecretNames, secretEnv } from '../recipes/secrets.js';
import { buildRunScript, RECIPE_HEARTBEAT } from '../remote/runScript.js';
import { regularFiles } from '../remote/collect.js';
import { LogMask, maskFile } from '../remote/logMask.js';
import { planInputs } from '../remote/inputs.js';
import {
  collectOutputs,
  followRun,
  killRun,
  recipeStageFiles,
  stageRun,
  startDetached,
} from '../remote/runner.js';
import { keys } from '../storage/layout.js';
import type { ArtifactStore } from '../storage/store.js';
import { EVENTS, stateEvent } from '../telemetry/events.js';
import { formatSha256Txt, parseSha256Txt, sha256File } from '../util/hash.js';
import { failpoint } from '../util/failpoint.js';
import { stableStringify } from '../util/stableJson.js';
import { CheckpointSync, checkpointKeys, readResumePoint } from './checkpoints.js';
import { capacityRecorder } from './capacity.js';
import { RecipeHooks } from './recipeHooks.js';
import type { RunSpend } from './spend.js';
import type { JobHandle, TrainFacts, TrainResult, TrainState } from './types.js';

export interface TrainDeps {
  config: Config;
  store: ArtifactStore;
  ledger: Ledger;
  provider: ComputeProvider;
  logger: Logger;
  /** Aborted on shutdown: stops our waiting, never the remote training. */
  signal: AbortSignal;
  /** Aborted when the user cancels the run: the training is killed, the host given back. */
  cancel?: AbortSignal;
  /** Secret values for the recipe's `secrets:` names (from the orchestrator's env). */
  secretEnv?: NodeJS.ProcessEnv;
  /** What each run has spent on rentals (needed for a run with a budget). */
  spend?: RunSpend;
  now?: () => Date;
}

const ORDER: TrainState[] = [
  'PENDING',
  'PROVISIONING',
  'TRANSFERRING',
  'EXECUTING',
  'FETCHING',
  'RELEASING',
  'SUCCEEDED',
];

/** Consecutive connection losses, with no log progress between them, before an attempt gives up. */
const MAX_FOLLOW_DROPS = 5;
/** Store uploads in flight at once while a symbol's artifacts are stored. */
const UPLOAD_CONCURRENCY = 4;

function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

function reached(current: TrainState | undefined, target: TrainState): boolean {
  return ORDER.indexOf(current ?? 'PENDING') >= ORDER.indexOf(target);
}

/**
 * Runs (or resumes) one attempt of one symbol's training. Every step is an "ensure": state and
 * the facts a later step needs are persisted before that step, so a worker that picks up a stalled
 * job reattaches to the same host and the same remote process instead of starting again.
 *
 * Throws a RetrainError on failure; the lease is released on every path except cancellation
 * (a deploy hands the job back without touching the remote training).
 */
export async function trainSymbol(job: JobHandle, deps: TrainDeps): Promise<TrainResult> {
  const { config, store, ledger, provider } = deps;
  const signal = deps.cancel ? AbortSignal.any([deps.signal, deps.cancel]) : deps.signal;
  const now = deps.now ?? (() => new Date());
  const spec = job.data.spec;
  const log = deps.logger.child({
    runId: job.data.runId,
    symbol: spec.symbol,
    jobId: spec.jobId,
    attempt: job.attempt,
  });
  const home = config.home;
  const stagingDir = join(home, 'staging', spec.jobId, `attempt-${job.attempt}`);
  const trainingLog = join(home, 'logs', `${spec.date}Z`, spec.symbol, 'training.log');

  // A new attempt starts from PENDING with fresh facts; a resumed one keeps them.
  const fresh = job.data.attempt !== job.attempt;
  let state: TrainState = fresh ? 'PENDING' : (job.data.state ?? 'PENDING');
  let facts: TrainFacts = fresh ? {} : { ...(job.data.facts ?? {}) };

  const enter = async (next: TrainState, patch: Partial<TrainFacts> = {}) => {
    state = next;
    facts = { ...facts, ...patch, stateSince: now().toISOString() };
    // Independent writes, sent together (one round trip's wait, not four); a crash between them
    // leaves the job data, which a resume goes by, and the displays in any mix, as before.
    await Promise.all([
      job.save({ state, attempt: job.attempt, facts }),
      ledger.update(spec.date, spec.symbol, { state: next }),
      job.progress({ state: next }),
      job.log(`${now().toISOString()} ${next}`),
    ]);
    log.info({ event: stateEvent(next), state: next }, `${spec.symbol} ${next}`);
    failpoint(`enter:${next}`);
  };
  const saveFacts = async (patch: Partial<TrainFacts>) => {
    facts = { ...facts, ...patch };
    await job.save({ state, attempt: job.attempt, facts });
  };

  if (fresh) {
    const startedAt = now().toISOString();
    await ledger.update(
      spec.date,
      spec.symbol,
      {
        status: 'running',
        attempts: job.attempt,
        jobId: spec.jobId,
        runId: job.data.runId,
        startedAt,
        reason: undefined,
        error: undefined,
      },
      { appendHistory: { attempt: job.attempt, startedAt } },
    );
    log.info(
      { event: EVENTS.coinStarted, driver: spec.driver },
      `${spec.symbol} started (attempt ${job.attempt}/${job.maxAttempts})`,
    );
    await enter('PENDING', {
      attemptStartedAt: startedAt,
      deadline: Date.now() + spec.timeoutMinutes * 60_000,
    });
  } else {
    log.info({ event: 'training.resumed', state }, `${spec.symbol} resuming at ${state}`);
  }
  const deadline = facts.deadline ?? Date.now() + spec.timeoutMinutes * 60_000;
  const runLimit = (info: LeaseInfo) => {
    const rentalEnd =
      info.driver === 'vast' ? Date.parse(info.acquiredAt) + config.vast.maxRuntimeMin * 60_000 : Infinity;
    return rentalEnd < deadline
      ? { deadline: rentalEnd, timeLimitMs: config.vast.maxRuntimeMin * 60_000 }
      : { deadline, timeLimitMs: spec.timeoutMinutes * 60_000 };
  };
  const checkDeadline = () => {
    if (deps.cancel?.aborted)
      throw new RunCancelledError(`${spec.symbol}: run ${job.data.runId} was cancelled`);
    if (Date.now() > deadline)
      throw new TimeoutError(`${spec.symbol}: attempt exceeded its time limit of ${spec.timeoutMinutes} min`);
  };

  const recipe = await loadRecipe(spec.recipe.ref, {
    recipesDir: shippedRecipesDir(),
    overrides: spec.recipe.vars,
  });
  if (recipe.sha256 !== spec.recipe.sha256) {
    throw new RecipeError(
      `recipe ${recipe.file} changed since the run was planned (sha256 differs); re-plan the run`,
    );
  }

  /** The recipe's secret values set here: masked in every copy of its log that retrain keeps. */
  const recipeSecrets = () =>
    maskedSecretNames(recipe.def)
      .map((name) => (deps.secretEnv ?? process.env)[name])
      .filter((v) => v !== undefined);

  const hooks = new RecipeHooks(recipe, spec, {
    store,
    log,
    stagingDir,
    secretSource: deps.secretEnv ?? process.env,
  });
  let lease: Lease | null = null;
  let cancelled = false;
  const ckptDef = recipe.def.checkpoints;
  let ckpt: CheckpointSync | undefined;
  /** After a failure: whether it was the recipe's, on a sound host (which another symbol may reuse). */
  let hostSound = false;
  /** Books what a lease cost (per-second billing from acquiredAt) to the symbol and the run. */
  const bookCost = async (info: LeaseInfo) => {
    const cost = leaseCostUsd(info, now());
    if (cost > 0) {
      const entry = await ledger.getEntry(spec.date, spec.symbol);
      await ledger.update(spec.date, spec.symbol, { costUsd: (entry?.costUsd ?? 0) + cost });
    }
    await deps.spend?.book(job.data.runId, info, cost);
    if (facts.lease?.id === info.id && facts.lease.driver === info.driver)
      await saveFacts({ lease: undefined });
    return cost;
  };
  /**
   * Gives the host back (idempotent) and books its cost once. `reusable`: the host is sound for
   * another symbol (a pooled instance is handed on rather than destroyed).
   */
  const releaseLease = async (info: LeaseInfo, reason = 'released', reusable = reason === 'released') => {
    await provider.release(info, { reusable });
    const cost = await bookCost(info);
    // A pooled instance may live on for the next symbol (the pool logs what became of it).
    const event = info.pool ? 'instance.released' : EVENTS.instanceDestroyed;
    log.info(
      { event, driver: info.driver, instance: info.id, costUsd: cost, reason, reusable },
      `${spec.symbol} released ${info.driver} ${info.id}`,
    );
  };
  /** `--budget-usd`: no new rental once the run has spent its budget. */
  const checkBudget = async () => {
    const budget = job.data.budgetUsd;
    if (budget === undefined || !deps.spend) return;
    const spent = await deps.spend.spent(job.data.runId, now());
    if (spent >= budget) {
      throw new BudgetExceededError(
        `${spec.symbol}: run ${job.data.runId} has spent $${spent.toFixed(4)} of its $${budget} budget; no new rental`,
      );
    }
  };
  try {
    if (deps.cancel?.aborted)
      throw new RunCancelledError(`${spec.symbol}: run ${job.data.runId} was cancelled`);
    if (reached(state, 'RELEASING')) {
      // Resumed after the artifacts were uploaded: give the host back (once) and report.
      if (facts.lease) await releaseLease(facts.lease);
      return await reportStored();
    }
    // PROVISIONING — rent or reserve a host; its identity is saved before we wait on it.
    if (facts.lease) {
      lease = await provider.reattach(facts.lease, signal);
      // Gone or unusable (the provider destroyed it): book its time and rent again.
      if (!lease) await releaseLease(facts.lease, 'lost');
    }
    if (!lease) {
      await enter('PROVISIONING');
      lease = await provider.acquire(spec, {
        signal,
        deadline,
        runId: job.data.runId,
        onCapacity: capacityRecorder({ ledger, spec, saveFacts, now }),
        beforeRent: checkBudget,
        ...(spec.driver === 'vast'
          ? { image: rentalImage(recipe, config.vast.image, deps.secretEnv ?? process.env) }
          : {}),
        ...(recipe.def.minCudaVersion ? { minCudaVersion: recipe.def.minCudaVersion } : {}),
        onLeaseCreated: async (info) => {
          await saveFacts({ lease: info });
          await deps.spend?.hold(job.data.runId, info);
          failpoint('provisioning:created');
        },
        onLeaseReleased: async (info) => {
          const cost = await bookCost(info);
          log.info(
            {
              event: EVENTS.instanceDestroyed,
              driver: info.driver,
              instance: info.id,
              costUsd: cost,
              reason: 'boot_failed',
              ...(info.bootFailure ? { detail: info.bootFailure } : {}),
            },
            `${spec.symbol} gave back ${info.driver} ${info.id}: it failed to boot`,
          );
        },
      });
      await saveFacts({ lease: lease.info, workdir: undefined, pid: undefined, logOffset: 0 });
    }
    const t = lease.transport;
    checkDeadline();

    // TRANSFERRING — dataset, costs, job spec and recipe, hash-verified on the host.
    if (!reached(state, 'EXECUTING') || !facts.workdir) {
      const workdir = facts.workdir ?? (await workdirFor(t, lease.info.workRoot, spec.symbol, now()));
      await enter('TRANSFERRING', { workdir });
      await mkdir(stagingDir, { recursive: true });
      await hooks.beforeStaging(t, lease.info, workdir);
      const datasetPath = join(stagingDir, 'features.csv');
      await store.getFile(spec.dataset.key, datasetPath, spec.dataset.sha256);
      const costsPath = join(stagingDir, 'costs.json');
      await writeFile(costsPath, JSON.stringify(spec.costs, null, 2) + '\n');
      const jobPath = join(stagingDir, 'job.json');
      await writeFile(jobPath, stableStringify(spec, 2) + '\n');
      // Small inputs travel as one deterministic tar (same inputs, same bytes, same SHA-256), a
      // large dataset as itself; a host that already has them (a retry on the same host, a
      // reattach) is sent nothing.
      const planned = await planInputs(
        [
          { name: 'features.csv', path: datasetPath, sha256: spec.dataset.sha256 },
          { name: 'costs.json', path: costsPath },
          { name: 'job.json', path: jobPath },
        ],
        { tarPath: join(stagingDir, 'inputs.tar'), tarRel: 'inputs.tar', into: 'inputs' },
      );
      const files = [...planned.files, ...(await recipeStageFiles(recipe)), ...(await hooks.extraInputs())];
      // A retry resumes from the newest checkpoint an earlier attempt of this run stored.
      if (ckptDef && !facts.resumedFrom) {
        const point = await readResumePoint(store, spec.jobId, job.data.runId, log);
        if (point) {
          await saveFacts({
            resumedFrom: { name: point.name, sha256: point.sha256, trainedSec: point.trainedSec },
          });
        }
      }
      let resumedFrom = facts.resumedFrom;
      const resumeLocal = resumedFrom ? join(stagingDir, 'resume', resumedFrom.name) : '';
      if (resumedFrom) {
        await mkdir(join(stagingDir, 'resume'), { recursive: true });
        try {
          await store.getFile(
            checkpointKeys.file(spec.jobId, resumedFrom.name),
            resumeLocal,
            resumedFrom.sha256,
          );
        } catch (err) {
          // Gone or damaged in the store: a fresh start is what the training would do without it.
          log.warn(
            { event: 'checkpoint.unusable', file: resumedFrom.name, err: asRetrainError(err).message },
            `${spec.symbol} cannot use checkpoint ${resumedFrom.name}; starting from zero`,
          );
          resumedFrom = undefined;
          await saveFacts({ resumedFrom: undefined });
        }
      }
      if (resumedFrom) {
        const local = resumeLocal;
        files.push({
          localPath: local,
          remoteRel: `inputs/resume/${resumedFrom.name}`,
          sha256: resumedFrom.sha256,
        });
      }
      const script = buildRunScript(recipe, {
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
      await stageRun(t, { workdir, files, archives: planned.archive ? [planned.archive] : [], script });
      if (resumedFrom && !facts.resumeBooked) {
        const savedMin = resumedFrom.trainedSec / 60;
        const entry = await ledger.getEntry(spec.date, spec.symbol);
        await ledger.update(
          spec.date,
          spec.symbol,
          { resumeSavedMin: Math.round(((entry?.resumeSavedMin ?? 0) + savedMin) * 1000) / 1000 },
          { patchLastHistory: { resumedFromMin: Math.round(savedMin * 1000) / 1000 } },
        );
        await saveFacts({ resumeBooked: true });
        log.info(
          { event: 'checkpoint.resume', file: resumedFrom.name, trainedSec: resumedFrom.trainedSec },
          `${spec.symbol} resumes from checkpoint ${resumedFrom.name} (${savedMin.toFixed(1)} training min not redone)`,
        );
      }
      failpoint('transferring:staged');
      log.info(
        { event: 'inputs.staged', bytes: planned.bytes, sha256: planned.entries },
        `${spec.symbol} inputs staged and verified on the host`,
      );
      checkDeadline();
    }
    const workdir = facts.workdir!;

    // EXECUTING — detached from this process; a reattach finds the same pid.
    if (!reached(state, 'FETCHING')) {
      if (state !== 'EXECUTING') await enter('EXECUTING', { executingSince: now().toISOString() });
      const env = secretEnv(recipe, deps.secretEnv ?? process.env);
      const pid = await startDetached(t, workdir, { env });
      if (facts.pid !== pid) await saveFacts({ pid });
      failpoint('executing:started');
      await mkdir(join(home, 'logs', `${spec.date}Z`, spec.symbol), { recursive: true });
      // The local training.log holds this attempt's log from localLogBase on. A worker that died
      // after appending but before saving the offset left bytes we will read again: cut them.
      const localSize = await fileSize(trainingLog);
      if (facts.localLogBase === undefined) await saveFacts({ localLogBase: localSize });
      const expected = facts.localLogBase! + (facts.logOffset ?? 0);
      if (localSize > expected) await truncate(trainingLog, expected);
      // What retrain keeps of the log never holds the recipe's secrets, should it print them. Bytes
      // that may begin a secret wait for the next chunk; the saved offset stays before them.
      const mask = new LogMask(recipeSecrets());
      const partialSaved = new Set(facts.partialSaved ?? []);
      let lastSave = Date.now();
      // The connection may drop while the training runs on: reconnect and follow on from the last
      // byte of log we kept (no gap, no repeat). Several drops in a row with no progress end the
      // attempt (retryable), so a host that is really gone is replaced.
      let followed: { exitCode: number; logOffset: number } | undefined;
      let drops = 0;
      // A host can die under the training (a Vast instance that exits): ask the provider now and
      // then, and give up following as soon as it says the host is gone.
      const hostLost = new AbortController();
      const healthTimer = provider.isAlive
        ? setInterval(() => {
            const info = lease!.info;
            provider.isAlive!(info).then(
              (alive) => {
                if (!alive) hostLost.abort();
              },
              () => undefined,
            );
          }, config.vast.healthCheckSec * 1000)
        : undefined;
      healthTimer?.unref();
      // A training that is alive but shows no sign of work (no log, no progress, no touch of its
      // heartbeat file) for heartbeatStaleMin is hung: stop following, and the catch kills it.
      const hung = new AbortController();
      let lastActivity = Date.now();
      let lastBeat: number | undefined;
      const staleMs = config.train.heartbeatStaleMin * 60_000;
      const beatPath = `${workdir}/${RECIPE_HEARTBEAT}`;
      const staleTimer = setInterval(
        () => {
          t.stat(beatPath).then(
            (st) => {
              if (st && st.mtimeMs !== lastBeat) {
                if (lastBeat !== undefined) lastActivity = Date.now();
                lastBeat = st.mtimeMs;
              }
              if (Date.now() - lastActivity > staleMs) hung.abort();
            },
            () => undefined,
          );
        },
        Math.min(30_000, Math.max(250, staleMs / 4)),
      );
      staleTimer.unref();
      const followSignal = AbortSignal.any([signal, hostLost.signal, hung.signal]);
      // Checkpoints are copied back while the training runs, on the same connection, one at a time.
      const ckptStop = new AbortController();
      let ckptLoop: Promise<void> | undefined;
      if (ckptDef) {
        const sync = new CheckpointSync({
          transport: t,
          workdir,
          path: ckptDef.path,
          store,
          jobId: spec.jobId,
          runId: job.data.runId,
          attempt: job.attempt,
          stagingDir,
          baseTrainedSec: facts.resumedFrom?.trainedSec ?? 0,
          startedAtMs: Date.parse(facts.executingSince ?? now().toISOString()),
          // The store unreachable now must not fail a training that has started: sync from scratch.
          previous: await readResumePoint(store, spec.jobId, job.data.runId, log).catch(() => null),
          log,
        });
        ckpt = sync;
        const stopOrGone = AbortSignal.any([ckptStop.signal, followSignal]);
        ckptLoop = (async () => {
          for (;;) {
            await sleepUnlessAborted(ckptDef.every * 1000, stopOrGone);
            if (stopOrGone.aborted) return;
            await sync
              .tick()
              .catch((e: unknown) =>
                log.warn(
                  { event: 'checkpoint.sync_failed', err: asRetrainError(e).message },
                  `${spec.symbol} could not sync a checkpoint; the training goes on`,
                ),
              );
          }
        })();
      }
      const stopSync = hooks.startSync(t, workdir);
      try {
        while (!followed) {
          const offsetBefore = facts.logOffset ?? 0;
          mask.reset(); // a follow after a drop reads again from facts.logOffset
          try {
            const res = await followRun(t, workdir, {
              pid,
              // A rental never outlives maxRuntimeMin, whatever the symbol's own time limit.
              ...runLimit(lease.info),
              signal: followSignal,
              pollMs: config.train.pollMs,
              logOffset: facts.logOffset ?? 0,
              onLog: async (text, readTo, raw) => {
                const kept = mask.empty ? raw : mask.push(raw);
                const newOffset = readTo - mask.heldBytes;
                await appendFile(trainingLog, kept);
                const lines = kept === raw ? text : kept.toString('utf8');
                for (const line of lines.split('\n').slice(0, 50))
                  if (line.trim()) await job.log(line.slice(0, 2000));
                if (Date.now() - lastSave > 5000) {
                  lastSave = Date.now();
                  await saveFacts({ logOffset: newOffset });
                }
                facts.logOffset = newOffset;
                lastActivity = Date.now();
              },
              onProgress: (p) => {
                lastActivity = Date.now();
                void job.progress({ state: 'EXECUTING', ...p }).catch(() => undefined);
              },
              partial: (recipe.def.partial ?? []).filter((n) => !partialSaved.has(n)),
              onPartial: async (name) => {
                const local = join(stagingDir, 'partial', name);
                await mkdir(join(stagingDir, 'partial'), { recursive: true });
                await t.getFile(`${workdir}/out/${name}`, local);
                await store.putFile(keys.artifact(artifactsId(spec), name), local);
                partialSaved.add(name);
                await saveFacts({ partialSaved: [...partialSaved] });
                log.info(
                  { event: EVENTS.coinPartialSaved, file: name },
                  `${spec.symbol} partial output saved: ${name}`,
                );
              },
            });
            followed = res;
          } catch (err) {
            if (hung.signal.aborted && !signal.aborted) {
              log.warn(
                { event: 'training.hung', staleMin: config.train.heartbeatStaleMin },
                `${spec.symbol}: no log, progress or heartbeat for ${config.train.heartbeatStaleMin} min; killing it`,
              );
              throw new HungError(
                `${spec.symbol}: training gave no sign of work for ${config.train.heartbeatStaleMin} min (hung); killed`,
                { cause: err },
              );
            }
            if (hostLost.signal.aborted && !signal.aborted) {
              throw hostGoneError(provider, spec.symbol, lease.info, err);
            }
            if (!(err instanceof ConnectionLostError) || signal.aborted) throw err;
            drops = (facts.logOffset ?? 0) > offsetBefore ? 1 : drops + 1;
            if (drops > MAX_FOLLOW_DROPS || Date.now() > deadline) throw err;
            log.warn(
              { event: 'ssh.connection_lost', err: err.message, drops },
              `${spec.symbol} lost the connection while following the training; reconnecting`,
            );
            await sleepUnlessAborted(Math.min(1000 * 2 ** (drops - 1), 15_000), followSignal);
          }
        }
      } finally {
        if (healthTimer) clearInterval(healthTimer);
        clearInterval(staleTimer);
        ckptStop.abort();
        // A sync under way on a host that is gone would only fail late: let it, in the background.
        if (!followSignal.aborted) await Promise.all([ckptLoop, stopSync()]);
        else void stopSync();
      }
      const { exitCode, logOffset } = followed;
      const rest = mask.flush();
      if (rest.length) {
        await appendFile(trainingLog, rest);
        const line = rest.toString('utf8');
        if (line.trim()) await job.log(line.slice(0, 2000));
      }
      await saveFacts({ logOffset });
      if (t.reconnects) {
        log.warn(
          { event: 'ssh.reconnected', reconnects: t.reconnects, host: lease.info.host },
          `${spec.symbol} lost its SSH connection ${t.reconnects} time(s) and reconnected; the training ran on`,
        );
      }
      if (exitCode === 124) throw new TimeoutError(`${spec.symbol}: a recipe step exceeded its timeoutSec`);
      if (exitCode !== 0)
        throw new TrainingFailedError(
          exitCode,
          `${spec.symbol}: recipe exited with code ${exitCode} (see training.log)`,
        );
    }

    // FETCHING — outputs verified against the host's sha256.txt, then uploaded and verified again.
    if (!reached(state, 'RELEASING')) {
      await enter('FETCHING');
      const outDir = join(stagingDir, 'out');
      await rm(outDir, { recursive: true, force: true });
      await mkdir(outDir, { recursive: true });
      const outputs = await collectOutputs(t, workdir, outDir, recipe);
      await hooks.afterTraining(t, workdir, 'succeeded'); // the outputs are safe here first
      failpoint('fetching:collected');
      const metricsFile = outputs.find((o) => o.name === 'metrics.json');
      if (!metricsFile)
        throw new OutputContractError(`${spec.symbol}: the recipe did not produce metrics.json`);
      const parsed = parseMetricsText(await readFile(join(outDir, 'metrics.json'), 'utf8'));
      if (!parsed.ok)
        throw new OutputContractError(`${spec.symbol}: metrics.json is invalid: ${parsed.reason}`);

      // The orchestrator's own files.
      const endedAt = now();
      const startedAt = facts.executingSince ? new Date(facts.executingSince) : endedAt;
      const trainMinutes = (endedAt.getTime() - startedAt.getTime()) / 60_000;
      if ((await regularFiles(t, workdir, ['train.log'])).length === 0) {
        throw new OutputContractError(`${spec.symbol}: train.log is missing or not a regular file`);
      }
      await t.getFile(`${workdir}/train.log`, join(outDir, 'train.log'));
      await maskFile(join(outDir, 'train.log'), recipeSecrets());
      await writeFile(join(outDir, 'job.json'), stableStringify(spec, 2) + '\n');
      await writeFile(join(outDir, 'costs.json'), JSON.stringify(spec.costs, null, 2) + '\n');
      await writeFile(
        join(outDir, 'runtime.json'),
        JSON.stringify(
          {
            jobId: spec.jobId,
            runId: job.data.runId,
            attempt: job.attempt,
            driver: spec.driver,
            host: lease.info.host,
            workdir,
            attemptStartedAt: facts.attemptStartedAt,
            executingSince: facts.executingSince,
            fetchedAt: endedAt.toISOString(),
            trainMinutes,
            hourlyCostUsd: lease.info.hourlyCostUsd,
          },
          null,
          2,
        ) + '\n',
      );
      const names = [
        ...new Set([...outputs.map((o) => o.name), 'train.log', 'job.json', 'costs.json', 'runtime.json']),
      ].sort();
      const hashes: Record<string, string> = {};
      const artifacts: TrainResult['artifacts'] = [];
      for (const name of names) {
        const { sha256, bytes } = await sha256File(join(outDir, name));
        const expected = outputs.find((o) => o.name === name)?.sha256;
        if (expected && expected !== sha256) {
          throw new OutputContractError(`${spec.symbol}: ${name} changed after verification`);
        }
        hashes[name] = sha256;
        artifacts.push({ name, sha256, bytes });
      }
      await writeFile(join(outDir, 'sha256.txt'), formatSha256Txt(hashes));
      try {
        // A few at a time: each put is a verified copy (fsynced locally, a request to S3/R2) whose
        // wait is mostly I/O. The manifest follows the artifacts, the candidate follows both.
        const limit = pLimit(UPLOAD_CONCURRENCY);
        await Promise.all(
          artifacts.map((a) =>
            limit(() =>
              store.putFile(keys.artifact(artifactsId(spec), a.name), join(outDir, a.name), a.sha256),
            ),
          ),
        );
        await store.putFile(keys.artifact(artifactsId(spec), 'sha256.txt'), join(outDir, 'sha256.txt'));
        // The candidate: what the promotion guard compares with production.
        await Promise.all(
          (['model.bin', 'metrics.json'] as const).map((name) =>
            store.putFile(keys.candidate(spec.symbol, spec.date, name), join(outDir, name), hashes[name]),
          ),
        );
      } catch (err) {
        log.error(
          { event: EVENTS.uploadFailed, err: asRetrainError(err).message },
          `${spec.symbol} upload failed`,
        );
        throw err;
      }
      log.info(
        {
          event: EVENTS.uploadSucceeded,
          files: artifacts.length,
          prefix: keys.artifactsPrefix(artifactsId(spec)),
        },
        `${spec.symbol} artifacts uploaded`,
      );

      await enter('RELEASING');
      const held = lease;
      lease = null;
      // The artifacts are stored and verified: a host that cannot be given back now (the API down)
      // does not undo the training. It is still in facts.lease, so `finally` tries once more, and
      // it keeps its label, so the reaper destroys it once its job has ended.
      await releaseLease(held.info).catch((e) =>
        log.error(
          { event: 'instance.release_failed', instance: held.info.id, err: asRetrainError(e).message },
          `${spec.symbol} could not release ${held.info.driver} ${held.info.id} after storing its artifacts`,
        ),
      );
      failpoint('releasing:released');
      await held.transport.close().catch(() => undefined);
      await rm(stagingDir, { recursive: true, force: true });
      await enter('SUCCEEDED');
      return {
        symbol: spec.symbol,
        date: spec.date,
        jobId: spec.jobId,
        metricsKey: keys.artifact(artifactsId(spec), 'metrics.json'),
        metrics: parsed.metrics as unknown as Record<string, unknown>,
        trainMinutes,
        artifacts,
      };
    }
    throw new OutputContractError(`${spec.symbol}: resumed in an unexpected state ${state}`);
  } catch (err) {
    hostSound =
      err instanceof TrainingFailedError || err instanceof OutputContractError || err instanceof RecipeError;
    const runCancelled = deps.cancel?.aborted === true;
    if (lease && (err instanceof UnhealthyHostError || err instanceof DiskSpaceError))
      await provider.markUnsound?.(lease.info).catch(() => undefined);
    cancelled = !runCancelled && (err instanceof CancelledError || signal.aborted);
    if (!cancelled && ckpt && lease && state === 'EXECUTING' && err instanceof HungError) {
      // Alive but stuck, on a host that answers: one last look for a newer checkpoint before the
      // training is killed (a writer that died mid-write could leave a torn file, so only here).
      await ckpt.tick().catch(() => undefined);
    }
    if (!cancelled && lease && facts.pid && facts.workdir && state === 'EXECUTING') {
      // A failed attempt must leave no training behind (a timeout has already killed it).
      await killRun(lease.transport, facts.workdir, facts.pid).catch(() => undefined);
    }
    if (
      !cancelled &&
      lease &&
      facts.workdir &&
      reached(state, 'EXECUTING') &&
      !(err instanceof HostLostError || err instanceof PreemptedError)
    ) {
      await hooks.afterTraining(lease.transport, facts.workdir, 'failed');
    }
    if (!cancelled && lease && facts.workdir && reached(state, 'EXECUTING')) {
      // A failure must be diagnosable from the store alone: keep the attempt's log and partials.
      await keepFailedAttempt(lease, facts.workdir).catch((e) =>
        log.warn(
          { event: 'attempt.logs_not_kept', err: asRetrainError(e).message },
          `${spec.symbol} could not store the failed attempt's log`,
        ),
      );
    }
    if (runCancelled && !(err instanceof RunCancelledError)) {
      throw new RunCancelledError(`${spec.symbol}: run ${job.data.runId} was cancelled; training stopped`, {
        cause: err,
      });
    }
    throw cancelled && !(err instanceof CancelledError)
      ? new CancelledError('worker shutting down', { cause: err })
      : err;
  } finally {
    // Every path but a hand-over gives back what this attempt holds, including a lease recorded
    // before a crash that could not be reattached to.
    const held = lease?.info ?? facts.lease;
    if (held && !cancelled) {
      await releaseLease(held, 'attempt_failed', hostSound).catch((e) =>
        log.error(
          { event: 'instance.release_failed', instance: held.id, err: asRetrainError(e).message },
          `${spec.symbol} could not release ${held.driver} ${held.id}; the reaper will`,
        ),
      );
    }
    if (lease) await lease.transport.close().catch(() => undefined);
  }

  /**
   * Copies a failed attempt's train.log and whatever partial outputs exist to
   * `ml-artifacts/<jobId>/attempts/<n>/` (best effort; bounded in time by the transport's own limits).
   */
  async function keepFailedAttempt(held: Lease, workdir: string): Promise<void> {
    const dir = join(stagingDir, 'failed');
    await mkdir(dir, { recursive: true });
    const names = ['train.log', ...(recipe.def.partial ?? []).map((n) => `out/${n}`)];
    const present = new Set(await regularFiles(held.transport, workdir, names));
    const kept: string[] = [];
    for (const rel of names.filter((n) => present.has(n))) {
      const remote = `${workdir}/${rel}`;
      const local = join(dir, rel.replace('/', '_'));
      await held.transport.getFile(remote, local);
      if (rel === 'train.log') await maskFile(local, recipeSecrets());
      await store.putFile(
        keys.artifact(artifactsId(spec), `attempts/${job.attempt}/${rel.split('/').pop()}`),
        local,
      );
      kept.push(rel);
    }
    if (kept.length) {
      log.info(
        {
          event: 'attempt.logs_kept',
          files: kept,
          prefix: `${keys.artifactsPrefix(artifactsId(spec))}attempts/${job.attempt}/`,
        },
        `${spec.symbol} failed attempt ${job.attempt}: ${kept.join(', ')} kept in the store`,
      );
    }
  }

  /** The result of an attempt whose artifacts are already in the store. */
  async function reportStored(): Promise<TrainResult> {
    const metricsText = (await store.getBytes(keys.artifact(artifactsId(spec), 'metrics.json'))).toString(
      'utf8',
    );
    const parsed = parseMetricsText(metricsText);
    if (!parsed.ok)
      throw new OutputContractError(`${spec.symbol}: stored metrics.json is invalid: ${parsed.reason}`);
    const sums = parseSha256Txt(
      (await store.getBytes(keys.artifact(artifactsId(spec), 'sha256.txt'))).toString('utf8'),
    );
    await enter('SUCCEEDED');
    const startedAt = facts.executingSince ? new Date(facts.executingSince).getTime() : Date.now();
    return {
      symbol: spec.symbol,
      date: spec.date,
      jobId: spec.jobId,
      metricsKey: keys.artifact(artifactsId(spec), 'metrics.json'),
      metrics: parsed.metrics as unknown as Record<string, unknown>,
      trainMinutes: (Date.now() - startedAt) / 60_000,
      artifacts: Object.entries(sums).map(([name, sha256]) => ({ name, sha256, bytes: -1 })),
    };
  }
}
