/**
 * What a recipe adds around its training (docs/recipes-byo.md): the disk check and healthcheck
 * before staging, extra store inputs, folders synced to the store during and after the training,
 * and the cleanup after it. One object per attempt, so trainSymbol calls each in one line.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import { asRetrainError } from '../errors.js';
import type { JobSpec } from '../jobspec/types.js';
import type { LoadedRecipe } from '../recipes/loader.js';
import { secretEnv } from '../recipes/secrets.js';
import { fetchExtraInputs } from '../remote/extraInputs.js';
import { checkHostBeforeStaging, runCleanup, type HostStepContext } from '../remote/hostSteps.js';
import { builtinValues, standardRunContext } from '../remote/runScript.js';
import type { StageFile } from '../remote/stage.js';
import { FolderSync } from '../remote/syncFolders.js';
import type { Transport } from '../remote/transport.js';
import type { ArtifactStore } from '../storage/store.js';

export class RecipeHooks {
  private readonly sync: FolderSync | undefined;
  private finished = false;

  constructor(
    private readonly recipe: LoadedRecipe,
    private readonly spec: JobSpec,
    private readonly deps: {
      store: ArtifactStore;
      log: Logger;
      stagingDir: string;
      secretSource: NodeJS.ProcessEnv;
    },
  ) {
    this.sync = recipe.def.sync.length
      ? new FolderSync({
          store: deps.store,
          jobId: spec.jobId,
          folders: recipe.def.sync,
          localDir: join(deps.stagingDir, 'sync'),
        })
      : undefined;
  }

  private stepContext(workdir: string): HostStepContext {
    const ctx = standardRunContext(workdir, {
      datasetName: 'features.csv',
      symbol: this.spec.symbol,
      date: this.spec.date,
      featureset: this.spec.featureset,
      jobId: this.spec.jobId,
    });
    return {
      values: { ...this.recipe.vars, ...builtinValues(ctx) },
      env: { ...this.recipe.def.env, ...secretEnv(this.recipe, this.deps.secretSource) },
    };
  }

  /** minDiskGb and healthcheck (DiskSpaceError / UnhealthyHostError: the host is unsound). */
  async beforeStaging(
    t: Transport,
    lease: { workRoot: string; host: string },
    workdir: string,
  ): Promise<void> {
    const def = this.recipe.def;
    if (def.minDiskGb === undefined && !def.healthcheck) return;
    const r = await checkHostBeforeStaging(t, this.recipe, {
      workRoot: lease.workRoot,
      workdir,
      host: lease.host,
      ...this.stepContext(workdir),
    });
    this.deps.log.info(
      { event: 'host.checked', freeGb: r.freeGb, healthcheck: def.healthcheck !== undefined },
      `${this.spec.symbol} host ${lease.host} passed the recipe's checks`,
    );
  }

  /** The recipe's `inputs:`, downloaded and ready to stage (hash-verified on the host). */
  async extraInputs(): Promise<StageFile[]> {
    if (this.recipe.def.inputs.length === 0) return [];
    const r = await fetchExtraInputs(
      this.deps.store,
      this.recipe.def.inputs,
      this.spec,
      join(this.deps.stagingDir, 'extra-inputs'),
    );
    this.deps.log.info(
      { event: 'inputs.extra', files: r.files.length, bytes: r.bytes, sha256: r.entries },
      `${this.spec.symbol} ${r.files.length} extra input file(s) from the store`,
    );
    return r.files;
  }

  /** Starts pushing the sync folders every few seconds; the returned function stops it. */
  startSync(t: Transport, workdir: string): () => Promise<void> {
    const sync = this.sync;
    if (!sync) return async () => undefined;
    let running: Promise<void> = Promise.resolve();
    const timer = setInterval(() => {
      running = running.then(() => this.pushOnce(t, workdir, false));
    }, sync.everySec * 1000);
    timer.unref();
    return async () => {
      clearInterval(timer);
      await running;
    };
  }

  private async pushOnce(t: Transport, workdir: string, final: boolean): Promise<void> {
    if (!this.sync) return;
    try {
      const r = await this.sync.push(t, workdir);
      if (r.pushed.length || r.failed.length || final)
        this.deps.log[r.failed.length ? 'warn' : 'info'](
          { event: 'sync.pushed', final, files: r.pushed, failed: r.failed, skipped: r.skipped },
          `${this.spec.symbol} synced ${r.pushed.length} file(s) to the store${r.failed.length ? ` (${r.failed.length} failed)` : ''}`,
        );
    } catch (err) {
      this.deps.log.warn(
        { event: 'sync.failed', final, err: asRetrainError(err).message },
        `${this.spec.symbol} could not sync its folders; the training goes on`,
      );
    }
  }

  /**
   * After the training, whatever its outcome (once per attempt): the last sync, then the cleanup.
   * Never throws: neither may fail a symbol whose training succeeded.
   */
  async afterTraining(t: Transport, workdir: string, outcome: 'succeeded' | 'failed'): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    await this.pushOnce(t, workdir, true);
    if (!this.recipe.def.cleanup) return;
    let ctx: HostStepContext;
    try {
      ctx = this.stepContext(workdir);
    } catch (err) {
      this.deps.log.warn({ event: 'cleanup.failed', err: asRetrainError(err).message }, 'cleanup not run');
      return;
    }
    const r = await runCleanup(t, this.recipe, workdir, ctx);
    const ok = r.code === 0 && !r.error;
    this.deps.log[ok ? 'info' : 'warn'](
      {
        event: ok ? 'cleanup.done' : 'cleanup.failed',
        outcome,
        code: r.code,
        timedOut: r.timedOut,
        err: r.error,
      },
      ok
        ? `${this.spec.symbol} cleanup done (after the training ${outcome})`
        : `${this.spec.symbol} cleanup failed (${r.error ?? (r.timedOut ? 'timed out' : `exit ${r.code}`)}); see cleanup.log; the result stands`,
    );
  }
}
